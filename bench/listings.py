"""Listings benchmark: search latency over 50,000 listings through the HTTP GraphQL server.

A fresh PostgreSQL database `linli_bench_listings` is migrated and seeded (the registry demo at
scale 1 with bench.registry's seed), then N listings (default 50,000) are bulk-inserted into
明珠花苑社区: rentals, second-hand sales, job ads, rental-wanted ads and needs with Chinese titles and
descriptions made from word lists, 90% published, 5% expired and 5% waiting for moderation, spread
over the last 60 days. The real server (`python -m api.cli serve`, one uvicorn process,
LINLI_ENVIRONMENT=production, PostgreSQL + Redis) is started with bench.registry's Server, and the
demo resident of 明珠花苑 runs `listings(communityId, filter, first: 20) { totalCount … }` with wrk at
concurrency 1/10/50 (bench.registry's `measure_best`: warm-up, idle server, CPU accounting), for:

- feed: no filter, newest first;
- keyword3: a common keyword of 4 characters (两室一厅, in about 5% of listings), matched with LIKE (it has
  no cased letters; ILIKE otherwise) over the pg_trgm GIN index on title and description;
- keyword3rare: a rarer keyword of 3 characters (电动车, about 1.4%), the same way;
- keyword2: a keyword of 2 characters (冰箱): too short for trigrams, so the newest 5,000 are scanned;
- filters: rentals with a monthly rent of 1,000–2,000 yuan and 50–90 m², no keyword.

The plans PostgreSQL picks for the keyword queries are recorded (EXPLAIN) next to the figures.

    python -m bench.listings --listings 50000 --duration 5

Writes bench/results/listings.json and listings.md (the Markdown table is printed too).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import secrets
import sys
import tempfile
import time
from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import insert, select, text
from strawberry.relay import GlobalID

from api.accounts.models import RoleGrant
from api.core.database import Database
from api.core.migrations import PROJECT_ROOT, upgrade
from api.core.viewer import Role
from api.listings.models import ItemCondition, Listing, ListingKind, ListingStatus
from api.registry.models import Community, Compound
from api.registry.seed import demo_logins
from bench import registry as rb

RESULTS_DIR = PROJECT_ROOT / "bench" / "results"
DEFAULT_OUTPUT = RESULTS_DIR / "listings.json"
DATABASE = "linli_bench_listings"
COMMUNITY = "mingzhu"
BATCH = 5000

SEARCH = (
    "query L($c: ID!, $f: ListingFilterInput) { listings(communityId: $c, filter: $f, first: 20) { totalCount totalCountIsExact "
    "searchMode pageInfo { hasNextPage endCursor } edges { node { id kind title price areaM2 publishedAt "
    "compound { name } } } } }"
)
SHAPES: dict[str, dict[str, Any] | None] = {
    "feed": None,
    "keyword3": {"keyword": "两室一厅"},
    "keyword3rare": {"keyword": "电动车"},
    "keyword2": {"keyword": "冰箱"},
    "filters": {"kinds": ["RENTAL"], "minPriceCents": 100_000, "maxPriceCents": 200_000, "minAreaM2": 50,
                "maxAreaM2": 90},
}  # fmt: skip

ROOMS = ("一室一厅", "两室一厅", "两室两厅", "三室一厅", "三室两厅", "单间", "一室户")
ITEMS = (
    "冰箱", "洗衣机", "婴儿车", "儿童自行车", "电动车", "书桌", "衣柜", "沙发", "餐桌", "电视机", "空调", "微波炉",
    "电饭煲", "钢琴", "轮椅", "助行器", "课外书", "羽毛球拍", "跑步机", "鱼缸", "床垫", "书架", "台灯", "烤箱",
)  # fmt: skip
STATES = ("九成新", "八成新", "全新未拆", "闲置", "自用", "搬家处理", "低价转让", "免费送")
EMPLOYERS = ("邻里便利店", "社区超市", "物业公司", "幸福食堂", "小区快递站", "社区药店", "家政服务社", "早餐店")
POSITIONS = ("理货员", "收银员", "保洁员", "保安", "厨师", "帮厨", "配送员", "钟点工", "店员")
NEEDS = ("接送孩子放学", "陪老人去医院", "修水龙头", "搬家帮忙", "辅导小学数学", "遛狗", "照看花草", "换灯泡")
PHRASES = (
    "可面交，小区内自提。", "价格可小刀。", "有意者站内留言。", "周末方便看。", "近公交站，交通便利。",
    "采光好，南北通透。", "家电齐全，拎包入住。", "手续齐全。", "急，诚心要的来。", "非诚勿扰。",
    "带小院。", "有电梯。", "押一付三。", "适合上班族。", "适合老人居住。",
)  # fmt: skip


def gid(type_name: str, id_: int) -> str:
    return str(GlobalID(type_name, str(id_)))


# -- set-up ---------------------------------------------------------------------------------------------


def _listing(rng: random.Random, community_id: int, compounds: list[int], poster: int, now: datetime) -> dict[str, Any]:
    kind = rng.choices(list(ListingKind), weights=(30, 35, 15, 10, 10))[0]
    compound = rng.choice(compounds)
    description = "".join(rng.sample(PHRASES, 3))
    price: int | None
    area: float | None = None
    details: dict[str, Any]
    if kind is ListingKind.RENTAL:
        room = rng.choice(ROOMS)
        title = f"{rng.choice(('南区', '北区', '安华家园', '明珠园'))}{room}出租"
        price, area = rng.randrange(60_000, 350_000, 5_000), round(rng.uniform(20, 140), 1)
        details = {"room_type": room, "floor": rng.randint(1, 6), "total_floors": 6, "furnished": rng.random() < 0.5}
    elif kind is ListingKind.SALE:
        state, item = rng.choice(STATES), rng.choice(ITEMS)
        title = f"{state}{item}"
        price = 0 if state == "免费送" else rng.randrange(1_000, 300_000, 500)
        details = {"condition": rng.choice(list(ItemCondition)).value}
        description = f"{item}{description}"
    elif kind is ListingKind.JOB:
        employer = rng.choice(EMPLOYERS)
        title = f"{employer}招聘{rng.choice(POSITIONS)}"
        price = rng.randrange(250_000, 600_000, 10_000)
        details = {"employer": employer, "salary_min_cents": price, "salary_max_cents": price + 100_000, "hours": "",
                   "openings": rng.randint(1, 3)}  # fmt: skip
    elif kind is ListingKind.RENTAL_WANTED:
        room = rng.choice(ROOMS)
        title = f"求租{room}"
        price, area = rng.randrange(80_000, 300_000, 10_000), float(rng.randint(20, 90))
        details = {"room_type": room, "move_in_by": None}
    else:
        title = f"找人{rng.choice(NEEDS)}"
        price = rng.choice((None, rng.randrange(2_000, 50_000, 1_000)))
        details = {"needed_by": None}
    roll = rng.random()
    published_at = now - timedelta(seconds=rng.randint(60, 60 * 86_400))
    if roll < 0.90:
        status, expires = ListingStatus.PUBLISHED, now + timedelta(days=rng.randint(1, 30))
    elif roll < 0.95:
        status, expires = ListingStatus.EXPIRED, now - timedelta(days=rng.randint(1, 30))
    else:
        status, expires, published_at = ListingStatus.PENDING, None, now - timedelta(hours=rng.randint(1, 48))
    return {
        "community_id": community_id, "compound_id": compound, "poster_account_id": poster, "poster_resident_id": None,
        "kind": kind.value, "status": status.value, "title": title, "description": description, "price_cents": price,
        "area_m2": area, "details": details, "revision": 1, "renewals": 0, "submitted_at": published_at,
        "published_at": published_at if status is not ListingStatus.PENDING else None, "sort_at": published_at,
        "expires_at": expires, "report_count": 0, "created_at": published_at, "updated_at": published_at,
    }  # fmt: skip


async def add_listings(url: str, count: int) -> tuple[int, float, int]:
    """Bulk-insert `count` listings into 明珠花苑社区 and VACUUM ANALYZE; (community id, seconds, visible)."""
    db = Database(url, pool_size=2)
    rng = random.Random(7)
    started = time.perf_counter()
    try:
        async with db.read_session() as session:
            community_id = await session.scalar(select(Community.id).where(Community.code == COMMUNITY))
            if community_id is None:
                raise rb.BenchError(f"no community {COMMUNITY}")
            compounds = list(
                (await session.scalars(select(Compound.id).where(Compound.community_id == community_id))).all()
            )
            account_id = await session.scalar(
                select(RoleGrant.account_id)
                .where(RoleGrant.community_id == community_id, RoleGrant.role == Role.RESIDENT.value)
                .order_by(RoleGrant.account_id)
                .limit(1)
            )
            if account_id is None:
                raise rb.BenchError(f"no resident login in {COMMUNITY}")
        now = datetime.now(UTC)
        for start in range(0, count, BATCH):
            rows = [
                _listing(rng, community_id, compounds, int(account_id), now) for _ in range(min(BATCH, count - start))
            ]
            async with db.unit_of_work() as uow:
                await uow.session.execute(insert(Listing), rows)
        # VACUUM as autovacuum would after a bulk load: it sets the visibility map that index-only scans need.
        async with db.engine.connect() as conn:
            autocommit = await conn.execution_options(isolation_level="AUTOCOMMIT")
            await autocommit.execute(text("VACUUM ANALYZE listing"))
            visible = await autocommit.scalar(
                text(
                    "SELECT count(*) FROM listing WHERE community_id = :c AND status = 'published' "
                    "AND hidden_at IS NULL AND expires_at > now()"
                ),
                {"c": community_id},
            )
    finally:
        await db.dispose()
    return int(community_id), time.perf_counter() - started, int(visible or 0)


async def explain(url: str, community_id: int) -> dict[str, str]:
    """PostgreSQL's plans for the keyword queries (the SQL the service builds, written out)."""
    db = Database(url, pool_size=1)
    plans: dict[str, str] = {}
    public = f"community_id = {community_id} AND status = 'published' AND hidden_at IS NULL AND expires_at > now()"
    # The keywords have no cased letters, so the service matches them with LIKE (see search_listings).
    text_match = "(title || ' ' || description) LIKE"
    queries = {
        "keyword3 count": f"SELECT count(*) FROM listing WHERE {public} AND {text_match} '%两室一厅%'",
        "keyword3 page": f"SELECT id FROM listing WHERE {public} AND {text_match} '%两室一厅%' "
        "ORDER BY sort_at DESC, id DESC LIMIT 21",
        "keyword2 count": f"SELECT count(*) FROM listing WHERE id = ANY(array((SELECT id FROM listing WHERE {public} "
        f"ORDER BY sort_at DESC, id DESC LIMIT 5000))) AND {text_match} '%冰箱%'",
        "feed count (capped)": f"SELECT count(*) FROM (SELECT id FROM listing WHERE {public} LIMIT 10001) s",
        "filters count": f"SELECT count(*) FROM listing WHERE {public} AND kind = 'rental' AND price_cents BETWEEN "
        "100000 AND 200000 AND area_m2 BETWEEN 50 AND 90",
    }
    try:
        async with db.engine.connect() as conn:
            for name, sql in queries.items():
                rows = (await conn.execute(text(f"EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF) {sql}"))).scalars().all()
                plans[name] = "\n".join(rows)
    finally:
        await db.dispose()
    return plans


