"""Elder-care benchmark: plan and dispatch one month of visits for the four demo communities, and the
oversight (ageing survey) query, at each seed scale, on PostgreSQL.

For each scale a PostgreSQL database `linli_bench_eldercare_s<scale>` is created, migrated and seeded
(bench.registry's seed of the registry demo, then the elder-care demo: every resident aged 60+ an
elder, one 低龄 volunteer per five elders, pairs, the default tiers). `--reuse` keeps and reuses a
seeded database between runs (seeding scale 10 takes minutes); each run first removes the month's
visits, offers and outbox rows so it measures the same work.

- Plan + dispatch: `plan_period` for next month, one unit of work per community, as the worker's
  `eldercare.plan_community` job runs it: tier matching, the visits (unique by elder, month and
  sequence), their dispatch requests and first offers (ranked at the visit's time, the paired
  volunteer first), the volunteers' inbox notices and the outbox rows of the offers' expiry jobs.
  SQL statements are counted with a SQLAlchemy `before_cursor_execute` listener.
- Oversight: `oversight()` (the registry's ageing survey extended with levels, tiers, coverage,
  overdue visits and volunteer load, per building and unit) for each community, warm, repeated;
  median and max per call, and the registry's ageing survey alone for comparison.

    python -m bench.eldercare --scales 1,10 --repeat 10 --reuse

Writes bench/results/eldercare.json and eldercare.md (the Markdown is printed too).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import statistics
import sys
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
from sqlalchemy import event, func, select, text

from api.core.clock import local_today, utc_now
from api.core.database import Database
from api.core.jobs import RecordingJobSender
from api.core.migrations import PROJECT_ROOT, upgrade
from api.core.viewer import Role, Viewer
from api.eldercare import rules
from api.eldercare import service as eldercare_service
from api.eldercare.models import CarePair, ElderProfile, Volunteer
from api.eldercare.oversight import oversight
from api.eldercare.seed import seed_demo as seed_eldercare
from api.registry.models import Community
from api.registry.survey import ageing_survey
from bench import registry as rb

RESULTS_DIR = PROJECT_ROOT / "bench" / "results"
DEFAULT_OUTPUT = RESULTS_DIR / "eldercare.json"


@dataclass
class CommunityRun:
    code: str
    elders: int
    visits: int
    offers: int
    seconds: float
    statements: int
    ms_per_elder: float
    statements_per_elder: float


@dataclass
class ScaleRun:
    scale: int
    database: str
    seeded_now: bool
    seed_seconds: float
    residents: int
    elders: int
    volunteers: int
    pairs: int
    plan: list[CommunityRun] = field(default_factory=list)
    plan_seconds: float = 0.0
    plan_statements: int = 0
    plan_ms_per_elder: float = 0.0
    plan_statements_per_elder: float = 0.0
    oversight_ms: dict[str, dict[str, float]] = field(default_factory=dict)
    survey_ms: dict[str, dict[str, float]] = field(default_factory=dict)
    background_cpu_pct: float = 0.0


class Counter:
    """SQL statements sent on an engine (every cursor execute, executemany counted once)."""

    def __init__(self, db: Database) -> None:
        self.n = 0

        @event.listens_for(db.engine.sync_engine, "before_cursor_execute")
        def _count(*_args: Any) -> None:
            self.n += 1


async def _exists(admin_url: str, name: str) -> bool:
    conn = await asyncpg.connect(admin_url)
    try:
        return bool(await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name))
    finally:
        await conn.close()


async def _server_version(admin_url: str) -> str:
    conn = await asyncpg.connect(admin_url)
    try:
        return str(await conn.fetchval("SHOW server_version"))
    finally:
        await conn.close()


async def _seeded(url: str) -> bool:
    db = Database(url, pool_size=1)
    try:
        async with db.read_session() as session:
            return await session.scalar(select(ElderProfile.id).limit(1)) is not None
    except Exception:
        return False
    finally:
        await db.dispose()


async def _counts(url: str) -> tuple[int, int, int, int]:
    from api.registry.models import Resident

    db = Database(url, pool_size=1)
    try:
        async with db.read_session() as session:

            async def n(model: Any) -> int:
                return int(await session.scalar(select(func.count()).select_from(model)) or 0)

            return await n(Resident), await n(ElderProfile), await n(Volunteer), await n(CarePair)
    finally:
        await db.dispose()


async def _reset_month(db: Database, period: str) -> None:
    """Remove the month's visits with their dispatch rows, notices and outbox rows (a clean re-run)."""
    async with db.engine.begin() as conn:
        await conn.execute(text("ANALYZE"))  # a run cut short leaves statistics of empty tables
    async with db.engine.begin() as conn:
        for statement in (
            "DELETE FROM notification WHERE subject_kind = 'visit'",
            "DELETE FROM assignment a USING elder_visit v "
            "WHERE a.kind = 'visit' AND a.subject_id = v.id AND v.plan_period = :p",
            "DELETE FROM dispatch_request d USING elder_visit v "
            "WHERE d.kind = 'visit' AND d.subject_id = v.id AND v.plan_period = :p",
            "DELETE FROM elder_visit WHERE plan_period = :p",
            "DELETE FROM outbox_message",
        ):
            await conn.execute(text(statement), {"p": period})
    async with db.engine.begin() as conn:
        await conn.execute(text("ANALYZE"))


