"""Notifications: the in-app inbox (one row per recipient and event), pushes and webhooks."""