# -- report ---------------------------------------------------------------------------------------------


def markdown(report: dict[str, Any]) -> str:
    m = report["machine"]
    lines = [
        "# Listings benchmark",
        "",
        f"- date: {report['date']}",
        f"- command: `{report['command']}`",
        f"- machine: {m['nproc']} cores ({m['cpu']}), Python {m['python']}, PostgreSQL {m['postgresql']}",
        "- server: python -m api.cli serve (one uvicorn process), LINLI_ENVIRONMENT=production, PostgreSQL (pool 10 "
        "+ 10 overflow) and Redis; data: registry demo at scale 1",
        f"- listings: {report['listings']:,} in 明珠花苑社区 (90% published, 5% expired, 5% pending; "
        f"{report['visible']:,} visible to residents), inserted in {report['insert_seconds']:.1f} s",
        f"- query: `listings(communityId, filter, first: 20)` with totalCount, as the demo resident; {m['load_generator']}, "
        f"{report['duration']} s per row after a warm-up",
        "",
        "| shape | filter | totalCount | searchMode | concurrency | req/s | p50 ms | p99 ms | errors | server CPU "
        "| postgres CPU | other CPU |",
        "|---|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in report["search"]:
        errors = r["non_200"] + r["graphql_errors"] + r["socket_errors"]
        shape = report["shapes"][r["query"]]
        lines.append(
            f"| {r['query']} | `{json.dumps(shape['filter'], ensure_ascii=False)}` | {shape['total']} "
            f"| {shape['mode']}{'' if shape.get('exact', True) else ' (count capped)'} | {r['concurrency']} | {r['requests_per_second']:.1f} | {r['p50_ms']:.1f} "
            f"| {r['p99_ms']:.1f} | {errors} | {rb._fmt(r['server_cpu_pct'])} | {rb._fmt(r['postgres_cpu_pct'])} "
            f"| {rb._fmt(r['other_cpu_pct'])} |"
        )
    lines += ["", "## Plans (EXPLAIN ANALYZE on the bench data)", ""]
    for name, plan in report["plans"].items():
        lines += [f"{name}:", "", "```", plan, "```", ""]
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench.listings", description=__doc__.split("\n\n")[0])
    parser.add_argument("--listings", type=int, default=50_000, help="listings to insert (default 50000)")
    parser.add_argument("--duration", type=int, default=5, help="seconds per row (default 5)")
    parser.add_argument("--concurrency", type=rb._int_list, default=[1, 10, 50], help="default 1,10,50")
    parser.add_argument("--shapes", default=",".join(SHAPES), help=f"comma-separated, of {', '.join(SHAPES)}")
    parser.add_argument("--quiet-wait", type=float, default=30.0, help="longest wait for an idle machine per row")
    parser.add_argument("--attempts", type=int, default=2, help="measurements per row while disturbed (default 2)")
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT, help="JSON; the .md goes next to it")
    parser.add_argument("--keep", action="store_true", help="keep the bench database")
    parser.add_argument("--pg-admin-url", default=rb.PG_ADMIN_URL)
    parser.add_argument("--redis-url", default=rb.REDIS_URL)
    return parser


