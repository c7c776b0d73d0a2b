from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from datetime import timedelta
from pathlib import Path

import pytest
import redis
from sqlalchemy import select

from api.accounts.models import AccountSession
from api.core.clock import utc_now
from api.core.crypto import token_hash
from api.core.database import Database
from api.core.jobs import OutboxMessage, RecordingJobSender
from api.core.scheduling import SchedulerTick
from api.core.viewer import Role
from api.graphql.context import Services
from tests.factories import make_community, make_login
from worker import jobs as worker_jobs
from worker.scheduler import periodic_jobs

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
SECRET = "e2e-secret-key-0123456789-abcdefghijklmn"
PURGE = "accounts.purge_expired_sessions"


@pytest.fixture
def worker_process(
    pg_url: str, redis_url: str, redis_namespace: str, tmp_path: Path
) -> Iterator[subprocess.Popen[bytes]]:
    """`linli worker` in its own session; killed with its children if the test leaves it running."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LINLI_")}
    env.update(
        LINLI_ENVIRONMENT="test",
        LINLI_DATABASE_URL=pg_url,
        LINLI_REDIS_URL=redis_url,
        LINLI_REDIS_NAMESPACE=redis_namespace,
        LINLI_SECRET_KEY=SECRET,
        LINLI_DB_POOL_SIZE="2",
        LINLI_SCHEDULER_TICK_SECONDS="0.5",
        LINLI_OUTBOX_RELAY_INTERVAL_SECONDS="1",
        LINLI_OUTBOX_RELAY_GRACE_SECONDS="0",
    )
    assert len(SECRET) == 40
    log = (tmp_path / "worker.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "api.cli", "worker", "--processes", "1", "--threads", "2"],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        yield proc
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
        log.close()
        print((tmp_path / "worker.log").read_text(errors="replace")[-5000:])


async def eventually(check: Callable[[], Awaitable[bool]], *, within: float, what: str) -> None:
    deadline = time.monotonic() + within
    while not await check():
        if time.monotonic() > deadline:
            pytest.fail(f"not within {within:.0f}s: {what}")
        await asyncio.sleep(0.2)


async def test_the_worker_relays_a_job_the_api_could_not_publish_and_stops_cleanly_on_sigterm(
    services: Services,
    db: Database,
    redis_client: redis.Redis,
    redis_namespace: str,
    worker_process: subprocess.Popen[bytes],
) -> None:
    # given: sessions to purge, and the day's own purge already done, so that only our job can purge
    async def session_hashes() -> set[str]:
        async with db.read_session() as session:
            return set((await session.scalars(select(AccountSession.token_hash))).all())

    login = await make_login(services, role=Role.RESIDENT, community=await make_community(db))
    logged_in = await session_hashes()
    now = utc_now()
    [day] = [j for j in periodic_jobs(db, RecordingJobSender(), services.settings) if j.name == PURGE]
    async with db.unit_of_work() as uow:
        uow.session.add_all(
            [
                SchedulerTick(job_name=PURGE, period_key=day.period_key(now)),
                SchedulerTick(job_name=PURGE, period_key=day.period_key(now + timedelta(days=1))),
                AccountSession(
                    account_id=login.account.id, token_hash=token_hash("old"), expires_at=now - timedelta(days=40)
                ),
                AccountSession(
                    account_id=login.account.id,
                    token_hash=token_hash("revoked"),
                    expires_at=now + timedelta(days=1),
                    revoked_at=now - timedelta(days=31),
                ),
                AccountSession(
                    account_id=login.account.id, token_hash=token_hash("recent"), expires_at=now - timedelta(days=3)
                ),
            ]
        )

    async def relay_is_running() -> bool:
        async with db.read_session() as session:
            tick = await session.scalar(select(SchedulerTick.id).where(SchedulerTick.job_name == "outbox.sweep"))
        return tick is not None

    await eventually(relay_is_running, within=30, what="the scheduler leads and sweeps the outbox")
    assert worker_process.poll() is None
    assert len(await session_hashes()) == 4

    # when: the API commits a purge while the broker is unreachable
    async with db.unit_of_work(RecordingJobSender(fail=True)) as uow:
        uow.enqueue(worker_jobs.purge_expired_sessions("e2e"))
    async with db.read_session() as session:
        [row] = (await session.scalars(select(OutboxMessage).where(OutboxMessage.actor_name == PURGE))).all()
    assert row.sent_at is None

    # then: the relay sends it and a worker process runs it
    async def purged() -> bool:
        return await session_hashes() == logged_in | {token_hash("recent")}

    async def queue_drained() -> bool:
        return redis_client.hlen(f"{redis_namespace}:maintenance.msgs") == 0

    await eventually(purged, within=30, what="the old sessions are purged")
    async with db.read_session() as session:
        sent = await session.scalar(select(OutboxMessage.sent_at).where(OutboxMessage.id == row.id))
    assert sent is not None
    await eventually(queue_drained, within=10, what="the message is acknowledged")

    # when: the process is asked to stop
    worker_process.send_signal(signal.SIGTERM)
    # then
    returncode = await asyncio.to_thread(worker_process.wait, 20)
    assert returncode == 0
