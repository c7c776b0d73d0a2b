"""Jobs of the notices domain, and its periodic jobs (name, period, job built from the period key)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

from api.core.jobs import Job

QUEUE = "notifications"


def deliver(notice_id: int) -> Job:
    """Put a published notice in the inbox of every account in its audience (once per account)."""
    return Job("notices.deliver", QUEUE, {"notice_id": notice_id})


def publish_due(period_key: str) -> Job:
    """The periodic sweep: publish scheduled notices whose time has come."""
    return Job("notices.publish_due", QUEUE, {"period_key": period_key})


PERIODIC: list[tuple[str, timedelta, Callable[[str], Job]]] = [
    ("notices.publish_due", timedelta(seconds=30), publish_due),
]