def run(args: argparse.Namespace) -> dict[str, Any]:
    secret = secrets.token_urlsafe(48)
    workdir = Path(tempfile.mkdtemp(prefix="linli-bench-listings-"))
    load, note = rb.pick_load_generator("auto", workdir)
    machine = rb.machine_info(args.pg_admin_url, load, note)
    url = rb.database_url(args.pg_admin_url, DATABASE)
    rb.log(f"creating, migrating and seeding {DATABASE}")
    rb.create_database(args.pg_admin_url, DATABASE)
    server: rb.Server | None = None
    shapes = [s for s in args.shapes.split(",") if s]
    try:
        upgrade(url)
        asyncio.run(rb.seed(url, secret, 1, DATABASE))
        community_id, insert_seconds, visible = asyncio.run(add_listings(url, args.listings))
        rb.log(f"inserted {args.listings} listings in {insert_seconds:.1f}s")
        plans = asyncio.run(explain(url, community_id))
        # One account sends every request: the per-account and per-address request limits would refuse them.
        server = rb.Server(
            db_url=url, redis_url=args.redis_url, secret=secret, log_path=workdir / "server.log",
            extra_env={"LINLI_RATE_LIMIT_PER_ADDRESS": "1000000000", "LINLI_RATE_LIMIT_PER_ACCOUNT": "1000000000"},
        )  # fmt: skip
        server.start()
        graphql_url = f"{server.base}/graphql"
        resident = next(d for d in demo_logins() if d.community_code == COMMUNITY and d.role == "resident")
        described: dict[str, dict[str, Any]] = {}
        with httpx.Client(timeout=rb.REQUEST_TIMEOUT_SECONDS) as client:
            data, _ = rb.graphql(
                client, graphql_url, rb.LOGIN_MUTATION, {"phone": resident.phone, "password": resident.password}
            )
            token = str(data["login"]["token"])
            for name in shapes:
                variables = {"c": gid("Community", community_id), "f": SHAPES[name]}
                data, size = rb.graphql(client, graphql_url, SEARCH, variables, token)
                described[name] = {
                    "filter": SHAPES[name], "total": data["listings"]["totalCount"],
                    "mode": data["listings"]["searchMode"], "exact": data["listings"]["totalCountIsExact"], "bytes": size,
                }  # fmt: skip
        rb.log(f"shapes: {described}")
        results = []
        for name in shapes:
            body = json.dumps(
                {"query": SEARCH, "variables": {"c": gid("Community", community_id), "f": SHAPES[name]}},
                separators=(",", ":"),
            ).encode()
            for concurrency in args.concurrency:
                m = rb.measure_best(server, args.pg_admin_url, DATABASE, load, graphql_url, body, token, name,
                                    concurrency, args.duration, label="listings", max_attempts=args.attempts,
                                    quiet_limit=args.quiet_wait)  # fmt: skip
                results.append(m)
    finally:
        if server is not None:
            server.stop()
        if not args.keep:
            rb.drop_database(args.pg_admin_url, DATABASE)
    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": "python -m bench.listings " + " ".join(sys.argv[1:]),
        "machine": machine,
        "listings": args.listings,
        "visible": visible,
        "insert_seconds": round(insert_seconds, 1),
        "duration": args.duration,
        "shapes": described,
        "plans": plans,
        "search": [asdict(m) for m in results],
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
