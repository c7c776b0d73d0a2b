"""A bare Dramatiq actor doing one small PostgreSQL read and one write: the floor for dispatch throughput.

Run by bench.dispatch_floor as `python -m dramatiq bench.bare_actor -p N -t T`; configured by
BENCH_FLOOR_REDIS_URL, BENCH_FLOOR_NAMESPACE and BENCH_FLOOR_DSN.
"""

from __future__ import annotations

import os

import asyncpg
import dramatiq
from dramatiq.brokers.redis import RedisBroker
from dramatiq.middleware.asyncio import AsyncIO

broker = RedisBroker(  # type: ignore[no-untyped-call]
    url=os.environ["BENCH_FLOOR_REDIS_URL"], namespace=os.environ["BENCH_FLOOR_NAMESPACE"]
)
broker.add_middleware(AsyncIO())
dramatiq.set_broker(broker)

_pool: asyncpg.Pool | None = None


async def _connections() -> asyncpg.Pool:
    global _pool
    if _pool is None:
        _pool = await asyncpg.create_pool(os.environ["BENCH_FLOOR_DSN"], min_size=1, max_size=8)
    return _pool


@dramatiq.actor(actor_name="floor.touch", queue_name="floor", max_retries=3)
async def touch(item_id: int) -> None:
    pool = await _connections()
    async with pool.acquire() as conn:
        await conn.fetchval("SELECT id FROM floor_source WHERE id = $1", item_id)
        await conn.execute("INSERT INTO floor_done (id) VALUES ($1) ON CONFLICT DO NOTHING", item_id)
