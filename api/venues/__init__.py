"""Venues and activities: rooms, opening hours, room bookings, sign-ups with capacity and waitlist."""
