"""The `linli` command: serve, worker, migrate, seed, export-schema.

This module is the composition root: it alone wires the API and the worker together (the
embedded default runs both in one process), so it is the one place in `api` that may import
`worker`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from api.settings import Settings, get_settings

if TYPE_CHECKING:
    from api.registry.seed import DemoLogin

log = logging.getLogger("linli")


def _logging(settings: Settings) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")


@contextlib.asynccontextmanager
async def embedded_background(services: object) -> AsyncIterator[None]:
    """The in-process worker, relay and scheduler of the embedded default."""
    import dramatiq

    from api.graphql.context import Services
    from worker import runtime
    from worker.main import install
    from worker.scheduler import build_scheduler

    assert isinstance(services, Services)
    broker = getattr(services.jobs, "broker", None)
    install(services.settings, broker)
    worker = dramatiq.Worker(dramatiq.get_broker(), worker_threads=2, worker_timeout=200)
    worker.start()
    stop = asyncio.Event()
    scheduler = build_scheduler(services.db, services.jobs, services.settings)
    task = asyncio.create_task(scheduler.run_forever(stop))
    try:
        yield
    finally:
        stop.set()
        await task
        await asyncio.to_thread(worker.stop)
        await runtime.dispose()


def _print_logins(logins: Sequence[DemoLogin]) -> None:
    print("\nDemo logins (log in with the `login` mutation, then send `Authorization: Bearer <token>`):")
    for login in logins:
        print(
            f"  {login.role:15} {login.community_code or '(新华区)':12} phone {login.phone}  password {login.password}"
        )
    print()


async def _seed(settings: Settings, *, scale: int, seed: int, only_if_empty: bool) -> None:
    from api.app import build_services
    from api.core.jobs import RecordingJobSender
    from api.registry.seed import demo_logins, is_seeded, seed_demo
    from api.tickets.seed import seed_tickets_demo

    services = build_services(settings, jobs=RecordingJobSender())
    try:
        if only_if_empty and await is_seeded(services.db):
            print("Demo data already present; not seeding again.")
        else:
            report = await seed_demo(
                services.db, cipher=services.cipher, passwords=services.passwords, scale=scale, seed=seed
            )
            categories, responders = await seed_tickets_demo(services.db)
            print(
                f"Seeded {report.communities} communities, {report.households} households, "
                f"{report.residents} residents, {categories} ticket categories and {responders} responders "
                f"in {report.seconds:.1f}s."
            )
        _print_logins(demo_logins())
    finally:
        await services.db.dispose()


def cmd_migrate(settings: Settings, _args: argparse.Namespace) -> int:
    from api.core.migrations import upgrade

    upgrade(settings.database_url)
    print("Database is at the latest revision.")
    return 0


def cmd_seed(settings: Settings, args: argparse.Namespace) -> int:
    asyncio.run(_seed(settings, scale=args.scale, seed=args.seed, only_if_empty=not args.force))
    return 0


def cmd_serve(settings: Settings, args: argparse.Namespace) -> int:
    import uvicorn

    from api.app import create_app
    from api.core.migrations import upgrade

    host = args.host or settings.host
    port = args.port or settings.port
    if settings.is_sqlite:
        # The embedded default sets itself up: migrate, and seed the demo on first start.
        upgrade(settings.database_url)
        if settings.seed_on_start:
            asyncio.run(_seed(settings, scale=1, seed=20261128, only_if_empty=True))
    background = embedded_background if settings.embedded_queue else None
    if settings.graphql_ide:
        print(f"GraphiQL: http://{host}:{port}/graphql")
    # On a pipe stdout is block-buffered, and uvicorn ends the process by re-raising SIGTERM:
    # without this the demo logins and the URL show up late, or never.
    sys.stdout.flush()
    if args.workers > 1:
        if settings.embedded_queue:
            print("--workers needs LINLI_REDIS_URL (the in-process queue lives in one process)", file=sys.stderr)
            return 2
        uvicorn.run("api.app:app_from_environment", factory=True, host=host, port=port, workers=args.workers)
        return 0
    uvicorn.run(create_app(settings, background=background), host=host, port=port, log_level="info")
    return 0


def cmd_worker(settings: Settings, args: argparse.Namespace) -> int:
    """Dramatiq worker processes plus, in this process, the scheduler (leader-elected) and relay."""
    if settings.embedded_queue:
        print("linli worker needs LINLI_REDIS_URL; the embedded default runs its worker inside `linli serve`.")
        return 2
    proc = subprocess.Popen(
        [sys.executable, "-m", "dramatiq", "worker.entry", "--processes", str(args.processes),
         "--threads", str(args.threads)]
    )  # fmt: skip
    try:
        asyncio.run(_run_scheduler(settings, proc))
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
    return proc.returncode or 0


async def _run_scheduler(settings: Settings, proc: subprocess.Popen[bytes]) -> None:
    from api.app import build_services
    from worker.scheduler import build_scheduler

    services = build_services(settings)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)

    async def watch_child() -> None:
        # The Dramatiq processes exiting (crash or signal) stops this process too.
        await asyncio.to_thread(proc.wait)
        stop.set()

    async def run_scheduler() -> None:
        try:
            await scheduler.run_forever(stop)
        finally:
            # A signal stops this process: pass it on to the Dramatiq processes, or watch_child waits forever.
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)

    scheduler = build_scheduler(services.db, services.jobs, settings)
    try:
        await asyncio.gather(run_scheduler(), watch_child())
    finally:
        await services.db.dispose()


def cmd_check_migrations(_settings: Settings, _args: argparse.Namespace) -> int:
    """On a scratch SQLite file: upgrade to head, compare with the models, downgrade to base, upgrade again."""
    import tempfile

    from alembic.util.exc import AutogenerateDiffsDetected

    from api.core.migrations import check, downgrade, upgrade

    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite+aiosqlite:///{tmp}/check.db"
        upgrade(url)
        try:
            check(url)
        except AutogenerateDiffsDetected as exc:
            print(f"The models and the migrations differ; run `make revision m=...`:\n{exc}", file=sys.stderr)
            return 1
        downgrade(url, "base")
        upgrade(url)
    print("Migrations match the models, and downgrade and upgrade cleanly.")
    return 0


def cmd_export_schema(_settings: Settings, args: argparse.Namespace) -> int:
    from api.graphql.schema import schema

    sdl = schema.as_str() + "\n"
    if args.output == "-":
        sys.stdout.write(sdl)
    else:
        Path(args.output).write_text(sdl, encoding="utf-8")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="linli", description="Linli (邻里): community services backend.")
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="Serve GraphQL (embedded default: also runs the worker in-process).")
    serve.add_argument("--host", default=None)
    serve.add_argument("--port", type=int, default=None)
    serve.add_argument("--workers", type=int, default=1, help="API processes (production stack only).")
    serve.set_defaults(func=cmd_serve)

    worker = sub.add_parser("worker", help="Run Dramatiq worker processes, the outbox relay and the scheduler.")
    worker.add_argument("--processes", type=int, default=2)
    worker.add_argument("--threads", type=int, default=4)
    worker.set_defaults(func=cmd_worker)

    migrate = sub.add_parser("migrate", help="Migrate the database to the latest revision.")
    migrate.set_defaults(func=cmd_migrate)

    seed = sub.add_parser("seed", help="Create the demo communities, people and logins.")
    seed.add_argument("--scale", type=int, default=1, help="Multiply households and people (benchmarks).")
    seed.add_argument("--seed", type=int, default=20261128, help="Random seed (the data is deterministic).")
    seed.add_argument("--force", action="store_true", help="Seed even when demo data exists.")
    seed.set_defaults(func=cmd_seed)

    checkm = sub.add_parser("check-migrations", help="Check that the migrations match the models and round-trip.")
    checkm.set_defaults(func=cmd_check_migrations)

    export = sub.add_parser("export-schema", help="Write the GraphQL SDL.")
    export.add_argument("--output", default="schema.graphql")
    export.set_defaults(func=cmd_export_schema)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    settings = get_settings()
    _logging(settings)
    return int(args.func(settings, args))


if __name__ == "__main__":
    raise SystemExit(main())
