"""Dispatch throughput against Dramatiq's own limit on this machine.

`python -m bench.dispatch_floor [--jobs 5000] [--processes 1,2] [--threads 8]` enqueues N messages
for a bare actor (bench/bare_actor.py: one indexed read and one insert on PostgreSQL through
asyncpg) and times Dramatiq draining them, with 1 and 2 worker processes. The figure to compare is
bench/results/tickets.md section 2 (the dispatch engine: 1,000 tickets, one offer each, with its
follow-up jobs). Results go to bench/results/dispatch-floor.md.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import dramatiq
import redis
from dramatiq.brokers.redis import RedisBroker

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results" / "dispatch-floor.md"
ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
DATABASE = "linli_bench_floor"
DSN = f"postgresql://postgres@127.0.0.1:5432/{DATABASE}"
REDIS_URL = "redis://127.0.0.1:6379/13"


async def _prepare(n: int) -> None:
    admin = await asyncpg.connect(ADMIN)
    await admin.execute(f'DROP DATABASE IF EXISTS "{DATABASE}" WITH (FORCE)')
    await admin.execute(f'CREATE DATABASE "{DATABASE}"')
    await admin.close()
    conn = await asyncpg.connect(DSN)
    await conn.execute("CREATE TABLE floor_source (id bigint PRIMARY KEY, payload text NOT NULL)")
    await conn.execute("CREATE TABLE floor_done (id bigint PRIMARY KEY, done_at timestamptz NOT NULL DEFAULT now())")
    await conn.execute("INSERT INTO floor_source SELECT g, md5(g::text) FROM generate_series(1, $1) g", n)
    await conn.close()


async def _drop() -> None:
    admin = await asyncpg.connect(ADMIN)
    await admin.execute(f'DROP DATABASE IF EXISTS "{DATABASE}" WITH (FORCE)')
    await admin.close()


async def _done() -> tuple[int, datetime | None]:
    conn = await asyncpg.connect(DSN)
    try:
        row = await conn.fetchrow("SELECT count(*) AS n, max(done_at) AS last FROM floor_done")
        return int(row["n"]), row["last"]
    finally:
        await conn.close()


async def _reset() -> None:
    conn = await asyncpg.connect(DSN)
    await conn.execute("TRUNCATE floor_done")
    await conn.close()


def run_once(n: int, processes: int, threads: int) -> dict[str, float]:
    namespace = f"bench-floor-{uuid.uuid4().hex[:8]}"
    env = {**os.environ, "BENCH_FLOOR_REDIS_URL": REDIS_URL, "BENCH_FLOOR_NAMESPACE": namespace, "BENCH_FLOOR_DSN": DSN}
    asyncio.run(_reset())
    worker = subprocess.Popen(
        [sys.executable, "-m", "dramatiq", "bench.bare_actor", "-p", str(processes), "-t", str(threads)],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    try:
        time.sleep(4)  # the processes boot and connect
        broker = RedisBroker(url=REDIS_URL, namespace=namespace)  # type: ignore[no-untyped-call]
        dramatiq.set_broker(broker)
        broker.declare_queue("floor")
        started = datetime.now(UTC)
        t0 = time.perf_counter()
        for i in range(1, n + 1):
            broker.enqueue(
                dramatiq.Message(queue_name="floor", actor_name="floor.touch", args=(i,), kwargs={}, options={})
            )
        enqueue_s = time.perf_counter() - t0
        deadline = time.monotonic() + 300
        while True:
            count, last = asyncio.run(_done())
            if count >= n or time.monotonic() > deadline:
                break
            time.sleep(0.25)
        if count < n or last is None:
            raise RuntimeError(f"only {count}/{n} done")
        seconds = (last - started).total_seconds()
        return {"enqueue_s": enqueue_s, "seconds": seconds, "per_s": n / seconds}
    finally:
        os.killpg(worker.pid, signal.SIGTERM)
        try:
            worker.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(worker.pid, signal.SIGKILL)
            worker.wait(10)
        client = redis.Redis.from_url(REDIS_URL)
        keys = list(client.scan_iter(match=f"{namespace}*"))
        if keys:
            client.delete(*keys)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=5000)
    parser.add_argument("--processes", default="1,2")
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--reps", type=int, default=3)
    args = parser.parse_args(argv)
    asyncio.run(_prepare(args.jobs))
    rows = []
    for processes in (int(p) for p in args.processes.split(",")):
        runs = [run_once(args.jobs, processes, args.threads) for _ in range(args.reps)]
        best = max(runs, key=lambda r: r["per_s"])
        rows.append((processes, best, runs))
        print(f"{processes} process(es) x {args.threads} threads: {best['per_s']:.0f} jobs/s (best of {args.reps})")
    lines = [
        "# Dispatch floor: a bare Dramatiq actor on this machine",
        "",
        f"- date: {datetime.now(UTC).isoformat(timespec='seconds')}",
        f"- command: `python -m bench.dispatch_floor --jobs {args.jobs} --processes {args.processes} "
        f"--threads {args.threads} --reps {args.reps}`",
        "- actor: one indexed SELECT and one INSERT on PostgreSQL through an asyncpg pool (bench/bare_actor.py),",
        "  Redis broker with Dramatiq's defaults; time from the first enqueue to the last row written.",
        "- compare with bench/results/tickets.md, section 2 (the dispatch engine and its follow-up jobs).",
        "",
        "| worker processes × threads | jobs | enqueue s | to last job s | jobs/s (best) | all runs jobs/s |",
        "|---|---:|---:|---:|---:|---|",
    ]
    for processes, best, runs in rows:
        all_runs = ", ".join(f"{r['per_s']:.0f}" for r in runs)
        lines.append(
            f"| {processes} × {args.threads} | {args.jobs:,} | {best['enqueue_s']:.2f} | {best['seconds']:.2f} | "
            f"{best['per_s']:.0f} | {all_runs} |"
        )
    RESULTS.write_text("\n".join(lines) + "\n", encoding="utf-8")
    asyncio.run(_drop())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
