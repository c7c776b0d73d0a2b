"""Venues benchmark: sign-up throughput under contention, and the "this week" query, on the production stack.

A fresh PostgreSQL database `linli_bench_venues` is migrated and seeded (the registry demo at
scale 1 with bench.registry's seed, then the 智汇城 venues demo), and bench activities are added
next week in 智汇城's children's room. The real server (`python -m api.cli serve`, one uvicorn
process, LINLI_ENVIRONMENT=production, PostgreSQL + Redis) is started with bench.registry's Server.

- Sign-ups: the 智汇城 staff demo login signs up N distinct residents, one `signUp` mutation each,
  from a closed-loop asyncio + httpx generator at a fixed concurrency (every request body is
  different, which wrk's fixed body cannot do); first all for ONE activity of 30 places (N−30 go
  to the waitlist, all contending for the same seats and the same waitlist counter), then spread
  round-robin over many activities. Afterwards the database is checked: exactly 30 seated per
  full activity, waitlist positions 1..k without gaps.
- "This week": `thisWeek(communityId, weekOf)` for 智汇城 at concurrency 1/10/50 with wrk, measured
  with bench.registry's `measure` (warm-up, idle server, CPU accounting).

    python -m bench.venues --signups 600 --activities 20 --signup-concurrency 50 --duration 10

Writes bench/results/venues.json and venues.md (the Markdown table is printed too).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import secrets
import statistics
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import func, select
from strawberry.relay import GlobalID

from api.core.clock import local_today
from api.core.database import Database
from api.core.migrations import PROJECT_ROOT, upgrade
from api.registry.models import Community, Resident
from api.registry.seed import demo_logins
from api.venues.models import ActivityKind, SignUp, Venue, VenueActivity, VenueKind
from api.venues.seed import seed_venues_demo
from api.venues.service import week_bounds
from bench import registry as rb

RESULTS_DIR = PROJECT_ROOT / "bench" / "results"
DEFAULT_OUTPUT = RESULTS_DIR / "venues.json"
DATABASE = "linli_bench_venues"
COMMUNITY = "zhihuicheng"
PLACES = 30

SIGN_UP = (
    "mutation S($input: SignUpInput!) { signUp(input: $input) { __typename "
    "... on SignUpSuccess { confirmed waitlisted } ... on UserError { code message } } }"
)
THIS_WEEK = (
    "query W($c: ID!, $d: Date) { thisWeek(communityId: $c, weekOf: $d) { id title startsAt capacity "
    "placesLeft waitlistLength venue { name } } }"
)


@dataclass
class SignUpRun:
    scenario: str
    activities: int
    requests: int
    concurrency: int
    seconds: float
    sign_ups_per_second: float
    p50_ms: float
    p99_ms: float
    max_ms: float
    confirmed: int
    waitlisted: int
    errors: int
    # CPU the machine used just before the run, with the server idle: other processes (high means disturbed).
    background_cpu_pct: float = 0.0
    checks: list[str] = field(default_factory=list)


def gid(type_name: str, id_: int) -> str:
    return str(GlobalID(type_name, str(id_)))


# -- set-up -------------------------------------------------------------------------------------------


async def add_bench_activities(url: str, count: int) -> tuple[int, list[int], list[int], date]:
    """Activities without age limits next week in 智汇城's children's room: (community, [one], [many], week day)."""
    db = Database(url, pool_size=2)
    try:
        await seed_venues_demo(db)
        async with db.unit_of_work() as uow:
            community = await uow.session.scalar(select(Community).where(Community.code == COMMUNITY))
            assert community is not None
            room = await uow.session.scalar(
                select(Venue).where(Venue.community_id == community.id, Venue.kind == VenueKind.CHILDREN.value)
            )
            assert room is not None
            today = local_today()
            monday = today + timedelta(days=7 - today.weekday())  # next week
            now = datetime.now(UTC)
            rows = []
            for i in range(count + 1):
                start = datetime.combine(monday + timedelta(days=i % 5), datetime.min.time(), UTC) + timedelta(
                    hours=1 + (i // 5) % 8
                )  # 9:00 China time onwards
                rows.append(
                    VenueActivity(
                        community_id=community.id, venue_id=room.id, kind=ActivityKind.READING.value,
                        title=f"压测活动{i}", description="", starts_at=start, ends_at=start + timedelta(minutes=45),
                        capacity=PLACES, signup_opens_at=now - timedelta(minutes=1), signup_closes_at=start,
                        price_cents=0, waitlist_seq=0,
                    )
                )  # fmt: skip
            uow.session.add_all(rows)
            await uow.session.flush()
            return community.id, [rows[0].id], [r.id for r in rows[1:]], monday
    finally:
        await db.dispose()


async def resident_ids(url: str, community_id: int, n: int) -> list[int]:
    db = Database(url, pool_size=1)
    try:
        async with db.read_session() as session:
            rows = await session.scalars(
                select(Resident.id).where(Resident.community_id == community_id).order_by(Resident.id).limit(n)
            )
            ids = list(rows.all())
    finally:
        await db.dispose()
    if len(ids) < n:
        raise rb.BenchError(f"only {len(ids)} residents in {COMMUNITY}; ask for fewer sign-ups")
    return ids


async def check_activities(url: str, activity_ids: list[int]) -> tuple[int, int, list[str]]:
    """Seats and positions as the database holds them: (confirmed, waitlisted, problems)."""
    db = Database(url, pool_size=1)
    problems: list[str] = []
    confirmed = waitlisted = 0
    try:
        async with db.read_session() as session:
            for activity_id in activity_ids:
                rows = (await session.scalars(select(SignUp).where(SignUp.activity_id == activity_id))).all()
                seats = sorted(r.seat for r in rows if r.seat is not None)
                positions = sorted(r.waitlist_position for r in rows if r.waitlist_position is not None)
                seated = len(seats)
                confirmed += seated
                waitlisted += len(positions)
                if seated != min(PLACES, len(rows)) or seats != list(range(1, seated + 1)):
                    problems.append(f"activity {activity_id}: seats {seats}")
                if positions != list(range(1, len(positions) + 1)):
                    problems.append(f"activity {activity_id}: waitlist positions are not 1..{len(positions)}")
            total = await session.scalar(
                select(func.count()).select_from(SignUp).where(SignUp.activity_id.in_(activity_ids))
            )
            if total != confirmed + waitlisted:
                problems.append(f"{total} sign-ups but {confirmed} seated + {waitlisted} waiting")
    finally:
        await db.dispose()
    return confirmed, waitlisted, problems


# -- sign-up load -------------------------------------------------------------------------------------


async def fire(
    url: str, token: str, bodies: list[bytes], concurrency: int
) -> tuple[float, list[float], list[dict[str, Any]], int]:
    """Send every body once from `concurrency` closed-loop clients; (seconds, latencies, results, errors)."""
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {token}"}
    queue: asyncio.Queue[bytes] = asyncio.Queue()
    for body in bodies:
        queue.put_nowait(body)
    latencies: list[float] = []
    results: list[dict[str, Any]] = []
    errors = 0
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(limits=limits, timeout=rb.REQUEST_TIMEOUT_SECONDS) as client:

        async def worker() -> None:
            nonlocal errors
            while not queue.empty():
                body = queue.get_nowait()
                started = time.perf_counter()
                response = await client.post(url, content=body, headers=headers)
                latencies.append(time.perf_counter() - started)
                payload = response.json() if response.status_code == 200 else {}
                if response.status_code != 200 or payload.get("errors"):
                    errors += 1
                    continue
                results.append(payload["data"]["signUp"])

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        seconds = time.perf_counter() - started
    return seconds, sorted(latencies), results, errors


def sign_up_run(
    server_url: str, db_url: str, token: str, scenario: str, activities: list[int], residents: list[int],
    concurrency: int, quiet_limit: float,
) -> SignUpRun:  # fmt: skip
    background = rb.wait_for_quiet_machine(quiet_limit)
    bodies = [
        json.dumps(
            {"query": SIGN_UP, "variables": {"input": {"activityId": gid("Activity", activities[i % len(activities)]),
                                                       "participantIds": [gid("Resident", r)]}}},
            separators=(",", ":"),
        ).encode()
        for i, r in enumerate(residents)
    ]  # fmt: skip
    seconds, latencies, results, errors = asyncio.run(fire(server_url, token, bodies, concurrency))
    kinds = {r["__typename"] for r in results}
    confirmed, waitlisted, problems = asyncio.run(check_activities(db_url, activities))
    if errors or kinds != {"SignUpSuccess"}:
        problems.append(f"{errors} failed requests; result types {sorted(kinds)}")
    run = SignUpRun(
        scenario=scenario, activities=len(activities), requests=len(bodies), concurrency=concurrency,
        seconds=round(seconds, 2), sign_ups_per_second=round(len(bodies) / seconds, 1),
        p50_ms=round(rb._percentile(latencies, 50) * 1000, 1), p99_ms=round(rb._percentile(latencies, 99) * 1000, 1),
        max_ms=round(latencies[-1] * 1000, 1) if latencies else 0.0, confirmed=confirmed, waitlisted=waitlisted,
        errors=errors, background_cpu_pct=background, checks=problems or ["ok"],
    )  # fmt: skip
    rb.log(
        f"  sign-ups {scenario:13} {run.requests} at c={concurrency}: {run.sign_ups_per_second:7.1f}/s  "
        f"p50 {run.p50_ms:7.1f} ms  p99 {run.p99_ms:7.1f} ms  seated {confirmed} waiting {waitlisted}  "
        f"checks: {'; '.join(run.checks)}"
    )
    if problems:
        raise rb.BenchError(f"{scenario}: {'; '.join(problems)}")
    return run


# -- report -------------------------------------------------------------------------------------------


def markdown(report: dict[str, Any]) -> str:
    m = report["machine"]
    lines = [
        "# Venues benchmark",
        "",
        f"- date: {report['date']}",
        f"- command: `{report['command']}`",
        f"- machine: {m['nproc']} cores ({m['cpu']}), Python {m['python']}, PostgreSQL {m['postgresql']}",
        "- server: python -m api.cli serve (one uvicorn process), LINLI_ENVIRONMENT=production, PostgreSQL (pool 10 "
        "+ 10 overflow) and Redis; data: registry demo at scale 1 plus the 智汇城 venues demo",
        f"- sign-ups: the 智汇城 staff login signs up {report['signups']} distinct residents, one `signUp` each, from "
        "an asyncio + httpx closed-loop generator in the bench process (it shares the 2 cores with the server and "
        f"PostgreSQL); activities have {PLACES} places; the database is checked afterwards",
        f"- this week: `thisWeek` for 智汇城 ({report['this_week_rows']} activities in the week, "
        f"{report['this_week_bytes']:,} B), {m['load_generator']}, {report['duration']} s per row after a warm-up",
        "",
        "## Sign-up throughput under contention",
        "",
        "| scenario | activities | sign-ups | concurrency | sign-ups/s | p50 ms | p99 ms | max ms | seated | waitlisted "
        "| other CPU before | check |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in report["sign_ups"]:
        lines.append(
            f"| {r['scenario']} | {r['activities']} | {r['requests']} | {r['concurrency']} "
            f"| {r['sign_ups_per_second']:.1f} | {r['p50_ms']:.1f} | {r['p99_ms']:.1f} | {r['max_ms']:.1f} "
            f"| {r['confirmed']} | {r['waitlisted']} | {r['background_cpu_pct']:.0f}% | {'; '.join(r['checks'])} |"
        )
    lines += [
        "",
        '## "What is on this week"',
        "",
        "| concurrency | req/s | p50 ms | p99 ms | errors | server CPU | postgres CPU | loadgen CPU | other CPU |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in report["this_week"]:
        errors = r["non_200"] + r["graphql_errors"] + r["socket_errors"]
        lines.append(
            f"| {r['concurrency']} | {r['requests_per_second']:.1f} | {r['p50_ms']:.1f} | {r['p99_ms']:.1f} | {errors} "
            f"| {rb._fmt(r['server_cpu_pct'])} | {rb._fmt(r['postgres_cpu_pct'])} | {rb._fmt(r['loadgen_cpu_pct'])} "
            f"| {rb._fmt(r['other_cpu_pct'])} |"
        )
    lines.append("")
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench.venues", description=__doc__.split("\n\n")[0])
    parser.add_argument("--signups", type=int, default=600, help="sign-ups per scenario (default 600)")
    parser.add_argument("--activities", type=int, default=20, help="activities for the spread scenario (default 20)")
    parser.add_argument("--signup-concurrency", type=int, default=50, help="requests in flight (default 50)")
    parser.add_argument("--duration", type=int, default=10, help="seconds per thisWeek row (default 10)")
    parser.add_argument("--concurrency", type=rb._int_list, default=[1, 10, 50], help="thisWeek (default 1,10,50)")
    parser.add_argument("--quiet-wait", type=float, default=60.0, help="longest wait for an idle machine per row")
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT, help="JSON; the .md goes next to it")
    parser.add_argument("--keep", action="store_true", help="keep the bench database")
    parser.add_argument("--pg-admin-url", default=rb.PG_ADMIN_URL)
    parser.add_argument("--redis-url", default=rb.REDIS_URL)
    return parser


def run(args: argparse.Namespace) -> dict[str, Any]:
    secret = secrets.token_urlsafe(48)
    workdir = Path(tempfile.mkdtemp(prefix="linli-bench-venues-"))
    load, note = rb.pick_load_generator("auto", workdir)
    machine = rb.machine_info(args.pg_admin_url, load, note)
    url = rb.database_url(args.pg_admin_url, DATABASE)
    rb.log(f"creating, migrating and seeding {DATABASE}")
    rb.create_database(args.pg_admin_url, DATABASE)
    server: rb.Server | None = None
    try:
        upgrade(url)
        asyncio.run(rb.seed(url, secret, 1, DATABASE))
        community_id, one, many, monday = asyncio.run(add_bench_activities(url, args.activities))
        residents = asyncio.run(resident_ids(url, community_id, 2 * args.signups))
        server = rb.Server(db_url=url, redis_url=args.redis_url, secret=secret, log_path=workdir / "server.log")
        server.start()
        graphql_url = f"{server.base}/graphql"
        staff = next(d for d in demo_logins() if d.community_code == COMMUNITY and d.role == "staff")
        with httpx.Client(timeout=rb.REQUEST_TIMEOUT_SECONDS) as client:
            data, _ = rb.graphql(
                client, graphql_url, rb.LOGIN_MUTATION, {"phone": staff.phone, "password": staff.password}
            )
            token = str(data["login"]["token"])
            week_vars = {"c": gid("Community", community_id), "d": monday.isoformat()}
            data, week_bytes = rb.graphql(client, graphql_url, THIS_WEEK, week_vars, token)
        rows_this_week = len(data["thisWeek"])
        rb.log(f"thisWeek lists {rows_this_week} activities ({week_bytes} B)")
        sign_ups = [
            sign_up_run(graphql_url, url, token, "one activity", one, residents[: args.signups],
                        args.signup_concurrency, args.quiet_wait),
            sign_up_run(graphql_url, url, token, "many activities", many, residents[args.signups :],
                        args.signup_concurrency, args.quiet_wait),
        ]  # fmt: skip
        body = json.dumps({"query": THIS_WEEK, "variables": week_vars}, separators=(",", ":")).encode()
        this_week = []
        for concurrency in args.concurrency:
            m = rb.measure_best(server, args.pg_admin_url, DATABASE, load, graphql_url, body, token, "thisWeek",
                                concurrency, args.duration, label="thisWeek", quiet_limit=args.quiet_wait)  # fmt: skip
            rb.log(f"  thisWeek c={concurrency:<3} {m.requests_per_second:8.1f} req/s  p50 {m.p50_ms:8.2f} ms  "
                   f"p99 {m.p99_ms:8.2f} ms")  # fmt: skip
            this_week.append(m)
    finally:
        if server is not None:
            server.stop()
        if not args.keep:
            rb.drop_database(args.pg_admin_url, DATABASE)
    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": "python -m bench.venues " + " ".join(sys.argv[1:]),
        "machine": machine,
        "signups": args.signups,
        "duration": args.duration,
        "this_week_rows": rows_this_week,
        "this_week_bytes": week_bytes,
        "week": [d.isoformat() for d in week_bounds(monday)],
        "sign_ups": [asdict(r) for r in sign_ups],
        "this_week": [asdict(m) for m in this_week],
        "p50_sign_up_ms_median": statistics.median([r.p50_ms for r in sign_ups]),
    }


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        report = run(args)
    except rb.BenchError as exc:
        rb.log(f"FAILED: {exc}")
        return 1
    rb.write_atomically(args.output, json.dumps(report, ensure_ascii=False, indent=2) + "\n")
    text = markdown(report)
    rb.write_atomically(args.output.with_suffix(".md"), text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
