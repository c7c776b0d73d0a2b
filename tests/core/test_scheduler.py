from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select, text

from api.core.database import Database
from api.core.jobs import Job, OutboxMessage, RecordingJobSender
from api.core.scheduling import PeriodicJob, Scheduler, SchedulerTick
from tests.conftest import make_settings
from worker import jobs as worker_jobs
from worker.scheduler import build_scheduler, periodic_jobs

T0 = datetime(2030, 1, 1, 12, 0, 0, tzinfo=UTC)
MINUTE = timedelta(minutes=1)


class Recorder:
    """A periodic job body that records the period keys it ran for."""

    def __init__(self) -> None:
        self.keys: list[str] = []

    async def __call__(self, period_key: str) -> None:
        self.keys.append(period_key)


def key_of(moment: datetime) -> str:
    return str(int(moment.timestamp()))


@pytest.fixture
async def other_db(pg_url: str) -> AsyncIterator[Database]:
    """A second host's database connection pool."""
    database = Database(pg_url, pool_size=2)
    yield database
    await database.dispose()


@pytest.fixture
async def schedulers(db: Database, other_db: Database) -> AsyncIterator[list[Scheduler]]:
    """Made by the test; each one's leader lock is released afterwards."""
    made: list[Scheduler] = []
    yield made
    for scheduler in made:
        await scheduler.lock.release()


async def ticks(db: Database) -> list[tuple[str, str]]:
    async with db.read_session() as session:
        rows = await session.execute(
            select(SchedulerTick.job_name, SchedulerTick.period_key).order_by(SchedulerTick.id)
        )
    return [(name, key) for name, key in rows.all()]


# -- leadership --------------------------------------------------------------------------------


async def test_only_one_scheduler_leads_and_the_other_takes_over_when_it_releases(
    db: Database, other_db: Database, schedulers: list[Scheduler]
) -> None:
    # given: two hosts
    job_a, job_b = Recorder(), Recorder()
    host_a = Scheduler(db, [PeriodicJob("cleanup", MINUTE, job_a)])
    host_b = Scheduler(other_db, [PeriodicJob("cleanup", MINUTE, job_b)])
    schedulers += [host_a, host_b]
    # when
    ran_a = await host_a.tick(T0)
    ran_b = await host_b.tick(T0 + MINUTE)
    # then: the first holds the lock and runs; the second runs nothing, even in a new period
    assert ran_a == ["cleanup"]
    assert ran_b == []
    assert (host_a.lock.held, host_b.lock.held) == (True, False)
    assert await host_b.lock.acquire() is False
    assert (job_a.keys, job_b.keys) == ([key_of(T0)], [])

    # when: the leader goes away
    await host_a.lock.release()
    ran_b = await host_b.tick(T0 + MINUTE)
    ran_a = await host_a.tick(T0 + 2 * MINUTE)
    # then: the other host leads now
    assert ran_b == ["cleanup"]
    assert ran_a == []
    assert (host_a.lock.held, host_b.lock.held) == (False, True)
    assert job_b.keys == [key_of(T0 + MINUTE)]
    assert job_a.keys == [key_of(T0)]


async def test_a_leader_that_dies_loses_the_lock_with_its_connection(
    db: Database, other_db: Database, schedulers: list[Scheduler]
) -> None:
    # given
    host_a = Scheduler(db, [PeriodicJob("cleanup", MINUTE, Recorder())])
    host_b = Scheduler(other_db, [PeriodicJob("cleanup", MINUTE, Recorder())])
    schedulers += [host_a, host_b]
    assert await host_a.lock.acquire() is True
    assert await host_b.lock.acquire() is False
    # when: the leader's session ends without unlocking (process killed, network gone)
    async with other_db.engine.connect() as conn:
        await conn.execute(
            text(
                "SELECT pg_terminate_backend(pid) FROM pg_locks"
                " WHERE locktype = 'advisory' AND granted AND database = (SELECT oid FROM pg_database"
                " WHERE datname = current_database())"
            )
        )
    # then
    for _ in range(50):
        if await host_b.lock.acquire():
            break
        await asyncio.sleep(0.1)
    assert host_b.lock.held is True


async def test_stopping_the_scheduler_hands_leadership_over(
    db: Database, other_db: Database, schedulers: list[Scheduler]
) -> None:
    # given: a leader running its loop
    job = Recorder()
    host_a = Scheduler(db, [PeriodicJob("cleanup", MINUTE, job)], tick_seconds=0.05)
    host_b = Scheduler(other_db, [PeriodicJob("cleanup", MINUTE, Recorder())])
    schedulers += [host_a, host_b]
    stop = asyncio.Event()
    loop = asyncio.create_task(host_a.run_forever(stop))
    for _ in range(100):
        if job.keys:
            break
        await asyncio.sleep(0.05)
    assert len(job.keys) == 1
    assert await host_b.lock.acquire() is False
    # when
    stop.set()
    await asyncio.wait_for(loop, timeout=5)
    # then
    assert host_a.lock.held is False
    assert await host_b.lock.acquire() is True


