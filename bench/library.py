"""Library benchmark: checkout + return throughput and catalogue search latency, 100,000 copies in 50 branches.

Setup (timed): a fresh database `linli_bench_library`, migrated; 50 branches (the city library,
9 district libraries, 40 community book houses in 40 communities), 20,000 titles, 100,000 copies
(2,000 per branch), 2,000 readers and the network's default loan rule; then ANALYZE.

Checkout + return, at the service level in this process: `c` asyncio workers (a pool of `c`
connections), each with its own readers and copies, loop over: check a copy out at the branch it
is at (as staff, by reader id), then check it in — at the same branch four times in five, else at
a random branch of the network, where a book-house copy goes home in transit and is received at
home right away (a third unit of work) while a city-library copy floats. Every step is its own
unit of work, as in the API. A cycle is one checkout and its return; any refusal fails the run.

Catalogue search, two ways: (a) at the service level, `c` workers run what `searchCatalogue` runs
for a query mix (a title word, an author, an ISBN): the first page of 20, its availability per
branch, and the total count; (b) through the real server (bench.registry's Server: one uvicorn
process, production settings, PostgreSQL and Redis) with wrk (bench.registry's WrkLoad and
measure_best), the GraphQL `searchCatalogue` query for a common title word.

    python -m bench.library --duration 10 --concurrency 1,10,50

Writes bench/results/library.json and library.md (the Markdown table is printed too).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import secrets
import shutil
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime
from functools import partial
from pathlib import Path
from typing import Any

from sqlalchemy import insert, select, text

from api.core.clock import utc_now
from api.core.crypto import PersonalDataCipher, mask_national_id
from api.core.database import Database
from api.core.errors import DomainError
from api.core.migrations import PROJECT_ROOT, upgrade
from api.core.pagination import PageArgs, count_of, fetch_page
from api.core.viewer import Role, Viewer
from api.library import service as library
from api.library.isbn import isbn13_check
from api.library.models import Book, Branch, Copy, LoanRule, Reader
from api.registry.models import Community, Resident
from api.registry.validation import check_char
from bench.registry import (
    DISTURBED_PCT,
    MAX_ATTEMPTS,
    PG_ADMIN_URL,
    REDIS_URL,
    BenchError,
    Server,
    _cpu_usage,
    _CpuSnapshot,
    _percentile,
    create_database,
    database_url,
    drop_database,
    log,
    machine_info,
    measure_best,
    pick_load_generator,
    wait_for_quiet_machine,
    write_atomically,
)

RESULTS_DIR = PROJECT_ROOT / "bench" / "results"
DEFAULT_OUTPUT = RESULTS_DIR / "library.json"
DATABASE = "linli_bench_library"
BRANCHES = 50
COPIES_PER_BRANCH = 2_000
TITLES = 20_000
READERS = 2_000
WARMUP_SECONDS = 2
QUIET_LIMIT_SECONDS = 60
SEARCH_GQL = (
    "query($q: String!) { searchCatalogue(query: $q, first: 20) { totalCount edges { node { title author isbn "
    "availableCopies availability { available branch { name } } } } } }"
)
_WORDS = list("春夏秋冬山河海星月风雨雪城乡家国路梦书歌花鸟鱼树光影心年人天")
_NOUNS = [
    "故事",
    "旅行",
    "往事",
    "笔记",
    "童话",
    "传奇",
    "岁月",
    "时光",
    "日记",
    "诗篇",
    "手册",
    "画册",
    "百科",
    "史话",
]
_SURNAMES = "王李张刘陈杨赵黄周吴徐孙胡朱高林何郭马罗"
_GIVEN = "伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀霞平刚桂英华"


@dataclass
class Row:
    workload: str  # checkout+return | search (service) | search (HTTP)
    concurrency: int
    seconds: float
    operations: int
    per_second: float
    p50_ms: float
    p99_ms: float
    detail: dict[str, float] = field(default_factory=dict)
    errors: int = 0


@dataclass
class Setup:
    branches: int
    titles: int
    copies: int
    readers: int
    seed_seconds: float
    analyze_seconds: float


# -- data ---------------------------------------------------------------------------------------


def _isbn(n: int) -> str:
    core = f"97879{n:07d}"
    return core + isbn13_check(core)


def _national_id(n: int) -> str:
    born = date(1950 + n % 50, 1 + n % 12, 1 + n % 28)
    first17 = f"130108{born:%Y%m%d}{n % 1000:03d}"
    return first17 + check_char(first17)


async def seed(db: Database, cipher: PersonalDataCipher, rng: random.Random) -> Setup:
    """The network, catalogue and readers, written in bulk."""
    started = time.perf_counter()
    now = utc_now()
    async with db.unit_of_work() as uow:
        s = uow.session
        communities = (
            await s.scalars(
                insert(Community).returning(Community.id),
                [{"code": f"bench{i}", "name": f"社区{i}", "city": "石家庄市", "district": "裕华区", "street": "槐北路",
                  "address": f"{i}号", "created_at": now} for i in range(40)],
            )
        ).all()  # fmt: skip
        branch_rows: list[dict[str, Any]] = [
            {"code": "city", "name": "石家庄市图书馆", "kind": "city", "float_policy": "float"}
        ]
        branch_rows += [
            {"code": f"district{i}", "name": f"区图书馆{i}", "kind": "district", "float_policy": "return_home"}
            for i in range(9)
        ]
        branch_rows += [
            {"code": f"house{i}", "name": f"书屋{i}", "kind": "book_house", "community_id": cid,
             "float_policy": "return_home"}
            for i, cid in enumerate(communities)
        ]  # fmt: skip
        branches = (
            await s.scalars(
                insert(Branch).returning(Branch.id),
                [{"community_id": None, "district": None, "address": None, "active": True, "created_at": now, **b}
                 for b in branch_rows],
            )
        ).all()  # fmt: skip
        books = (
            await s.scalars(
                insert(Book).returning(Book.id),
                [{"isbn": _isbn(i), "title": f"{rng.choice(_WORDS)}{rng.choice(_WORDS)}{rng.choice(_NOUNS)}",
                  "author": rng.choice(_SURNAMES) + rng.choice(_GIVEN) + rng.choice(_GIVEN),
                  "publisher": "河北人民出版社", "year": rng.randint(1980, 2025), "subjects": [], "created_at": now}
                 for i in range(TITLES)],
            )
        ).all()  # fmt: skip
        for b_index, branch_id in enumerate(branches):
            await s.execute(
                insert(Copy),
                [{"barcode": f"B{b_index:02d}-{n:05d}", "book_id": books[(b_index * 397 + n * 7) % TITLES],
                  "home_branch_id": branch_id, "current_branch_id": branch_id, "status": "available",
                  "item_type": "book", "created_at": now, "updated_at": now}
                 for n in range(COPIES_PER_BRANCH)],
            )  # fmt: skip
        residents = (
            await s.scalars(
                insert(Resident).returning(Resident.id),
                [{"community_id": communities[n % 40], "name": f"读者{n}", "gender": "male",
                  "birth_date": date(1950 + n % 50, 1 + n % 12, 1 + n % 28),
                  "national_id_encrypted": cipher.encrypt(_national_id(n)),
                  "national_id_hash": cipher.lookup_hash(_national_id(n)),
                  "national_id_masked": mask_national_id(_national_id(n)), "created_at": now, "updated_at": now}
                 for n in range(READERS)],
            )
        ).all()  # fmt: skip
        await s.execute(
            insert(Reader),
            [{"resident_id": rid, "id_hash": cipher.lookup_hash(_national_id(n)), "category": "adult",
              "created_at": now} for n, rid in enumerate(residents)],
        )  # fmt: skip
        s.add(LoanRule(max_loans=3, loan_days=30, renewals=1, renewal_days=30, holds_allowed=3, hold_pickup_days=7,
                       suspension_days_per_overdue_day=1, max_suspension_days=90, created_at=now))  # fmt: skip
    seed_seconds = time.perf_counter() - started
    started = time.perf_counter()
    async with db.engine.begin() as conn:
        await conn.execute(text("ANALYZE"))
    return Setup(BRANCHES, TITLES, BRANCHES * COPIES_PER_BRANCH, READERS, round(seed_seconds, 1),
                 round(time.perf_counter() - started, 1))  # fmt: skip


# -- load ---------------------------------------------------------------------------------------


@dataclass
class _Copy:
    barcode: str
    at: int  # the branch it is at now


async def _timed(samples: list[float], op: Callable[[], Awaitable[Any]]) -> Any:
    started = time.perf_counter()
    result = await op()
    samples.append(time.perf_counter() - started)
    return result


async def run_cycles(url: str, cipher: PersonalDataCipher, viewer: Viewer, concurrency: int, seconds: float) -> Row:
    """Checkout + return cycles for `seconds` with `concurrency` workers; any refusal fails the run."""
    db = Database(url, pool_size=concurrency)
    try:
        async with db.read_session() as session:
            branches = list((await session.scalars(select(Branch.id).order_by(Branch.id))).all())
            readers = list((await session.scalars(select(Reader.id).order_by(Reader.id))).all())
            copies = (
                await session.execute(
                    select(Copy.barcode, Copy.current_branch_id)
                    .where(Copy.status == "available")
                    .order_by(Copy.id % COPIES_PER_BRANCH, Copy.id)  # spread over the branches
                    .limit(concurrency * 40)
                )
            ).all()
        out: list[float] = []
        back: list[float] = []
        whole: list[float] = []
        cycles = [0]
        deadline = time.perf_counter() + seconds

        async def worker(index: int) -> None:
            rng = random.Random(index)
            mine = [_Copy(b, at) for b, at in copies[index::concurrency]]
            who = readers[index::concurrency]
            n = 0
            while time.perf_counter() < deadline:
                copy, reader = mine[n % len(mine)], who[n % len(who)]
                n += 1
                began = time.perf_counter()

                async def lend(copy: _Copy = copy, reader: int = reader) -> None:
                    async with db.unit_of_work() as uow:
                        await library.check_out(uow, viewer=viewer, cipher=cipher, branch_id=copy.at,
                                                barcode=copy.barcode, reader_id=reader)  # fmt: skip

                await _timed(out, lend)
                where = copy.at if rng.random() < 0.8 else rng.choice(branches)

                async def give_back(copy: _Copy = copy, where: int = where) -> library.ReturnOutcome:
                    async with db.unit_of_work() as uow:
                        return await library.return_copy(uow, viewer=viewer, branch_id=where, barcode=copy.barcode)

                result = await _timed(back, give_back)
                destination = result.placement.destination_branch_id
                if result.placement.action is library.ReturnAction.TRANSIT_HOME:
                    async with db.unit_of_work() as uow:  # the courier delivers it home
                        await library.return_copy(uow, viewer=viewer, branch_id=destination, barcode=copy.barcode)
                copy.at = destination
                cycles[0] += 1
                whole.append(time.perf_counter() - began)

        started = time.perf_counter()
        await asyncio.gather(*(worker(i) for i in range(concurrency)))
        elapsed = time.perf_counter() - started
    except DomainError as exc:
        raise BenchError(f"a checkout or return was refused: {exc.code} {exc.message}") from exc
    finally:
        await db.dispose()
    out.sort()
    back.sort()
    whole.sort()
    return Row(
        workload="checkout+return", concurrency=concurrency, seconds=round(elapsed, 2), operations=cycles[0],
        per_second=round(cycles[0] / elapsed, 1),
        p50_ms=round(_percentile(whole, 50) * 1000, 2),
        p99_ms=round(_percentile(whole, 99) * 1000, 2),
        detail={
            "checkout_p50_ms": round(_percentile(out, 50) * 1000, 2),
            "checkout_p99_ms": round(_percentile(out, 99) * 1000, 2),
            "return_p50_ms": round(_percentile(back, 50) * 1000, 2),
            "return_p99_ms": round(_percentile(back, 99) * 1000, 2),
        },
    )  # fmt: skip


async def search_queries(url: str) -> list[str]:
    db = Database(url, pool_size=1)
    try:
        async with db.read_session() as session:
            sample = (await session.execute(select(Book.title, Book.author, Book.isbn).limit(50))).all()
    finally:
        await db.dispose()
    words = [title[:1] for title, _, _ in sample[:20]]
    authors = [author for _, author, _ in sample[:15]]
    isbns = [f"{isbn[:3]}-{isbn[3]}-{isbn[4:8]}-{isbn[8:12]}-{isbn[12]}" for _, _, isbn in sample[:15]]
    return [q for trio in zip(words, authors, isbns, strict=False) for q in trio]


async def run_search(url: str, queries: Sequence[str], concurrency: int, seconds: float) -> Row:
    """What searchCatalogue runs: the page of 20, availability per branch for it, and the total count."""
    db = Database(url, pool_size=concurrency)
    latencies: list[float] = []
    deadline = time.perf_counter() + seconds
    try:

        async def worker(index: int) -> None:
            n = index
            while time.perf_counter() < deadline:
                query = queries[n % len(queries)]
                n += 1
                started = time.perf_counter()
                stmt = library.catalogue_query(query)
                async with db.read_session() as session:
                    page = await fetch_page(session, stmt, Book.id, PageArgs(first=20))
                    await library.availability(session, book_ids=[b.id for b in page.items])
                    await count_of(session, stmt)
                latencies.append(time.perf_counter() - started)

        started = time.perf_counter()
        await asyncio.gather(*(worker(i) for i in range(concurrency)))
        elapsed = time.perf_counter() - started
    finally:
        await db.dispose()
    latencies.sort()
    return Row(
        workload="search (service)", concurrency=concurrency, seconds=round(elapsed, 2), operations=len(latencies),
        per_second=round(len(latencies) / elapsed, 1), p50_ms=round(_percentile(latencies, 50) * 1000, 2),
        p99_ms=round(_percentile(latencies, 99) * 1000, 2),
    )  # fmt: skip


def measured(load: Callable[[], Coroutine[Any, Any, Row]]) -> Row:
    """Run `load` on a quiet machine and add the CPU this process, PostgreSQL and the rest used.

    A row during which other processes took more than DISTURBED_PCT of a core is measured again
    (up to MAX_ATTEMPTS times); the least disturbed attempt stands.
    """
    attempts: list[Row] = []
    for _ in range(MAX_ATTEMPTS):
        background = wait_for_quiet_machine(QUIET_LIMIT_SECONDS)
        before = _CpuSnapshot.take(os.getpid(), DATABASE)
        row = asyncio.run(load())
        after = _CpuSnapshot.take(os.getpid(), DATABASE)
        cpu = _cpu_usage(before, after, in_process_loadgen=True)
        bench, postgres = float(cpu["server_cpu_pct"] or 0.0), float(cpu["postgres_cpu_pct"] or 0.0)
        row.detail.update(
            bench_cpu_pct=bench,
            postgres_cpu_pct=postgres,
            other_cpu_pct=round(max(0.0, float(cpu["machine_cpu_pct"] or 0.0) - bench - postgres), 1),
            busy_before_pct=background,
        )
        attempts.append(row)
        if row.detail["other_cpu_pct"] <= DISTURBED_PCT:
            break
        log(f"  other processes used {row.detail['other_cpu_pct']:.0f}% of a core meanwhile: measuring again")
    best = min(attempts, key=lambda r: r.detail["other_cpu_pct"])
    best.detail["attempts"] = len(attempts)
    return best


def staff_everywhere(community_ids: Sequence[int]) -> Viewer:
    """A district admin of every community: may act at every branch (no extra query per request)."""
    return Viewer(account_id=1, roles={cid: frozenset({Role.DISTRICT_ADMIN}) for cid in community_ids})


# -- report -------------------------------------------------------------------------------------


def markdown(report: dict[str, Any]) -> str:
    m, s = report["machine"], report["setup"]
    lines = [
        "# Library benchmark",
        "",
        f"- date: {report['date']}",
        f"- command: `{report['command']}`",
        f"- machine: {m['nproc']} cores ({m['cpu']}), Python {m['python']}, PostgreSQL {m['postgresql']}",
        f"- data: {s['branches']} branches (1 city, 9 district, 40 book houses), {s['titles']:,} titles, "
        f"{s['copies']:,} copies, {s['readers']:,} readers; seeded in {s['seed_seconds']} s, ANALYZE "
        f"{s['analyze_seconds']} s",
        f"- {report['config']['duration_seconds']} s per row after a {WARMUP_SECONDS} s warm-up; closed loop",
        "- checkout+return and search (service): in-process asyncio workers calling the library service, each "
        "step its own unit of work / read session on a pool of `concurrency` connections (no HTTP, no GraphQL); "
        "a cycle is one checkout plus its return (plus the arrival scan when a copy goes home in transit)",
        f"- CPU in % of one core ({m['nproc']} cores): bench = this process (the service and its load), postgres = "
        "the bench database's backends, other = the rest of the machine during the row (high: disturbed); "
        "busy_before = the machine's use just before the row, with the bench idle; a row disturbed by other "
        f"processes (other > {DISTURBED_PCT:.0f}%) is measured again, up to {MAX_ATTEMPTS} times, and the least "
        "disturbed attempt stands. PostgreSQL's figure counts backends that exit during the row, of any "
        "database (the postmaster reaps them), so another database's work can land there too",
        f"- search (HTTP): {report['config']['http']}",
        "",
        "| workload | concurrency | ops/s | p50 ms | p99 ms | detail | errors |",
        "|---|---:|---:|---:|---:|---|---:|",
    ]
    for r in report["rows"]:
        detail = ", ".join(f"{k} {v}" for k, v in r["detail"].items())
        lines.append(
            f"| {r['workload']} | {r['concurrency']} | {r['per_second']:.1f} | {r['p50_ms']:.1f} | {r['p99_ms']:.1f} "
            f"| {detail} | {r['errors']} |"
        )
    if m.get("load_generator_note"):
        lines += ["", f"**Note:** {m['load_generator_note']}"]
    lines.append("")
    return "\n".join(lines)


# -- main ---------------------------------------------------------------------------------------


def _int_list(value: str) -> list[int]:
    try:
        items = [int(v) for v in value.split(",") if v.strip()]
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {value!r}") from exc
    if not items or any(i < 1 or i > 50 for i in items):
        raise argparse.ArgumentTypeError(f"expected integers from 1 to 50, got {value!r}")
    return items


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench.library", description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=int, default=10, help="seconds per measurement (default 10)")
    parser.add_argument("--concurrency", type=_int_list, default=[1, 10, 50], help="default 1,10,50")
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT, help="JSON; the .md goes next to it")
    parser.add_argument("--no-http", action="store_true", help="skip the HTTP search rows")
    parser.add_argument("--keep", action="store_true", help="keep the bench database")
    parser.add_argument("--load-generator", choices=("auto", "wrk", "python"), default="auto")
    parser.add_argument("--pg-admin-url", default=PG_ADMIN_URL)
    parser.add_argument("--redis-url", default=REDIS_URL)
    return parser


def run(args: argparse.Namespace) -> dict[str, Any]:
    if args.duration < 1:
        raise BenchError("--duration must be at least 1 second")
    secret = secrets.token_urlsafe(48)
    cipher = PersonalDataCipher(secret)
    workdir = Path(tempfile.mkdtemp(prefix="linli-bench-library-"))
    load, note = pick_load_generator(args.load_generator, workdir)
    machine = machine_info(args.pg_admin_url, load, note)
    url = database_url(args.pg_admin_url, DATABASE)
    rows: list[Row] = []
    ok = False
    try:
        log(f"creating and migrating {DATABASE}")
        create_database(args.pg_admin_url, DATABASE)
        upgrade(url)
        log("seeding 50 branches, 20,000 titles, 100,000 copies, 2,000 readers")

        async def prepare() -> tuple[Setup, Viewer, list[str]]:
            db = Database(url, pool_size=2)
            try:
                setup = await seed(db, cipher, random.Random(20261130))
                async with db.read_session() as session:
                    community_ids = list((await session.scalars(select(Community.id))).all())
            finally:
                await db.dispose()
            return setup, staff_everywhere(community_ids), await search_queries(url)

        setup, viewer, queries = asyncio.run(prepare())
        log(f"seeded in {setup.seed_seconds}s, ANALYZE {setup.analyze_seconds}s")
        for concurrency in args.concurrency:
            asyncio.run(run_cycles(url, cipher, viewer, concurrency, WARMUP_SECONDS))
            row = measured(partial(run_cycles, url, cipher, viewer, concurrency, args.duration))
            log(f"  checkout+return c={concurrency:<3} {row.per_second:8.1f} cycles/s  p50 {row.p50_ms:7.2f} ms  "
                f"p99 {row.p99_ms:7.2f} ms  {row.detail}")  # fmt: skip
            rows.append(row)
        for concurrency in args.concurrency:
            asyncio.run(run_search(url, queries, concurrency, WARMUP_SECONDS))
            row = measured(partial(run_search, url, queries, concurrency, args.duration))
            log(f"  search (service) c={concurrency:<3} {row.per_second:8.1f} req/s  p50 {row.p50_ms:7.2f} ms  "
                f"p99 {row.p99_ms:7.2f} ms  {row.detail}")  # fmt: skip
            rows.append(row)
        if not args.no_http:
            rows += http_search(args, url, secret, load, workdir, queries[0])
        ok = True
    finally:
        if not args.keep:
            drop_database(args.pg_admin_url, DATABASE)
        if ok:
            shutil.rmtree(workdir, ignore_errors=True)
        else:
            log(f"logs kept in {workdir}")
    return {
        "benchmark": "library",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": " ".join(["python -m bench.library", *sys.argv[1:]]),
        "machine": machine,
        "setup": asdict(setup),
        "config": {
            "duration_seconds": args.duration,
            "concurrency": args.concurrency,
            "queries": queries,
            "http": "python -m api.cli serve (one uvicorn process), LINLI_ENVIRONMENT=production, PostgreSQL "
            f"(pool 10 + 10 overflow) and Redis; {load.name}; query `searchCatalogue(query: {queries[0]!r}, "
            "first: 20)` with totalCount and availability, sent with a bearer token nobody has (anonymous)",
        },
        "rows": [asdict(r) for r in rows],
    }


def http_search(args: argparse.Namespace, url: str, secret: str, load: Any, workdir: Path, query: str) -> list[Row]:
    server = Server(db_url=url, redis_url=args.redis_url, secret=secret, log_path=workdir / "server.log")
    body = json.dumps({"query": SEARCH_GQL, "variables": {"q": query}}, separators=(",", ":")).encode()
    rows = []
    try:
        server.start()
        for concurrency in args.concurrency:
            m = measure_best(server, args.pg_admin_url, DATABASE, load, f"{server.base}/graphql", body, "anonymous",
                             "search", concurrency, args.duration, label="HTTP", max_attempts=2,
                             quiet_limit=QUIET_LIMIT_SECONDS)  # fmt: skip
            detail = {"server_cpu_pct": m.server_cpu_pct, "postgres_cpu_pct": m.postgres_cpu_pct or 0.0,
                      "other_cpu_pct": m.other_cpu_pct, "busy_before_pct": m.background_cpu_pct}  # fmt: skip
            rows.append(Row(workload="search (HTTP)", concurrency=concurrency, seconds=m.seconds,
                            operations=m.requests, per_second=m.requests_per_second, p50_ms=m.p50_ms,
                            p99_ms=m.p99_ms, errors=m.non_200 + m.graphql_errors + m.socket_errors,
                            detail=detail))  # fmt: skip
    finally:
        server.stop()
    return rows


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        report = run(args)
    except BenchError as exc:
        print(f"\nBENCHMARK FAILED: {exc}", file=sys.stderr)
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
