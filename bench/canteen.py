"""Canteen benchmark: meal reservations per second under contention for one meal, on the production stack.

A fresh PostgreSQL database `linli_bench_canteen` is migrated and seeded (the registry demo at
scale 1 with bench.registry's seed, then the 明珠花苑 canteen demo), and bench lunches are added
for tomorrow. The real server (`python -m api.cli serve`, one uvicorn process,
LINLI_ENVIRONMENT=production, PostgreSQL + Redis) is started with bench.registry's Server.

The 明珠花苑 staff demo login reserves for N distinct residents, one `reserveMeal` mutation each,
from a closed-loop asyncio + httpx generator at a fixed concurrency; every reservation of a meal
takes that meal's row lock (the portion counter), so they queue on one row:

- "scarce": one lunch of 100 portions; N−100 requests are refused with MealFullError.
- "plenty": one lunch with a portion for everyone; every request reserves.

Afterwards the database is checked: the counter equals the active reservations, never above the
capacity, one per resident.

    python -m bench.canteen --reservations 600 --concurrency 50

Writes bench/results/canteen.json and canteen.md (the Markdown table is printed too).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import secrets
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import func, select
from strawberry.relay import GlobalID

from api.canteen.models import Canteen, CanteenMeal, CanteenReservation, MealKind
from api.canteen.seed import seed_demo as seed_canteen
from api.canteen.service import SERVING, at_minute, cutoff_minute
from api.core.clock import local_today, utc_now
from api.core.database import Database
from api.core.migrations import PROJECT_ROOT, upgrade
from api.registry.models import Community, Resident
from api.registry.seed import demo_logins
from bench import registry as rb

RESULTS_DIR = PROJECT_ROOT / "bench" / "results"
DEFAULT_OUTPUT = RESULTS_DIR / "canteen.json"
DATABASE = "linli_bench_canteen"
COMMUNITY = "mingzhu"
SCARCE = 100

RESERVE = (
    "mutation R($input: ReserveMealInput!) { reserveMeal(input: $input) { __typename "
    "... on MealReservationSuccess { reservation { priceFen } } ... on UserError { code } } }"
)


@dataclass
class ReserveRun:
    scenario: str
    capacity: int
    requests: int
    concurrency: int
    seconds: float
    requests_per_second: float
    p50_ms: float
    p99_ms: float
    max_ms: float
    reserved: int
    full: int
    errors: int
    background_cpu_pct: float = 0.0
    checks: list[str] = field(default_factory=list)


def gid(type_name: str, id_: int) -> str:
    return str(GlobalID(type_name, str(id_)))


async def add_bench_meals(url: str, capacities: list[int]) -> tuple[list[int], list[int]]:
    """Tomorrow's bench lunches in 明珠花苑's canteen (one per capacity), and the community's residents."""
    db = Database(url, pool_size=2)
    try:
        await seed_canteen(db)
        async with db.unit_of_work() as uow:
            community = await uow.session.scalar(select(Community).where(Community.code == COMMUNITY))
            assert community is not None
            canteen = await uow.session.scalar(select(Canteen).where(Canteen.community_id == community.id))
            assert canteen is not None
            meals = []
            for i, capacity in enumerate(capacities):
                bench_canteen = Canteen(
                    community_id=community.id, name=f"压测食堂{i}", location="", opening_days=list(range(7)),
                    default_capacity=capacity, breakfast_cutoff_minute=-240, lunch_cutoff_minute=23 * 60,
                    dinner_cutoff_minute=23 * 60, active=True,
                )  # fmt: skip
                uow.session.add(bench_canteen)
                await uow.session.flush()
                day = local_today() + timedelta(days=1)
                opens, closes = SERVING[MealKind.LUNCH]
                meal = CanteenMeal(
                    community_id=community.id, canteen_id=bench_canteen.id, served_on=day, kind=MealKind.LUNCH.value,
                    dishes=["红烧肉", "米饭"], base_price_fen=1500, capacity=capacity, reserved=0,
                    serves_from=at_minute(day, opens), serves_until=at_minute(day, closes),
                    cutoff_at=at_minute(day, cutoff_minute(bench_canteen, MealKind.LUNCH)), created_at=utc_now(),
                    updated_at=utc_now(),
                )  # fmt: skip
                uow.session.add(meal)
                await uow.session.flush()
                meals.append(meal.id)
            residents = list(
                (
                    await uow.session.scalars(
                        select(Resident.id).where(Resident.community_id == community.id).order_by(Resident.id)
                    )
                ).all()
            )
        return meals, residents
    finally:
        await db.dispose()


