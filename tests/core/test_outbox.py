from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator, Sequence
from datetime import timedelta

import dramatiq
import pytest
import redis
from dramatiq.asyncio import get_event_loop_thread
from dramatiq.brokers.redis import RedisBroker
from dramatiq.brokers.stub import StubBroker
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from api.accounts.models import AccountSession
from api.core.broker import DramatiqJobSender, build_broker
from api.core.clock import utc_now
from api.core.crypto import token_hash
from api.core.database import Database
from api.core.jobs import Job, OutboundJob, OutboxMessage, RecordingJobSender
from api.core.outbox import outbox_lag, relay_pending
from api.core.viewer import Role
from api.graphql.context import Services
from api.registry.models import Community
from tests.conftest import make_settings
from tests.factories import make_community, make_login
from worker import jobs as worker_jobs
from worker import runtime
from worker.main import actors, install

PERIOD = "1795996800"
PURGE = worker_jobs.purge_expired_sessions(PERIOD)
DEAD_REDIS = "redis://127.0.0.1:1/0?socket_connect_timeout=0.5&socket_timeout=0.5"


async def outbox_rows(db: Database) -> list[OutboxMessage]:
    async with db.read_session() as session:
        return list((await session.scalars(select(OutboxMessage).order_by(OutboxMessage.id))).all())


async def session_ids(db: Database) -> list[int]:
    async with db.read_session() as session:
        return list((await session.scalars(select(AccountSession.id).order_by(AccountSession.id))).all())


@pytest.fixture
def restore_broker() -> Iterator[None]:
    """worker.main.install() changes process-wide state; put the previous broker back afterwards."""
    previous = dramatiq.broker.global_broker
    yield
    if previous is not None:
        dramatiq.set_broker(previous)
        for actor in actors():
            actor.broker = previous
    else:
        dramatiq.broker.global_broker = None


# -- the unit of work --------------------------------------------------------------------------


async def test_a_job_recorded_in_a_transaction_that_raises_is_never_written_or_sent(
    db: Database, jobs: RecordingJobSender
) -> None:
    # given
    async def change_that_raises() -> None:
        async with db.unit_of_work(jobs) as uow:
            uow.session.add(Community(code="rolled-back", name="x", city="x", district="x", street="x", address="x"))
            uow.enqueue(PURGE)
            raise RuntimeError("boom")

    # when
    with pytest.raises(RuntimeError, match=r"^boom$"):
        await change_that_raises()
    # then
    assert jobs.sent == []
    assert await outbox_rows(db) == []
    async with db.read_session() as session:
        assert await session.scalar(select(Community.id)) is None


async def test_a_job_whose_transaction_fails_at_commit_is_never_written_or_sent(
    db: Database, jobs: RecordingJobSender
) -> None:
    # given
    await make_community(db, code="taken")

    async def change_that_fails_on_commit() -> None:
        # the duplicate code only fails when the unit of work flushes on exit
        async with db.unit_of_work(jobs) as uow:
            uow.session.add(Community(code="taken", name="x", city="x", district="x", street="x", address="x"))
            uow.enqueue(PURGE)

    # when
    with pytest.raises(IntegrityError, match="uq_community_code"):
        await change_that_fails_on_commit()
    # then
    assert jobs.sent == []
    assert await outbox_rows(db) == []


async def test_a_committed_job_is_sent_at_once_and_marked_sent(db: Database, jobs: RecordingJobSender) -> None:
    # given
    before = utc_now()
    # when
    async with db.unit_of_work(jobs) as uow:
        uow.enqueue(PURGE)
    # then
    [row] = await outbox_rows(db)
    assert jobs.sent == [OutboundJob(row.id, PURGE)]
    assert row.actor_name == "accounts.purge_expired_sessions"
    assert row.queue_name == "maintenance"
    assert row.kwargs == {"period_key": PERIOD}
    assert row.sent_at is not None
    assert before <= row.sent_at <= utc_now()
    assert row.attempts == 1
    assert row.last_error is None
    assert await outbox_lag(db) == (0, 0.0)


async def test_jobs_of_one_unit_of_work_are_sent_together_in_order(db: Database, jobs: RecordingJobSender) -> None:
    # given
    first = Job("accounts.purge_expired_sessions", "maintenance", {"period_key": "1"})
    second = Job("accounts.purge_expired_sessions", "maintenance", {"period_key": "2"}, delay_ms=5_000)
    # when
    async with db.unit_of_work(jobs) as uow:
        uow.enqueue(first)
        uow.enqueue(second)
    # then
    rows = await outbox_rows(db)
    assert jobs.sent == [OutboundJob(rows[0].id, first), OutboundJob(rows[1].id, second)]
    assert [r.delay_ms for r in rows] == [None, 5_000]
    assert all(r.sent_at is not None for r in rows)


