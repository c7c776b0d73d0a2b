"""Notification actors: POST signed webhooks."""

from __future__ import annotations

import dramatiq

from api.notifications import webhooks
from worker import runtime


async def handle_deliver_webhook(delivery_id: int) -> None:
    """POST one webhook delivery. Idempotent: a delivered or failed row is not sent again.

    Raises dramatiq.Retry for 5xx, 429 and timeouts (Dramatiq backs off, or waits the
    receiver's Retry-After); other 4xx fail the delivery for good.
    """
    result = await webhooks.deliver(runtime.database(), cipher=runtime.cipher(), delivery_id=delivery_id)
    if result.outcome is webhooks.Outcome.RETRY:
        raise dramatiq.Retry(f"webhook delivery {delivery_id}: {result.error}", delay=result.retry_after_ms)


@dramatiq.actor(
    actor_name=webhooks.ACTOR,
    queue_name=webhooks.QUEUE,
    max_retries=webhooks.MAX_ATTEMPTS,
    min_backoff=10_000,
    max_backoff=3_600_000,
    time_limit=60_000,
)
async def deliver_webhook(delivery_id: int) -> None:
    await handle_deliver_webhook(delivery_id)
