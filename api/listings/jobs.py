"""Jobs of the listings domain (queue `listings`), and its periodic jobs (name, period, job built from the period key)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

from api.core.jobs import Job

QUEUE = "listings"


def notify_poster(listing_id: int, event: str, key: str) -> Job:
    """Tell the poster about a decision on their listing (published, rejected, hidden, restored, removed)."""
    return Job("listings.notify_poster", "notifications", {"listing_id": listing_id, "event": event, "key": key})


def deliver_message(message_id: int) -> Job:
    """Put a message about a listing in its recipient's inbox."""
    return Job("listings.deliver_message", "notifications", {"message_id": message_id})


def scan(period_key: str) -> Job:
    """The periodic sweep: warn posters before expiry, and expire what is due."""
    return Job("listings.scan", QUEUE, {"period_key": period_key})


PERIODIC: list[tuple[str, timedelta, Callable[[str], Job]]] = [
    ("listings.scan", timedelta(minutes=10), scan),
]
