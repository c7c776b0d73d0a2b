"""Registry benchmark: seed PostgreSQL at several scales, serve the production stack, load the registry queries.

For each scale: a fresh database `linli_bench_s<scale>` is created, migrated and seeded in-process
(`seed_demo`, timed), then the real server (`python -m api.cli serve`, one uvicorn process,
LINLI_ENVIRONMENT=production, PostgreSQL + Redis) is started as a subprocess. The bench logs in as
the mingzhu staff demo login and measures requests/s and latency percentiles of the nested
registry query at each concurrency, and of a `node(id:)` lookup, with `wrk` (a Lua script posts
the GraphQL body and counts non-200 responses and GraphQL errors) or, when wrk is missing, an
asyncio + httpx generator. Any non-200 response, GraphQL error or socket error fails the run.

    python -m bench.registry --scales 1,10 --duration 10 --concurrency 1,10,50

Writes bench/results/registry.json and registry.md (the Markdown table is printed too).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import resource
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit

import asyncpg
import httpx
from argon2 import PasswordHasher
from sqlalchemy import text

from api.accounts.service import Passwords
from api.core.crypto import PersonalDataCipher
from api.core.database import Database
from api.core.migrations import PROJECT_ROOT, upgrade
from api.registry.seed import demo_logins, seed_demo
from api.settings import Settings

RESULTS_DIR = PROJECT_ROOT / "bench" / "results"
DEFAULT_OUTPUT = RESULTS_DIR / "registry.json"
PG_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
REDIS_URL = "redis://127.0.0.1:6379/0"
WARMUP_SECONDS = 2
LOOKUP_CONCURRENCY = 10
REQUEST_TIMEOUT_SECONDS = 30
READY_TIMEOUT_SECONDS = 60
# Before each measurement the machine should be idle but for the bench (other work skews the figures).
QUIET_THRESHOLD_PCT = 15.0
QUIET_WAIT_SECONDS = 300.0
# A measurement during which other processes used more than this (% of one core) is taken again.
DISTURBED_PCT = 20.0
MAX_ATTEMPTS = 3
PG_STATS_FLUSH_SECONDS = 1.5

NESTED_QUERY = (
    "query Nested($c: ID!) { residents(communityId: $c, first: 50, filter: {minAge: 60}) { totalCount "
    "edges { node { id name age gender phone nationalId tags household { room unit building { name "
    "compound { name } } } } } } }"
)
LOOKUP_QUERY = "query($id: ID!) { node(id: $id) { ... on Resident { name household { room } } } }"
LOGIN_MUTATION = (
    "mutation Login($phone: String!, $password: String!) { login(input: {phone: $phone, password: $password}) "
    "{ __typename ... on LoginSuccess { token } ... on UserError { message } } }"
)
COMMUNITIES_QUERY = "{ communities(first: 100) { edges { node { id code } } } }"

# The production argon2id parameters (Settings defaults, RFC 9106): the server uses the same,
# so the demo hashes need no rehash at login. Only the 21 demo logins are hashed.
ARGON2 = {
    "time_cost": int(Settings.model_fields["argon2_time_cost"].default),
    "memory_kib": int(Settings.model_fields["argon2_memory_kib"].default),
    "parallelism": int(Settings.model_fields["argon2_parallelism"].default),
}
DB_POOL_SIZE = int(Settings.model_fields["db_pool_size"].default)

_CLK_TCK = os.sysconf("SC_CLK_TCK")


class BenchError(RuntimeError):
    """The benchmark cannot give a trustworthy figure (errors, a server that will not start, ...)."""


def log(message: str) -> None:
    print(f"[{datetime.now(UTC):%H:%M:%S}] {message}", file=sys.stderr, flush=True)


# -- figures ------------------------------------------------------------------------------------


@dataclass
class LoadResult:
    """What one load-generator run saw."""

    requests: int
    seconds: float
    p50_ms: float
    p99_ms: float
    mean_ms: float
    max_ms: float
    non_200: int
    graphql_errors: int
    socket_errors: int
    first_error: str | None = None

    @property
    def errors(self) -> int:
        return self.non_200 + self.graphql_errors + self.socket_errors


@dataclass
class Measurement:
    query: str
    concurrency: int
    seconds: float
    requests: int
    requests_per_second: float
    p50_ms: float
    p99_ms: float
    mean_ms: float
    max_ms: float
    non_200: int
    graphql_errors: int
    socket_errors: int
    # CPU use during the measurement, in % of one core (the machine has `nproc` cores).
    server_cpu_pct: float
    postgres_cpu_pct: float | None
    loadgen_cpu_pct: float
    machine_cpu_pct: float
    # The rest of the machine's CPU during the measurement (kernel, other processes); high means disturbed.
    other_cpu_pct: float
    # CPU the machine used just before the load started, with the bench's server idle: other processes.
    background_cpu_pct: float
    # Connections the server opened to PostgreSQL meanwhile (pg_stat_database.sessions; approximate).
    pg_connections_opened: int = 0
    attempts: int = 1


@dataclass
class ScaleResult:
    scale: int
    database: str
    seed_seconds: float
    seed_argon2_seconds: float
    analyze_seconds: float
    communities: int
    compounds: int
    buildings: int
    households: int
    residents: int
    accounts: int
    mingzhu_residents_60_plus: int = 0
    nested_response_bytes: int = 0
    lookup_response_bytes: int = 0
    measurements: list[Measurement] = field(default_factory=list)


# -- CPU accounting -----------------------------------------------------------------------------


def _proc_cpu_seconds(pid: int, *, reaped_children: bool = False) -> float:
    """utime + stime of one process (plus its exited children's, if asked), from /proc/<pid>/stat."""
    data = Path(f"/proc/{pid}/stat").read_text()
    fields = data.rsplit(")", 1)[1].split()  # fields[0] is the state (field 3 of stat)
    ticks = int(fields[11]) + int(fields[12])
    if reaped_children:
        ticks += int(fields[13]) + int(fields[14])
    return ticks / _CLK_TCK


def _postgres_cpu(database: str) -> dict[int, float]:
    """CPU seconds per local PostgreSQL process: the backends of `database` and the shared ones.

    Client backends of other databases (say, a test suite running meanwhile) are left out; so are
    processes of a PostgreSQL that is not on this machine (the result is then empty). The postmaster
    counts the backends that exited (of any database): a pool that opens and closes connections
    under load costs PostgreSQL a backend start each time.
    """
    out: dict[int, float] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            if Path(f"/proc/{entry}/comm").read_text().strip() != "postgres":
                continue
            # A client backend's title is "postgres: <cluster>: <user> <database> <host>(<port>) <state>".
            title = Path(f"/proc/{entry}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").split()
            if len(title) >= 5 and title[0] == "postgres:" and "(" in title[4] and title[3] != database:
                continue
            out[int(entry)] = _proc_cpu_seconds(int(entry), reaped_children=True)
        except (OSError, IndexError, ValueError):
            continue
    return out


def _postgres_delta(before: dict[int, float], after: dict[int, float]) -> float | None:
    """CPU used by PostgreSQL between two samples; backends that exited in between are not counted."""
    if not before and not after:
        return None
    return sum(seconds - before.get(pid, 0.0) for pid, seconds in after.items())


def _machine_ticks() -> tuple[int, int]:
    """(all, idle) jiffies of the whole machine."""
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:9]]
    return sum(values), values[3] + values[4]