async def test_the_leader_keeps_no_transaction_open_between_ticks(db: Database, schedulers: list[Scheduler]) -> None:
    # given
    scheduler = Scheduler(db, [PeriodicJob("cleanup", MINUTE, Recorder())])
    schedulers.append(scheduler)
    # when: it leads for a few ticks
    for seconds in range(3):
        await scheduler.tick(T0 + timedelta(seconds=seconds))
    # then: its connection holds the lock but no transaction, so VACUUM is not held back
    async with db.engine.connect() as conn:
        rows = await conn.execute(
            text(
                "SELECT a.state, a.backend_xmin IS NULL FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid"
                " WHERE l.locktype = 'advisory' AND l.granted"
                " AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())"
            )
        )
        assert [tuple(r) for r in rows.all()] == [("idle", True)]


# -- once per period ---------------------------------------------------------------------------


async def test_a_job_runs_once_per_period_however_often_and_wherever_it_ticks(
    db: Database, other_db: Database, schedulers: list[Scheduler]
) -> None:
    # given
    job = Recorder()
    host_a = Scheduler(db, [PeriodicJob("cleanup", MINUTE, job)])
    host_b = Scheduler(other_db, [PeriodicJob("cleanup", MINUTE, job)])
    schedulers += [host_a, host_b]
    # when: many ticks in one period, on one host and then (after a handover) on another
    first = [await host_a.tick(T0 + timedelta(seconds=s)) for s in (0, 1, 30, 59)]
    await host_a.lock.release()
    second = [await host_b.tick(T0 + timedelta(seconds=s)) for s in (5, 59)]
    # then
    assert first == [["cleanup"], [], [], []]
    assert second == [[], []]
    assert job.keys == [key_of(T0)]

    # when: the next period
    ran = await host_b.tick(T0 + MINUTE + timedelta(seconds=1))
    # then
    assert ran == ["cleanup"]
    assert job.keys == [key_of(T0), key_of(T0 + MINUTE)]
    assert await ticks(db) == [("cleanup", key_of(T0)), ("cleanup", key_of(T0 + MINUTE))]


async def test_a_restarted_scheduler_does_not_run_the_period_again(db: Database, schedulers: list[Scheduler]) -> None:
    # given
    job = Recorder()
    before = Scheduler(db, [PeriodicJob("cleanup", MINUTE, job)])
    schedulers.append(before)
    await before.tick(T0)
    await before.lock.release()
    # when: a new process in the same period
    after = Scheduler(db, [PeriodicJob("cleanup", MINUTE, job)])
    schedulers.append(after)
    ran = await after.tick(T0 + timedelta(seconds=20))
    # then
    assert ran == []
    assert job.keys == [key_of(T0)]


async def test_after_downtime_a_job_runs_once_not_once_per_missed_period(
    db: Database, schedulers: list[Scheduler]
) -> None:
    # given
    job = Recorder()
    scheduler = Scheduler(db, [PeriodicJob("cleanup", MINUTE, job)])
    schedulers.append(scheduler)
    await scheduler.tick(T0)
    # when: the next tick comes ten periods later
    later = T0 + 10 * MINUTE + timedelta(seconds=7)
    ran = [await scheduler.tick(later), await scheduler.tick(later + timedelta(seconds=1))]
    # then
    assert ran == [["cleanup"], []]
    assert job.keys == [key_of(T0), key_of(T0 + 10 * MINUTE)]


async def test_two_claims_of_one_period_at_once_let_exactly_one_run(
    db: Database, other_db: Database, schedulers: list[Scheduler]
) -> None:
    # given: two hosts that both believe they lead (e.g. right after a lost connection)
    job = PeriodicJob("cleanup", MINUTE, Recorder())
    host_a, host_b = Scheduler(db, [job]), Scheduler(other_db, [job])
    # when
    claims = await asyncio.gather(*(h.claim(job, key_of(T0)) for h in (host_a, host_b, host_a, host_b)))
    # then
    assert sorted(claims) == [False, False, False, True]
    assert await ticks(db) == [("cleanup", key_of(T0))]


def test_period_keys_start_at_the_period_boundary() -> None:
    job = PeriodicJob("daily", timedelta(days=1), Recorder())
    midnight = datetime(2030, 1, 1, tzinfo=UTC)
    assert job.period_key(midnight) == key_of(midnight) == "1893456000"
    assert job.period_key(midnight + timedelta(hours=23, minutes=59)) == "1893456000"
    assert job.period_key(midnight + timedelta(days=1)) == "1893542400"


# -- failures ----------------------------------------------------------------------------------


