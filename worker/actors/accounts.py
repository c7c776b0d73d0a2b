"""Account housekeeping and the retention of personal data."""

from __future__ import annotations

import logging
from datetime import timedelta

import dramatiq

from api.accounts import service as accounts_service
from api.core import idempotency
from api.registry import personal_data
from api.tickets import service as tickets_service
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


async def handle_retention(period_key: str) -> dict[str, int]:
    """Apply the retention policies. Idempotent: a second run in the same period finds nothing to do."""
    settings = runtime.settings()
    db = runtime.database()
    keys = await idempotency.purge(db, older_than=timedelta(hours=settings.idempotency_hours))
    async with db.unit_of_work(runtime.job_sender()) as uow:
        contacts = await tickets_service.anonymise_closed_contacts(
            uow, older_than=timedelta(days=settings.ticket_contact_retention_days)
        )
    async with db.unit_of_work(runtime.job_sender()) as uow:
        access = await personal_data.purge_access_log(
            uow, older_than=timedelta(days=settings.access_log_retention_days)
        )
    done = {"idempotency_keys": keys, "ticket_contacts": contacts, "access_log_rows": access}
    log.info("retention %s: %s", period_key, done)
    return done


@dramatiq.actor(actor_name="privacy.retention", queue_name="maintenance", max_retries=5, time_limit=600_000)
async def retention(period_key: str) -> None:
    await handle_retention(period_key)
