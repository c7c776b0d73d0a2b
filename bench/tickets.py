"""Tickets benchmark: dispatch latency and throughput through the real worker, and the ticket list query.

One database `linli_bench_tickets` is created, migrated and seeded in-process (`seed_demo` at
scale 1 through `bench.registry.seed`, then `seed_tickets_demo`, a few more plumber and
electrician responders for mingzhu and ~5,000 historical mingzhu tickets with their events,
dispatch requests and assignments). The production stack then runs as subprocesses:
`python -m api.cli serve` (bench.registry.Server) and `python -m api.cli worker`, with
LINLI_ENVIRONMENT=production, PostgreSQL, and Redis under a namespace of their own.

1. latency: the mingzhu demo resident submits tickets through the GraphQL `submitTicket`
   mutation at a steady pace; for each, the time until its offer is in the database (the
   assignment table polled every 20 ms) and until the offer is pushed on `ticket-staff:<id>`
   (Redis pub/sub). A second run adds a bot that accepts each offer through `answerOffer` as
   soon as the poll sees it, and measures submit → ASSIGNED (in the database and as pushed on
   `ticket:<id>`).
2. throughput: `--tickets` tickets with their dispatch requests are inserted in bulk and one
   `dispatch.assign` each is enqueued through the outbox in one unit of work (as
   tests/e2e/test_tickets_worker.py does); the time until every request has its offer, with 1
   and with 2 worker processes, and a check that each request got exactly one offer.
3. query: 50 open tickets with reporter, household, building, assignee and last 3 events, as
   mingzhu staff, at each concurrency with wrk (bench.registry.measure_best).

    python -m bench.tickets --tickets 1000 --duration 10 --concurrency 1,10,50

Writes bench/results/tickets.json and tickets.md (the Markdown table is printed too).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import os
import random
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Coroutine, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

import asyncpg
import httpx
import redis
import redis.asyncio as aioredis
from pydantic import SecretStr
from sqlalchemy import func, insert, select, text

from api.accounts import service as accounts_service
from api.accounts.models import Account
from api.app import build_services
from api.core.clock import utc_now
from api.core.migrations import PROJECT_ROOT, upgrade
from api.core.pubsub import RedisPubSub, build_pubsub, global_id
from api.core.viewer import Role
from api.dispatch import jobs as dispatch_jobs
from api.dispatch.models import Assignment, DispatchRequest, Responder, ResponderKind
from api.graphql.context import Services
from api.notifications.models import Notification
from api.registry.models import Building, Community, Household, Resident
from api.registry.seed import DemoLogin, demo_logins
from api.settings import Environment, Settings
from api.tickets.models import OPEN_STATUS_VALUES, Ticket, TicketCategory, TicketEvent
from api.tickets.seed import seed_tickets_demo
from bench.registry import (
    ARGON2,
    DB_POOL_SIZE,
    DISTURBED_PCT,
    LOGIN_MUTATION,
    PG_ADMIN_URL,
    REDIS_URL,
    REQUEST_TIMEOUT_SECONDS,
    RESULTS_DIR,
    WARMUP_SECONDS,
    BenchError,
    Measurement,
    Server,
    _body,
    _cpu_usage,
    _CpuSnapshot,
    _fmt,
    _int_list,
    _percentile,
    _proc_cpu_seconds,
    create_database,
    database_url,
    drop_database,
    graphql,
    log,
    machine_info,
    measure_best,
    pick_load_generator,
    seed,
    wait_for_quiet_machine,
    write_atomically,
)

T = TypeVar("T", "LatencyRun", "DrainRun")

DATABASE = "linli_bench_tickets"
DEFAULT_OUTPUT = RESULTS_DIR / "tickets.json"
POLL_SECONDS = 0.02
# A second in which other processes use this much (% of one core) disturbs the latency tails.
OTHER_BURST_PCT = 100.0
SETTLE_TIMEOUT_SECONDS = 60.0
DRAIN_TIMEOUT_SECONDS = 180.0
WORKER_READY_SECONDS = 90.0
WORKER_STOP_SECONDS = 45.0
LATENCY_PROCESSES = 2  # `linli worker`'s defaults
WORKER_THREADS = 4
WARMUP_TICKETS = 10
# Work queues a ticket's jobs pass through (expire_offer waits 15 minutes in dispatch.DQ).
WORK_QUEUES = ("dispatch", "events", "notifications")
# Bench responders take this many open jobs: every offer of the run finds one with capacity.
BENCH_MAX_OPEN = 10_000
BENCH_RESPONDERS = (
    ("王师傅（水暖）", ["plumbing"]),
    ("李师傅（水暖）", ["plumbing"]),
    ("赵师傅（水暖）", ["plumbing"]),
    ("孙师傅（水暖）", ["plumbing"]),
    ("周师傅（电工）", ["electrical"]),
    ("吴师傅（电工）", ["electrical"]),
)
BENCH_PASSWORD = "bench-responder-密码-2026"
BENCH_PHONE_BASE = 13800138000
HISTORY_SEED = 20261201
# Historical statuses and their weights: about 60% still open.
HISTORY_STATUSES = (
    ("submitted", 10), ("acknowledged", 15), ("assigned", 20), ("in_progress", 15), ("resolved", 10), ("closed", 30),
)  # fmt: skip
HISTORY_TEXTS = {
    "manhole": ["井盖松动，踩上去会响", "井盖缺失，晚上很危险"],
    "street_light": ["楼前路灯不亮好几天了", "路灯一闪一闪的"],
    "road_damage": ["路面有个大坑，下雨积水", "人行道砖松动"],
    "lift": ["电梯门关不上", "电梯运行有异响"],
    "leak": ["厨房水管漏水", "卫生间地漏返水", "楼上渗水到我家天花板"],
    "electrical": ["家里总闸老跳", "插座冒火花"],
    "gas": ["燃气灶打不着火", "燃气表不走字"],
}
HISTORY_ANSWERS: dict[str, list[dict[str, Any]]] = {
    "manhole": [{"anyone_hurt_badly": False}],
    "road_damage": [{"anyone_hurt_badly": False}],
    "lift": [{"people_trapped": False}],
    "leak": [{"where": w} for w in ("厨房", "卫生间", "楼上渗漏", "管道井")],
    "electrical": [{"smell_gas": False}],
    "gas": [{"smell_gas": False}],
}
HISTORY_COMMENTS = ("师傅说明天上午过来", "已联系物业，等待配件", "居民不在家，改约时间", "已上门查看")

NESTED_QUERY = (
    "query { tickets(first: 50, filter: {openOnly: true}) { totalCount edges { node { id status description "
    "createdAt category { name } reporter { name phone household { room unit building { name } } } "
    "assignee { displayName } events(last: 3) { kind note createdAt } } } } }"
)
SUBMIT_MUTATION = (
    "mutation Submit($input: SubmitTicketInput!) { submitTicket(input: $input) { __typename "
    "... on SubmitTicketSuccess { ticket { id status } } ... on UserError { message } } }"
)
ANSWER_MUTATION = (
    "mutation Answer($input: AnswerOfferInput!) { answerOffer(input: $input) { __typename "
    "... on AnswerOfferSuccess { assignment { state } } ... on UserError { message } } }"
)


def _node_id(gid: str) -> int:
    """The database id inside a Relay global id (base64 of "Type:id")."""
    return int(base64.b64decode(gid).decode().split(":", 1)[1])


def _pg_dsn(admin_url: str, name: str) -> str:
    return f"postgresql://{urlsplit(admin_url).netloc}/{name}"


# -- figures ------------------------------------------------------------------------------------


@dataclass
class Figure:
    """Latency percentiles of one measure, in milliseconds."""

    n: int
    p50_ms: float
    p99_ms: float
    max_ms: float
    mean_ms: float

    @classmethod
    def of(cls, seconds: Sequence[float]) -> Figure:
        values = sorted(seconds)
        return cls(
            n=len(values),
            p50_ms=round(_percentile(values, 50) * 1000, 1),
            p99_ms=round(_percentile(values, 99) * 1000, 1),
            max_ms=round(values[-1] * 1000, 1) if values else 0.0,
            mean_ms=round(sum(values) / len(values) * 1000, 1) if values else 0.0,
        )


@dataclass
class Cpu:
    """CPU use over a timed window, in % of one core."""

    server_cpu_pct: float
    postgres_cpu_pct: float | None
    worker_cpu_pct: float | None
    bench_cpu_pct: float  # the bench process: submits, polls, the bot, pub/sub
    machine_cpu_pct: float
    other_cpu_pct: float
    background_cpu_pct: float  # the machine just before the window, our processes idle
    other_cpu_max_1s_pct: float = 0.0  # the busiest second of the other processes

    @property
    def disturbed(self) -> bool:
        """Other processes took more than DISTURBED_PCT on average, or half the machine for a second."""
        return self.other_cpu_pct > DISTURBED_PCT or self.other_cpu_max_1s_pct > OTHER_BURST_PCT


@dataclass
class Connections:
    """PostgreSQL connections during a run (sampled twice a second): the bench database's, and everyone's."""

    bench_peak: int = 0
    all_peak: int = 0
    max_connections: int = 0


class ConnectionWatch:
    """Samples pg_stat_activity on a connection of its own while a run goes on."""

    def __init__(self, dsn: str) -> None:
        self.dsn = dsn
        self.seen = Connections()
        self._task: asyncio.Task[None] | None = None
        self._stop = asyncio.Event()

    async def __aenter__(self) -> Connections:
        conn = await asyncpg.connect(self.dsn)
        self.seen.max_connections = int(await conn.fetchval("SHOW max_connections"))

        async def sample() -> None:
            try:
                while not self._stop.is_set():
                    ours, everyone = await conn.fetchrow(
                        "SELECT count(*) FILTER (WHERE datname = current_database()), count(*) FROM pg_stat_activity"
                    )
                    self.seen.bench_peak = max(self.seen.bench_peak, int(ours))
                    self.seen.all_peak = max(self.seen.all_peak, int(everyone))
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._stop.wait(), 0.5)
            finally:
                await conn.close()

        self._task = asyncio.create_task(sample())
        return self.seen

    async def __aexit__(self, *_exc: object) -> None:
        self._stop.set()
        if self._task is not None:
            await self._task


@dataclass
class LatencyRun:
    name: str
    tickets: int
    rate_per_second: float
    bot: bool
    worker: str
    seconds: float
    figures: dict[str, Figure]
    missing: dict[str, int]
    cpu: Cpu
    connections: Connections
    attempts: int = 1


@dataclass
class DrainRun:
    processes: int
    threads: int
    tickets: int
    enqueue_seconds: float  # writing the outbox rows and publishing them
    seconds_to_last_offer: float  # from just before the enqueueing unit of work to the last offer's offered_at
    tickets_per_second: float
    seconds_to_settled: float  # every follow-up job (ticket event, inbox) done, queues and outbox empty
    offers_per_request: dict[str, int]
    attempts_per_request: dict[str, int]
    offered_events_per_ticket: dict[str, int]
    notifications_per_ticket: dict[str, int]
    cpu: Cpu
    connections: Connections
    attempts: int = 1


@dataclass
class History:
    tickets: int
    open_tickets: int
    events: int
    dispatch_requests: int
    assignments: int
    seconds: float


@dataclass
class World:
    """What the seed left that the runs need."""

    community_id: int
    leak_category_id: int
    building_id: int
    unit: int
    room: str
    resident: DemoLogin
    staff: DemoLogin
    # responder id -> (phone, password) of its login: everyone who can be offered a leak
    responder_logins: dict[int, tuple[str, str]]
    bench_responders: list[dict[str, Any]]
    categories: int
    demo_responders: int
    history: History


# -- CPU ----------------------------------------------------------------------------------------


def _session_pids(session: int) -> list[int]:
    """Live processes of one session (the worker's supervisor started its own)."""
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[3]) == session and fields[0] != "Z":
            pids.append(int(entry))
    return pids


