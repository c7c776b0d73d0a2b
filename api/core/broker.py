"""The one place that talks to Dramatiq: the broker factory and the job sender that publishes to it."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import dramatiq
from dramatiq.brokers.redis import RedisBroker
from dramatiq.brokers.stub import StubBroker
from dramatiq.middleware import AgeLimit, AsyncIO, Callbacks, Pipelines, Retries, ShutdownNotifications, TimeLimit

from api.core.jobs import OutboundJob
from api.settings import Settings

# A dead worker's unacked messages are requeued by the survivors' maintenance sweep once its
# heartbeat is older than this (Dramatiq's default is a minute).
HEARTBEAT_TIMEOUT_MS = 15_000
MAINTENANCE_CHANCE = 10_000  # out of a million commands: 1% run the requeue sweep


def _middleware() -> list[dramatiq.Middleware]:
    return [
        AgeLimit(),
        TimeLimit(),
        ShutdownNotifications(),
        Callbacks(),
        Pipelines(),
        Retries(max_retries=10, min_backoff=1_000, max_backoff=300_000),
        AsyncIO(),
    ]


def build_broker(settings: Settings) -> dramatiq.Broker:
    """Build (but do not install) the broker for these settings."""
    if settings.embedded_queue:
        return StubBroker(middleware=_middleware())
    return RedisBroker(  # type: ignore[no-untyped-call]
        url=settings.redis_url,
        namespace=settings.redis_namespace,
        middleware=_middleware(),
        heartbeat_timeout=HEARTBEAT_TIMEOUT_MS,
        maintenance_chance=MAINTENANCE_CHANCE,
    )


class DramatiqJobSender:
    """Publishes jobs to a Dramatiq broker (Redis in production, in-process when embedded)."""

    def __init__(self, broker: dramatiq.Broker) -> None:
        self.broker = broker

    def _send_sync(self, jobs: Sequence[OutboundJob]) -> None:
        for outbound in jobs:
            job = outbound.job
            message: dramatiq.Message[Any] = dramatiq.Message(
                queue_name=job.queue_name,
                actor_name=job.actor_name,
                args=(),
                kwargs=job.kwargs,
                options={},
                message_id=f"outbox-{outbound.outbox_id}",
            )
            self.broker.enqueue(message, delay=job.delay_ms)

    async def send(self, jobs: Sequence[OutboundJob]) -> None:
        if jobs:
            # The Redis client is synchronous: keep it off the event loop.
            await asyncio.to_thread(self._send_sync, jobs)
