"""Operational figures read at scrape time: outbox backlog, broker queues, dead letters, dispatch latency."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from sqlalchemy import func, select

from api.core.broker import queue_depths
from api.core.clock import utc_now
from api.core.jobs import OutboxMessage
from api.dispatch.models import Assignment, DispatchRequest
from api.graphql.context import Services
from api.observability import Metrics

DISPATCH_WINDOW = timedelta(hours=1)
DISPATCH_SAMPLE = 5000


def _quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def refresh_gauges(metrics: Metrics, services: Services) -> None:
    """Set the gauges that are read from the database and the broker rather than counted in-process."""
    now = utc_now()
    async with services.db.read_session() as session:
        pending, oldest = (
            await session.execute(
                select(func.count(), func.min(OutboxMessage.created_at)).where(OutboxMessage.sent_at.is_(None))
            )
        ).one()
        first_offer = (
            select(DispatchRequest.created_at, func.min(Assignment.offered_at).label("offered_at"))
            .join(Assignment, Assignment.request_id == DispatchRequest.id)
            .where(DispatchRequest.created_at >= now - DISPATCH_WINDOW)
            .group_by(DispatchRequest.id, DispatchRequest.created_at)
            .limit(DISPATCH_SAMPLE)
        )
        rows = (await session.execute(first_offer)).all()
    metrics.outbox_pending.set(pending)
    metrics.outbox_lag.set((now - oldest).total_seconds() if oldest is not None else 0.0)
    latencies = [max(0.0, (offered - created).total_seconds()) for created, offered in rows]
    for q in (0.5, 0.9, 0.99):
        metrics.dispatch_seconds.labels(str(q)).set(_quantile(latencies, q) if latencies else 0.0)
    broker = getattr(services.jobs, "broker", None)
    if broker is not None:
        for depth in await asyncio.to_thread(queue_depths, broker):
            metrics.queue_depth.labels(depth.queue_name).set(depth.waiting + depth.delayed)
            metrics.dead_letters.labels(depth.queue_name).set(depth.dead)