class CpuWindow:
    """bench.registry's CPU snapshot (server, postgres, machine, this process) plus the worker's session."""

    def __init__(self, server: Server, worker: WorkerProcess | None, database: str, background: float) -> None:
        self.server, self.worker, self.database, self.background = server, worker, database, background
        self.before = self.last = self._take()
        self.max_other = 0.0

    def _take(self) -> tuple[_CpuSnapshot, float | None]:
        return _CpuSnapshot.take(self.server.pid, self.database), self.worker.cpu_seconds() if self.worker else None

    @staticmethod
    def _between(before: tuple[_CpuSnapshot, float | None], after: tuple[_CpuSnapshot, float | None]) -> Cpu:
        usage = _cpu_usage(before[0], after[0], in_process_loadgen=True)
        wall = after[0].wall - before[0].wall
        worker = None if after[1] is None or before[1] is None else round(100 * (after[1] - before[1]) / wall, 1)
        server, postgres = float(usage["server_cpu_pct"] or 0.0), usage["postgres_cpu_pct"]
        bench, machine = float(usage["loadgen_cpu_pct"] or 0.0), float(usage["machine_cpu_pct"] or 0.0)
        other = max(0.0, machine - server - (postgres or 0.0) - (worker or 0.0) - bench)
        return Cpu(server, postgres, worker, bench, machine, round(other, 1), 0.0)

    def tick(self) -> None:
        """Call about once a second: keeps the busiest second of the other processes."""
        now = self._take()
        if now[0].wall - self.last[0].wall >= 0.9:
            self.max_other = max(self.max_other, self._between(self.last, now).other_cpu_pct)
            self.last = now

    def end(self) -> Cpu:
        self.tick()
        cpu = self._between(self.before, self._take())
        cpu.background_cpu_pct, cpu.other_cpu_max_1s_pct = self.background, max(self.max_other, cpu.other_cpu_pct)
        return cpu


# -- the worker ---------------------------------------------------------------------------------


class WorkerProcess:
    """`python -m api.cli worker` (supervisor, Dramatiq processes, scheduler) in a session of its own."""

    def __init__(self, env: dict[str, str], *, processes: int, threads: int, log_path: Path) -> None:
        self.env, self.processes, self.threads, self.log_path = env, processes, threads, log_path
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        cmd = [sys.executable, "-m", "api.cli", "worker", "--processes", str(self.processes),
               "--threads", str(self.threads)]  # fmt: skip
        with self.log_path.open("wb") as out:
            self.proc = subprocess.Popen(
                cmd, env=self.env, cwd=PROJECT_ROOT, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )
        deadline = time.monotonic() + WORKER_READY_SECONDS
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise BenchError(f"the worker exited with {self.proc.returncode}:\n{self.log_tail()}")
            if self.log().count("is ready for action") >= self.processes:
                return
            time.sleep(0.2)
        raise BenchError(f"the worker was not ready within {WORKER_READY_SECONDS:.0f}s:\n{self.log_tail()}")

    def cpu_seconds(self) -> float:
        """CPU of every live process of the worker's session, plus the children they reaped."""
        assert self.proc is not None
        total = 0.0
        for pid in _session_pids(self.proc.pid):
            with contextlib.suppress(OSError, IndexError, ValueError):
                total += _proc_cpu_seconds(pid, reaped_children=True)
        return total

    def stop(self) -> None:
        """SIGTERM the supervisor (it stops Dramatiq); SIGKILL whatever of its session is left after the grace."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=WORKER_STOP_SECONDS)
        for pid in _session_pids(self.proc.pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        if self.proc.poll() is None:
            self.proc.wait(timeout=10)

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log().splitlines()[-lines:]) or "(no worker log)"


# -- the seed -----------------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def bench_services(settings: Settings) -> AsyncIterator[Services]:
    """The application's services for this event loop (database, Dramatiq sender on the bench namespace)."""
    services = build_services(settings)
    try:
        yield services
    finally:
        await services.db.dispose()
        await services.pubsub.close()


