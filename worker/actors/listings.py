"""Actors of the listings domain; HANDLERS maps actor names to their plain handlers (for tests)."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

import dramatiq

from api.listings import service as listings_service
from worker import runtime

log = logging.getLogger(__name__)


def _policy() -> listings_service.ListingPolicy:
    return listings_service.ListingPolicy.from_settings(runtime.settings())


async def handle_notify_poster(listing_id: int, event: str, key: str) -> None:
    """Tell the poster about a decision. Idempotent: one notice per (listing, key, event)."""
    async with runtime.database().unit_of_work(runtime.job_sender()) as uow:
        await listings_service.notify_poster(uow, listing_id=listing_id, event=event, key=key)


async def handle_deliver_message(message_id: int) -> None:
    """Deliver a listing message to the recipient's inbox. Idempotent: one notice per message."""
    async with runtime.database().unit_of_work(runtime.job_sender()) as uow:
        await listings_service.deliver_message(uow, message_id=message_id)


async def handle_scan(period_key: str) -> None:
    """Warn before expiry and expire what is due. Idempotent: conditional UPDATEs, notices unique per event."""
    async with runtime.database().unit_of_work(runtime.job_sender()) as uow:
        outcome = await listings_service.scan(uow, policy=_policy())
    if outcome.warned or outcome.expired:
        log.info("listings scan %s: %d warned, %d expired", period_key, len(outcome.warned), len(outcome.expired))


@dramatiq.actor(actor_name="listings.notify_poster", queue_name="notifications", max_retries=10, time_limit=60_000)
async def notify_poster(listing_id: int, event: str, key: str) -> None:
    await handle_notify_poster(listing_id, event, key)


@dramatiq.actor(actor_name="listings.deliver_message", queue_name="notifications", max_retries=10, time_limit=60_000)
async def deliver_message(message_id: int) -> None:
    await handle_deliver_message(message_id)


@dramatiq.actor(actor_name="listings.scan", queue_name="listings", max_retries=3, time_limit=300_000)
async def scan(period_key: str) -> None:
    await handle_scan(period_key)


HANDLERS: dict[str, Callable[..., Awaitable[Any]]] = {
    "listings.notify_poster": handle_notify_poster,
    "listings.deliver_message": handle_deliver_message,
    "listings.scan": handle_scan,
}
