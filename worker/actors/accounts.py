"""Account housekeeping."""

from __future__ import annotations

import logging

import dramatiq

from api.accounts import service as accounts_service
from worker import runtime

log = logging.getLogger(__name__)


async def handle_purge_expired_sessions(period_key: str) -> int:
    """Delete sessions that ended more than 30 days ago. Idempotent: a second run finds nothing."""
    async with runtime.database().unit_of_work(runtime.job_sender()) as uow:
        purged = await accounts_service.purge_expired_sessions(uow)
    log.info("purged %d old sessions (period %s)", purged, period_key)
    return purged


@dramatiq.actor(
    actor_name="accounts.purge_expired_sessions", queue_name="maintenance", max_retries=5, time_limit=300_000
)
async def purge_expired_sessions(period_key: str) -> None:
    await handle_purge_expired_sessions(period_key)
