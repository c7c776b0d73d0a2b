"""Jobs of the dispatch engine, and the `<kind>.assignment_changed` job its users handle."""

from __future__ import annotations

from api.core.jobs import Job

QUEUE = "dispatch"


def assign(request_id: int) -> Job:
    """Offer the request to the best remaining candidate."""
    return Job("dispatch.assign", QUEUE, {"request_id": request_id})


def expire_offer(assignment_id: int, delay_ms: int | None) -> Job:
    """Expire an offer nobody answered; runs once the offer's time is up."""
    return Job("dispatch.expire_offer", QUEUE, {"assignment_id": assignment_id}, delay_ms=delay_ms)


def assignment_changed(kind: str, request_id: int, event: str, assignment_id: int | None = None) -> Job:
    """Tell the domain that owns `kind` (ticket, visit) that its dispatch moved on.

    Events: offered, accepted, declined, expired, escalated, reassigned, completed.
    """
    return Job(
        f"{kind}.assignment_changed",
        "events",
        {"request_id": request_id, "event": event, "assignment_id": assignment_id},
    )


def sweep(period_key: str) -> Job:
    """Re-send the work of requests and offers whose messages were lost (a broker that restarted empty)."""
    return Job("dispatch.sweep", QUEUE, {"period_key": period_key})