async def test_the_broker_message_id_is_the_outbox_id(db: Database) -> None:
    # given
    broker = StubBroker()
    broker.declare_queue("maintenance")
    # when
    async with db.unit_of_work(DramatiqJobSender(broker)) as uow:
        uow.enqueue(PURGE)
    # then
    [row] = await outbox_rows(db)
    message = dramatiq.Message.decode(broker.queues["maintenance"].get_nowait())
    assert message.message_id == f"outbox-{row.id}"
    assert message.actor_name == "accounts.purge_expired_sessions"
    assert message.queue_name == "maintenance"
    assert message.args == ()
    assert message.kwargs == {"period_key": PERIOD}
    assert broker.queues["maintenance"].qsize() == 0
    broker.close()


async def test_a_failed_publish_leaves_the_row_for_the_relay_which_sends_it_once(
    db: Database, caplog: pytest.LogCaptureFixture
) -> None:
    # given
    down = RecordingJobSender(fail=True)
    working = RecordingJobSender()
    # when: the broker is down at commit time
    with caplog.at_level(logging.WARNING, logger="api.core.database"):
        async with db.unit_of_work(down) as uow:
            uow.enqueue(PURGE)
    # then: committed but unsent
    [row] = await outbox_rows(db)
    assert row.sent_at is None
    assert row.attempts == 0
    assert down.sent == []
    assert [r.getMessage() for r in caplog.records] == ["outbox publish failed; the relay will retry"]
    unsent, age = await outbox_lag(db)
    assert unsent == 1
    assert age >= 0
    # when: the relay runs, before the grace period has passed
    assert await relay_pending(db, working) == 0
    assert working.sent == []
    # when: the relay runs later
    sent = await relay_pending(db, working, older_than=timedelta(0))
    # then
    assert sent == 1
    assert working.sent == [OutboundJob(row.id, PURGE)]
    [row] = await outbox_rows(db)
    assert row.sent_at is not None
    assert row.attempts == 1
    # when: a second relay
    assert await relay_pending(db, working, older_than=timedelta(0)) == 0
    # then
    assert len(working.sent) == 1
    assert await outbox_lag(db) == (0, 0.0)


async def test_a_relay_that_cannot_send_counts_the_attempt_and_keeps_the_row(db: Database) -> None:
    # given
    async with db.unit_of_work() as uow:
        uow.enqueue(PURGE)
    # when
    sent = await relay_pending(db, RecordingJobSender(fail=True), older_than=timedelta(0))
    # then
    assert sent == 0
    [row] = await outbox_rows(db)
    assert (row.sent_at, row.attempts, row.last_error) == (None, 1, "job delivery is unavailable")
    # when: the broker is back
    working = RecordingJobSender()
    assert await relay_pending(db, working, older_than=timedelta(0)) == 1
    # then
    [row] = await outbox_rows(db)
    assert row.sent_at is not None
    assert (row.attempts, row.last_error) == (2, None)
    assert working.sent == [OutboundJob(row.id, PURGE)]


async def test_the_relay_sends_in_batches_until_nothing_is_left(db: Database) -> None:
    # given
    async with db.unit_of_work() as uow:
        for i in range(25):
            uow.enqueue(worker_jobs.purge_expired_sessions(str(i)))
    working = RecordingJobSender()
    # when
    sent = await relay_pending(db, working, older_than=timedelta(0), batch_size=10)
    # then
    assert sent == 25
    assert [o.job.kwargs["period_key"] for o in working.sent] == [str(i) for i in range(25)]
    assert all(r.sent_at is not None for r in await outbox_rows(db))


# -- the real thing: Dramatiq over Redis -------------------------------------------------------