def _ms(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    return {
        "p50": round(statistics.median(ordered) * 1000, 1),
        "max": round(ordered[-1] * 1000, 1),
        "n": len(ordered),
    }


async def plan_and_dispatch(url: str, run: ScaleRun, period: str) -> None:
    db = Database(url, pool_size=4)
    counter = Counter(db)
    recorder = RecordingJobSender()
    try:
        await _reset_month(db, period)
        async with db.read_session() as session:
            communities = list(
                (await session.execute(select(Community.id, Community.code).order_by(Community.id))).all()
            )
        for community_id, code in communities:
            before, sent_before, started = counter.n, len(recorder.sent), time.perf_counter()
            async with db.unit_of_work(recorder) as uow:
                outcome = await eldercare_service.plan_period(uow, community_id=community_id, period=period)
            seconds = time.perf_counter() - started
            statements = counter.n - before
            offers = sum(1 for o in recorder.sent[sent_before:] if o.job.actor_name == "dispatch.expire_offer")
            run.plan.append(
                CommunityRun(
                    code=str(code), elders=outcome.elders, visits=outcome.created, offers=offers,
                    seconds=round(seconds, 3), statements=statements,
                    ms_per_elder=round(seconds * 1000 / max(outcome.elders, 1), 3),
                    statements_per_elder=round(statements / max(outcome.elders, 1), 3),
                )
            )  # fmt: skip
            rb.log(f"scale {run.scale}: {code}: {outcome.elders:,} elders → {outcome.created:,} visits, {offers:,} "
                   f"offers in {seconds:.2f}s, {statements:,} statements")  # fmt: skip
        elders = sum(c.elders for c in run.plan)
        run.plan_seconds = round(sum(c.seconds for c in run.plan), 2)
        run.plan_statements = sum(c.statements for c in run.plan)
        run.plan_ms_per_elder = round(run.plan_seconds * 1000 / max(elders, 1), 3)
        run.plan_statements_per_elder = round(run.plan_statements / max(elders, 1), 3)
    finally:
        await db.dispose()


async def measure_oversight(url: str, run: ScaleRun, period: str, repeat: int) -> None:
    db = Database(url, pool_size=2)
    try:
        async with db.read_session() as session:
            communities = list(
                (await session.execute(select(Community.id, Community.code).order_by(Community.id))).all()
            )
        today = local_today()
        for community_id, code in communities:
            viewer = Viewer(account_id=1, roles={community_id: frozenset({Role.STAFF})})
            samples, survey_samples = [], []
            for i in range(repeat + 1):
                started = time.perf_counter()
                async with db.read_session() as session:
                    await oversight(session, viewer=viewer, community_id=community_id, period=period, now=utc_now(),
                                    today=today)  # fmt: skip
                if i:
                    samples.append(time.perf_counter() - started)
                started = time.perf_counter()
                async with db.read_session() as session:
                    await ageing_survey(session, community_id=community_id, today=today)
                if i:
                    survey_samples.append(time.perf_counter() - started)
            run.oversight_ms[str(code)] = _ms(samples)
            run.survey_ms[str(code)] = _ms(survey_samples)
            rb.log(f"scale {run.scale}: {code}: oversight p50 {run.oversight_ms[str(code)]['p50']} ms, "
                   f"survey alone p50 {run.survey_ms[str(code)]['p50']} ms")  # fmt: skip
    finally:
        await db.dispose()


async def seed_eldercare_demo(url: str) -> None:
    db = Database(url, pool_size=2)
    try:
        await seed_eldercare(db)
        async with db.engine.begin() as conn:
            await conn.execute(text("ANALYZE"))
    finally:
        await db.dispose()


def markdown(report: dict[str, Any]) -> str:
    lines = [
        "# Elder care benchmark",
        "",
        f"- command: `{report['command']}`",
        f"- date: {report['date']}; machine: {report['machine']['nproc']} cores, PostgreSQL {report['machine']['postgresql']}",
        "- plan + dispatch: `plan_period` for next month, one unit of work per community (as the worker's job runs "
        "it): visits, dispatch requests, first offers, inbox notices and outbox rows; statements counted by "
        "`before_cursor_execute` (a batched INSERT of many rows is one statement)",
        "- oversight: `elderCareOversight`'s service call (survey + care per building and unit + volunteer load), warm",
        "",
        "## Plan and dispatch one month",
        "",
        "| scale | residents | elders | volunteers | visits | offers | plan s | ms / elder | statements | statements / elder |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for s in report["scales"]:
        visits = sum(c["visits"] for c in s["plan"])
        offers = sum(c["offers"] for c in s["plan"])
        lines.append(
            f"| {s['scale']} | {s['residents']:,} | {s['elders']:,} | {s['volunteers']:,} | {visits:,} | {offers:,} | "
            f"{s['plan_seconds']} | {s['plan_ms_per_elder']} | {s['plan_statements']:,} | "
            f"{s['plan_statements_per_elder']} |"
        )
    lines += ["", "Per community:", "", "| scale | community | elders | visits | s | ms / elder | statements | statements / elder |",
              "|---:|---|---:|---:|---:|---:|---:|---:|"]  # fmt: skip
    for s in report["scales"]:
        for c in s["plan"]:
            lines.append(
                f"| {s['scale']} | {c['code']} | {c['elders']:,} | {c['visits']:,} | {c['seconds']} | {c['ms_per_elder']} "
                f"| {c['statements']:,} | {c['statements_per_elder']} |"
            )
    lines += ["", "## Oversight query latency (ms, warm)", "",
              "| scale | community | oversight p50 | oversight max | ageing survey alone p50 | n |",
              "|---:|---|---:|---:|---:|---:|"]  # fmt: skip
    for s in report["scales"]:
        for code, o in s["oversight_ms"].items():
            lines.append(
                f"| {s['scale']} | {code} | {o['p50']} | {o['max']} | {s['survey_ms'][code]['p50']} | {o['n']} |"
            )
    lines.append("")
    lines.append(
        "Background CPU before each scale (other processes, % of one core): "
        + ", ".join(f"scale {s['scale']}: {s['background_cpu_pct']}" for s in report["scales"])
    )
    return "\n".join(lines) + "\n"


def run(args: argparse.Namespace) -> dict[str, Any]:
    secret = secrets.token_urlsafe(48)
    machine: dict[str, Any] = {"nproc": os.cpu_count(), "python": sys.version.split()[0]}
    machine["postgresql"] = asyncio.run(_server_version(args.pg_admin_url))
    period = rules.next_period(rules.period_of(local_today()))
    results: list[ScaleRun] = []
    for scale in args.scales:
        name = f"linli_bench_eldercare_s{scale}"
        url = rb.database_url(args.pg_admin_url, name)
        seeded_now, seed_seconds = False, 0.0
        if not (args.reuse and asyncio.run(_exists(args.pg_admin_url, name)) and asyncio.run(_seeded(url))):
            rb.log(f"scale {scale}: creating, migrating and seeding {name}")
            rb.create_database(args.pg_admin_url, name)
            upgrade(url)
            started = time.perf_counter()
            asyncio.run(rb.seed(url, secret, scale, name))
            asyncio.run(seed_eldercare_demo(url))
            seed_seconds = round(time.perf_counter() - started, 1)
            seeded_now = True
        residents, elders, volunteers, pairs = asyncio.run(_counts(url))
        result = ScaleRun(scale, name, seeded_now, seed_seconds, residents, elders, volunteers, pairs)
        result.background_cpu_pct = round(rb.machine_busy_pct(1.0), 1)
        asyncio.run(plan_and_dispatch(url, result, period))
        asyncio.run(measure_oversight(url, result, period, args.repeat))
        results.append(result)
        if not args.reuse:
            rb.drop_database(args.pg_admin_url, name)
    return {
        "benchmark": "eldercare",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": " ".join(["python -m bench.eldercare", *sys.argv[1:]]),
        "machine": machine,
        "period": period,
        "scales": [asdict(r) for r in results],
    }


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench.eldercare", description=__doc__.split("\n\n")[0])
    parser.add_argument("--scales", type=rb._int_list, default=[1, 10], help="seed scales (default 1,10)")
    parser.add_argument("--repeat", type=int, default=10, help="oversight calls per community (default 10)")
    parser.add_argument("--reuse", action="store_true", help="keep the bench databases and reuse seeded ones")
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT, help="JSON; the .md goes next to it")
    parser.add_argument("--pg-admin-url", default=rb.PG_ADMIN_URL, help="asyncpg URL of a database to run DDL from")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    report = run(args)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    rb.write_atomically(args.output, json.dumps(report, ensure_ascii=False, indent=2) + "\n")
    md = markdown(report)
    rb.write_atomically(args.output.with_suffix(".md"), md)
    print(md)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
