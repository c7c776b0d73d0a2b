"""Actors of the notices domain; HANDLERS maps actor names to their plain handlers (for tests)."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

import dramatiq

from api.notices import service as notices_service
from worker import runtime

log = logging.getLogger(__name__)


async def handle_deliver(notice_id: int) -> None:
    """Fill the audience's inboxes. Idempotent: one delivery per (notice, account), one notification per event."""
    async with runtime.database().unit_of_work(runtime.job_sender()) as uow:
        added = await notices_service.deliver(uow, notice_id=notice_id)
    if added:
        log.info("notice %d delivered to %d account(s)", notice_id, added)


async def handle_publish_due(period_key: str) -> None:
    """Publish scheduled notices whose time has come. Idempotent: scheduled → published happens once."""
    async with runtime.database().unit_of_work(runtime.job_sender()) as uow:
        published = await notices_service.publish_due(uow)
    if published:
        log.info("notices %s: published %d scheduled notice(s)", period_key, len(published))


@dramatiq.actor(actor_name="notices.deliver", queue_name="notifications", max_retries=10, time_limit=300_000)
async def deliver(notice_id: int) -> None:
    await handle_deliver(notice_id)


@dramatiq.actor(actor_name="notices.publish_due", queue_name="notifications", max_retries=3, time_limit=120_000)
async def publish_due(period_key: str) -> None:
    await handle_publish_due(period_key)


HANDLERS: dict[str, Callable[..., Awaitable[Any]]] = {
    "notices.deliver": handle_deliver,
    "notices.publish_due": handle_publish_due,
}
