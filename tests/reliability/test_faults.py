"""Faults on the real stack: worker processes SIGKILLed every 2 s, Redis restarted without saving.

Both run against a private redis-server (so restarting it disturbs nothing else) and a real
`linli worker` (supervisor, Dramatiq processes, scheduler, relay). The work is the dispatch of
N tickets; each has three effects that must each happen exactly once: the offer (assignment),
the ticket's "offered" event and the responder's inbox notice.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time

import pytest
import redis
from sqlalchemy import func, select

from api.dispatch.models import Assignment
from api.graphql.context import Services
from tests.e2e.test_tickets_worker import (  # the real-worker harness
    StartWorker,
    assert_exactly_one_offer_each,
    backlog,
    enqueue_assign,
    eventually,
    jobs,
    offers_made,
    queues_drained,
    ready,
    settings,
    start_worker,
    unsent_outbox,
)
from tests.reliability.conftest import PrivateRedis, record, size
from tests.tickets.conftest import make_desk

pytestmark = [pytest.mark.reliability, pytest.mark.e2e, pytest.mark.timeout(1800)]

__all__ = ["jobs", "settings", "start_worker"]  # fixtures used by the tests below


@pytest.fixture
def redis_url(private_redis: PrivateRedis) -> str:
    """Everything in this module (worker, senders, the test's client) uses the private redis-server."""
    return private_redis.url


async def effects(services: Services, request_ids: list[int]) -> dict[str, int]:
    """Lost and duplicated offers over `request_ids`."""
    async with services.db.read_session() as session:
        per_request = dict(
            (await session.execute(select(Assignment.request_id, func.count()).group_by(Assignment.request_id))).all()
        )
    return {
        "lost": sum(1 for r in request_ids if r not in per_request),
        "duplicated": sum(n - 1 for n in per_request.values() if n > 1),
    }


async def test_a_worker_killed_every_2_seconds_loses_and_duplicates_nothing(
    services: Services, start_worker: StartWorker, redis_client: redis.Redis, redis_namespace: str
) -> None:
    n = size(200, 1000)
    worker = start_worker(processes=2, threads=4)
    desk = await make_desk(services)
    request_ids = await backlog(services, desk, n)
    await ready(worker, processes=2)
    started = time.monotonic()
    await enqueue_assign(services, request_ids)

    kills = 0
    while (await offers_made(services.db))[0] < n:
        # Each kill makes the supervisor restart Dramatiq with a growing backoff (1 s doubling to
        # 30 s: a crash loop must not spin), so under a kill every 2 s the run is slow, not lossy.
        assert time.monotonic() - started < size(300, 1500), f"stalled at {(await offers_made(services.db))[0]}/{n}"
        await asyncio.sleep(2)
        victims = worker.dramatiq_workers()
        if victims and (await offers_made(services.db))[0] < n:
            os.kill(victims[0], signal.SIGKILL)
            kills += 1
    drained = time.monotonic() - started

    async def settled() -> bool:
        return queues_drained(redis_client, redis_namespace) and await unsent_outbox(services.db) == 0

    await eventually(settled, within=120, what="the queues and the outbox are empty")
    outcome = await effects(services, request_ids)
    record(
        "worker SIGKILL every 2 s",
        {"jobs": n, "kills": kills, **outcome, "seconds": round(drained, 1)},
        "0 lost, 0 duplicated",
        outcome == {"lost": 0, "duplicated": 0},
    )
    await assert_exactly_one_offer_each(services.db, request_ids)
    assert kills >= 1


async def test_redis_restarted_without_saving_loses_nothing(
    services: Services,
    start_worker: StartWorker,
    private_redis: PrivateRedis,
    redis_client: redis.Redis,
    redis_namespace: str,
) -> None:
    n = size(300, 1000)
    worker = start_worker(processes=1, threads=4)
    desk = await make_desk(services)
    request_ids = await backlog(services, desk, n)
    await ready(worker, processes=1)
    await enqueue_assign(services, request_ids)

    async def under_way() -> bool:
        return (await offers_made(services.db))[0] >= n // 5

    await eventually(under_way, within=60, what="dispatch is under way", every=0.05)
    # when: Redis dies with everything queued in it, and comes back empty
    at_restart = (await offers_made(services.db))[0]
    private_redis.stop()
    await asyncio.sleep(2)
    private_redis.start()
    restarted = time.monotonic()

    async def all_offered() -> bool:
        return (await offers_made(services.db))[0] >= n

    await eventually(all_offered, within=180, what=f"{n} offers after the Redis restart", every=0.5)
    recovered = time.monotonic() - restarted

    async def settled() -> bool:
        return queues_drained(redis_client, redis_namespace) and await unsent_outbox(services.db) == 0

    await eventually(settled, within=120, what="the queues and the outbox are empty")
    outcome = await effects(services, request_ids)
    record(
        "Redis restart without saving",
        {"jobs": n, "offers_before_restart": at_restart, **outcome, "recovered_seconds": round(recovered, 1)},
        "0 lost, 0 duplicated",
        outcome == {"lost": 0, "duplicated": 0},
    )
    await assert_exactly_one_offer_each(services.db, request_ids)
    assert "the broker restarted (new run id)" in worker.log()