async def check_meal(url: str, meal_id: int) -> tuple[int, list[str]]:
    """The meal as the database holds it: (active reservations, problems)."""
    db = Database(url, pool_size=1)
    problems: list[str] = []
    try:
        async with db.read_session() as session:
            meal = await session.get(CanteenMeal, meal_id)
            assert meal is not None
            active = int(
                await session.scalar(
                    select(func.count())
                    .select_from(CanteenReservation)
                    .where(CanteenReservation.meal_id == meal_id, CanteenReservation.status == "active")
                )
                or 0
            )
            people = int(
                await session.scalar(
                    select(func.count(func.distinct(CanteenReservation.resident_id))).where(
                        CanteenReservation.meal_id == meal_id
                    )
                )
                or 0
            )
    finally:
        await db.dispose()
    if meal.reserved != active:
        problems.append(f"counter {meal.reserved} but {active} active reservations")
    if active > meal.capacity:
        problems.append(f"{active} reservations for {meal.capacity} portions")
    if people != active:
        problems.append(f"{active} reservations for {people} residents")
    return active, problems


async def fire(
    url: str, token: str, bodies: list[bytes], concurrency: int
) -> tuple[float, list[float], list[str], int]:
    """Send every body once from `concurrency` closed-loop clients; (seconds, latencies, result types, errors)."""
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {token}"}
    queue: asyncio.Queue[bytes] = asyncio.Queue()
    for body in bodies:
        queue.put_nowait(body)
    latencies: list[float] = []
    kinds: list[str] = []
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
                    if errors == 1:
                        rb.log(f"  first failed request: {response.status_code} {response.text[:300]}")
                    continue
                kinds.append(str(payload["data"]["reserveMeal"]["__typename"]))

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        seconds = time.perf_counter() - started
    return seconds, sorted(latencies), kinds, errors


def reserve_run(
    server_url: str, db_url: str, token: str, scenario: str, meal_id: int, capacity: int, residents: list[int],
    concurrency: int, quiet_limit: float,
) -> ReserveRun:  # fmt: skip
    background = rb.wait_for_quiet_machine(quiet_limit)
    bodies = [
        json.dumps(
            {
                "query": RESERVE,
                "variables": {"input": {"mealId": gid("Meal", meal_id), "residentId": gid("Resident", r)}},
            },
            separators=(",", ":"),
        ).encode()
        for r in residents
    ]
    seconds, latencies, kinds, errors = asyncio.run(fire(server_url, token, bodies, concurrency))
    reserved, problems = asyncio.run(check_meal(db_url, meal_id))
    expected = min(capacity, len(bodies))
    if errors or set(kinds) - {"MealReservationSuccess", "MealFullError"}:
        problems.append(f"{errors} failed requests; result types {sorted(set(kinds))}")
    if reserved != expected:
        problems.append(f"{reserved} reserved, expected {expected}")
    run = ReserveRun(
        scenario=scenario, capacity=capacity, requests=len(bodies), concurrency=concurrency, seconds=round(seconds, 2),
        requests_per_second=round(len(bodies) / seconds, 1), p50_ms=round(rb._percentile(latencies, 50) * 1000, 1),
        p99_ms=round(rb._percentile(latencies, 99) * 1000, 1),
        max_ms=round(latencies[-1] * 1000, 1) if latencies else 0.0, reserved=reserved,
        full=kinds.count("MealFullError"), errors=errors, background_cpu_pct=background, checks=problems or ["ok"],
    )  # fmt: skip
    rb.log(
        f"  reserve {scenario:8} {run.requests} at c={concurrency}: {run.requests_per_second:7.1f}/s  "
        f"p50 {run.p50_ms:7.1f} ms  p99 {run.p99_ms:7.1f} ms  reserved {reserved} full {run.full}  "
        f"checks: {'; '.join(run.checks)}"
    )
    if problems:
        raise rb.BenchError(f"{scenario}: {'; '.join(problems)}")
    return run