@dataclass
class _CpuSnapshot:
    wall: float
    server: float
    postgres: dict[int, float]
    children: float
    self_: float
    machine: tuple[int, int]

    @classmethod
    def take(cls, server_pid: int, database: str) -> _CpuSnapshot:
        kids = resource.getrusage(resource.RUSAGE_CHILDREN)
        me = resource.getrusage(resource.RUSAGE_SELF)
        return cls(
            wall=time.perf_counter(),
            server=_proc_cpu_seconds(server_pid),
            postgres=_postgres_cpu(database),
            # Waited-for children only: wrk (the server is waited for at the very end).
            children=kids.ru_utime + kids.ru_stime,
            self_=me.ru_utime + me.ru_stime,
            machine=_machine_ticks(),
        )


def machine_busy_pct(seconds: float = 1.0) -> float:
    """CPU use of the whole machine over `seconds`, in % of one core."""
    total0, idle0 = _machine_ticks()
    time.sleep(seconds)
    total1, idle1 = _machine_ticks()
    total = total1 - total0
    return round(100 * (os.cpu_count() or 1) * (total - (idle1 - idle0)) / total, 1) if total else 0.0


def wait_for_quiet_machine(limit: float = QUIET_WAIT_SECONDS) -> float:
    """Wait (up to `limit` seconds) until other processes leave the CPU alone; returns the last busy %.

    Call it while the bench's own server is idle: whatever the machine does then is someone else's.
    """
    started = time.perf_counter()
    busy = machine_busy_pct()
    if busy > QUIET_THRESHOLD_PCT:
        log(f"  the machine is busy ({busy:.0f}% of a core) before the load starts; waiting up to {limit:.0f}s")
    while busy > QUIET_THRESHOLD_PCT and time.perf_counter() - started < limit:
        busy = machine_busy_pct()
    if busy > QUIET_THRESHOLD_PCT:
        log(f"  WARNING: still {busy:.0f}% of a core busy with other processes; the figure below is disturbed")
    return busy


