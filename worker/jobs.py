"""Job builders for the worker's own actors (domain packages keep theirs next to their services)."""

from __future__ import annotations

from api.core.jobs import Job


def purge_expired_sessions(period_key: str) -> Job:
    return Job("accounts.purge_expired_sessions", "maintenance", {"period_key": period_key})


def retention(period_key: str) -> Job:
    """Forget what is past its retention policy (idempotency keys, ticket contacts, old access-log rows)."""
    return Job("privacy.retention", "maintenance", {"period_key": period_key})
