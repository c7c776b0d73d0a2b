"""Service hall benchmark: the staff queue query (`hallQueue`) over the HTTP GraphQL server.

A fresh PostgreSQL database `linli_bench_hall` is migrated and seeded (the registry demo at scale 1
with bench.registry's seed, then the hall demo: the five common procedures in every community).
Then applications are bulk inserted: `--applications` (default 20,000) in 智汇城, about 70 % of
them open and due over the next 30 working days (some lapsed), the rest completed or rejected, and
as many again spread over the other communities. The real server (`python -m api.cli serve`, one
uvicorn process, LINLI_ENVIRONMENT=production, PostgreSQL + Redis) is started with
bench.registry's Server, and the 智汇城 staff demo login asks for:

- queue: the first page (20) of the community's open applications, soonest due first, with
  `totalCount` and each application's procedure name and current step;
- filtered: the same for one procedure and the in-progress state only.

Each at concurrency 1/10/50 with wrk (bench.registry's `measure`: warm-up, idle server, CPU
accounting). The PostgreSQL plan of the queue page is recorded too.

    python -m bench.hall --applications 20000 --duration 10

Writes bench/results/hall.json and hall.md (the Markdown table is printed too).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import secrets
import sys
import tempfile
from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import insert, select, text
from strawberry.relay import GlobalID

from api.core.clock import utc_now
from api.core.database import Database
from api.core.migrations import PROJECT_ROOT, upgrade
from api.core.viewer import Role, Viewer
from api.hall import service as hall_service
from api.hall.models import HallApplication, HallProcedureVersion
from api.hall.seed import seed_demo as seed_hall
from api.registry.models import Community, Resident
from api.registry.seed import demo_logins
from bench import registry as rb

RESULTS_DIR = PROJECT_ROOT / "bench" / "results"
DEFAULT_OUTPUT = RESULTS_DIR / "hall.json"
DATABASE = "linli_bench_hall"
COMMUNITY = "zhihuicheng"
OPEN_SHARE = 0.7
BATCH = 2000

QUEUE = (
    "query Q($c: ID!, $f: HallQueueFilter) { hallQueue(communityId: $c, filter: $f, first: 20) { totalCount "
    "pageInfo { hasNextPage endCursor } edges { node { id state dueAt escalatedAt procedure { name } "
    "currentStep { name role } } } } }"
)


def gid(type_name: str, id_: int) -> str:
    return str(GlobalID(type_name, str(id_)))


async def add_applications(url: str, per_community: int) -> tuple[int, int, int, int]:
    """Bulk insert applications; returns (community id, a procedure id, open in the community, total)."""
    db = Database(url, pool_size=2)
    rng = random.Random(7)
    now = utc_now()
    try:
        await seed_hall(db)
        async with db.unit_of_work() as uow:
            target = await uow.session.scalar(select(Community.id).where(Community.code == COMMUNITY))
            assert target is not None
            communities = list((await uow.session.scalars(select(Community.id).order_by(Community.id))).all())
            by_community: dict[int, list[tuple[int, int, int]]] = {}
            for v in (await uow.session.scalars(select(HallProcedureVersion))).all():
                by_community.setdefault(v.community_id, []).append((v.procedure_id, v.id, len(v.steps)))
            residents: dict[int, list[tuple[int | None, int | None]]] = {}
            for row in (
                await uow.session.execute(select(Resident.community_id, Resident.id, Resident.household_id))
            ).all():
                residents.setdefault(row[0], []).append((row[1], row[2]))
        others = [c for c in communities if c != target] or [target]
        plan = [(target, per_community)] + [(c, per_community // len(others)) for c in others]
        total = 0
        open_in_target = 0
        for cid, n in plan:
            procedures = by_community[cid]
            people: list[tuple[int | None, int | None]] = [*residents.get(cid, [])] or [(None, None)]
            rows: list[dict[str, Any]] = []
            for _ in range(n):
                pid, vid, steps = rng.choice(procedures)
                rid, hid = rng.choice(people)
                submitted = now - timedelta(days=rng.uniform(0, 20))
                due = now + timedelta(days=rng.uniform(-3, 30))
                is_open = rng.random() < OPEN_SHARE
                state = rng.choice(("submitted", "in_progress", "in_progress", "needs_documents")) if is_open else (
                    rng.choice(("completed", "completed", "rejected")))  # fmt: skip
                rows.append({
                    "community_id": cid, "procedure_id": pid, "version_id": vid, "applicant_account_id": None,
                    "applicant_resident_id": rid, "household_id": hid, "state": state,
                    "step_index": rng.randrange(steps) if state != "submitted" else 0, "assignee_account_id": None,
                    "details": {}, "note": "", "submitted_at": submitted, "due_at": due,
                    "warn_at": due - timedelta(hours=9), "warned_at": None,
                    "escalated_at": due if is_open and due < now else None,
                    "closed_at": None if is_open else submitted + timedelta(days=1), "reason": None,
                    "requested_documents": [], "clock_round": 1, "updated_at": now,
                })  # fmt: skip
                if cid == target and is_open:
                    open_in_target += 1
            for start in range(0, len(rows), BATCH):
                async with db.unit_of_work() as uow:
                    await uow.session.execute(insert(HallApplication), rows[start : start + BATCH])
            total += n
        async with db.engine.begin() as conn:
            await conn.execute(text("ANALYZE hall_application"))
        pid = by_community[target][0][0]
        return target, pid, open_in_target, total
    finally:
        await db.dispose()


async def queue_plan(url: str, community_id: int) -> list[str]:
    """EXPLAIN ANALYZE of the queue page as the service builds it."""
    db = Database(url, pool_size=1)
    try:
        viewer = Viewer(account_id=1, roles={community_id: frozenset({Role.STAFF})})
        stmt = hall_service.queue_statement(viewer, community_id=community_id)
        stmt = stmt.order_by(HallApplication.due_at, HallApplication.id).limit(21)
        compiled = stmt.compile(db.engine, compile_kwargs={"literal_binds": True})
        async with db.read_session() as session:
            rows = (await session.execute(text(f"EXPLAIN (ANALYZE, COSTS OFF) {compiled}"))).all()
        return [str(r[0]) for r in rows]
    finally:
        await db.dispose()


def markdown(report: dict[str, Any]) -> str:
    m = report["machine"]
    lines = [
        "# Service hall benchmark",
        "",
        f"- date: {report['date']}",
        f"- command: `{report['command']}`",
        f"- machine: {m['nproc']} cores ({m['cpu']}), Python {m['python']}, PostgreSQL {m['postgresql']}",
        "- server: python -m api.cli serve (one uvicorn process), LINLI_ENVIRONMENT=production, PostgreSQL (pool 10 "
        "+ 10 overflow) and Redis; data: registry demo at scale 1 plus the hall demo procedures",
        f"- applications: {report['applications_total']:,} in all; {report['applications']:,} in 智汇城, of which "
        f"{report['open_in_community']:,} open (the rest completed or rejected)",
        "- queue: `hallQueue(communityId, first: 20)` with totalCount, procedure name and current step, as the 智汇城 "
        "staff login; filtered: one procedure, state IN_PROGRESS",
        f"- {m['load_generator']}, {report['duration']} s per row after a warm-up",
        "",
        "| query | concurrency | req/s | p50 ms | p99 ms | errors | server CPU | postgres CPU | loadgen CPU "
        "| other CPU |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in report["rows"]:
        errors = r["non_200"] + r["graphql_errors"] + r["socket_errors"]
        lines.append(
            f"| {r['query']} | {r['concurrency']} | {r['requests_per_second']:.1f} | {r['p50_ms']:.1f} "
            f"| {r['p99_ms']:.1f} | {errors} | {rb._fmt(r['server_cpu_pct'])} | {rb._fmt(r['postgres_cpu_pct'])} "
            f"| {rb._fmt(r['loadgen_cpu_pct'])} | {rb._fmt(r['other_cpu_pct'])} |"
        )
    lines += ["", "PostgreSQL plan of the queue page (21 rows: a page and one to tell whether more follow):", "", "```"]
    lines += report["plan"]
    lines += ["```", ""]
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench.hall", description=__doc__.split("\n\n")[0])
    parser.add_argument("--applications", type=int, default=20_000, help="applications in 智汇城 (default 20000)")
    parser.add_argument("--duration", type=int, default=10, help="seconds per row (default 10)")
    parser.add_argument("--concurrency", type=rb._int_list, default=[1, 10, 50], help="(default 1,10,50)")
    parser.add_argument("--quiet-wait", type=float, default=60.0, help="longest wait for an idle machine per row")
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT, help="JSON; the .md goes next to it")
    parser.add_argument("--keep", action="store_true", help="keep the bench database")
    parser.add_argument("--pg-admin-url", default=rb.PG_ADMIN_URL)
    parser.add_argument("--redis-url", default=rb.REDIS_URL)
    return parser


def run(args: argparse.Namespace) -> dict[str, Any]:
    secret = secrets.token_urlsafe(48)
    workdir = Path(tempfile.mkdtemp(prefix="linli-bench-hall-"))
    load, note = rb.pick_load_generator("auto", workdir)
    machine = rb.machine_info(args.pg_admin_url, load, note)
    url = rb.database_url(args.pg_admin_url, DATABASE)
    rb.log(f"creating, migrating and seeding {DATABASE}")
    rb.create_database(args.pg_admin_url, DATABASE)
    server: rb.Server | None = None
    rows = []
    try:
        upgrade(url)
        asyncio.run(rb.seed(url, secret, 1, DATABASE))
        community_id, procedure_id, open_count, total = asyncio.run(add_applications(url, args.applications))
        rb.log(f"{total} applications, {open_count} open in {COMMUNITY}")
        plan = asyncio.run(queue_plan(url, community_id))
        # One staff login sends every request: lift the per-minute rate limits, which would answer 429.
        server = rb.Server(
            db_url=url, redis_url=args.redis_url, secret=secret, log_path=workdir / "server.log",
            extra_env={"LINLI_RATE_LIMIT_PER_ADDRESS": "1000000000", "LINLI_RATE_LIMIT_PER_ACCOUNT": "1000000000"},
        )  # fmt: skip
        server.start()
        graphql_url = f"{server.base}/graphql"
        staff = next(d for d in demo_logins() if d.community_code == COMMUNITY and d.role == "staff")
        queries: dict[str, dict[str, Any]] = {
            "queue": {"c": gid("Community", community_id)},
            "filtered": {"c": gid("Community", community_id),
                         "f": {"procedureId": gid("HallProcedure", procedure_id), "states": ["IN_PROGRESS"]}},
        }  # fmt: skip
        with httpx.Client(timeout=rb.REQUEST_TIMEOUT_SECONDS) as client:
            data, _ = rb.graphql(
                client, graphql_url, rb.LOGIN_MUTATION, {"phone": staff.phone, "password": staff.password}
            )
            token = str(data["login"]["token"])
            data, size = rb.graphql(client, graphql_url, QUEUE, queries["queue"], token)
        if data["hallQueue"]["totalCount"] != open_count:
            raise rb.BenchError(f"hallQueue counts {data['hallQueue']['totalCount']}, expected {open_count}")
        rb.log(f"hallQueue: {data['hallQueue']['totalCount']} open, first page {size} B")
        for name, variables in queries.items():
            body = json.dumps({"query": QUEUE, "variables": variables}, separators=(",", ":")).encode()
            for concurrency in args.concurrency:
                m = rb.measure_best(server, args.pg_admin_url, DATABASE, load, graphql_url, body, token, name,
                                    concurrency, args.duration, label="hallQueue", quiet_limit=args.quiet_wait)  # fmt: skip
                rows.append(m)
    finally:
        if server is not None:
            server.stop()
        if not args.keep:
            rb.drop_database(args.pg_admin_url, DATABASE)
    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": "python -m bench.hall " + " ".join(sys.argv[1:]),
        "machine": machine,
        "applications": args.applications,
        "applications_total": total,
        "open_in_community": open_count,
        "duration": args.duration,
        "plan": plan,
        "rows": [asdict(m) for m in rows],
    }


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        report = run(args)
    except rb.BenchError as exc:
        rb.log(f"FAILED: {exc}")
        return 1
    rb.write_atomically(args.output, json.dumps(report, ensure_ascii=False, indent=2) + "\n")
    text_ = markdown(report)
    rb.write_atomically(args.output.with_suffix(".md"), text_)
    print(text_)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