def _cpu_usage(before: _CpuSnapshot, after: _CpuSnapshot, *, in_process_loadgen: bool) -> dict[str, float | None]:
    wall = after.wall - before.wall

    def pct(seconds: float) -> float:
        return round(100 * seconds / wall, 1)

    total, idle = after.machine[0] - before.machine[0], after.machine[1] - before.machine[1]
    loadgen = after.self_ - before.self_ if in_process_loadgen else after.children - before.children
    postgres = _postgres_delta(before.postgres, after.postgres)
    return {
        "server_cpu_pct": pct(after.server - before.server),
        "postgres_cpu_pct": None if postgres is None else pct(postgres),
        "loadgen_cpu_pct": pct(loadgen),
        "machine_cpu_pct": round(100 * (os.cpu_count() or 1) * (total - idle) / total, 1) if total else 0.0,
    }


# -- load generators ----------------------------------------------------------------------------


class LoadGenerator(Protocol):
    name: str
    in_process: bool

    def run(self, url: str, body: bytes, token: str, concurrency: int, seconds: int) -> LoadResult: ...


_WRK_SCRIPT = """
wrk.method = "POST"
wrk.body = [==[%(body)s]==]
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer %(token)s"

local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  non200 = 0
  gqlerrors = 0
  first_error = ""
end

function response(status, headers, body)
  if status ~= 200 then
    non200 = non200 + 1
    if first_error == "" then first_error = "HTTP " .. status .. ": " .. string.sub(body, 1, 300) end
  elseif string.find(body, '"errors"', 1, true) then
    gqlerrors = gqlerrors + 1
    if first_error == "" then first_error = string.sub(body, 1, 300) end
  end
end

function done(summary, latency, requests)
  local non, gql, first = 0, 0, ""
  for _, t in ipairs(threads) do
    non = non + t:get("non200")
    gql = gql + t:get("gqlerrors")
    if first == "" then first = t:get("first_error") end
  end
  local e = summary.errors
  io.write(string.format(
    'WRKJSON {"requests": %%d, "duration_us": %%d, "p50_us": %%d, "p99_us": %%d, "mean_us": %%f, ' ..
    '"max_us": %%d, "non_200": %%d, "graphql_errors": %%d, "socket_errors": %%d}\\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99), latency.mean,
    latency.max, non, gql, e.connect + e.read + e.write + e.timeout))
  if first ~= "" then io.write("WRKERR " .. first .. "\\n") end
end
"""


class WrkLoad:
    """wrk with one thread (it needs little CPU at these rates) and a Lua script for the POST."""

    in_process = False

    def __init__(self, executable: str, workdir: Path) -> None:
        self.executable = executable
        self.workdir = workdir
        version = subprocess.run([executable, "--version"], capture_output=True, text=True, check=False)
        first_line = (version.stdout or version.stderr).splitlines()[0] if (version.stdout or version.stderr) else ""
        self.name = first_line.split(" Copyright")[0].strip() or "wrk"

    def run(self, url: str, body: bytes, token: str, concurrency: int, seconds: int) -> LoadResult:
        decoded = body.decode()
        if "]==]" in decoded or '"' in token or "\\" in token:
            raise BenchError("the request cannot be embedded in the wrk Lua script")
        script = self.workdir / f"wrk-{secrets.token_hex(4)}.lua"
        script.write_text(_WRK_SCRIPT % {"body": decoded, "token": token})
        cmd = [self.executable, "-t1", f"-c{concurrency}", f"-d{seconds}s",
               f"--timeout={REQUEST_TIMEOUT_SECONDS}s", "-s", str(script), url]  # fmt: skip
        done = subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=seconds + 120)
        script.unlink()
        stats = next((line for line in done.stdout.splitlines() if line.startswith("WRKJSON ")), None)
        if done.returncode != 0 or stats is None:
            raise BenchError(f"wrk failed (exit {done.returncode}):\n{done.stdout}\n{done.stderr}")
        raw = json.loads(stats.removeprefix("WRKJSON "))
        first_error = next((line[7:] for line in done.stdout.splitlines() if line.startswith("WRKERR ")), None)
        return LoadResult(
            requests=int(raw["requests"]),
            seconds=raw["duration_us"] / 1e6,
            p50_ms=raw["p50_us"] / 1000,
            p99_ms=raw["p99_us"] / 1000,
            mean_ms=raw["mean_us"] / 1000,
            max_ms=raw["max_us"] / 1000,
            non_200=int(raw["non_200"]),
            graphql_errors=int(raw["graphql_errors"]),
            socket_errors=int(raw["socket_errors"]),
            first_error=first_error,
        )


def _percentile(sorted_values: Sequence[float], p: float) -> float:
    """Nearest-rank percentile of sorted values."""
    if not sorted_values:
        return 0.0
    rank = max(1, min(len(sorted_values), round(p / 100 * len(sorted_values) + 0.5)))
    return sorted_values[rank - 1]


