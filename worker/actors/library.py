"""Library actors: reader notices (each sent once), the hourly scan and the history anonymiser."""

from __future__ import annotations

import logging
from datetime import timedelta

import dramatiq

from api.library import notices
from api.library import service as library_service
from worker import runtime

log = logging.getLogger(__name__)


async def handle_loan_notice(loan_id: int, stage: str) -> int | None:
    """Due-soon or overdue notice. Idempotent: the (loan, stage) notice row is claimed once."""
    async with runtime.database().unit_of_work(runtime.job_sender()) as uow:
        return await notices.send_loan_notice(uow, loan_id=loan_id, stage=stage)


async def handle_hold_notice(hold_id: int, stage: str) -> int | None:
    """Hold-ready or hold-expired notice. Idempotent: the (hold, stage) notice row is claimed once."""
    async with runtime.database().unit_of_work(runtime.job_sender()) as uow:
        return await notices.send_hold_notice(uow, hold_id=hold_id, stage=stage)


async def handle_scan(period_key: str) -> notices.ScanOutcome:
    """Expire uncollected holds and enqueue due notices. Idempotent: notices are keyed, expiry is conditional."""
    async with runtime.database().unit_of_work(runtime.job_sender()) as uow:
        outcome = await notices.scan(uow)
    if outcome.notices or outcome.expired_holds:
        log.info(
            "library scan %s: %d notices, %d holds expired", period_key, len(outcome.notices),
            len(outcome.expired_holds),
        )  # fmt: skip
    return outcome


async def handle_anonymise(period_key: str) -> int:
    """Unlink old loan history from readers. Idempotent: only linked rows change."""
    days = runtime.settings().library_history_days
    async with runtime.database().unit_of_work(runtime.job_sender()) as uow:
        count = await library_service.anonymise_history(uow, older_than=timedelta(days=days))
    log.info("anonymised %d loans older than %d days (period %s)", count, days, period_key)
    return count


@dramatiq.actor(actor_name="library.loan_notice", queue_name="notifications", max_retries=10, time_limit=60_000)
async def loan_notice(loan_id: int, stage: str) -> None:
    await handle_loan_notice(loan_id, stage)


@dramatiq.actor(actor_name="library.hold_notice", queue_name="notifications", max_retries=10, time_limit=60_000)
async def hold_notice(hold_id: int, stage: str) -> None:
    await handle_hold_notice(hold_id, stage)


@dramatiq.actor(actor_name="library.scan", queue_name="library", max_retries=3, time_limit=300_000)
async def scan(period_key: str) -> None:
    await handle_scan(period_key)


@dramatiq.actor(actor_name="library.anonymise", queue_name="library", max_retries=3, time_limit=300_000)
async def anonymise(period_key: str) -> None:
    await handle_anonymise(period_key)