async def test_a_job_committed_while_redis_is_down_reaches_the_actor_through_the_relay(
    services: Services,
    db: Database,
    pg_url: str,
    redis_url: str,
    redis_namespace: str,
    redis_client: redis.Redis,
    restore_broker: None,
) -> None:
    # given: the worker's broker on Redis, its actors installed, and sessions to purge
    settings = make_settings(pg_url, redis_url=redis_url, redis_namespace=redis_namespace)
    broker = build_broker(settings)
    assert isinstance(broker, RedisBroker)
    assert broker.namespace == redis_namespace
    install(settings, broker)
    login = await make_login(services, role=Role.RESIDENT, community=await make_community(db))
    now = utc_now()
    async with db.unit_of_work() as uow:
        uow.session.add_all(
            [
                AccountSession(
                    account_id=login.account.id, token_hash=token_hash("old"), expires_at=now - timedelta(days=40)
                ),
                AccountSession(
                    account_id=login.account.id, token_hash=token_hash("recent"), expires_at=now - timedelta(days=2)
                ),
            ]
        )
    [current, old, recent] = await session_ids(db)
    dead = RedisBroker(url=DEAD_REDIS, namespace=redis_namespace, middleware=[])  # type: ignore[no-untyped-call]
    msgs_key = f"{redis_namespace}:maintenance.msgs"

    # when: a change commits while Redis is unreachable
    async with db.unit_of_work(DramatiqJobSender(dead)) as uow:
        uow.session.add(Community(code="committed", name="x", city="x", district="x", street="x", address="x"))
        uow.enqueue(PURGE)

    # then: the change is committed, the job waits in the outbox, nothing is queued
    async with db.read_session() as session:
        assert await session.scalar(select(Community.code).where(Community.code == "committed")) == "committed"
    [row] = await outbox_rows(db)
    assert (row.sent_at, row.attempts) == (None, 0)
    assert redis_client.hlen(msgs_key) == 0

    # when: the relay runs with Redis reachable
    sent = await relay_pending(db, DramatiqJobSender(broker), older_than=timedelta(0))

    # then: the message is in the queue, under the outbox id
    assert sent == 1
    [row] = await outbox_rows(db)
    assert row.sent_at is not None
    stored = list(redis_client.hgetall(msgs_key).items())
    assert len(stored) == 1
    [(redis_id, data)] = stored
    assert isinstance(data, bytes)
    assert redis_client.lrange(f"{redis_namespace}:maintenance", 0, -1) == [redis_id]
    message = dramatiq.Message.decode(data)
    assert message.message_id == f"outbox-{row.id}"
    assert (message.actor_name, message.queue_name, message.kwargs) == (
        "accounts.purge_expired_sessions",
        "maintenance",
        {"period_key": PERIOD},
    )
    assert await session_ids(db) == [current, old, recent]

    # when: a real Dramatiq worker consumes the queue
    worker = dramatiq.Worker(broker, worker_threads=1, worker_timeout=100)
    worker.start()
    try:
        await asyncio.to_thread(broker.join, "maintenance", timeout=20_000)
        await asyncio.to_thread(worker.join)
    finally:
        # the actor's database lives on the worker's event loop: close it there
        loop_thread = get_event_loop_thread()
        assert loop_thread is not None
        await asyncio.to_thread(loop_thread.run_coroutine, runtime.dispose())
        await asyncio.to_thread(worker.stop)
        dead.client.connection_pool.disconnect()
        broker.client.connection_pool.disconnect()

    # then: the actor ran: the old session is gone, the others stay
    assert await session_ids(db) == [current, recent]
    assert redis_client.hlen(msgs_key) == 0


# -- relays on several hosts -------------------------------------------------------------------


class SlowSender:
    """Records what it sends, and takes a moment per batch so that relays overlap."""

    def __init__(self) -> None:
        self.sent: list[OutboundJob] = []

    async def send(self, jobs: Sequence[OutboundJob]) -> None:
        await asyncio.sleep(0.02)
        self.sent.extend(jobs)


async def test_concurrent_relays_send_each_row_exactly_once(db: Database, pg_url: str) -> None:
    # given: 200 unsent rows
    async with db.unit_of_work() as uow:
        for i in range(200):
            uow.enqueue(worker_jobs.purge_expired_sessions(str(i)))
    ids = [r.id for r in await outbox_rows(db)]
    host_a, host_b = Database(pg_url, pool_size=2), Database(pg_url, pool_size=2)
    sender_a, sender_b = SlowSender(), SlowSender()
    # when
    try:
        sent_a, sent_b = await asyncio.gather(
            relay_pending(host_a, sender_a, older_than=timedelta(0), batch_size=20),
            relay_pending(host_b, sender_b, older_than=timedelta(0), batch_size=20),
        )
    finally:
        await host_a.dispose()
        await host_b.dispose()
    # then: every row went out once, and both relays did part of the work
    sent_ids = [o.outbox_id for o in sender_a.sent + sender_b.sent]
    assert sorted(sent_ids) == ids
    assert sent_a + sent_b == 200
    assert (sent_a, sent_b) == (len(sender_a.sent), len(sender_b.sent))
    assert sent_a > 0
    assert sent_b > 0
    rows = await outbox_rows(db)
    assert all(r.sent_at is not None and r.attempts == 1 for r in rows)
