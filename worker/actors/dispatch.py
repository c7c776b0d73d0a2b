"""Dispatch actors: offer to the best candidate, expire unanswered offers, sweep up after lost messages."""

from __future__ import annotations

import logging
from datetime import timedelta

import dramatiq

from api.dispatch import service as dispatch_service
from worker import runtime

log = logging.getLogger(__name__)


async def handle_assign(request_id: int) -> None:
    """Offer an open request to the best candidate. Idempotent: acts only on an open request with no active offer."""
    async with runtime.database().unit_of_work(runtime.job_sender()) as uow:
        await dispatch_service.offer_to_best_candidate(uow, request_id=request_id)


async def handle_expire_offer(assignment_id: int) -> None:
    """Expire an offer whose time is up. Idempotent: only an OFFERED assignment past expiry changes."""
    async with runtime.database().unit_of_work(runtime.job_sender()) as uow:
        await dispatch_service.expire_offer(uow, assignment_id=assignment_id)


async def handle_sweep(period_key: str) -> None:
    """Send again what a lost message left undone. Idempotent: the jobs it sends are."""
    stale_after = timedelta(seconds=runtime.settings().dispatch_sweep_stale_seconds)
    async with runtime.database().unit_of_work(runtime.job_sender()) as uow:
        outcome = await dispatch_service.sweep(uow, stale_after=stale_after)
    if outcome.reassigned or outcome.expired:
        log.warning(
            "dispatch sweep %s: re-sent %d assign and %d expiry jobs",
            period_key, len(outcome.reassigned), len(outcome.expired),
        )  # fmt: skip


@dramatiq.actor(actor_name="dispatch.assign", queue_name="dispatch", max_retries=5, time_limit=60_000)
async def assign(request_id: int) -> None:
    await handle_assign(request_id)


@dramatiq.actor(actor_name="dispatch.expire_offer", queue_name="dispatch", max_retries=5, time_limit=60_000)
async def expire_offer(assignment_id: int) -> None:
    await handle_expire_offer(assignment_id)


@dramatiq.actor(actor_name="dispatch.sweep", queue_name="dispatch", max_retries=3, time_limit=120_000)
async def sweep(period_key: str) -> None:
    await handle_sweep(period_key)