async def prepare(settings: Settings, *, history_tickets: int) -> World:
    """Ticket categories and demo responders, the bench responders, and the historical tickets."""
    logins = demo_logins()
    staff = next(x for x in logins if x.community_code == "mingzhu" and x.role == Role.STAFF.value)
    resident = next(x for x in logins if x.community_code == "mingzhu" and x.role == Role.RESIDENT.value)
    async with bench_services(settings) as services:
        categories, demo_responders = await seed_tickets_demo(services.db)
        async with services.db.unit_of_work() as uow:
            session = uow.session
            cid = await session.scalar(select(Community.id).where(Community.code == "mingzhu"))
            assert cid is not None
            resident_id = await session.scalar(
                select(Account.resident_id).where(Account.phone_hash == services.cipher.lookup_hash(resident.phone))
            )
            home = (
                await session.execute(
                    select(Household.building_id, Household.unit, Household.room)
                    .join(Resident, Resident.household_id == Household.id)
                    .where(Resident.id == resident_id)
                )
            ).one()
            leak = await session.scalar(
                select(TicketCategory.id).where(TicketCategory.community_id == cid, TicketCategory.code == "leak")
            )
            assert leak is not None
            bench_responders = []
            responder_logins: dict[int, tuple[str, str]] = {}
            for i, (name, skills) in enumerate(BENCH_RESPONDERS, start=1):
                phone = str(BENCH_PHONE_BASE + i)
                account = await accounts_service.create_account(
                    uow, cipher=services.cipher, passwords=services.passwords, phone=phone, password=BENCH_PASSWORD,
                    display_name=name,
                )  # fmt: skip
                await accounts_service.grant_role(uow, account_id=account.id, role=Role.CRAFTSPERSON, community_id=cid)
                responder = Responder(
                    community_id=cid, account_id=account.id, kind=ResponderKind.CRAFTSPERSON.value, display_name=name,
                    skills=skills, max_open=BENCH_MAX_OPEN, grab_enabled=False, active=True,
                )  # fmt: skip
                session.add(responder)
                await session.flush()
                bench_responders.append(
                    {"id": responder.id, "name": name, "skills": skills, "max_open": BENCH_MAX_OPEN}
                )
                if "plumbing" in skills:
                    responder_logins[responder.id] = (phone, BENCH_PASSWORD)
            # The demo staff member is a plumber too (seed_tickets_demo gives staff every trade).
            demo = (
                await session.execute(
                    select(Responder.id, Responder.skills, Account.phone_hash)
                    .join(Account, Account.id == Responder.account_id)
                    .where(Responder.community_id == cid, Responder.id.not_in(list(responder_logins)))
                )
            ).all()
            phones = {services.cipher.lookup_hash(x.phone): x for x in logins}
            for responder_id, skills, phone_hash in demo:
                if "plumbing" in (skills or []) and phone_hash in phones:
                    responder_logins[responder_id] = (phones[phone_hash].phone, phones[phone_hash].password)
        history = await seed_history(services, community_id=cid, n=history_tickets)
    return World(
        community_id=cid, leak_category_id=leak, building_id=home.building_id, unit=home.unit, room=home.room,
        resident=resident, staff=staff, responder_logins=responder_logins, bench_responders=bench_responders,
        categories=categories, demo_responders=demo_responders, history=history,
    )  # fmt: skip


def _pick_status(rng: random.Random) -> str:
    return rng.choices([s for s, _ in HISTORY_STATUSES], weights=[w for _, w in HISTORY_STATUSES])[0]


async def seed_history(services: Services, *, community_id: int, n: int) -> History:
    """`n` mingzhu tickets of the last 90 days, in bulk: reporters with homes, events, requests, assignments.

    Their SLA and follow-up due times are left empty, so that the worker's scheduler does not
    escalate thousands of old tickets in the middle of the timed runs.
    """
    started = time.perf_counter()
    rng = random.Random(HISTORY_SEED)
    now = utc_now()
    async with services.db.unit_of_work() as uow:
        session = uow.session
        homes = (
            await session.execute(
                select(Resident.id, Household.building_id, Household.unit, Household.room, Building.compound_id)
                .join(Household, Household.id == Resident.household_id)
                .join(Building, Building.id == Household.building_id)
                .where(Resident.community_id == community_id)
                .order_by(Resident.id)
            )
        ).all()
        categories = (
            await session.scalars(
                select(TicketCategory)
                .where(TicketCategory.community_id == community_id, TicketCategory.kind.in_(["report", "repair"]))
                .order_by(TicketCategory.id)
            )
        ).all()
        responders = (
            await session.execute(
                select(Responder.id, Responder.account_id, Responder.display_name, Responder.skills).where(
                    Responder.community_id == community_id, Responder.active.is_(True)
                )
            )
        ).all()
        staff_account = (
            await accounts_service.accounts_with_roles(session, community_id=community_id, roles={Role.STAFF})
        )[0]
        plans: list[dict[str, Any]] = []
        ticket_rows: list[dict[str, Any]] = []
        for i in range(n):
            category = rng.choice(categories)
            home = rng.choice(homes)
            status = _pick_status(rng)
            created = now - timedelta(days=90) + timedelta(seconds=int(90 * 86400 * i / max(n, 1)))
            able = [r for r in responders if category.skill in (r.skills or [])]
            responder = rng.choice(able) if able and status not in ("submitted", "acknowledged") else None
            at_home = category.area == "home"
            ticket_rows.append(
                {
                    "community_id": community_id, "category_id": category.id, "kind": category.kind,
                    "status": status, "channel": rng.choice(["app", "phone", "walk_in"]),
                    "description": rng.choice(HISTORY_TEXTS.get(category.code, ["需要处理"])),
                    "answers": rng.choice(HISTORY_ANSWERS.get(category.code, [{}])), "injury": False,
                    "reporter_resident_id": home.id, "created_by_account_id": staff_account,
                    "building_id": home.building_id, "compound_id": home.compound_id,
                    "unit": home.unit if at_home else None, "room": home.room if at_home else None,
                    "address_text": None if at_home else "楼前", "created_at": created,
                    "updated_at": created + timedelta(hours=6),
                    "acknowledged_at": None if status == "submitted" else created + timedelta(minutes=20),
                    "resolved_at": created + timedelta(days=1) if status in ("resolved", "closed") else None,
                    "closed_at": created + timedelta(days=3) if status == "closed" else None,
                    "assignee_responder_id": responder.id if responder else None,
                    "rating": rng.randint(3, 5) if status == "closed" and rng.random() < 0.5 else None,
                }
            )  # fmt: skip
            plans.append({"status": status, "created": created, "responder": responder, "category": category})
        ticket_ids = list(
            (
                await session.scalars(insert(Ticket).returning(Ticket.id, sort_by_parameter_order=True), ticket_rows)
            ).all()
        )
        request_rows = []
        for ticket_id, plan, row in zip(ticket_ids, plans, ticket_rows, strict=True):
            status, responder, category = plan["status"], plan["responder"], plan["category"]
            state = "open" if responder is None else ("closed" if status in ("resolved", "closed") else "assigned")
            request_rows.append(
                {
                    "community_id": community_id, "kind": "ticket", "subject_id": ticket_id, "skill": category.skill,
                    "building_id": row["building_id"], "compound_id": row["compound_id"], "mode": "offer",
                    "state": state, "attempts": 1 if responder else 0, "created_at": plan["created"],
                    "updated_at": plan["created"],
                }
            )  # fmt: skip
        request_ids = list(
            (
                await session.scalars(
                    insert(DispatchRequest).returning(DispatchRequest.id, sort_by_parameter_order=True), request_rows
                )
            ).all()
        )
        assignment_rows, assigned = [], []
        for ticket_id, request_id, plan in zip(ticket_ids, request_ids, plans, strict=True):
            if plan["responder"] is None:
                continue
            offered = plan["created"] + timedelta(minutes=1)
            assignment_rows.append(
                {
                    "community_id": community_id, "request_id": request_id, "kind": "ticket", "subject_id": ticket_id,
                    "responder_id": plan["responder"].id, "mode": "auto", "score": 110.0,
                    "state": "completed" if plan["status"] in ("resolved", "closed") else "accepted",
                    "reasons": [{"code": "rank", "detail": "ranked 1 of 1 eligible"}], "offered_at": offered,
                    "expires_at": offered + timedelta(minutes=15), "responded_at": offered + timedelta(minutes=9),
                }
            )  # fmt: skip
            assigned.append(ticket_id)
        assignment_ids = list(
            (
                await session.scalars(
                    insert(Assignment).returning(Assignment.id, sort_by_parameter_order=True), assignment_rows
                )
            ).all()
        )
        assignment_of = dict(zip(assigned, assignment_ids, strict=True))
        events: list[dict[str, Any]] = []

        def event(ticket_id: int, at: datetime, kind: str, **values: Any) -> None:
            events.append(
                {"community_id": community_id, "ticket_id": ticket_id, "kind": kind, "created_at": at,
                 "from_status": None, "to_status": None, "actor_account_id": None, "note": None, "public": True,
                 "dedupe_key": None, **values}
            )  # fmt: skip

        for ticket_id, plan in zip(ticket_ids, plans, strict=True):
            status, created, responder = plan["status"], plan["created"], plan["responder"]
            event(ticket_id, created, "status", to_status="submitted")
            if status != "submitted":
                event(ticket_id, created + timedelta(minutes=20), "status", from_status="submitted",
                      to_status="acknowledged", actor_account_id=staff_account, note="已电话回访")  # fmt: skip
            if responder is not None:
                aid = assignment_of[ticket_id]
                event(ticket_id, created + timedelta(minutes=21), "assignment", from_status="acknowledged",
                      to_status="acknowledged", note=f"Offered to {responder.display_name}", public=False,
                      dedupe_key=f"assignment:offered:{aid}")  # fmt: skip
                event(ticket_id, created + timedelta(minutes=30), "assignment", from_status="acknowledged",
                      to_status="assigned", note=f"{responder.display_name} took the job",
                      dedupe_key=f"assignment:accepted:{aid}")  # fmt: skip
            if rng.random() < 0.5:
                event(ticket_id, created + timedelta(hours=2), "comment", actor_account_id=staff_account,
                      note=rng.choice(HISTORY_COMMENTS))  # fmt: skip
            if status in ("in_progress", "resolved", "closed") and responder is not None:
                event(ticket_id, created + timedelta(hours=5), "status", from_status="assigned",
                      to_status="in_progress", actor_account_id=responder.account_id)  # fmt: skip
            if status in ("resolved", "closed"):
                event(ticket_id, created + timedelta(days=1), "status", from_status="in_progress",
                      to_status="resolved", actor_account_id=responder.account_id if responder else staff_account,
                      note="已修好")  # fmt: skip
            if status == "closed":
                event(ticket_id, created + timedelta(days=3), "status", from_status="resolved", to_status="closed",
                      actor_account_id=staff_account)  # fmt: skip
        for start in range(0, len(events), 5_000):
            await session.execute(insert(TicketEvent), events[start : start + 5_000])
    async with services.db.engine.begin() as conn:
        await conn.execute(text("ANALYZE"))
    return History(
        tickets=n,
        open_tickets=sum(1 for p in plans if p["status"] in OPEN_STATUS_VALUES),
        events=len(events),
        dispatch_requests=len(request_ids),
        assignments=len(assignment_ids),
        seconds=round(time.perf_counter() - started, 2),
    )


