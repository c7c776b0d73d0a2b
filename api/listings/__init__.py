"""Listings (帮你办): rentals, second-hand sales, job and rental-wanted ads and needs, with moderation and reports."""