async def test_a_failing_job_is_logged_and_does_not_stop_the_others(
    db: Database, schedulers: list[Scheduler], caplog: pytest.LogCaptureFixture
) -> None:
    # given
    async def fail(period_key: str) -> None:
        raise RuntimeError(f"disk full in {period_key}")

    healthy = Recorder()
    scheduler = Scheduler(db, [PeriodicJob("broken", MINUTE, fail), PeriodicJob("healthy", MINUTE, healthy)])
    schedulers.append(scheduler)
    # when
    with caplog.at_level(logging.ERROR, logger="api.core.scheduling"):
        ran = await scheduler.tick(T0)
    # then
    assert ran == ["broken", "healthy"]
    assert healthy.keys == [key_of(T0)]
    [record] = caplog.records
    assert record.levelno == logging.ERROR
    assert record.getMessage() == f"periodic job broken failed for period {key_of(T0)}"
    assert record.exc_info is not None
    assert isinstance(record.exc_info[1], RuntimeError)
    assert str(record.exc_info[1]) == f"disk full in {key_of(T0)}"
    # and the next period runs both again
    assert await scheduler.tick(T0 + MINUTE) == ["broken", "healthy"]
    assert healthy.keys == [key_of(T0), key_of(T0 + MINUTE)]


# -- the product's periodic jobs ---------------------------------------------------------------


async def outbox(db: Database) -> list[OutboxMessage]:
    async with db.read_session() as session:
        return list((await session.scalars(select(OutboxMessage).order_by(OutboxMessage.id))).all())


PURGE = "accounts.purge_expired_sessions"


def product_job(jobs: list[PeriodicJob], name: str) -> PeriodicJob:
    [job] = [j for j in jobs if j.name == name]
    return job


async def test_the_product_schedules_the_outbox_sweep_and_the_session_purge(db: Database, pg_url: str) -> None:
    # when
    settings = make_settings(pg_url, outbox_relay_interval_seconds=7, scheduler_tick_seconds=3)
    scheduler = build_scheduler(db, RecordingJobSender(), settings)
    # then
    names = [j.name for j in scheduler.jobs]
    assert len(set(names)) == len(names)
    assert product_job(scheduler.jobs, "outbox.sweep").period == timedelta(seconds=7)
    assert product_job(scheduler.jobs, PURGE).period == timedelta(days=1)
    assert scheduler.tick_seconds == 3


async def test_the_outbox_sweep_sends_unsent_rows_after_the_grace_period(db: Database, pg_url: str) -> None:
    # given: two jobs whose publish never happened
    async with db.unit_of_work() as uow:
        uow.enqueue(worker_jobs.purge_expired_sessions("1"))
        uow.enqueue(worker_jobs.purge_expired_sessions("2"))
    sender = RecordingJobSender()
    patient = product_job(periodic_jobs(db, sender, make_settings(pg_url)), "outbox.sweep")  # the default 10 s grace
    eager = product_job(periodic_jobs(db, sender, make_settings(pg_url, outbox_relay_grace_seconds=0)), "outbox.sweep")
    # when: within the grace period
    await patient.run("0")
    # then
    assert sender.sent == []
    # when: with no grace
    await eager.run("0")
    # then
    rows = await outbox(db)
    assert [(o.outbox_id, o.job.kwargs) for o in sender.sent] == [
        (rows[0].id, {"period_key": "1"}),
        (rows[1].id, {"period_key": "2"}),
    ]
    assert all(r.sent_at is not None for r in rows)
    # when: again
    await eager.run("1")
    # then
    assert len(sender.sent) == 2


async def test_the_session_purge_is_enqueued_once_per_day(
    db: Database, other_db: Database, pg_url: str, schedulers: list[Scheduler]
) -> None:
    # given: two hosts with the product's jobs
    settings = make_settings(pg_url, outbox_relay_grace_seconds=0)
    sender = RecordingJobSender()
    host_a = Scheduler(db, periodic_jobs(db, sender, settings))
    host_b = Scheduler(other_db, periodic_jobs(other_db, sender, settings))
    schedulers += [host_a, host_b]
    day = datetime(2030, 1, 1, tzinfo=UTC)
    next_day = day + timedelta(days=1)

    def purges_sent() -> list[Job]:
        return [o.job for o in sender.sent if o.job.actor_name == PURGE]

    # when: ticks all day long on one host, then the other
    for hours in (0, 1, 9, 23):
        await host_a.tick(day + timedelta(hours=hours, minutes=5))
    await host_a.lock.release()
    await host_b.tick(day + timedelta(hours=23, minutes=59))
    # then: one purge, keyed by the day, sent at once through the outbox
    assert purges_sent() == [worker_jobs.purge_expired_sessions(key_of(day))]
    # when: the next day
    await host_b.tick(next_day + timedelta(minutes=1))
    # then
    assert purges_sent() == [
        worker_jobs.purge_expired_sessions(key_of(day)),
        worker_jobs.purge_expired_sessions(key_of(next_day)),
    ]
    rows = [r for r in await outbox(db) if r.actor_name == PURGE]
    assert [(r.kwargs, r.sent_at is not None, r.attempts) for r in rows] == [
        ({"period_key": key_of(day)}, True, 1),
        ({"period_key": key_of(next_day)}, True, 1),
    ]
    assert [k for name, k in await ticks(db) if name == PURGE] == [key_of(day), key_of(next_day)]