# -- 1. submit → offered → assigned ------------------------------------------------------------


@dataclass
class Tokens:
    resident: str
    staff: str
    responders: dict[int, str]  # responder id -> bearer token


def log_in_all(base: str, world: World) -> Tokens:
    url = f"{base}/graphql"
    cache: dict[str, str] = {}

    def token(phone: str, password: str) -> str:
        if phone not in cache:
            data, _ = graphql(client, url, LOGIN_MUTATION, {"phone": phone, "password": password})
            if data["login"]["__typename"] != "LoginSuccess":
                raise BenchError(f"login as {phone} failed: {data['login']}")
            cache[phone] = str(data["login"]["token"])
        return cache[phone]

    with httpx.Client(timeout=REQUEST_TIMEOUT_SECONDS) as client:
        return Tokens(
            resident=token(world.resident.phone, world.resident.password),
            staff=token(world.staff.phone, world.staff.password),
            responders={rid: token(phone, password) for rid, (phone, password) in world.responder_logins.items()},
        )


@dataclass
class Stack:
    """The running stack and what the runs need to talk to it."""

    server: Server
    worker: WorkerProcess | None
    settings: Settings
    pg_dsn: str
    world: World
    tokens: Tokens


async def submit_run(stack: Stack, *, name: str, n: int, rate: float, bot: bool, background: float) -> LatencyRun:
    """Submit `n` tickets at `rate`/s through GraphQL; time each one's offer (and, with the bot, its assignment)."""
    world, tokens = stack.world, stack.tokens
    url = f"{stack.server.base}/graphql"
    pubsub = build_pubsub(stack.settings)
    assert isinstance(pubsub, RedisPubSub)
    prefix = pubsub.prefix
    submitted: dict[int, float] = {}  # ticket id -> perf_counter when its submit was sent
    submit_s: list[float] = []
    answer_s: list[float] = []
    offer_seen: dict[int, float] = {}
    offer_push: dict[int, float] = {}
    assigned_seen: dict[int, float] = {}
    assigned_push: dict[int, float] = {}
    errors: list[str] = []
    tasks: set[asyncio.Task[None]] = set()
    stop = asyncio.Event()

    def spawn(coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(coro)
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    limits = httpx.Limits(max_connections=50, max_keepalive_connections=50)
    client = httpx.AsyncClient(limits=limits, timeout=REQUEST_TIMEOUT_SECONDS)
    subscriber = aioredis.Redis.from_url(stack.settings.redis_url)
    channels = subscriber.pubsub(ignore_subscribe_messages=True)
    await channels.psubscribe(f"{prefix}ticket*")
    pg = await asyncpg.connect(stack.pg_dsn)
    # Assignments commit out of id order (several worker threads), so the poll keeps the ids it saw
    # rather than a high-water mark, which would skip a lower id committed after a higher one.
    baseline = int(await pg.fetchval("SELECT coalesce(max(id), 0) FROM assignment"))
    seen_assignments: list[int] = []

    async def listen() -> None:
        while not stop.is_set():
            message = await channels.get_message(ignore_subscribe_messages=True, timeout=0.05)
            if message is None or message.get("type") != "pmessage":
                continue
            at = time.perf_counter()
            channel = message["channel"].decode().removeprefix(prefix)
            kind, _, raw_id = channel.partition(":")
            body = json.loads(message["data"])
            if body.get("kind") != "assignment":
                continue
            ticket_id = int(raw_id)
            if kind == "ticket-staff" and str(body.get("note") or "").startswith("Offered to"):
                offer_push.setdefault(ticket_id, at)
            elif kind == "ticket" and body.get("status") == "assigned":
                assigned_push.setdefault(ticket_id, at)

    async def answer(assignment_id: int, responder_id: int) -> None:
        token = tokens.responders.get(responder_id)
        if token is None:
            errors.append(f"offer {assignment_id} went to responder {responder_id}, whose login the bot lacks")
            return
        started = time.perf_counter()
        variables = {"input": {"assignmentId": global_id("Assignment", assignment_id), "accept": True}}
        response = await client.post(url, json={"query": ANSWER_MUTATION, "variables": variables},
                                     headers={"Authorization": f"Bearer {token}"})  # fmt: skip
        answer_s.append(time.perf_counter() - started)
        result = response.json().get("data", {}) if response.status_code == 200 else {}
        if (result or {}).get("answerOffer", {}).get("__typename") != "AnswerOfferSuccess":
            errors.append(f"answerOffer {assignment_id}: HTTP {response.status_code} {response.text[:300]}")

    async def poll() -> None:
        while not stop.is_set():
            # Rows a query finds were committed before it started: that instant is when they were seen.
            at = time.perf_counter()
            # Only offers for the tickets this run submitted: the worker's dispatch sweep also offers
            # the open historical tickets (their requests have no offer), which is not what is timed.
            # An offer that lands before its submit's answer names the ticket is found on a later poll.
            rows = await pg.fetch(
                "SELECT id, subject_id, responder_id FROM assignment "
                "WHERE id > $1 AND kind = 'ticket' AND id <> ALL($2::bigint[]) AND subject_id = ANY($3::bigint[]) "
                "ORDER BY id",
                baseline,
                seen_assignments,
                list(submitted),
            )
            for row in rows:
                seen_assignments.append(int(row["id"]))
                offer_seen.setdefault(int(row["subject_id"]), at)
                if bot:
                    spawn(answer(int(row["id"]), int(row["responder_id"])))
            waiting = [t for t in submitted if t not in assigned_seen] if bot else []
            if waiting:
                for row in await pg.fetch(
                    "SELECT id FROM ticket WHERE id = ANY($1::bigint[]) AND status = 'assigned'", waiting
                ):
                    assigned_seen.setdefault(int(row["id"]), at)
            await asyncio.sleep(max(0.0, POLL_SECONDS - (time.perf_counter() - at)))

    async def submit(i: int) -> None:
        variables = {
            "input": {
                "categoryId": global_id("TicketCategory", world.leak_category_id),
                "description": f"厨房水管漏水（压测 {name} #{i + 1}）",
                "place": {"buildingId": global_id("Building", world.building_id), "unit": world.unit,
                          "room": world.room},
                "answers": {"where": "厨房"},
            }
        }  # fmt: skip
        started = time.perf_counter()
        try:
            response = await client.post(url, json={"query": SUBMIT_MUTATION, "variables": variables},
                                         headers={"Authorization": f"Bearer {tokens.resident}"})  # fmt: skip
        except httpx.HTTPError as exc:
            errors.append(f"submitTicket #{i + 1}: {exc!r}")
            return
        submit_s.append(time.perf_counter() - started)
        result = (response.json().get("data") or {}).get("submitTicket") if response.status_code == 200 else None
        if not result or result.get("__typename") != "SubmitTicketSuccess":
            errors.append(f"submitTicket #{i + 1}: HTTP {response.status_code} {response.text[:300]}")
            return
        submitted[_node_id(result["ticket"]["id"])] = started

    def done() -> bool:
        needs = [offer_seen, offer_push] + ([assigned_seen, assigned_push] if bot else [])
        return len(submitted) == n and all(t in d for d in needs for t in submitted)

    listener, poller = asyncio.create_task(listen()), asyncio.create_task(poll())
    window = CpuWindow(stack.server, stack.worker, DATABASE, background)
    watch = ConnectionWatch(stack.pg_dsn)
    connections = await watch.__aenter__()
    try:
        started = time.perf_counter()
        submits = []
        for i in range(n):
            await asyncio.sleep(max(0.0, started + i / rate - time.perf_counter()))
            submits.append(asyncio.create_task(submit(i)))
            window.tick()
        await asyncio.gather(*submits)
        deadline = time.perf_counter() + SETTLE_TIMEOUT_SECONDS
        while time.perf_counter() < deadline:
            if done() or errors:
                break
            window.tick()
            await asyncio.sleep(0.05)
        elapsed = time.perf_counter() - started
        cpu = window.end()
    finally:
        stop.set()
        await watch.__aexit__()
        await asyncio.gather(listener, poller, return_exceptions=True)
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        await pg.close()
        await channels.aclose()  # type: ignore[no-untyped-call]
        await subscriber.aclose()
        await client.aclose()
    if errors:
        raise BenchError(
            f"{name}: {len(errors)} errors; first: {errors[0]}\nPostgreSQL connections: peak {connections.bench_peak} "
            f"on {DATABASE}, {connections.all_peak} of {connections.max_connections} in all\n{stack.server.log_tail()}"
        )
    not_offered = [t for t in submitted if t not in offer_seen]
    not_assigned = [t for t in submitted if t not in assigned_seen] if bot else []
    if len(submitted) != n or not_offered or not_assigned:
        worker_log = stack.worker.log_tail() if stack.worker else ""
        diagnosis = await asyncpg.connect(stack.pg_dsn)
        try:
            rows = await diagnosis.fetch(
                "SELECT t.id, t.status, r.state, r.attempts, (SELECT string_agg(a.id || ':' || a.state, ',') "
                "FROM assignment a WHERE a.request_id = r.id) AS assignments FROM ticket t "
                "LEFT JOIN dispatch_request r ON r.kind = 'ticket' AND r.subject_id = t.id WHERE t.id = ANY($1::bigint[])",
                not_offered + not_assigned,
            )
        finally:
            await diagnosis.close()
        raise BenchError(
            f"{name}: within {SETTLE_TIMEOUT_SECONDS:.0f}s of the last submit, {len(not_offered)} of {len(submitted)} "
            f"tickets had no offer seen and {len(not_assigned)} were not assigned; in the database now: "
            f"{[dict(r) for r in rows]}\n{worker_log}"
        )

    def since_submit(seen: dict[int, float]) -> list[float]:
        return [seen[t] - sent for t, sent in submitted.items() if t in seen]

    figures = {"submit_request": Figure.of(submit_s), "submit_to_offer_db": Figure.of(since_submit(offer_seen)),
               "submit_to_offer_push": Figure.of(since_submit(offer_push))}  # fmt: skip
    missing = {"offer_push": sum(1 for t in submitted if t not in offer_push)}
    if bot:
        figures["answer_offer_request"] = Figure.of(answer_s)
        figures["submit_to_assigned_db"] = Figure.of(since_submit(assigned_seen))
        figures["submit_to_assigned_push"] = Figure.of(since_submit(assigned_push))
        missing["assigned_push"] = sum(1 for t in submitted if t not in assigned_push)
    worker = f"{stack.worker.processes} processes × {stack.worker.threads} threads" if stack.worker else ""
    return LatencyRun(name, n, rate, bot, worker, round(elapsed, 2), figures, missing, cpu, connections)


# -- 2. dispatch throughput ---------------------------------------------------------------------


async def insert_backlog(services: Services, world: World, n: int) -> tuple[list[int], list[int]]:
    """`n` open leak tickets at mingzhu homes with their dispatch requests, inserted in bulk (as the e2e test does)."""
    rng = random.Random(n)
    async with services.db.unit_of_work() as uow:
        session = uow.session
        category = await session.get(TicketCategory, world.leak_category_id)
        assert category is not None
        homes = (
            await session.execute(
                select(Resident.id, Household.building_id, Household.unit, Household.room, Building.compound_id)
                .join(Household, Household.id == Resident.household_id)
                .join(Building, Building.id == Household.building_id)
                .where(Resident.community_id == world.community_id)
                .order_by(Resident.id)
            )
        ).all()
        picked = [rng.choice(homes) for _ in range(n)]
        now = utc_now()
        ticket_rows = [
            {"community_id": world.community_id, "category_id": category.id, "kind": category.kind,
             "status": "submitted", "channel": "app", "description": f"漏水 {i + 1}", "answers": {"where": "厨房"},
             "reporter_resident_id": home.id, "building_id": home.building_id, "compound_id": home.compound_id,
             "unit": home.unit, "room": home.room, "created_at": now, "updated_at": now}
            for i, home in enumerate(picked)
        ]  # fmt: skip
        returning = insert(Ticket).returning(Ticket.id, sort_by_parameter_order=True)
        ticket_ids = list((await session.scalars(returning, ticket_rows)).all())
        request_rows = [
            {"community_id": world.community_id, "kind": "ticket", "subject_id": ticket_id, "skill": category.skill,
             "building_id": home.building_id, "compound_id": home.compound_id, "mode": "offer"}
            for ticket_id, home in zip(ticket_ids, picked, strict=True)
        ]  # fmt: skip
        returning = insert(DispatchRequest).returning(DispatchRequest.id, sort_by_parameter_order=True)
        request_ids = list((await session.scalars(returning, request_rows)).all())
    return ticket_ids, request_ids


def _histogram(values: Sequence[int]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for v in sorted(values):
        counts[str(v)] = counts.get(str(v), 0) + 1
    return counts


def queues_drained(client: redis.Redis, namespace: str) -> bool:
    """No message waits in, or is held from, a work queue (the hash keeps each until it is acked)."""
    return all(int(client.hlen(f"{namespace}:{queue}.msgs")) == 0 for queue in WORK_QUEUES)


async def unsent_outbox(pg: asyncpg.Connection) -> int:
    return int(await pg.fetchval("SELECT count(*) FROM outbox_message WHERE sent_at IS NULL"))


async def wait_settled(stack: Stack, pg: asyncpg.Connection, what: str) -> None:
    """Until every queue of the namespace is empty and every outbox row was sent."""
    client = redis.Redis.from_url(stack.settings.redis_url)
    try:
        deadline = time.perf_counter() + SETTLE_TIMEOUT_SECONDS
        while not (queues_drained(client, stack.settings.redis_namespace) and await unsent_outbox(pg) == 0):
            if time.perf_counter() > deadline:
                raise BenchError(
                    f"{what}: the queues and the outbox were not empty within {SETTLE_TIMEOUT_SECONDS:.0f}s"
                )
            await asyncio.sleep(0.1)
    finally:
        client.close()


async def drain_run(stack: Stack, n: int, background_limit: float) -> DrainRun:
    """Insert `n` tickets, enqueue their `dispatch.assign` through the outbox, time until each has one offer."""
    assert stack.worker is not None
    pg = await asyncpg.connect(stack.pg_dsn)
    try:
        async with bench_services(stack.settings) as services:
            ticket_ids, request_ids = await insert_backlog(services, stack.world, n)
            background = await asyncio.to_thread(wait_for_quiet_machine, background_limit)
            window = CpuWindow(stack.server, stack.worker, DATABASE, background)
            async with ConnectionWatch(stack.pg_dsn) as connections:
                started_wall, started = utc_now(), time.perf_counter()
                async with services.db.unit_of_work(services.jobs) as uow:
                    for request_id in request_ids:
                        uow.enqueue(dispatch_jobs.assign(request_id))
                enqueued = time.perf_counter() - started
                deadline = time.perf_counter() + DRAIN_TIMEOUT_SECONDS
                while True:
                    count, last = await pg.fetchrow(
                        "SELECT count(*), max(offered_at) FROM assignment WHERE request_id = ANY($1::bigint[])",
                        request_ids,
                    )
                    if count >= n:
                        break
                    if time.perf_counter() > deadline:
                        raise BenchError(f"only {count} of {n} offers within {DRAIN_TIMEOUT_SECONDS:.0f}s\n"
                                         f"{stack.worker.log_tail()}")  # fmt: skip
                    window.tick()
                    await asyncio.sleep(0.1)
                cpu = window.end()
            to_last_offer = (last - started_wall).total_seconds()
            await wait_settled(stack, pg, f"draining {n} tickets")
            settled = time.perf_counter() - started
            async with services.db.read_session() as session:
                offers = (
                    await session.execute(
                        select(func.count())
                        .select_from(Assignment)
                        .where(Assignment.request_id.in_(request_ids))
                        .group_by(Assignment.request_id)
                    )
                ).scalars()
                offers_per_request = list(offers)
                attempts = list(
                    (
                        await session.scalars(
                            select(DispatchRequest.attempts).where(DispatchRequest.id.in_(request_ids))
                        )
                    ).all()
                )
                offered_events = dict(
                    (
                        await session.execute(
                            select(TicketEvent.ticket_id, func.count())
                            .where(
                                TicketEvent.ticket_id.in_(ticket_ids),
                                TicketEvent.dedupe_key.like("assignment:offered:%"),
                            )
                            .group_by(TicketEvent.ticket_id)
                        )
                    ).all()
                )
                inbox = dict(
                    (
                        await session.execute(
                            select(Notification.subject_id, func.count())
                            .where(Notification.subject_kind == "ticket", Notification.subject_id.in_(ticket_ids))
                            .group_by(Notification.subject_id)
                        )
                    ).all()
                )
    finally:
        await pg.close()
    result = DrainRun(
        processes=stack.worker.processes,
        threads=stack.worker.threads,
        tickets=n,
        enqueue_seconds=round(enqueued, 2),
        seconds_to_last_offer=round(to_last_offer, 2),
        tickets_per_second=round(n / to_last_offer, 1),
        seconds_to_settled=round(settled, 2),
        offers_per_request=_histogram(offers_per_request + [0] * (n - len(offers_per_request))),
        attempts_per_request=_histogram(attempts),
        offered_events_per_ticket=_histogram([int(offered_events.get(t, 0)) for t in ticket_ids]),
        notifications_per_ticket=_histogram([int(inbox.get(t, 0)) for t in ticket_ids]),
        cpu=cpu,
        connections=connections,
    )
    once = {str(1): n}
    if not (result.offers_per_request == result.attempts_per_request == once):
        raise BenchError(
            f"not exactly once: offers per request {result.offers_per_request}, "
            f"attempts per request {result.attempts_per_request}"
        )
    if not (result.offered_events_per_ticket == result.notifications_per_ticket == once):
        raise BenchError(
            f"follow-ups not exactly once: offered events per ticket {result.offered_events_per_ticket}, "
            f"notifications per ticket {result.notifications_per_ticket}"
        )
    return result


# -- 3. the ticket list -------------------------------------------------------------------------


def check_query(base: str, token: str) -> dict[str, Any]:
    """Run the nested query once: 50 open tickets with their reporters' homes and events, no error."""
    with httpx.Client(timeout=REQUEST_TIMEOUT_SECONDS) as client:
        data, size = graphql(client, f"{base}/graphql", NESTED_QUERY, token=token)
    tickets = data["tickets"]
    nodes = [e["node"] for e in tickets["edges"]]
    if len(nodes) != 50 or any(n["status"] not in [s.upper() for s in OPEN_STATUS_VALUES] for n in nodes):
        raise BenchError(
            f"the ticket query did not return 50 open tickets: {json.dumps(nodes[:2], ensure_ascii=False)}"
        )
    with_home = sum(1 for n in nodes if n["reporter"] and n["reporter"]["household"])
    if with_home != 50 or any(not 1 <= len(n["events"]) <= 3 for n in nodes):
        raise BenchError("the ticket query's tickets lack reporters with homes, or events")
    return {
        "total_count": int(tickets["totalCount"]),
        "response_bytes": size,
        "with_assignee": sum(1 for n in nodes if n["assignee"]),
        "events": sum(len(n["events"]) for n in nodes),
    }


# -- reporting ----------------------------------------------------------------------------------

FIGURE_LABELS = {
    "submit_request": "`submitTicket` request (HTTP round trip)",
    "submit_to_offer_db": "submit → offer in the database (assignment polled every 20 ms)",
    "submit_to_offer_push": "submit → offer pushed on `ticket-staff:<id>` (Redis pub/sub)",
    "answer_offer_request": "bot: `answerOffer` request (HTTP round trip)",
    "submit_to_assigned_db": "submit → ticket ASSIGNED in the database (polled every 20 ms)",
    "submit_to_assigned_push": "submit → ASSIGNED pushed on `ticket:<id>` (Redis pub/sub)",
}


def _connection_cell(c: dict[str, Any]) -> str:
    return f"{c['bench_peak']} / {c['all_peak']} of {c['max_connections']}"


def _cpu_cells(cpu: dict[str, Any]) -> str:
    return (
        f"{_fmt(cpu['server_cpu_pct'])} | {_fmt(cpu['worker_cpu_pct'])} | {_fmt(cpu['postgres_cpu_pct'])} "
        f"| {_fmt(cpu['bench_cpu_pct'])} | {_fmt(cpu['other_cpu_pct'])} ({_fmt(cpu['other_cpu_max_1s_pct'])})"
    )


def markdown(report: dict[str, Any]) -> str:
    m, cfg, seeded = report["machine"], report["config"], report["seed"]
    history = seeded["history"]
    lines = [
        "# Tickets benchmark",
        "",
        f"- date: {report['date']}",
        f"- command: `{report['command']}`",
        f"- machine: {m['nproc']} cores ({m['cpu']}), Python {m['python']}, PostgreSQL {m['postgresql']}",
        f"- stack: {cfg['server']}; worker: {cfg['worker']}",
        f"- seed: `seed_demo` scale 1 ({seeded['residents']:,} residents, {seeded['seed_seconds']:.1f} s) + "
        f"`seed_tickets_demo` ({seeded['categories']} categories, {seeded['demo_responders']} responders) + "
        f"{len(seeded['bench_responders'])} mingzhu craftspeople (4 plumbers, 2 electricians, max_open "
        f"{BENCH_MAX_OPEN:,}) + {history['tickets']:,} historical mingzhu tickets ({history['open_tickets']:,} open, "
        f"{history['events']:,} events, {history['assignments']:,} assignments; {history['seconds']:.1f} s), then ANALYZE",
        f"- CPU columns: % of one core over the timed window ({m['nproc']} cores: at most {100 * m['nproc']}%); "
        "worker = every process of `linli worker`'s session; bench = this process (load, polls, bot, pub/sub); "
        "postgres = bench.registry's accounting: the bench database's backends, PostgreSQL's own processes and the "
        "backends of any database that exited meanwhile (other databases' short-lived connections inflate it); "
        "other = the rest of the machine (kernel, unrelated processes), averaged over "
        "the window, with its busiest second in brackets. A latency or throughput run, or a query row, that others "
        f"disturbed is run again (up to {cfg['max_attempts']} times in all) and the least disturbed stands; before "
        f"each the bench waits up to {cfg['quiet_wait_seconds']:g} s for the machine to fall quiet.",
    ]
    if m.get("load_generator_note"):
        lines.append(f"- **note:** {m['load_generator_note']}")
    lines += [
        "",
        "## 1. submit → offered → assigned (through the real worker)",
        "",
        f'The mingzhu demo resident submits `leak` tickets at home (answers `{{"where": "厨房"}}`) through '
        f"GraphQL at {cfg['rate']:g}/s, open loop. Offers are seen by polling the assignment table every 20 ms "
        "(the time is taken when the poll query starts, so each figure is at most 20 ms late plus one query); "
        "pushes by a Redis PSUBSCRIBE on the namespace's `push:ticket*` channels (what api.core.pubsub.RedisPubSub "
        "publishes to), which hear of the offer only after the `ticket.assignment_changed` and `tickets.notify` "
        "jobs. In the second run a bot accepts each offer through `answerOffer` (as the responder offered it) as "
        "soon as the poll sees it. Latencies are from the moment the submit request is sent. "
        f"{WARMUP_TICKETS} warm-up tickets first (not counted).",
        "",
        "| run | measure | n | p50 ms | p99 ms | max ms | mean ms |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for run in report["latency"]:
        for key, f in run["figures"].items():
            lines.append(
                f"| {run['name']} | {FIGURE_LABELS[key]} | {f['n']} | {f['p50_ms']:.1f} | {f['p99_ms']:.1f} "
                f"| {f['max_ms']:.1f} | {f['mean_ms']:.1f} |"
            )
    lines += [
        "",
        "| run | tickets | worker | seconds | pushes missed | server CPU | worker CPU | postgres CPU | bench CPU "
        "| other CPU (busiest s) | PG conns peak (bench db / all) | attempts |",
        "|---|---:|---|---:|---|---:|---:|---:|---:|---:|---|---:|",
    ]
    for run in report["latency"]:
        missed = ", ".join(f"{k} {v}" for k, v in run["missing"].items())
        lines.append(
            f"| {run['name']} | {run['tickets']} | {run['worker']} | {run['seconds']:.1f} | {missed} "
            f"| {_cpu_cells(run['cpu'])} | {_connection_cell(run['connections'])} | {run['attempts']} |"
        )
    lines += [
        "",
        "## 2. dispatch throughput",
        "",
        f"{cfg['tickets']:,} open leak tickets at random mingzhu homes with their dispatch requests inserted in bulk, "
        "then one `dispatch.assign` each enqueued through the outbox in one unit of work (published after the "
        "commit); time from just before that unit of work to the last offer's `offered_at`. Settled: the follow-up "
        "jobs (ticket event, inbox) done too, every queue and the outbox empty. Exactly once: offers per request, "
        "`attempts` per request, offered events and inbox messages per ticket, all 1.",
        "",
        "| worker processes × threads | tickets | enqueue s | to last offer s | tickets/s | settled s "
        "| exactly once | server CPU | worker CPU | postgres CPU | bench CPU | other CPU (busiest s) | PG conns peak "
        "| attempts |",
        "|---|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|---|---:|",
    ]
    for run in report["throughput"]:
        once = all(
            run[k] == {"1": run["tickets"]}
            for k in ("offers_per_request", "attempts_per_request", "offered_events_per_ticket",
                      "notifications_per_ticket")
        )  # fmt: skip
        lines.append(
            f"| {run['processes']} × {run['threads']} | {run['tickets']:,} | {run['enqueue_seconds']:.2f} "
            f"| {run['seconds_to_last_offer']:.2f} | {run['tickets_per_second']:.1f} | {run['seconds_to_settled']:.1f} "
            f"| {'yes' if once else 'NO'} | {_cpu_cells(run['cpu'])} | {_connection_cell(run['connections'])} "
            f"| {run['attempts']} |"
        )
    q = report["query"]
    lines += [
        "",
        "## 3. 50 open tickets with reporter, household, building, assignee and last 3 events",
        "",
        f"As mingzhu staff (the worker stopped); {q['total_count']:,} open tickets visible, "
        f"{q['response_bytes']:,} B per response, {q['with_assignee']} of the 50 with an assignee. "
        f"wrk, {cfg['warmup_seconds']} s warm-up then {cfg['duration_seconds']} s per row, closed loop; measured "
        f"again (up to {cfg['max_attempts']} times) when other processes took more than {DISTURBED_PCT:.0f}% of a core. "
        f"New PG conns: connections the server opened during the row (pg_stat_database.sessions; the pool keeps "
        f"{DB_POOL_SIZE} and opens up to {DB_POOL_SIZE} more, closing those when returned).",
        "",
        "```graphql",
        NESTED_QUERY,
        "```",
        "",
        "| concurrency | req/s | p50 ms | p99 ms | max ms | errors | server CPU | postgres CPU | other CPU "
        "| new PG conns | attempts |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in q["measurements"]:
        errors = r["non_200"] + r["graphql_errors"] + r["socket_errors"]
        lines.append(
            f"| {r['concurrency']} | {r['requests_per_second']:.1f} | {r['p50_ms']:.1f} | {r['p99_ms']:.1f} "
            f"| {r['max_ms']:.1f} | {errors} | {_fmt(r['server_cpu_pct'])} | {_fmt(r['postgres_cpu_pct'])} "
            f"| {_fmt(r['other_cpu_pct'])} | {r['pg_connections_opened']} | {r['attempts']} |"
        )
    disturbed = [
        f"{run['name']}"
        for run in report["latency"]
        if run["cpu"]["other_cpu_pct"] > DISTURBED_PCT or run["cpu"]["other_cpu_max_1s_pct"] > OTHER_BURST_PCT
    ]
    disturbed += [
        f"throughput {run['processes']} × {run['threads']}"
        for run in report["throughput"]
        if run["cpu"]["other_cpu_pct"] > DISTURBED_PCT
    ]
    disturbed += [f"query c={r['concurrency']}" for r in q["measurements"] if r["other_cpu_pct"] > DISTURBED_PCT]
    if disturbed:
        lines += [
            "",
            f"**Disturbed** (other processes used more than {DISTURBED_PCT:.0f}% of a core during the row, or "
            f"more than {OTHER_BURST_PCT:.0f}% in one second of a latency run): " + ", ".join(disturbed) + ".",
        ]
    lines.append("")
    return "\n".join(lines)


# -- main ---------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench.tickets", description=__doc__.split("\n\n")[0])
    parser.add_argument("--tickets", type=int, default=1000, help="tickets per throughput run (default 1000)")
    parser.add_argument("--duration", type=int, default=10, help="seconds per query measurement (default 10)")
    parser.add_argument("--concurrency", type=_int_list, default=[1, 10, 50], help="query (default 1,10,50)")
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT, help="JSON; the .md goes next to it")
    parser.add_argument("--submit", type=int, default=200, help="tickets per latency run (default 200)")
    parser.add_argument("--rate", type=float, default=10.0, help="submits per second (default 10)")
    parser.add_argument("--history", type=int, default=5000, help="historical mingzhu tickets (default 5000)")
    parser.add_argument("--quiet-wait", type=float, default=20.0,
                        help="seconds to wait for an idle machine before each timed row (default 20)")  # fmt: skip
    parser.add_argument("--max-attempts", type=int, default=2,
                        help="runs of a row while other processes disturb it (default 2)")  # fmt: skip
    parser.add_argument("--keep", action="store_true", help="keep the bench database and Redis keys")
    parser.add_argument("--load-generator", choices=("auto", "wrk", "python"), default="auto")
    parser.add_argument("--pg-admin-url", default=PG_ADMIN_URL, help="asyncpg URL of a database to run DDL from")
    parser.add_argument("--redis-url", default=REDIS_URL)
    return parser


def clear_namespace(redis_url: str, namespace: str) -> int:
    client = redis.Redis.from_url(redis_url)
    try:
        keys = list(client.scan_iter(match=f"{namespace}:*", count=1000))
        for start in range(0, len(keys), 500):
            client.delete(*keys[start : start + 500])
        return len(keys)
    finally:
        client.close()


def run(args: argparse.Namespace) -> dict[str, Any]:
    if args.duration < 1 or args.tickets < 1 or args.submit < 1 or args.rate <= 0 or args.history < 50:
        raise BenchError("--duration, --tickets and --submit must be at least 1, --rate positive, --history 50+")
    secret = secrets.token_urlsafe(48)
    namespace = f"linli-bench-tickets-{secrets.token_hex(4)}"
    workdir = Path(tempfile.mkdtemp(prefix="linli-bench-tickets-"))
    load, note = pick_load_generator(args.load_generator, workdir)
    if note:
        log(f"NOTE: {note}")
    machine = machine_info(args.pg_admin_url, load, note)
    log(f"{machine['nproc']} cores, Python {machine['python']}, PostgreSQL {machine['postgresql']}, {load.name}")
    url = database_url(args.pg_admin_url, DATABASE)
    settings = Settings(
        environment=Environment.PRODUCTION, database_url=url, redis_url=args.redis_url, redis_namespace=namespace,
        secret_key=SecretStr(secret), db_pool_size=4,
    )  # fmt: skip
    server: Server | None = None
    worker: WorkerProcess | None = None
    created = ok = False
    try:
        log(f"creating and migrating {DATABASE}; Redis namespace {namespace}")
        create_database(args.pg_admin_url, DATABASE)
        created = True
        upgrade(url)
        log("seeding the registry (seed_demo, scale 1)")
        registry_seed = asyncio.run(seed(url, secret, 1, DATABASE))
        log(f"seeded {registry_seed.residents:,} residents in {registry_seed.seed_seconds:.1f}s; tickets next")
        world = asyncio.run(prepare(settings, history_tickets=args.history))
        log(
            f"{world.categories} categories, {world.demo_responders} demo responders, "
            f"{len(world.bench_responders)} bench responders, {world.history.tickets:,} historical tickets "
            f"({world.history.events:,} events) in {world.history.seconds:.1f}s"
        )
        # One resident submits every ticket: the per-account limit (counted in Redis on every request,
        # as in production) is raised out of the way, as the other benches do.
        limits = {"LINLI_RATE_LIMIT_PER_ACCOUNT": "1000000000", "LINLI_RATE_LIMIT_PER_ADDRESS": "1000000000"}
        server = Server(db_url=url, redis_url=args.redis_url, secret=secret, log_path=workdir / "server.log",
                        extra_env={"LINLI_REDIS_NAMESPACE": namespace, **limits})  # fmt: skip
        server.start()
        log(f"server pid {server.pid} ready on port {server.port}")
        tokens = log_in_all(server.base, world)
        stack = Stack(server, None, settings, _pg_dsn(args.pg_admin_url, DATABASE), world, tokens)

        # 1. latency, with `linli worker`'s default processes and threads
        worker = WorkerProcess(server.env, processes=LATENCY_PROCESSES, threads=WORKER_THREADS,
                               log_path=workdir / "worker-latency.log")  # fmt: skip
        worker.start()
        stack.worker = worker
        log(f"worker ready ({worker.processes} processes × {worker.threads} threads); {WARMUP_TICKETS} warm-up tickets")
        asyncio.run(submit_run(stack, name="warm-up", n=WARMUP_TICKETS, rate=args.rate, bot=True, background=0.0))
        latency: list[LatencyRun] = []
        for name, bot in (("offer", False), ("offer + accept", True)):
            attempts: list[LatencyRun] = []
            for attempt in range(1, args.max_attempts + 1):
                asyncio.run(_settle(stack, name))
                server.wait_idle()
                background = wait_for_quiet_machine(args.quiet_wait)
                result = asyncio.run(submit_run(stack, name=name, n=args.submit, rate=args.rate, bot=bot,
                                                background=background))  # fmt: skip
                f = result.figures
                log(
                    f"  {name}: submit→offer p50 {f['submit_to_offer_db'].p50_ms:.0f} ms p99 "
                    f"{f['submit_to_offer_db'].p99_ms:.0f} ms"
                    + (
                        f"; submit→assigned p50 {f['submit_to_assigned_db'].p50_ms:.0f} ms p99 "
                        f"{f['submit_to_assigned_db'].p99_ms:.0f} ms"
                        if bot
                        else ""
                    )
                    + f"; other processes {result.cpu.other_cpu_pct:.0f}% (busiest second "
                    f"{result.cpu.other_cpu_max_1s_pct:.0f}%)"
                )
                attempts.append(result)
                if not result.cpu.disturbed:
                    break
                if attempt < args.max_attempts:
                    log("  other processes disturbed the run: running it again")
            latency.append(_least_disturbed(attempts))
        asyncio.run(_settle(stack, "latency runs"))

        # 2. throughput: 2 processes (the running worker), then 1
        throughput: dict[int, DrainRun] = {}
        for processes in (2, 1):
            if worker.processes != processes:
                worker.stop()
                worker = WorkerProcess(server.env, processes=processes, threads=WORKER_THREADS,
                                       log_path=workdir / f"worker-{processes}.log")  # fmt: skip
                worker.start()
                stack.worker = worker
            drains: list[DrainRun] = []
            for attempt in range(1, args.max_attempts + 1):
                log(f"throughput: {args.tickets:,} tickets, worker {processes} processes × {WORKER_THREADS} threads")
                drained = asyncio.run(drain_run(stack, args.tickets, args.quiet_wait))
                log(
                    f"  {drained.tickets_per_second:.1f} tickets/s ({drained.seconds_to_last_offer:.1f}s to the last "
                    f"offer, settled after {drained.seconds_to_settled:.1f}s), exactly once; other processes "
                    f"{drained.cpu.other_cpu_pct:.0f}%"
                )
                drains.append(drained)
                # A drain is long: only the average matters.
                if drained.cpu.other_cpu_pct <= DISTURBED_PCT:
                    break
                if attempt < args.max_attempts:
                    log("  other processes disturbed the run: running it again")
            throughput[processes] = _least_disturbed(drains)
        worker.stop()
        stack.worker = worker = None

        # 3. the nested ticket query
        checked = check_query(server.base, tokens.staff)
        log(f"ticket query: {checked['total_count']:,} open tickets, {checked['response_bytes']:,} B per response")
        body = _body(NESTED_QUERY, {})
        measurements: list[Measurement] = []
        for c in args.concurrency:
            best = measure_best(server, args.pg_admin_url, DATABASE, load, f"{server.base}/graphql", body,
                                tokens.staff, "tickets", c, args.duration, label="query",
                                max_attempts=args.max_attempts, quiet_limit=args.quiet_wait)  # fmt: skip
            measurements.append(best)
        ok = True
    finally:
        if worker is not None:
            worker.stop()
        if server is not None:
            server.stop()
        if not args.keep:
            if created:
                drop_database(args.pg_admin_url, DATABASE)
            removed = clear_namespace(args.redis_url, namespace)
            log(f"dropped {DATABASE} and {removed} Redis keys of {namespace}")
        if ok:
            shutil.rmtree(workdir, ignore_errors=True)
        else:
            log(f"server and worker logs kept in {workdir}")
    return {
        "benchmark": "tickets",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": " ".join(["python -m bench.tickets", *sys.argv[1:]]),
        "machine": machine,
        "config": {
            "tickets": args.tickets,
            "submit": args.submit,
            "rate": args.rate,
            "history": args.history,
            "duration_seconds": args.duration,
            "warmup_seconds": WARMUP_SECONDS,
            "warmup_tickets": WARMUP_TICKETS,
            "concurrency": args.concurrency,
            "max_attempts": args.max_attempts,
            "quiet_wait_seconds": args.quiet_wait,
            "poll_seconds": POLL_SECONDS,
            "server": "python -m api.cli serve (one uvicorn process, access log on), LINLI_ENVIRONMENT=production, "
            f"PostgreSQL (pool {DB_POOL_SIZE} + {DB_POOL_SIZE} overflow) and Redis (namespace of its own)",
            "worker": f"python -m api.cli worker --processes N --threads {WORKER_THREADS} (latency runs: "
            f"{LATENCY_PROCESSES} processes), production settings",
            "argon2": ARGON2,
            "resident": f"{world.resident.phone} (mingzhu resident)",
            "staff": f"{world.staff.phone} (mingzhu staff)",
        },
        "seed": {
            "residents": registry_seed.residents,
            "households": registry_seed.households,
            "seed_seconds": registry_seed.seed_seconds,
            "categories": world.categories,
            "demo_responders": world.demo_responders,
            "bench_responders": world.bench_responders,
            "history": asdict(world.history),
        },
        "latency": [asdict(r) for r in latency],
        "throughput": [asdict(throughput[p]) for p in sorted(throughput)],
        "query": {"query": NESTED_QUERY, **checked, "measurements": [asdict(m) for m in measurements]},
    }


def _least_disturbed(runs: list[T]) -> T:
    """The run other processes disturbed least stands; it records how many were made."""
    best = min(runs, key=lambda r: (r.cpu.other_cpu_pct, r.cpu.other_cpu_max_1s_pct))
    best.attempts = len(runs)
    return best


async def _settle(stack: Stack, what: str) -> None:
    pg = await asyncpg.connect(stack.pg_dsn)
    try:
        await wait_settled(stack, pg, what)
    finally:
        await pg.close()


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        report = run(args)
    except BenchError as exc:
        print(f"\nBENCHMARK FAILED: {exc}", file=sys.stderr)
        if "\n" in str(exc):
            print(f"\nBENCHMARK FAILED: {str(exc).splitlines()[0]}", file=sys.stderr)
        return 1
    output: Path = args.output
    md = markdown(report)
    write_atomically(output, json.dumps(report, indent=2, ensure_ascii=False) + "\n")
    write_atomically(output.with_suffix(".md"), md)
    print(md)
    log(f"wrote {output} and {output.with_suffix('.md')}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
