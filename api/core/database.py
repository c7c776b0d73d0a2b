"""Database: engines, short read sessions and the unit of work with its transactional outbox."""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy import event, update
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine

from api.core.clock import utc_now
from api.core.jobs import Job, JobSender, OutboundJob, OutboxMessage

log = logging.getLogger(__name__)

SQLITE_BUSY_TIMEOUT_MS = 30_000
PG_CONNECT_TIMEOUT_SECONDS = 15
PG_POOL_TIMEOUT_SECONDS = 30
PG_PING_AFTER_IDLE_SECONDS = 5.0


def _configure_sqlite(engine: AsyncEngine, *, immediate: bool) -> None:
    """WAL, a busy timeout and foreign keys; writers take the lock at BEGIN.

    pysqlite's own transaction handling begins lazily and upgrades a read lock to a write lock
    later, which fails at once with "database is locked" under concurrency. Emitting BEGIN
    ourselves (IMMEDIATE for the write engine) makes writers queue on the busy timeout instead.
    """

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(connection: Any) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


def create_engine(url: str, *, pool_size: int = 10, echo: bool = False, immediate: bool = False) -> AsyncEngine:
    """Create an async engine configured for the backend in `url`."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        engine = create_async_engine(url, echo=echo, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000})
        _configure_sqlite(engine, immediate=immediate)
        return engine
    # A database that is down or unreachable fails a request in seconds (a 503), never hangs it.
    engine = create_async_engine(
        url,
        echo=echo,
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_recycle=1800,
        pool_timeout=PG_POOL_TIMEOUT_SECONDS,
        connect_args={"timeout": PG_CONNECT_TIMEOUT_SECONDS},
    )
    _ping_when_idle(engine)
    return engine


def _ping_when_idle(engine: AsyncEngine) -> None:
    """Check a pooled connection before use only when it has been idle for a while.

    SQLAlchemy's `pool_pre_ping` pings on every checkout: a BEGIN, a query and a ROLLBACK, three
    round trips before each short read (a nested page takes about ten), which cost more than the
    reads themselves. A connection in steady use is known to be alive; one that sat idle for
    `PG_PING_AFTER_IDLE_SECONDS` (a restart, a network drop or an idle timeout may have closed it)
    is pinged, and a dead one is replaced before use, as pre-ping does. A connection that dies
    while in steady use fails its statement: SQLAlchemy then invalidates the whole pool, and the
    request gets the usual 503 with Retry-After (docs/runbook.md).
    """
    pool = engine.sync_engine.pool

    def mark_idle(_dbapi_connection: Any, record: Any) -> None:
        record.info["idle_since"] = time.monotonic()

    def ping_if_idle(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        if time.monotonic() - record.info.get("idle_since", 0.0) < PG_PING_AFTER_IDLE_SECONDS:
            return
        try:
            dbapi_connection.ping()
        except Exception as exc:
            raise DisconnectionError("the pooled connection is gone") from exc

    event.listen(pool, "connect", mark_idle)
    event.listen(pool, "checkin", mark_idle)
    event.listen(pool, "checkout", ping_if_idle)


class UnitOfWork:
    """One transaction: services change rows through `session` and record jobs with `enqueue`."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session
        self._jobs: list[Job] = []

    def enqueue(self, job: Job) -> None:
        """Record a job; it is written to the outbox in this transaction."""
        self._jobs.append(job)

    async def _write_outbox(self) -> list[OutboundJob]:
        rows = [
            OutboxMessage(actor_name=j.actor_name, queue_name=j.queue_name, kwargs=j.kwargs, delay_ms=j.delay_ms)
            for j in self._jobs
        ]
        self.session.add_all(rows)
        await self.session.flush()
        return [OutboundJob(row.id, row.to_job()) for row in rows]


class Database:
    """The process's database: read sessions for queries, units of work for changes."""

    def __init__(self, url: str, *, pool_size: int = 10, echo: bool = False) -> None:
        self.url = url
        self.is_sqlite = make_url(url).get_backend_name() == "sqlite"
        self.engine = create_engine(url, pool_size=pool_size, echo=echo)
        # SQLite needs a second engine whose transactions take the write lock at BEGIN.
        self.write_engine = (
            create_engine(url, pool_size=pool_size, echo=echo, immediate=True) if self.is_sqlite else self.engine
        )
        # Reads run in autocommit: no BEGIN and ROLLBACK round trips around each short read session.
        read_engine = self.engine if self.is_sqlite else self.engine.execution_options(isolation_level="AUTOCOMMIT")
        self._read_sessions = async_sessionmaker(read_engine, expire_on_commit=False, autoflush=False)
        self._write_sessions = async_sessionmaker(self.write_engine, expire_on_commit=False, autoflush=True)

    @asynccontextmanager
    async def read_session(self) -> AsyncIterator[AsyncSession]:
        """A short session for reads; never shared between concurrent resolvers."""
        async with self._read_sessions() as session:
            yield session

    @asynccontextmanager
    async def unit_of_work(self, sender: JobSender | None = None) -> AsyncIterator[UnitOfWork]:
        """Commit on clean exit (jobs go to the outbox in the same transaction), roll back on error.

        After the commit the jobs are published at once and marked sent; if publishing fails the
        rows stay unsent and the relay delivers them later.
        """
        async with self._write_sessions() as session:
            uow = UnitOfWork(session)
            try:
                yield uow
                outbound = await uow._write_outbox() if uow._jobs else []
                await session.commit()
            except BaseException:
                await session.rollback()
                raise
        if outbound and sender is not None:
            await self.publish(sender, outbound)

    async def publish(self, sender: JobSender, outbound: list[OutboundJob]) -> None:
        """Send committed outbox jobs and mark them sent; failures are left for the relay."""
        try:
            await sender.send(outbound)
        except Exception:
            log.warning("outbox publish failed; the relay will retry", exc_info=True)
            return
        try:
            async with self._write_sessions() as session:
                await session.execute(
                    update(OutboxMessage)
                    .where(OutboxMessage.id.in_([o.outbox_id for o in outbound]))
                    .values(sent_at=utc_now(), attempts=OutboxMessage.attempts + 1)
                )
                await session.commit()
        except Exception:
            # Sent but not marked: the relay may send again; actors are idempotent.
            log.warning("could not mark outbox rows sent", exc_info=True)

    async def dispose(self) -> None:
        await self.engine.dispose()
        if self.write_engine is not self.engine:
            await self.write_engine.dispose()
