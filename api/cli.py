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
import os
import signal
import sys
import threading
import time
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from api.settings import Settings, get_settings

if TYPE_CHECKING:
    from api.registry.seed import DemoLogin

log = logging.getLogger("linli")


def _logging(settings: Settings) -> None:
    from api.observability import configure_logging_for

    configure_logging_for(settings)


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
    from api.canteen.seed import seed_demo as seed_canteen
    from api.core.jobs import RecordingJobSender
    from api.eldercare.seed import seed_demo as seed_eldercare
    from api.hall.seed import seed_demo as seed_hall
    from api.library.seed import seed_library_demo
    from api.listings.seed import seed_demo as seed_listings
    from api.notices.seed import seed_demo as seed_notices
    from api.registry.seed import demo_logins, is_seeded, seed_demo
    from api.tickets.seed import seed_tickets_demo
    from api.venues.seed import seed_venues_demo

    services = build_services(settings, jobs=RecordingJobSender())
    try:
        if only_if_empty and await is_seeded(services.db):
            print("Demo data already present; not seeding again.")
        else:
            report = await seed_demo(
                services.db, cipher=services.cipher, passwords=services.passwords, scale=scale, seed=seed
            )
            categories, responders = await seed_tickets_demo(services.db)
            await seed_library_demo(services.db)
            await seed_venues_demo(services.db)
            for domain_seed in (seed_eldercare, seed_hall, seed_listings, seed_canteen, seed_notices):
                await domain_seed(services.db)
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
        uvicorn.run(
            "api.app:app_from_environment", factory=True, host=host, port=port, workers=args.workers, log_config=None
        )
        return 0
    uvicorn.run(create_app(settings, background=background), host=host, port=port, log_config=None)
    return 0


# `linli worker` supervises Dramatiq: restarted with backoff when it dies, stopped on a signal.
RESTART_BACKOFF_FIRST_SECONDS = 1.0
RESTART_BACKOFF_MAX_SECONDS = 30.0
HEALTHY_RUN_SECONDS = 60.0  # a run at least this long resets the backoff
SHUTDOWN_GRACE_SECONDS = 30.0  # from SIGTERM to SIGKILL
# Dramatiq's own limit for in-flight messages to finish on shutdown (inside our grace); what is
# still running then is redelivered once the process's heartbeat times out.
DRAMATIQ_SHUTDOWN_TIMEOUT_MS = 25_000


