"""The production worker on Redis and PostgreSQL: tickets flow, nothing is lost when a process dies.

Every test starts a real `linli worker` (the supervisor, its Dramatiq processes and the
scheduler) and talks to it only through the database, Redis and the GraphQL API.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, cast

import pytest
import redis
from sqlalchemy import func, insert, select
from strawberry.relay import GlobalID

from api import cli
from api.core.broker import DeliveryLimit, DramatiqJobSender, build_broker
from api.core.clock import utc_now
from api.core.database import Database
from api.core.jobs import Job, OutboundJob, OutboxMessage
from api.dispatch import jobs as dispatch_jobs
from api.dispatch.models import Assignment, DispatchRequest, Responder
from api.graphql.context import Services
from api.notifications.models import Notification
from api.settings import Settings
from api.tickets.models import Ticket, TicketCategory, TicketEvent
from tests.conftest import make_settings
from tests.tickets.conftest import Desk, make_desk

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
SECRET = "e2e-secret-key-0123456789-abcdefghijklmn"
TICKETS = 1_000
# The queues a ticket's jobs go through (expire_offer waits 15 minutes in dispatch.DQ).
WORK_QUEUES = ("dispatch", "events", "notifications")

SUBMIT = """
mutation Submit($input: SubmitTicketInput!) {
  submitTicket(input: $input) { __typename ... on SubmitTicketSuccess { ticket { id status } } }
}
"""
OFFERS = "{ myOffers { id state ticket { id } } }"
ANSWER = """
mutation Answer($input: AnswerOfferInput!) {
  answerOffer(input: $input) { __typename ... on AnswerOfferSuccess { assignment { state } } }
}
"""
TICKET = "query T($id: ID!) { node(id: $id) { ... on Ticket { status } } }"
INBOX = "{ inbox(first: 20) { edges { node { title ticket { id } } } } }"


# -- a real `linli worker` -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Proc:
    pid: int
    ppid: int
    session: int
    state: str
    cmdline: str


def processes() -> list[Proc]:
    """Every process, read from /proc (no psutil)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except (OSError, IndexError):
            continue
        found.append(Proc(int(entry.name), int(stat[1]), int(stat[3]), stat[0], cmdline))
    return found


@dataclass
class Worker:
    proc: subprocess.Popen[bytes]
    log_path: Path
    env: dict[str, str] = field(repr=False)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def dramatiq_main(self) -> int | None:
        """The Dramatiq main process the supervisor runs now."""
        mains = [p.pid for p in processes() if p.ppid == self.proc.pid and "dramatiq" in p.cmdline]
        return mains[0] if mains else None

    def dramatiq_workers(self) -> list[int]:
        main = self.dramatiq_main()
        return sorted(p.pid for p in processes() if main and p.ppid == main and p.state != "Z")

    def linli(self, *argv: str) -> subprocess.CompletedProcess[str]:
        """Run another `linli` command with this worker's environment."""
        return subprocess.run(
            [sys.executable, "-m", "api.cli", *argv], cwd=ROOT, env=self.env, capture_output=True, text=True, timeout=60
        )

    def kill_everything(self) -> None:
        """SIGKILL the supervisor and every process left that it started (they share its session)."""
        for p in processes():
            if p.session == self.proc.pid and p.state != "Z":
                with contextlib.suppress(ProcessLookupError):
                    os.kill(p.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)


StartWorker = Callable[..., Worker]


