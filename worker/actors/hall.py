"""Actors of the hall domain; HANDLERS maps actor names to their plain handlers (for tests)."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

import dramatiq

from api.hall import jobs as hall_jobs
from api.hall import service as hall_service
from worker import runtime

log = logging.getLogger(__name__)


async def handle_application_changed(application_id: int, event_id: int) -> None:
    """Inbox notices for one step of an application. Idempotent: one notice per (recipient, event)."""
    async with runtime.database().unit_of_work(runtime.job_sender()) as uow:
        await hall_service.tell_application_changed(uow, application_id=application_id, event_id=event_id)


async def handle_scan(period_key: str) -> None:
    """Warn about applications with one working day left and escalate lapsed ones.

    Idempotent: `warned_at` and `escalated_at` are set by conditional UPDATEs, once per time limit,
    and each notice is unique per (recipient, event). A full batch enqueues one more scan.
    """
    async with runtime.database().unit_of_work(runtime.job_sender()) as uow:
        outcome = await hall_service.scan(uow)
        if outcome.more:
            uow.enqueue(hall_jobs.scan(f"{period_key}+"))
    if outcome.warned or outcome.escalated:
        log.info("hall scan %s: %d warned, %d escalated", period_key, len(outcome.warned), len(outcome.escalated))


@dramatiq.actor(actor_name="hall.application_changed", queue_name="notifications", max_retries=10, time_limit=60_000)
async def application_changed(application_id: int, event_id: int) -> None:
    await handle_application_changed(application_id, event_id)


@dramatiq.actor(actor_name="hall.scan", queue_name="hall", max_retries=3, time_limit=300_000)
async def scan(period_key: str) -> None:
    await handle_scan(period_key)


HANDLERS: dict[str, Callable[..., Awaitable[Any]]] = {
    "hall.application_changed": handle_application_changed,
    "hall.scan": handle_scan,
}