def cmd_worker(settings: Settings, args: argparse.Namespace) -> int:
    """Dramatiq worker processes (supervised) plus, in this process, the scheduler (leader-elected) and relay."""
    if settings.embedded_queue:
        print("linli worker needs LINLI_REDIS_URL; the embedded default runs its worker inside `linli serve`.")
        return 2
    # Before anything slow: from here on a signal means "stop cleanly", never "die and orphan Dramatiq".
    stopping = threading.Event()

    def request_stop(_signum: int, _frame: object) -> None:
        stopping.set()

    previous = {sig: signal.signal(sig, request_stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    log.info("starting the scheduler and %d Dramatiq processes", args.processes)
    try:
        # The slow imports happen here, where a signal just sets the flag.
        import api.app  # noqa: F401
        import worker.scheduler  # noqa: F401

        if not stopping.is_set():
            asyncio.run(_run_scheduler(settings, args, stopping))
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 0


async def _run_scheduler(settings: Settings, args: argparse.Namespace, stopping: threading.Event) -> None:
    """Supervise the Dramatiq processes and run the scheduler until SIGTERM or SIGINT."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()

    def request_stop() -> None:
        stopping.set()
        stop.set()

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, request_stop)
    if stopping.is_set():  # signalled while starting up
        stop.set()
    supervisor = asyncio.create_task(_supervise_dramatiq(_dramatiq_command(args), stop))
    # Whatever ends the supervisor ends the worker: never schedule jobs with nobody to run them.
    supervisor.add_done_callback(lambda _task: stop.set())
    try:
        from api.app import build_services
        from worker.scheduler import build_scheduler

        services = build_services(settings)
        try:
            await build_scheduler(services.db, services.jobs, settings).run_forever(stop)
        finally:
            await services.db.dispose()
    finally:
        stop.set()
        await supervisor


def _dramatiq_command(args: argparse.Namespace) -> list[str]:
    return [
        sys.executable, "-m", "dramatiq", "worker.entry",
        "--processes", str(args.processes), "--threads", str(args.threads),
        "--worker-shutdown-timeout", str(DRAMATIQ_SHUTDOWN_TIMEOUT_MS),
    ]  # fmt: skip


async def _supervise_dramatiq(command: list[str], stop: asyncio.Event) -> None:
    """Run Dramatiq until `stop`; whenever it exits on its own, start it again after a backoff.

    Dramatiq's main process shuts all its workers down and exits when one of them dies, so
    restarting it restores every process; messages the dead one held come back once its
    heartbeat times out (settings.broker_heartbeat_timeout_ms).
    """
    backoff = RESTART_BACKOFF_FIRST_SECONDS
    restarts = 0
    while not stop.is_set():
        started = time.monotonic()
        # Its own process group: a terminal's Ctrl-C reaches only this process (Dramatiq's workers
        # would otherwise get SIGTERM twice, which kills them mid-message), and at the end the
        # whole group can be killed.
        proc = await asyncio.create_subprocess_exec(*command, process_group=0)
        log.info("dramatiq started (pid %d)", proc.pid)
        exited = asyncio.ensure_future(proc.wait())
        stopped = asyncio.ensure_future(stop.wait())
        await asyncio.wait({exited, stopped}, return_when=asyncio.FIRST_COMPLETED)
        stopped.cancel()
        if not exited.done():
            await _stop_dramatiq(proc.pid, exited)
            return
        ran = time.monotonic() - started
        # A killed main process leaves its workers running: stop them before starting anew.
        await _end_process_group(proc.pid)
        if stop.is_set():
            return
        if ran >= HEALTHY_RUN_SECONDS:
            backoff = RESTART_BACKOFF_FIRST_SECONDS
        restarts += 1
        log.error(
            "dramatiq (pid %d) exited unexpectedly (%s) after %.1fs; restart #%d in %gs",
            proc.pid, _describe_exit(exited.result()), ran, restarts, backoff,
        )  # fmt: skip
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=backoff)
        backoff = min(backoff * 2, RESTART_BACKOFF_MAX_SECONDS)


async def _stop_dramatiq(pid: int, exited: asyncio.Future[int]) -> None:
    """SIGTERM to Dramatiq's main process (it passes it on to its workers), SIGKILL to the group after the grace."""
    log.info("stopping dramatiq (pid %d)", pid)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    await asyncio.wait({exited}, timeout=SHUTDOWN_GRACE_SECONDS)
    if not exited.done():
        log.warning("dramatiq did not stop within %gs; killing its process group", SHUTDOWN_GRACE_SECONDS)
    _kill_process_group(pid, signal.SIGKILL)
    await exited


async def _end_process_group(pgid: int) -> None:
    """SIGTERM what is left of a process group, SIGKILL after the grace; returns once it is empty."""
    if not _process_group_alive(pgid):
        return
    log.warning("dramatiq's main process is gone but its group %d is not; stopping it", pgid)
    _kill_process_group(pgid, signal.SIGTERM)
    deadline = time.monotonic() + SHUTDOWN_GRACE_SECONDS
    while _process_group_alive(pgid):
        if time.monotonic() > deadline:
            _kill_process_group(pgid, signal.SIGKILL)
            return
        await asyncio.sleep(0.1)


def _kill_process_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, sig)


def _process_group_alive(pgid: int) -> bool:
    """Whether a live process is in the group; zombies waiting for a reaper do not count (on Linux)."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    proc = Path("/proc")
    if not proc.is_dir():
        return True
    for stat in proc.glob("[0-9]*/stat"):
        try:
            state, _ppid, pgrp = stat.read_text().rsplit(")", 1)[1].split()[:3]
            if int(pgrp) == pgid and state != "Z":
                return True
        except (OSError, IndexError, ValueError):
            continue
    return False


def _describe_exit(returncode: int) -> str:
    if returncode < 0:
        return f"killed by {signal.Signals(-returncode).name}"
    return f"exit code {returncode}"


def cmd_dead_letters(settings: Settings, args: argparse.Namespace) -> int:
    """List the messages Dramatiq gave up on, newest first (Redis keeps them a week)."""
    if settings.embedded_queue:
        print("The in-process queue keeps no dead letters; set LINLI_REDIS_URL.", file=sys.stderr)
        return 2
    import json

    import redis

    from api.core.broker import build_broker, dead_letters

    try:
        letters = dead_letters(build_broker(settings), queue_name=args.queue, limit=args.limit)
    except redis.RedisError as exc:
        print(f"Cannot read the dead-letter queues: {exc}", file=sys.stderr)
        return 1
    if not letters:
        print(f"No dead-lettered messages in queue {args.queue}." if args.queue else "No dead-lettered messages.")
        return 0
    for letter in letters:
        call = json.dumps(letter.kwargs, ensure_ascii=False, default=str)
        if letter.args:
            call = f"{json.dumps(letter.args, ensure_ascii=False, default=str)} {call}"
        print(
            f"{letter.dead_lettered_at:%Y-%m-%d %H:%M:%S}Z  queue={letter.queue_name}  actor={letter.actor_name}"
            f"  message_id={letter.message_id}  failed_runs={letter.failed_runs}"
        )
        print(f"    args: {call}")
        print(f"    failure: {letter.failure}")
    print(f"{len(letters)} dead-lettered message(s).")
    return 0


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


def cmd_open311_key(settings: Settings, args: argparse.Namespace) -> int:
    """Create an Open311 client key for one community and print it (only its hash is stored)."""
    from api.core.database import Database
    from api.core.errors import DomainError
    from api.open311.service import create_client

    async def create() -> str:
        db = Database(settings.database_url, pool_size=1)
        try:
            async with db.unit_of_work() as uow:
                _, key = await create_client(uow, community_code=args.community, name=args.name)
            return key
        finally:
            await db.dispose()

    try:
        key = asyncio.run(create())
    except DomainError as exc:
        print(exc.message, file=sys.stderr)
        return 1
    print(f"Open311 api_key for {args.name} ({args.community}), shown only this once:\n{key}")
    return 0


def cmd_export_schema(_settings: Settings, args: argparse.Namespace) -> int:
    from api.graphql.schema import schema

    sdl = schema.as_str() + "\n"
    if args.output == "-":
        sys.stdout.write(sdl)
    else:
        Path(args.output).write_text(sdl, encoding="utf-8")
    return 0


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be 1 or more")
    return value


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

    dead = sub.add_parser("dead-letters", help="List the messages the worker gave up on (Redis dead-letter queues).")
    dead.add_argument("--queue", default=None, help="Only this queue (e.g. dispatch, notifications).")
    dead.add_argument("--limit", type=_positive_int, default=100, help="At most this many, newest first.")
    dead.set_defaults(func=cmd_dead_letters)

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

    key = sub.add_parser("open311-key", help="Create an Open311 client's api_key for a community (printed once).")
    key.add_argument("--community", required=True, help="The community code (the jurisdiction_id).")
    key.add_argument("--name", required=True, help="The client's name, e.g. 市民热线.")
    key.set_defaults(func=cmd_open311_key)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    settings = get_settings()
    _logging(settings)
    return int(args.func(settings, args))


if __name__ == "__main__":
    raise SystemExit(main())