class PythonLoad:
    """Fallback: closed-loop asyncio + httpx clients in this process (it competes for the CPU)."""

    name = "python asyncio+httpx (fallback: wrk not found)"
    in_process = True

    def run(self, url: str, body: bytes, token: str, concurrency: int, seconds: int) -> LoadResult:
        return asyncio.run(self._run(url, body, token, concurrency, seconds))

    async def _run(self, url: str, body: bytes, token: str, concurrency: int, seconds: int) -> LoadResult:
        headers = {"Content-Type": "application/json", "Authorization": f"Bearer {token}"}
        latencies: list[float] = []
        counts = {"non_200": 0, "graphql_errors": 0, "socket_errors": 0}
        first_error: list[str] = []
        limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
        async with httpx.AsyncClient(limits=limits, timeout=REQUEST_TIMEOUT_SECONDS) as client:
            deadline = time.perf_counter() + seconds

            async def worker() -> None:
                while time.perf_counter() < deadline:
                    started = time.perf_counter()
                    try:
                        response = await client.post(url, content=body, headers=headers)
                    except httpx.HTTPError as exc:
                        counts["socket_errors"] += 1
                        first_error.append(repr(exc))
                        continue
                    latencies.append(time.perf_counter() - started)
                    if response.status_code != 200:
                        counts["non_200"] += 1
                        first_error.append(f"HTTP {response.status_code}: {response.text[:300]}")
                    elif b'"errors"' in response.content:
                        counts["graphql_errors"] += 1
                        first_error.append(response.text[:300])

            started = time.perf_counter()
            await asyncio.gather(*(worker() for _ in range(concurrency)))
            elapsed = time.perf_counter() - started
        latencies.sort()
        return LoadResult(
            requests=len(latencies),
            seconds=elapsed,
            p50_ms=_percentile(latencies, 50) * 1000,
            p99_ms=_percentile(latencies, 99) * 1000,
            mean_ms=(sum(latencies) / len(latencies) * 1000) if latencies else 0.0,
            max_ms=(latencies[-1] * 1000) if latencies else 0.0,
            first_error=first_error[0] if first_error else None,
            **counts,
        )


def pick_load_generator(choice: str, workdir: Path) -> tuple[LoadGenerator, str | None]:
    """The generator and, for the fallback, the note to print next to the figures."""
    wrk = shutil.which("wrk")
    if choice == "wrk" and wrk is None:
        raise BenchError("--load-generator wrk, but wrk is not installed (apt-get install -y wrk)")
    if choice != "python" and wrk is not None:
        return WrkLoad(wrk, workdir), None
    note = (
        "wrk was not found, so the load came from an asyncio+httpx generator in the bench process; it "
        "shares the CPU with the server and PostgreSQL, so requests/s are lower and latencies higher "
        "than wrk would show (install wrk: apt-get install -y wrk)."
        if choice == "auto"
        else "asyncio+httpx generator chosen with --load-generator python; it shares the CPU with the server."
    )
    return PythonLoad(), note


# -- the database -------------------------------------------------------------------------------


async def _admin(admin_url: str, *statements: str) -> list[Any]:
    conn = await asyncpg.connect(admin_url)
    try:
        return [await conn.fetchval(statement) for statement in statements]
    finally:
        await conn.close()


