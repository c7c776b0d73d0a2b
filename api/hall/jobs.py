"""Jobs of the hall domain (queues `hall` and `notifications`), and its periodic jobs."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

from api.core.jobs import Job

QUEUE = "hall"


def application_changed(application_id: int, event_id: int) -> Job:
    """Tell the applicant (and, for a new application, the hall's staff) about a step."""
    return Job("hall.application_changed", "notifications", {"application_id": application_id, "event_id": event_id})


def scan(period_key: str) -> Job:
    """The periodic sweep: warn about applications about to lapse, escalate lapsed ones."""
    return Job("hall.scan", QUEUE, {"period_key": period_key})


PERIODIC: list[tuple[str, timedelta, Callable[[str], Job]]] = [
    ("hall.scan", timedelta(minutes=5), scan),
]
