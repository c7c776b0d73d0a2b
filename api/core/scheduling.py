"""Periodic work with one leader across hosts; each tick is keyed by its period and runs once."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import String, UniqueConstraint, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.orm import Mapped, mapped_column

from api.core.clock import utc_now
from api.core.database import Database
from api.core.db import Base, pk, stamped_now

log = logging.getLogger(__name__)

# Arbitrary 64-bit key for pg_try_advisory_lock: "linli scheduler".
LEADER_LOCK_KEY = 0x6C696E6C69_5C


class SchedulerTick(Base):
    """A period that a periodic job has been run for; the unique key makes each run happen once."""

    __tablename__ = "scheduler_tick"
    __table_args__ = (UniqueConstraint("job_name", "period_key"),)

    id: Mapped[int] = pk()
    job_name: Mapped[str] = mapped_column(String(100))
    period_key: Mapped[str] = mapped_column(String(64))
    ran_at: Mapped[datetime] = stamped_now()


@dataclass(frozen=True, slots=True)
class PeriodicJob:
    """A job run once per period; `run` gets the period key (e.g. for idempotent planning)."""

    name: str
    period: timedelta
    run: Callable[[str], Awaitable[None]]

    def period_key(self, now: datetime) -> str:
        seconds = int(self.period.total_seconds())
        return str(int(now.timestamp()) // seconds * seconds)


class LeaderLock:
    """Leadership across hosts: a PostgreSQL session advisory lock held on its own connection.

    SQLite is the single-process embedded default, so there the one process always leads.
    """

    def __init__(self, db: Database) -> None:
        self.db = db
        self._conn: AsyncConnection | None = None

    async def acquire(self) -> bool:
        if self.db.is_sqlite:
            return True
        if self._conn is not None:
            try:
                await self._conn.execute(text("SELECT 1"))
                # End the implicit transaction: left idle in it, the leader would hold back VACUUM
                # everywhere for as long as it leads. The session-level advisory lock survives.
                await self._conn.commit()
                return True
            except Exception:
                log.warning("scheduler lost its leader connection")
                await self._close()
        conn = await self.db.engine.connect()
        try:
            got = (await conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": LEADER_LOCK_KEY})).scalar()
            await conn.commit()
        except Exception:
            await conn.close()
            raise
        if got:
            self._conn = conn
            return True
        await conn.close()
        return False

    async def _close(self) -> None:
        if self._conn is not None:
            try:
                await self._conn.close()
            except Exception:
                log.debug("closing leader connection failed", exc_info=True)
            self._conn = None

    async def release(self) -> None:
        if self._conn is not None:
            try:
                await self._conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": LEADER_LOCK_KEY})
                await self._conn.commit()
            except Exception:
                log.debug("advisory unlock failed", exc_info=True)
            await self._close()

    @property
    def held(self) -> bool:
        return self.db.is_sqlite or self._conn is not None


class Scheduler:
    """Runs periodic jobs on the leader host only."""

    def __init__(self, db: Database, jobs: list[PeriodicJob], *, tick_seconds: float = 5.0) -> None:
        self.db = db
        self.jobs = jobs
        self.tick_seconds = tick_seconds
        self.lock = LeaderLock(db)

    async def claim(self, job: PeriodicJob, period_key: str) -> bool:
        """Record that `job` runs for `period_key`; False when some host already did."""
        try:
            async with self.db.unit_of_work() as uow:
                uow.session.add(SchedulerTick(job_name=job.name, period_key=period_key))
        except IntegrityError:
            return False
        return True

    async def tick(self, now: datetime | None = None) -> list[str]:
        """Run every job whose current period has not run yet; return their names."""
        if not await self.lock.acquire():
            return []
        now = now or utc_now()
        ran: list[str] = []
        for job in self.jobs:
            key = job.period_key(now)
            if not await self.claim(job, key):
                continue
            try:
                await job.run(key)
            except Exception:
                log.exception("periodic job %s failed for period %s", job.name, key)
            ran.append(job.name)
        return ran

    async def run_forever(self, stop: asyncio.Event) -> None:
        try:
            while not stop.is_set():
                try:
                    await self.tick()
                except Exception:
                    log.exception("scheduler tick failed")
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=self.tick_seconds)
        finally:
            await self.lock.release()