def create_database(admin_url: str, name: str) -> None:
    asyncio.run(_admin(admin_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)', f'CREATE DATABASE "{name}"'))


def pg_sessions(admin_url: str, name: str) -> int:
    """Sessions ever opened on database `name` (PostgreSQL 14+; flushed about once a second)."""
    value = asyncio.run(_admin(admin_url, f"SELECT sessions FROM pg_stat_database WHERE datname = '{name}'"))[0]
    return int(value or 0)


def drop_database(admin_url: str, name: str) -> None:
    asyncio.run(_admin(admin_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def database_url(admin_url: str, name: str) -> str:
    parts = urlsplit(admin_url)
    return f"postgresql+asyncpg://{parts.netloc}/{name}"


_HASH_SECONDS: list[float] = []


class _TimedPasswords(Passwords):
    """Passwords that record how long each argon2 hash took (the seed's share spent on logins)."""

    async def hash(self, password: str) -> str:
        started = time.perf_counter()
        try:
            return await super().hash(password)
        finally:
            _HASH_SECONDS.append(time.perf_counter() - started)


async def seed(url: str, secret: str, scale: int, name: str) -> ScaleResult:
    """Seed in-process with the server's key and argon2 parameters, then ANALYZE (timed apart)."""
    db = Database(url, pool_size=2)
    try:
        hasher = PasswordHasher(
            time_cost=ARGON2["time_cost"], memory_cost=ARGON2["memory_kib"], parallelism=ARGON2["parallelism"]
        )
        _HASH_SECONDS.clear()
        started = time.perf_counter()
        report = await seed_demo(db, cipher=PersonalDataCipher(secret), passwords=_TimedPasswords(hasher), scale=scale)
        seed_seconds = time.perf_counter() - started
        started = time.perf_counter()
        async with db.engine.begin() as conn:
            await conn.execute(text("ANALYZE"))
        analyze_seconds = time.perf_counter() - started
    finally:
        await db.dispose()
    return ScaleResult(
        scale=scale,
        database=name,
        seed_seconds=round(seed_seconds, 2),
        seed_argon2_seconds=round(sum(_HASH_SECONDS), 2),
        analyze_seconds=round(analyze_seconds, 2),
        communities=report.communities,
        compounds=report.compounds,
        buildings=report.buildings,
        households=report.households,
        residents=report.residents,
        accounts=report.accounts,
    )


# -- the server ---------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Server:
    """`python -m api.cli serve` on the production stack, as a subprocess."""

    def __init__(self, *, db_url: str, redis_url: str, secret: str, log_path: Path,
                 extra_env: Mapping[str, str] | None = None) -> None:  # fmt: skip
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        env = {k: v for k, v in os.environ.items() if not k.startswith("LINLI_")}
        env.update(
            LINLI_ENVIRONMENT="production",
            LINLI_SECRET_KEY=secret,
            LINLI_DATABASE_URL=db_url,
            LINLI_REDIS_URL=redis_url,
        )
        env.update(extra_env or {})
        self.env = env
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def start(self) -> None:
        cmd = [sys.executable, "-m", "api.cli", "serve", "--host", "127.0.0.1", "--port", str(self.port)]
        with self.log_path.open("wb") as out:
            self.proc = subprocess.Popen(cmd, env=self.env, cwd=PROJECT_ROOT, stdout=out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + READY_TIMEOUT_SECONDS
        with httpx.Client(timeout=5) as client:
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    raise BenchError(f"the server exited with {self.proc.returncode}:\n{self.log_tail()}")
                try:
                    if client.get(f"{self.base}/readyz").status_code == 200:
                        return
                except httpx.HTTPError:
                    pass
                time.sleep(0.2)
        raise BenchError(f"the server was not ready within {READY_TIMEOUT_SECONDS}s:\n{self.log_tail()}")

    def wait_idle(self, limit: float = 120.0) -> float:
        """Wait until the server's CPU falls idle: a closed wrk leaves up to `c` requests to finish.

        Returns the seconds waited.
        """
        started = time.perf_counter()
        while time.perf_counter() - started < limit:
            before = _proc_cpu_seconds(self.pid)
            time.sleep(0.25)
            if _proc_cpu_seconds(self.pid) - before < 0.25 * 0.05:
                return time.perf_counter() - started
        raise BenchError(f"the server stayed busy for {limit:.0f}s after the load stopped:\n{self.log_tail()}")

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no server log)"


def graphql(client: httpx.Client, url: str, query: str, variables: dict[str, Any] | None = None,
            token: str | None = None) -> tuple[dict[str, Any], int]:  # fmt: skip
    """POST one operation; returns (data, response bytes). Any error raises BenchError."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    response = client.post(url, json={"query": query, "variables": variables or {}}, headers=headers)
    if response.status_code != 200:
        raise BenchError(f"HTTP {response.status_code} for {query[:60]!r}: {response.text[:500]}")
    payload = response.json()
    if payload.get("errors"):
        raise BenchError(f"GraphQL errors for {query[:60]!r}: {json.dumps(payload['errors'], ensure_ascii=False)}")
    return payload["data"], len(response.content)


def _body(query: str, variables: dict[str, Any]) -> bytes:
    return json.dumps({"query": query, "variables": variables}, separators=(",", ":")).encode()


def bench_server(server: Server, result: ScaleResult, load: LoadGenerator, concurrencies: Sequence[int], admin_url: str,
                 duration: int) -> None:  # fmt: skip
    url = f"{server.base}/graphql"
    staff = demo_logins()[0]
    if staff.community_code != "mingzhu" or staff.role != "staff":
        raise BenchError(f"the first demo login is not mingzhu staff: {staff}")
    with httpx.Client(timeout=REQUEST_TIMEOUT_SECONDS) as client:
        data, _ = graphql(client, url, LOGIN_MUTATION, {"phone": staff.phone, "password": staff.password})
        login = data["login"]
        if login["__typename"] != "LoginSuccess":
            raise BenchError(f"login as {staff.phone} failed: {login}")
        token = str(login["token"])
        data, _ = graphql(client, url, COMMUNITIES_QUERY, token=token)
        ids = [e["node"]["id"] for e in data["communities"]["edges"] if e["node"]["code"] == "mingzhu"]
        if len(ids) != 1:
            raise BenchError(f"mingzhu is not among the staff login's communities: {data}")
        nested_vars = {"c": ids[0]}
        data, result.nested_response_bytes = graphql(client, url, NESTED_QUERY, nested_vars, token)
        residents = data["residents"]
        edges = residents["edges"]
        if len(edges) != 50 or any(e["node"]["age"] < 60 or e["node"]["household"] is None for e in edges):
            raise BenchError("the nested query did not return 50 residents aged 60+ with their households")
        result.mingzhu_residents_60_plus = int(residents["totalCount"])
        lookup_vars = {"id": edges[0]["node"]["id"]}
        data, result.lookup_response_bytes = graphql(client, url, LOOKUP_QUERY, lookup_vars, token)
        if not data["node"] or not data["node"]["name"]:
            raise BenchError(f"the node lookup found nothing: {data}")

    plan = [("nested", _body(NESTED_QUERY, nested_vars), c) for c in concurrencies]
    plan.append(("lookup", _body(LOOKUP_QUERY, lookup_vars), LOOKUP_CONCURRENCY))
    for name, body, concurrency in plan:
        best = measure_best(server, admin_url, result.database, load, url, body, token, name, concurrency, duration,
                            label=f"scale {result.scale}")  # fmt: skip
        result.measurements.append(best)


def measure_best(server: Server, admin_url: str, database: str, load: LoadGenerator, url: str, body: bytes, token: str,
                 name: str, concurrency: int, duration: int, *, label: str, max_attempts: int = MAX_ATTEMPTS,
                 quiet_limit: float = QUIET_WAIT_SECONDS) -> Measurement:  # fmt: skip
    """Measure (up to `max_attempts` times while other processes disturb the row); the least disturbed stands."""
    attempts: list[Measurement] = []
    for attempt in range(1, max_attempts + 1):
        measurement = measure(server, admin_url, database, load, url, body, token, name, concurrency, duration,
                              quiet_limit=quiet_limit)  # fmt: skip
        attempts.append(measurement)
        log(
            f"  {label} {name:6} c={concurrency:<3} {measurement.requests_per_second:8.1f} req/s  "
            f"p50 {measurement.p50_ms:8.2f} ms  p99 {measurement.p99_ms:8.2f} ms  "
            f"CPU: server {measurement.server_cpu_pct:.0f}%  postgres {_fmt(measurement.postgres_cpu_pct)}  "
            f"other processes {measurement.other_cpu_pct:.0f}%"
        )
        if measurement.other_cpu_pct <= DISTURBED_PCT:
            break
        if attempt < max_attempts:
            log(f"  other processes used {measurement.other_cpu_pct:.0f}% of a core meanwhile: measuring again")
    # The least disturbed attempt stands.
    best = min(attempts, key=lambda m: m.other_cpu_pct)
    best.attempts = len(attempts)
    return best


def measure(server: Server, admin_url: str, database: str, load: LoadGenerator, url: str, body: bytes, token: str,
            name: str, concurrency: int, duration: int, *, quiet_limit: float = QUIET_WAIT_SECONDS) -> Measurement:  # fmt: skip
    """Warm up, let the server drain and the machine fall quiet, then measure once."""
    server.wait_idle()
    warm = load.run(url, body, token, concurrency, WARMUP_SECONDS)
    _check(warm, f"warm-up of {name} at concurrency {concurrency}", server, warmup=True)
    # Requests in flight when the warm-up stopped would otherwise run during the measurement.
    drained = server.wait_idle()
    if drained > 1:
        log(f"  (the server took {drained:.1f}s to finish the warm-up's requests in flight)")
    background = wait_for_quiet_machine(quiet_limit)
    sessions_before = pg_sessions(admin_url, database)
    before = _CpuSnapshot.take(server.pid, database)
    run = load.run(url, body, token, concurrency, duration)
    after = _CpuSnapshot.take(server.pid, database)
    time.sleep(PG_STATS_FLUSH_SECONDS)
    sessions_after = pg_sessions(admin_url, database)
    _check(run, f"{name} at concurrency {concurrency}", server)
    cpu = _cpu_usage(before, after, in_process_loadgen=load.in_process)
    server_cpu = float(cpu["server_cpu_pct"] or 0.0)
    loadgen_cpu = float(cpu["loadgen_cpu_pct"] or 0.0)
    machine_cpu = float(cpu["machine_cpu_pct"] or 0.0)
    postgres_cpu = cpu["postgres_cpu_pct"]
    return Measurement(
        query=name,
        concurrency=concurrency,
        seconds=round(run.seconds, 2),
        requests=run.requests,
        requests_per_second=round(run.requests / run.seconds, 1),
        p50_ms=round(run.p50_ms, 2),
        p99_ms=round(run.p99_ms, 2),
        mean_ms=round(run.mean_ms, 2),
        max_ms=round(run.max_ms, 2),
        non_200=run.non_200,
        graphql_errors=run.graphql_errors,
        socket_errors=run.socket_errors,
        server_cpu_pct=server_cpu,
        postgres_cpu_pct=postgres_cpu,
        loadgen_cpu_pct=loadgen_cpu,
        machine_cpu_pct=machine_cpu,
        other_cpu_pct=round(max(0.0, machine_cpu - server_cpu - (postgres_cpu or 0.0) - loadgen_cpu), 1),
        background_cpu_pct=background,
        pg_connections_opened=sessions_after - sessions_before,
    )


def _check(run: LoadResult, what: str, server: Server, *, warmup: bool = False) -> None:
    # At high concurrency the server interleaves every request, so a short warm-up may end before
    # the first one completes; a measurement must see some.
    if run.requests == 0 and not warmup:
        raise BenchError(f"{what}: no request completed\n{server.log_tail()}")
    if run.errors:
        raise BenchError(
            f"{what}: {run.non_200} non-200 responses, {run.graphql_errors} GraphQL errors, "
            f"{run.socket_errors} socket errors of {run.requests}; first: {run.first_error}\n{server.log_tail()}"
        )


# -- reporting ----------------------------------------------------------------------------------


def machine_info(admin_url: str, load: LoadGenerator, note: str | None) -> dict[str, Any]:
    cpu_model = next(
        (line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
         if line.startswith("model name")),
        platform.processor() or "unknown",
    )  # fmt: skip
    pg_version = asyncio.run(_admin(admin_url, "SHOW server_version"))[0]
    return {
        "nproc": len(os.sched_getaffinity(0)),
        "cpu": cpu_model,
        "python": platform.python_version(),
        "postgresql": str(pg_version),
        "platform": platform.platform(),
        "load_generator": load.name,
        "load_generator_note": note,
    }


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.0f}%"


def markdown(report: dict[str, Any]) -> str:
    m, cfg = report["machine"], report["config"]
    lines = [
        "# Registry benchmark",
        "",
        f"- date: {report['date']}",
        f"- command: `{report['command']}`",
        f"- machine: {m['nproc']} cores ({m['cpu']}), Python {m['python']}, PostgreSQL {m['postgresql']}",
        f"- load generator: {m['load_generator']}, {cfg['warmup_seconds']} s warm-up then "
        f"{cfg['duration_seconds']} s per row, closed loop (each connection sends its next request on the reply)",
        f"- server: {cfg['server']}",
        f"- seed: `seed_demo` in-process, argon2id t={cfg['argon2']['time_cost']} m={cfg['argon2']['memory_kib']} KiB "
        f"p={cfg['argon2']['parallelism']} (the production defaults) for the {report['scales'][0]['accounts'] if report['scales'] else 21} "
        "demo logins; ANALYZE after the seed (timed apart)",
    ]
    if m.get("load_generator_note"):
        lines.append(f"- **note:** {m['load_generator_note']}")
    lines += [
        "",
        "## Seed",
        "",
        "| scale | communities | buildings | households | residents | seed s | of which argon2 s | ANALYZE s |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for s in report["scales"]:
        lines.append(
            f"| {s['scale']} | {s['communities']} | {s['buildings']:,} | {s['households']:,} | {s['residents']:,} "
            f"| {s['seed_seconds']:.1f} | {s['seed_argon2_seconds']:.1f} | {s['analyze_seconds']:.1f} |"
        )
    lines += [
        "",
        "## Queries",
        "",
        "`nested`: 50 mingzhu residents aged 60+ with household, building and compound, and `totalCount`; "
        "`lookup`: `node(id:)` of one resident with its household room. Logged in as mingzhu staff. "
        f"CPU columns are % of one core over the measurement ({m['nproc']} cores: at most {100 * m['nproc']}% in all); "
        "postgres counts the bench database's backends, PostgreSQL's own processes and the backends that "
        "exited meanwhile (of any database); other is the rest of "
        "the machine (kernel, unrelated processes). Before each row the bench waits for the server to finish "
        "the warm-up's requests in flight and for the machine to be idle, and measures again (up to "
        f"{MAX_ATTEMPTS} times) when other processes took more than {DISTURBED_PCT:.0f}% of a core meanwhile. "
        "New PG conns: connections the server opened to PostgreSQL during the row (pg_stat_database.sessions, "
        f"approximate; the pool keeps {DB_POOL_SIZE} and opens up to {DB_POOL_SIZE} more, closing those when returned).",
        "",
        "| scale | query | concurrency | req/s | p50 ms | p99 ms | errors | server CPU | postgres CPU | loadgen CPU "
        "| other CPU | new PG conns |",
        "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for s in report["scales"]:
        for r in s["measurements"]:
            errors = r["non_200"] + r["graphql_errors"] + r["socket_errors"]
            lines.append(
                f"| {s['scale']} | {r['query']} | {r['concurrency']} | {r['requests_per_second']:.1f} "
                f"| {r['p50_ms']:.1f} | {r['p99_ms']:.1f} | {errors} | {_fmt(r['server_cpu_pct'])} "
                f"| {_fmt(r['postgres_cpu_pct'])} | {_fmt(r['loadgen_cpu_pct'])} | {_fmt(r['other_cpu_pct'])} "
                f"| {r['pg_connections_opened']} |"
            )
    disturbed = [
        f"scale {s['scale']} {r['query']} c={r['concurrency']} ({r['other_cpu_pct']:.0f}% of a core)"
        for s in report["scales"]
        for r in s["measurements"]
        if r["other_cpu_pct"] > DISTURBED_PCT
    ]
    if disturbed:
        lines += [
            "",
            f"**Disturbed after {MAX_ATTEMPTS} attempts** (other processes used the CPU during the row): "
            + ", ".join(disturbed)
            + ".",
        ]
    lines += [
        "",
        "Residents aged 60+ in mingzhu (the nested query's `totalCount`): "
        + ", ".join(f"scale {s['scale']}: {s['mingzhu_residents_60_plus']:,}" for s in report["scales"])
        + ". Response sizes: "
        + ", ".join(
            f"scale {s['scale']}: nested {s['nested_response_bytes']:,} B, lookup {s['lookup_response_bytes']} B"
            for s in report["scales"]
        )
        + ".",
        "",
    ]
    return "\n".join(lines)


def write_atomically(path: Path, content: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(content, encoding="utf-8")
    tmp.replace(path)


# -- main ---------------------------------------------------------------------------------------


def _int_list(value: str) -> list[int]:
    try:
        items = [int(v) for v in value.split(",") if v.strip()]
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {value!r}") from exc
    if not items or any(i < 1 for i in items):
        raise argparse.ArgumentTypeError(f"expected positive integers, got {value!r}")
    return items


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench.registry", description=__doc__.split("\n\n")[0])
    parser.add_argument("--scales", type=_int_list, default=[1, 10], help="seed scales (default 1,10)")
    parser.add_argument("--duration", type=int, default=10, help="seconds per measurement (default 10)")
    parser.add_argument("--concurrency", type=_int_list, default=[1, 10, 50], help="nested query (default 1,10,50)")
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT, help="JSON; the .md goes next to it")
    parser.add_argument("--keep", action="store_true", help="keep the bench databases")
    parser.add_argument("--load-generator", choices=("auto", "wrk", "python"), default="auto")
    parser.add_argument("--pg-admin-url", default=PG_ADMIN_URL, help="asyncpg URL of a database to run DDL from")
    parser.add_argument("--redis-url", default=REDIS_URL)
    return parser


def run(args: argparse.Namespace) -> dict[str, Any]:
    if args.duration < 1:
        raise BenchError("--duration must be at least 1 second")
    secret = secrets.token_urlsafe(48)  # 64 characters; the server gets the same key
    workdir = Path(tempfile.mkdtemp(prefix="linli-bench-"))
    load, note = pick_load_generator(args.load_generator, workdir)
    if note:
        log(f"NOTE: {note}")
    machine = machine_info(args.pg_admin_url, load, note)
    log(f"{machine['nproc']} cores, Python {machine['python']}, PostgreSQL {machine['postgresql']}, {load.name}")
    results: list[ScaleResult] = []
    created: list[str] = []
    ok = False
    try:
        for scale in args.scales:
            name = f"linli_bench_s{scale}"
            url = database_url(args.pg_admin_url, name)
            log(f"scale {scale}: creating and migrating {name}")
            create_database(args.pg_admin_url, name)
            created.append(name)
            upgrade(url)
            log(f"scale {scale}: seeding")
            result = asyncio.run(seed(url, secret, scale, name))
            log(
                f"scale {scale}: seeded {result.residents:,} residents in {result.households:,} households in "
                f"{result.seed_seconds:.1f}s (argon2 {result.seed_argon2_seconds:.1f}s); ANALYZE {result.analyze_seconds:.1f}s"
            )
            server = Server(
                db_url=url, redis_url=args.redis_url, secret=secret, log_path=workdir / f"server-s{scale}.log"
            )
            try:
                server.start()
                log(f"scale {scale}: server pid {server.pid} ready on port {server.port}")
                bench_server(server, result, load, args.concurrency, args.pg_admin_url, args.duration)
            finally:
                server.stop()
            results.append(result)
        ok = True
    finally:
        if not args.keep:
            for name in created:
                drop_database(args.pg_admin_url, name)
            if created:
                log(f"dropped {', '.join(created)}")
        if ok:
            shutil.rmtree(workdir, ignore_errors=True)
        else:
            log(f"server logs kept in {workdir}")
    return {
        "benchmark": "registry",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": " ".join(["python -m bench.registry", *sys.argv[1:]]),
        "machine": machine,
        "config": {
            "scales": args.scales,
            "duration_seconds": args.duration,
            "warmup_seconds": WARMUP_SECONDS,
            "concurrency": args.concurrency,
            "lookup_concurrency": LOOKUP_CONCURRENCY,
            "server": "python -m api.cli serve (one uvicorn process, access log on), LINLI_ENVIRONMENT=production, "
            f"PostgreSQL (pool {DB_POOL_SIZE} + {DB_POOL_SIZE} overflow) and Redis",
            "argon2": ARGON2,
            "login": f"{demo_logins()[0].phone} (mingzhu staff)",
        },
        "queries": {"nested": NESTED_QUERY, "lookup": LOOKUP_QUERY},
        "scales": [asdict(r) for r in results],
    }


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        report = run(args)
    except BenchError as exc:
        print(f"\nBENCHMARK FAILED: {exc}", file=sys.stderr)
        if "\n" in str(exc):  # the server log followed; repeat the reason last
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
