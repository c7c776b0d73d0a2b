"""Dispatch actors: offer to the best candidate, expire unanswered offers."""

from __future__ import annotations

import dramatiq

from api.dispatch import service as dispatch_service
from worker import runtime


async def handle_assign(request_id: int) -> None:
    """Offer an open request to the best candidate. Idempotent: acts only on an open request with no active offer."""
    async with runtime.database().unit_of_work(runtime.job_sender()) as uow:
        await dispatch_service.offer_to_best_candidate(uow, request_id=request_id)


async def handle_expire_offer(assignment_id: int) -> None:
    """Expire an offer whose time is up. Idempotent: only an OFFERED assignment past expiry changes."""
    async with runtime.database().unit_of_work(runtime.job_sender()) as uow:
        await dispatch_service.expire_offer(uow, assignment_id=assignment_id)


@dramatiq.actor(actor_name="dispatch.assign", queue_name="dispatch", max_retries=5, time_limit=60_000)
async def assign(request_id: int) -> None:
    await handle_assign(request_id)


@dramatiq.actor(actor_name="dispatch.expire_offer", queue_name="dispatch", max_retries=5, time_limit=60_000)
async def expire_offer(assignment_id: int) -> None:
    await handle_expire_offer(assignment_id)
