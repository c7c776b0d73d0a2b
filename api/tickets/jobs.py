"""Jobs of the tickets domain."""

from __future__ import annotations

from api.core.jobs import Job


def notify(ticket_id: int, event_id: int) -> Job:
    """Tell the people concerned about a ticket event (inbox, push, webhook)."""
    return Job("tickets.notify", "notifications", {"ticket_id": ticket_id, "event_id": event_id})


def sla_scan(period_key: str) -> Job:
    return Job("tickets.sla_scan", "tickets", {"period_key": period_key})


def follow_up_scan(period_key: str) -> Job:
    return Job("tickets.follow_up_scan", "tickets", {"period_key": period_key})