def markdown(report: dict[str, Any]) -> str:
    m = report["machine"]
    lines = [
        "# Canteen benchmark",
        "",
        f"- date: {report['date']}",
        f"- command: `{report['command']}`",
        f"- machine: {m['nproc']} cores ({m['cpu']}), Python {m['python']}, PostgreSQL {m['postgresql']}",
        "- server: python -m api.cli serve (one uvicorn process), LINLI_ENVIRONMENT=production, PostgreSQL (pool 10 "
        "+ 10 overflow) and Redis; data: registry demo at scale 1 plus the 明珠花苑 canteen demo",
        f"- load: the 明珠花苑 staff login reserves one lunch for {report['reservations']} distinct residents, one "
        "`reserveMeal` each, from an asyncio + httpx closed-loop generator in the bench process (it shares the 2 "
        "cores with the server and PostgreSQL); every reservation of the meal queues on its row lock; the "
        "database is checked afterwards (counter = active reservations ≤ capacity, one per resident); the "
        "per-account and per-address rate limits are lifted for the run (one desk login sends everything)",
        "",
        "## Reservations for one meal",
        "",
        "| scenario | portions | requests | concurrency | requests/s | p50 ms | p99 ms | max ms | reserved | full "
        "| other CPU before | check |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in report["runs"]:
        lines.append(
            f"| {r['scenario']} | {r['capacity']} | {r['requests']} | {r['concurrency']} "
            f"| {r['requests_per_second']:.1f} | {r['p50_ms']:.1f} | {r['p99_ms']:.1f} | {r['max_ms']:.1f} "
            f"| {r['reserved']} | {r['full']} | {r['background_cpu_pct']:.0f}% | {'; '.join(r['checks'])} |"
        )
    lines.append("")
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench.canteen", description=__doc__.split("\n\n")[0])
    parser.add_argument("--reservations", type=int, default=600, help="requests per scenario (default 600)")
    parser.add_argument("--concurrency", type=int, default=50, help="requests in flight (default 50)")
    parser.add_argument("--quiet-wait", type=float, default=60.0, help="longest wait for an idle machine per row")
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT, help="JSON; the .md goes next to it")
    parser.add_argument("--keep", action="store_true", help="keep the bench database")
    parser.add_argument("--pg-admin-url", default=rb.PG_ADMIN_URL)
    parser.add_argument("--redis-url", default=rb.REDIS_URL)
    return parser


def run(args: argparse.Namespace) -> dict[str, Any]:
    secret = secrets.token_urlsafe(48)
    workdir = Path(tempfile.mkdtemp(prefix="linli-bench-canteen-"))
    load, note = rb.pick_load_generator("auto", workdir)
    machine = rb.machine_info(args.pg_admin_url, load, note)
    url = rb.database_url(args.pg_admin_url, DATABASE)
    rb.log(f"creating, migrating and seeding {DATABASE}")
    rb.create_database(args.pg_admin_url, DATABASE)
    server: rb.Server | None = None
    n = args.reservations
    try:
        upgrade(url)
        asyncio.run(rb.seed(url, secret, 1, DATABASE))
        (scarce, plenty), residents = asyncio.run(add_bench_meals(url, [SCARCE, n]))
        if len(residents) < n:
            raise rb.BenchError(f"only {len(residents)} residents in {COMMUNITY}; ask for fewer reservations")
        # One desk login sends every request: lift the per-account and per-address limits, which are not measured.
        server = rb.Server(
            db_url=url, redis_url=args.redis_url, secret=secret, log_path=workdir / "server.log",
            extra_env={"LINLI_RATE_LIMIT_PER_ACCOUNT": "1000000", "LINLI_RATE_LIMIT_PER_ADDRESS": "1000000"},
        )  # fmt: skip
        server.start()
        graphql_url = f"{server.base}/graphql"
        staff = next(d for d in demo_logins() if d.community_code == COMMUNITY and d.role == "staff")
        with httpx.Client(timeout=rb.REQUEST_TIMEOUT_SECONDS) as client:
            data, _ = rb.graphql(
                client, graphql_url, rb.LOGIN_MUTATION, {"phone": staff.phone, "password": staff.password}
            )
            token = str(data["login"]["token"])
        runs = [
            reserve_run(graphql_url, url, token, "scarce", scarce, SCARCE, residents[:n], args.concurrency,
                        args.quiet_wait),
            reserve_run(graphql_url, url, token, "plenty", plenty, n, residents[:n], args.concurrency,
                        args.quiet_wait),
        ]  # fmt: skip
    finally:
        if server is not None:
            server.stop()
        if not args.keep:
            rb.drop_database(args.pg_admin_url, DATABASE)
    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": "python -m bench.canteen " + " ".join(sys.argv[1:]),
        "machine": machine,
        "reservations": n,
        "runs": [asdict(r) for r in runs],
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