@pytest.fixture
def start_worker(
    pg_url: str, redis_url: str, redis_namespace: str, tmp_path: Path, db: Database, redis_client: redis.Redis
) -> Iterator[StartWorker]:
    """Start `linli worker` in its own session; whatever a test leaves running is killed.

    It depends on `db` and `redis_client` so that the processes are gone before those clean up.
    """
    started: list[Worker] = []

    def start(*, processes: int = 2, threads: int = 4, **settings: str) -> Worker:
        env = {k: v for k, v in os.environ.items() if not k.startswith("LINLI_")}
        env.update(
            LINLI_ENVIRONMENT="test",
            LINLI_DATABASE_URL=pg_url,
            LINLI_REDIS_URL=redis_url,
            LINLI_REDIS_NAMESPACE=redis_namespace,
            LINLI_SECRET_KEY=SECRET,
            LINLI_DB_POOL_SIZE="4",
            LINLI_SCHEDULER_TICK_SECONDS="0.5",
            LINLI_OUTBOX_RELAY_INTERVAL_SECONDS="1",
            LINLI_OUTBOX_RELAY_GRACE_SECONDS="2",
        )
        env.update({f"LINLI_{name.upper()}": value for name, value in settings.items()})
        log_path = tmp_path / f"worker-{len(started)}.log"
        with log_path.open("wb") as log:
            proc = subprocess.Popen(
                [sys.executable, "-m", "api.cli", "worker", "--processes", str(processes), "--threads", str(threads)],
                cwd=ROOT,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        worker = Worker(proc, log_path, env)
        started.append(worker)
        return worker

    assert len(SECRET) == 40
    yield start
    for worker in started:
        worker.kill_everything()
        print(f"--- {worker.log_path.name} (last 4000 characters)\n{worker.log()[-4000:]}")


async def eventually(check: Callable[[], Awaitable[bool]], *, within: float, what: str, every: float = 0.2) -> None:
    deadline = time.monotonic() + within
    while not await check():
        if time.monotonic() > deadline:
            pytest.fail(f"not within {within:.0f}s: {what}")
        await asyncio.sleep(every)


async def ready(worker: Worker, *, processes: int, restarts: int = 0) -> None:
    """Wait until the Dramatiq processes of the (re)started run are all up."""

    async def up() -> bool:
        assert worker.proc.poll() is None, worker.log()[-3000:]
        log = worker.log()
        return log.count("dramatiq started") == restarts + 1 and log.count("is ready for action") >= processes * (
            restarts + 1
        )

    await eventually(up, within=60, what=f"{processes} Dramatiq processes are ready")


async def stop(worker: Worker, sig: signal.Signals = signal.SIGTERM) -> int:
    """SIGTERM, as systemd or docker would (or SIGINT, as Ctrl-C); the exit code."""
    worker.proc.send_signal(sig)
    return await asyncio.to_thread(worker.proc.wait, 45)


# -- the application side: GraphQL and jobs go to the same Redis namespace --------------------


@pytest.fixture
def settings(pg_url: str, redis_url: str, redis_namespace: str) -> Settings:
    return make_settings(pg_url, redis_url=redis_url, redis_namespace=redis_namespace)


@pytest.fixture
def jobs(settings: Settings) -> DramatiqJobSender:
    """What api/app.build_services wires in production: a Dramatiq sender over the Redis broker."""
    return DramatiqJobSender(build_broker(settings))


def gid(type_name: str, id_: int) -> str:
    return str(GlobalID(type_name, str(id_)))


def hlen(client: redis.Redis, key: str) -> int:
    return int(client.hlen(key))


def queues_drained(client: redis.Redis, namespace: str) -> bool:
    """No message waits in, or is held from, a work queue (the hash keeps each until it is acked)."""
    return all(hlen(client, f"{namespace}:{queue}.msgs") == 0 for queue in WORK_QUEUES)


def stranded_acks(client: redis.Redis, namespace: str, heartbeat_timeout_ms: int) -> list[str]:
    """Sets of unacked messages held by a worker whose heartbeat is too old: work a dead process took."""
    now_ms = time.time() * 1000
    beats = cast(list[tuple[bytes, float]], client.zrange(f"{namespace}:__heartbeats__", 0, -1, withscores=True))
    alive = {member.decode() for member, beat in beats if beat >= now_ms - heartbeat_timeout_ms}
    prefix = f"{namespace}:__acks__."
    held = [key.decode() for key in client.scan_iter(match=f"{prefix}*")]
    return [key for key in held if key[len(prefix) :].split(".", 1)[0] not in alive]


async def unsent_outbox(db: Database) -> int:
    async with db.read_session() as session:
        return int(
            await session.scalar(select(func.count()).select_from(OutboxMessage).where(OutboxMessage.sent_at.is_(None)))
            or 0
        )


# -- a. the whole flow ------------------------------------------------------------------------


async def test_a_ticket_submitted_through_graphql_is_offered_accepted_and_announced_by_the_worker(
    services: Services,
    gql: Callable[..., Awaitable[dict[str, Any]]],
    start_worker: StartWorker,
    redis_client: redis.Redis,
) -> None:
    # given: a running worker and a community with a plumber
    worker = start_worker(processes=1, threads=2)
    desk = await make_desk(services)
    await ready(worker, processes=1)
    household = desk.estate.households[0]
    async with services.db.read_session() as session:
        leak = await session.scalar(
            select(TicketCategory.id).where(
                TicketCategory.community_id == desk.estate.community.id, TicketCategory.code == "leak"
            )
        )
    assert leak is not None

    # when: a resident reports a leak at home
    submitted = await gql(
        SUBMIT,
        {
            "input": {
                "categoryId": gid("TicketCategory", leak),
                "description": "厨房水管漏水",
                "place": {
                    "buildingId": gid("Building", household.building_id),
                    "unit": household.unit,
                    "room": household.room,
                },
                "answers": {"where": "厨房"},
            }
        },
        token=desk.reporter.token,
    )
    ticket_id = submitted["submitTicket"]["ticket"]["id"]

    # then: the worker offers it to the plumber
    offers: list[dict[str, Any]] = []

    async def offered() -> bool:
        offers[:] = (await gql(OFFERS, token=desk.plumber.token))["myOffers"]
        return bool(offers)

    await eventually(offered, within=30, what="the ticket is offered to the plumber")
    assert [(o["state"], o["ticket"]["id"]) for o in offers] == [("offered", ticket_id)]

    # when: the plumber accepts
    answered = await gql(ANSWER, {"input": {"assignmentId": offers[0]["id"], "accept": True}}, token=desk.plumber.token)
    assert answered["answerOffer"] == {"__typename": "AnswerOfferSuccess", "assignment": {"state": "accepted"}}

    # then: the worker assigns the ticket and tells the plumber and the reporter
    async def inbox(desk_login: Any) -> list[str]:
        edges = (await gql(INBOX, token=desk_login.token))["inbox"]["edges"]
        return [e["node"]["ticket"]["id"] for e in edges if e["node"]["ticket"]]

    async def assigned_and_told() -> bool:
        status = (await gql(TICKET, {"id": ticket_id}, token=desk.reporter.token))["node"]["status"]
        return (
            status == "ASSIGNED" and ticket_id in await inbox(desk.plumber) and ticket_id in await inbox(desk.reporter)
        )

    await eventually(assigned_and_told, within=30, what="the ticket is ASSIGNED and both are notified")
    async with services.db.read_session() as session:
        row = await session.get(Ticket, int(GlobalID.from_id(ticket_id).node_id))
    assert row is not None
    assert row.assignee_responder_id == desk.plumber_responder.id
    assert worker.proc.poll() is None
    assert await stop(worker) == 0


# -- b, c. 1,000 tickets: exactly one offer each, even when a worker process is killed -----------


async def backlog(services: Services, desk: Desk, n: int) -> list[int]:
    """`n` open leak tickets with their dispatch requests, inserted in bulk; the plumber can take them all."""
    cid = desk.estate.community.id
    async with services.db.unit_of_work() as uow:
        category = await uow.session.scalar(
            select(TicketCategory).where(TicketCategory.community_id == cid, TicketCategory.code == "leak")
        )
        assert category is not None
        plumber = await uow.session.get(Responder, desk.plumber_responder.id)
        assert plumber is not None
        plumber.max_open = 10 * n
        ticket_ids = (
            await uow.session.scalars(
                insert(Ticket).returning(Ticket.id),
                [
                    {
                        "community_id": cid,
                        "category_id": category.id,
                        "kind": category.kind,
                        "status": "submitted",
                        "channel": "app",
                        "description": f"漏水 {i}",
                        "answers": {"where": "厨房"},
                    }
                    for i in range(n)
                ],
            )
        ).all()
        request_ids = (
            await uow.session.scalars(
                insert(DispatchRequest).returning(DispatchRequest.id),
                [
                    {"community_id": cid, "kind": "ticket", "subject_id": t, "skill": category.skill, "mode": "offer"}
                    for t in ticket_ids
                ],
            )
        ).all()
    return list(request_ids)


async def enqueue_assign(services: Services, request_ids: list[int]) -> datetime:
    """One `dispatch.assign` per request through the outbox (published right after the commit)."""
    started = utc_now()
    async with services.db.unit_of_work(services.jobs) as uow:
        for request_id in request_ids:
            uow.enqueue(dispatch_jobs.assign(request_id))
    return started


async def offers_made(db: Database) -> tuple[int, datetime | None]:
    async with db.read_session() as session:
        count, last = (await session.execute(select(func.count(), func.max(Assignment.offered_at)))).one()
    return int(count), last


async def assert_exactly_one_offer_each(db: Database, request_ids: list[int]) -> None:
    async with db.read_session() as session:
        per_request = dict(
            (await session.execute(select(Assignment.request_id, func.count()).group_by(Assignment.request_id))).all()
        )
        offered_events = await session.scalar(
            select(func.count()).select_from(TicketEvent).where(TicketEvent.dedupe_key.like("assignment:offered:%"))
        )
        inbox = await session.scalar(select(func.count()).select_from(Notification))
        not_once = await session.scalar(
            select(func.count()).select_from(DispatchRequest).where(DispatchRequest.attempts != 1)
        )
    assert sorted(per_request) == sorted(request_ids)
    assert set(per_request.values()) == {1}
    assert not_once == 0  # every request counted exactly one attempt
    assert offered_events == len(request_ids)  # the ticket side recorded each offer once…
    assert inbox == len(request_ids)  # …and the plumber was told once per ticket


@pytest.mark.parametrize("procs", [1, 2], ids=["1-process", "2-processes"])
async def test_a_worker_drains_1000_tickets_with_exactly_one_offer_each(
    services: Services, start_worker: StartWorker, redis_client: redis.Redis, redis_namespace: str, procs: int
) -> None:
    # given
    worker = start_worker(processes=procs, threads=4)
    desk = await make_desk(services)
    request_ids = await backlog(services, desk, TICKETS)
    await ready(worker, processes=procs)

    # when
    started = await enqueue_assign(services, request_ids)

    async def all_offered() -> bool:
        return (await offers_made(services.db))[0] >= TICKETS

    await eventually(all_offered, within=120, what=f"{TICKETS} offers", every=0.5)
    _, last = await offers_made(services.db)
    assert last is not None
    elapsed = (last - started).total_seconds()
    print(f"\nDRAIN processes={procs} threads=4: {TICKETS} tickets offered in {elapsed:.1f}s")

    # then: every job of every ticket ran, each with its effect exactly once
    async def settled() -> bool:
        return queues_drained(redis_client, redis_namespace) and await unsent_outbox(services.db) == 0

    await eventually(settled, within=60, what="the queues and the outbox are empty")
    await assert_exactly_one_offer_each(services.db, request_ids)
    assert elapsed < 90
    assert list(redis_client.scan_iter(match=f"{redis_namespace}:*.XQ")) == []
    assert await stop(worker) == 0


def held_messages(client: redis.Redis, namespace: str) -> dict[str, int]:
    """Each worker's set of fetched-but-unacked messages (per queue), and how many it holds."""
    return {key.decode(): int(client.scard(key)) for key in client.scan_iter(match=f"{namespace}:__acks__.*")}


async def test_killing_a_worker_process_mid_run_loses_nothing_and_duplicates_nothing(
    services: Services, start_worker: StartWorker, redis_client: redis.Redis, redis_namespace: str
) -> None:
    # given: a 2-process worker dispatching 1,000 tickets, 80% done (so that what follows the kill
    # is mostly the recovery, not the rest of the backlog)
    worker = start_worker(processes=2, threads=4)
    desk = await make_desk(services)
    request_ids = await backlog(services, desk, TICKETS)
    await ready(worker, processes=2)
    first_main = worker.dramatiq_main()
    victims = worker.dramatiq_workers()
    assert first_main is not None
    assert len(victims) == 2
    started = await enqueue_assign(services, request_ids)

    async def under_way() -> bool:
        return (await offers_made(services.db))[0] >= TICKETS * 4 // 5

    await eventually(under_way, within=90, what="dispatch is under way", every=0.1)

    # when: one Dramatiq worker process is killed outright
    killed_at = utc_now()
    os.kill(victims[0], signal.SIGKILL)
    held = held_messages(redis_client, redis_namespace)
    offers_at_kill = (await offers_made(services.db))[0]
    assert sum(n for key, n in held.items() if key.endswith(".dispatch")) > 0  # dispatch jobs were in hand

    # then: the supervisor brings Dramatiq back…
    await ready(worker, processes=2, restarts=1)
    restarted_after = (utc_now() - killed_at).total_seconds()
    assert worker.dramatiq_main() not in (None, first_main)
    assert "exited unexpectedly (exit code 1)" in worker.log()

    # …what the dead process held goes back on the queues…
    async def handed_back() -> bool:
        return not any(redis_client.exists(key) for key in held)

    await eventually(handed_back, within=60, what="the messages held at the kill are requeued or acked", every=0.1)
    requeued_after = (utc_now() - killed_at).total_seconds()

    # …every ticket still gets exactly one offer…
    async def all_offered() -> bool:
        return (await offers_made(services.db))[0] >= TICKETS

    await eventually(all_offered, within=60, what=f"{TICKETS} offers after the kill", every=0.2)
    _, last = await offers_made(services.db)
    assert last is not None
    recovered = (last - killed_at).total_seconds()

    # …and nothing is left behind: no queued or unacked message, no unsent outbox row, nothing
    # held by a dead process
    async def settled() -> bool:
        return (
            queues_drained(redis_client, redis_namespace)
            and await unsent_outbox(services.db) == 0
            and stranded_acks(redis_client, redis_namespace, services.settings.broker_heartbeat_timeout_ms) == []
        )

    await eventually(settled, within=60, what="queues, outbox and dead workers' acks are empty")
    settled_after = (utc_now() - killed_at).total_seconds()
    print(
        f"\nKILL -9 at {offers_at_kill}/{TICKETS} offers, {(killed_at - started).total_seconds():.1f}s into the run, "
        f"{sum(held.values())} messages held by the 2 processes: Dramatiq back after {restarted_after:.1f}s, "
        f"held messages requeued after {requeued_after:.1f}s, last offer {recovered:.1f}s after the kill, "
        f"all queues and the outbox empty after {settled_after:.1f}s"
    )
    await assert_exactly_one_offer_each(services.db, request_ids)
    assert list(redis_client.scan_iter(match=f"{redis_namespace}:*.XQ")) == []
    # Dramatiq notices within 2s and stops the survivor, the restart waits 1s and boots in about
    # 2s; the dead process's messages come back once its heartbeat is 5s old and a maintenance
    # pass runs on their queue (10% of broker calls: within a second or two while busy); the
    # last ~200 offers take about 4s.
    assert requeued_after < 20
    assert recovered < 30
    assert await stop(worker) == 0


# -- d, e. poison messages end in the dead-letter queue, where operators see them --------------


async def test_a_job_that_always_fails_is_retried_then_dead_lettered_and_listed(
    services: Services, start_worker: StartWorker, redis_client: redis.Redis, redis_namespace: str
) -> None:
    # given: a worker retrying quickly, and a notification job whose ticket id is not a number
    worker = start_worker(processes=1, threads=2, broker_retry_min_backoff_ms="10", broker_retry_max_backoff_ms="50")
    await ready(worker, processes=1)
    async with services.db.unit_of_work(services.jobs) as uow:
        uow.enqueue(Job("tickets.notify", "notifications", {"ticket_id": "not-a-number", "event_id": 1}))
    async with services.db.read_session() as session:
        outbox_id = await session.scalar(select(OutboxMessage.id).where(OutboxMessage.actor_name == "tickets.notify"))
    message_id = f"outbox-{outbox_id}"

    # when
    async def dead_lettered() -> bool:
        return int(redis_client.zcard(f"{redis_namespace}:notifications.XQ")) == 1

    await eventually(dead_lettered, within=60, what="the message is dead-lettered")
    listed = worker.linli("dead-letters", "--queue", "notifications")
    everything = worker.linli("dead-letters")
    elsewhere = worker.linli("dead-letters", "--queue", "dispatch")

    # then: it ran 1 + max_retries (10) times, then left the queue for the dead-letter queue
    log = worker.log()
    assert log.count(f"Retrying message '{message_id}'") == 10
    assert log.count(f"Retries exceeded for message '{message_id}'") == 1
    assert hlen(redis_client, f"{redis_namespace}:notifications.msgs") == 0
    assert listed.returncode == 0, listed.stderr
    lines = listed.stdout.splitlines()
    assert f"queue=notifications  actor=tickets.notify  message_id={message_id}  failed_runs=11" in lines[0]
    assert lines[1] == '    args: {"ticket_id": "not-a-number", "event_id": 1}'
    assert lines[2].startswith("    failure: DBAPIError: ")
    assert "invalid input for query argument" in lines[2]
    assert lines[3:] == ["1 dead-lettered message(s)."]
    assert everything.returncode == 0
    assert everything.stdout == listed.stdout
    assert (elsewhere.returncode, elsewhere.stdout) == (0, "No dead-lettered messages in queue dispatch.\n")
    assert await stop(worker) == 0


async def test_a_message_whose_worker_process_keeps_dying_is_dead_lettered_after_max_deliveries(
    services: Services,
    settings: Settings,
    start_worker: StartWorker,
    redis_client: redis.Redis,
    redis_namespace: str,
    pg_url: str,
    redis_url: str,
) -> None:
    # given: a dispatch job that two worker processes took, started, and died running (a process
    # that dies leaves exactly this in Redis: the message in its unacked set, its heartbeat stale)
    await services.jobs.send([OutboundJob(9001, dispatch_jobs.assign(424242))])
    fast = make_settings(
        pg_url,
        redis_url=redis_url,
        redis_namespace=redis_namespace,
        broker_heartbeat_timeout_ms=1_000,
        broker_maintenance_chance=1_000_000,
    )

    def take_and_die() -> str:
        broker = build_broker(fast)  # a fresh worker identity; its first call requeues the dead one's work
        [limit] = [m for m in broker.middleware if isinstance(m, DeliveryLimit)]
        consumer = broker.consume("dispatch", prefetch=1, timeout=100)
        deadline = time.monotonic() + 10
        while (message := next(consumer)) is None:
            assert time.monotonic() < deadline, "the message never came back"
        limit.before_process_message(broker, message)  # the worker starts running it…
        return str(message.message_id)  # …and dies: no ack, no more heartbeats

    assert await asyncio.to_thread(take_and_die) == "outbox-9001"
    await asyncio.sleep(1.2)
    assert await asyncio.to_thread(take_and_die) == "outbox-9001"

    # when: a worker that allows 2 deliveries gets it back once the second heartbeat is stale
    worker = start_worker(processes=1, threads=2, broker_max_deliveries="2")

    async def dead_lettered() -> bool:
        return int(redis_client.zcard(f"{redis_namespace}:dispatch.XQ")) == 1

    await eventually(dead_lettered, within=45, what="the crash-looping message is dead-lettered")
    listed = worker.linli("dead-letters", "--queue", "dispatch")

    # then: it never ran a third time, and the operator sees why
    assert "message outbox-9001 (dispatch.assign) goes to the dead-letter queue" in worker.log()
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.splitlines()[1:] == [
        '    args: {"request_id": 424242}',
        "    failure: DeliveryLimitExceeded: the worker process died while running it 2 times",
        "1 dead-lettered message(s).",
    ]
    assert "actor=dispatch.assign  message_id=outbox-9001  failed_runs=0" in listed.stdout.splitlines()[0]
    assert hlen(redis_client, f"{redis_namespace}:dispatch.msgs") == 0
    assert list(redis_client.scan_iter(match=f"{redis_namespace}:__deliveries__.*")) == []
    assert await stop(worker) == 0


# -- the supervisor itself ----------------------------------------------------------------------


@pytest.mark.parametrize("moment", ["importing", "dramatiq-booting"])
async def test_sigterm_during_start_up_exits_cleanly_and_leaves_no_process(
    start_worker: StartWorker, moment: str
) -> None:
    # given: a worker signalled while it imports the application, or once Dramatiq exists but is not ready
    worker = start_worker(processes=1, threads=1)

    async def reached() -> bool:
        if moment == "importing":
            return "starting the scheduler" in worker.log()
        return worker.dramatiq_main() is not None

    await eventually(reached, within=30, what=moment, every=0.01)
    session = [p.pid for p in processes() if p.session == worker.proc.pid]

    # when
    code = await stop(worker)

    # then: it exits 0 and leaves no process behind
    assert code == 0
    assert [p.pid for p in processes() if p.pid in session and p.state != "Z"] == []
    assert [p.pid for p in processes() if p.session == worker.proc.pid and p.state != "Z"] == []
    if moment == "importing":
        assert "dramatiq started" not in worker.log()


async def test_the_supervisor_restarts_dramatiq_with_backoff(start_worker: StartWorker) -> None:
    # given
    worker = start_worker(processes=1, threads=1)
    await ready(worker, processes=1)

    # when: Dramatiq's main process is killed twice in a row
    for restarts in (1, 2):
        main = worker.dramatiq_main()
        assert main is not None
        os.kill(main, signal.SIGKILL)
        await ready(worker, processes=1, restarts=restarts)

    # then: each restart is logged with a doubling delay, and the orphaned workers were stopped
    log = worker.log()
    assert "exited unexpectedly (killed by SIGKILL)" in log
    assert "restart #1 in 1s" in log
    assert "restart #2 in 2s" in log
    assert log.count("its group") == 2  # the killed main's worker process was stopped each time
    assert len(worker.dramatiq_workers()) == 1
    assert await stop(worker, signal.SIGINT) == 0
    assert "stopping dramatiq" in worker.log()


async def test_the_restart_delay_doubles_up_to_its_cap_and_resets_after_a_healthy_run(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    # given: a stand-in for Dramatiq that fails at once, except that its 5th run lasts past "healthy"
    monkeypatch.setattr(cli, "RESTART_BACKOFF_FIRST_SECONDS", 0.05)
    monkeypatch.setattr(cli, "RESTART_BACKOFF_MAX_SECONDS", 0.2)
    monkeypatch.setattr(cli, "HEALTHY_RUN_SECONDS", 0.5)
    runs = tmp_path / "runs"
    script = (
        f"import pathlib, sys, time; p = pathlib.Path({str(runs)!r}); n = len(p.read_text()) + 1 if p.exists() else 1;"
        " p.write_text('x' * n); time.sleep(0.7 if n == 5 else 0); sys.exit(3)"
    )
    caplog.set_level(logging.INFO, logger="linli")
    stop_supervising = asyncio.Event()

    # when
    task = asyncio.create_task(cli._supervise_dramatiq([sys.executable, "-c", script], stop_supervising))

    async def seven_restarts() -> bool:
        return "restart #7 " in caplog.text

    await eventually(seven_restarts, within=30, what="7 restarts")
    stop_supervising.set()
    await task

    # then
    assert re.findall(r"\(exit code 3\) after [\d.]+s; restart #\d+ in ([\d.]+)s", caplog.text)[:7] == [
        "0.05", "0.1", "0.2", "0.2", "0.05", "0.1", "0.2",
    ]  # fmt: skip


async def test_a_dramatiq_that_ignores_sigterm_is_killed_with_its_whole_group_after_the_grace(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # given: a stand-in for Dramatiq that ignores SIGTERM, with a child of its own that does too
    monkeypatch.setattr(cli, "SHUTDOWN_GRACE_SECONDS", 0.5)
    stubborn = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(60)"
    script = f"import subprocess, sys; subprocess.Popen([sys.executable, '-c', {stubborn!r}]); {stubborn}"
    stop_supervising = asyncio.Event()
    task = asyncio.create_task(cli._supervise_dramatiq([sys.executable, "-c", script], stop_supervising))
    family: list[int] = []

    async def both_running() -> bool:
        mains = [p.pid for p in processes() if p.ppid == os.getpid() and "SIG_IGN" in p.cmdline]
        family[:] = mains + [p.pid for p in processes() if mains and p.ppid == mains[0]]
        return len(family) == 2

    await eventually(both_running, within=30, what="the stand-in and its child run")

    # when
    started = time.monotonic()
    stop_supervising.set()
    await task
    took = time.monotonic() - started

    # then: SIGTERM, the grace, then SIGKILL to the group: neither process is left
    assert 0.5 <= took < 3
    assert "did not stop within 0.5s; killing its process group" in caplog.text
    assert [p.pid for p in processes() if p.pid in family and p.state != "Z"] == []


def test_dead_letters_needs_redis(pg_url: str) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LINLI_")}
    env.update(LINLI_DATABASE_URL=pg_url, LINLI_REDIS_URL="")
    done = subprocess.run(
        [sys.executable, "-m", "api.cli", "dead-letters"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert (done.returncode, done.stdout) == (2, "")
    assert "keeps no dead letters" in done.stderr
