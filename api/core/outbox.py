"""The outbox relay: sends jobs whose immediate publish did not happen (broker down, crash).

It also covers the broker losing what it held. Redis keeps nothing on disk here, so a restart
empties its queues; its `run_id` changes with every start. When the relay sees a new run id it
sends again every job published within the replay window (and every delayed job still waiting),
with what is left of its delay. Every actor is idempotent, so a job that had already run does
nothing the second time, and one that was lost now runs.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime, timedelta

from sqlalchemy import String, func, select, update
from sqlalchemy.orm import Mapped, mapped_column

from api.core.clock import utc_now
from api.core.database import Database
from api.core.db import Base, UtcDateTime
from api.core.jobs import JobSender, OutboundJob, OutboxMessage

log = logging.getLogger(__name__)


async def relay_pending(
    db: Database, sender: JobSender, *, older_than: timedelta = timedelta(seconds=10), batch_size: int = 500
) -> int:
    """Send unsent outbox rows older than `older_than`; return how many were sent.

    Rows are claimed with ``FOR UPDATE SKIP LOCKED`` on PostgreSQL, so relays on several hosts
    never send the same row at the same time. Rows stay locked until they are marked sent; if
    sending fails the transaction rolls back with only the attempt counted.
    """
    cutoff = utc_now() - older_than
    sent_total = 0
    while True:
        async with db.unit_of_work() as uow:
            stmt = (
                select(OutboxMessage)
                .where(OutboxMessage.sent_at.is_(None), OutboxMessage.created_at <= cutoff)
                .order_by(OutboxMessage.id)
                .limit(batch_size)
            )
            if not db.is_sqlite:
                stmt = stmt.with_for_update(skip_locked=True)
            rows = list((await uow.session.scalars(stmt)).all())
            if not rows:
                return sent_total
            outbound = [OutboundJob(row.id, row.to_job()) for row in rows]
            try:
                await sender.send(outbound)
            except Exception as exc:
                log.warning("outbox relay could not send %d jobs: %s", len(rows), exc)
                for row in rows:
                    row.attempts += 1
                    row.last_error = str(exc)[:500]
                return sent_total
            await uow.session.execute(
                update(OutboxMessage)
                .where(OutboxMessage.id.in_([r.id for r in rows]))
                .values(sent_at=utc_now(), attempts=OutboxMessage.attempts + 1, last_error=None)
            )
            sent_total += len(rows)
            if len(rows) < batch_size:
                return sent_total


async def outbox_lag(db: Database) -> tuple[int, float]:
    """Return (unsent rows, age in seconds of the oldest unsent row)."""
    async with db.read_session() as session:
        count, oldest = (
            await session.execute(
                select(func.count(), func.min(OutboxMessage.created_at)).where(OutboxMessage.sent_at.is_(None))
            )
        ).one()
    if not count or oldest is None:
        return 0, 0.0
    if oldest.tzinfo is None:
        from datetime import UTC

        oldest = oldest.replace(tzinfo=UTC)
    return int(count), (utc_now() - oldest).total_seconds()


class BrokerEpoch(Base):
    """The broker's run id when the relay last looked (one row)."""

    __tablename__ = "broker_epoch"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    run_id: Mapped[str] = mapped_column(String(64))
    seen_at: Mapped[datetime] = mapped_column(UtcDateTime())


MAX_DELAY = timedelta(days=2)  # the longest delay a job is given anywhere


def broker_run_id(sender: JobSender) -> str | None:
    """The Redis server's run id (it changes on every start), or None without Redis or when it is down."""
    client = getattr(getattr(sender, "broker", None), "client", None)
    if client is None:
        return None
    try:
        return str(client.info("server")["run_id"])
    except Exception as exc:
        log.warning("could not read the broker's run id: %s", type(exc).__name__)
        return None


async def replay_if_broker_restarted(db: Database, sender: JobSender, *, window: timedelta) -> int:
    """When the broker restarted since the last look, mark recent jobs unsent; return how many."""
    run_id = await asyncio.to_thread(broker_run_id, sender)
    if run_id is None:
        return 0
    now = utc_now()
    async with db.unit_of_work() as uow:
        epoch = await uow.session.get(BrokerEpoch, 1, with_for_update=not db.is_sqlite)
        if epoch is None:
            uow.session.add(BrokerEpoch(id=1, run_id=run_id, seen_at=now))
            return 0
        if epoch.run_id == run_id:
            return 0
        epoch.run_id, epoch.seen_at = run_id, now
        rows = (
            await uow.session.scalars(
                select(OutboxMessage).where(
                    OutboxMessage.sent_at.is_not(None), OutboxMessage.sent_at >= now - window - MAX_DELAY
                )
            )
        ).all()
        replayed = 0
        for row in rows:
            assert row.sent_at is not None
            due = row.sent_at + timedelta(milliseconds=row.delay_ms or 0)
            if row.sent_at >= now - window or due > now:
                remaining = max(0, int((due - now).total_seconds() * 1000))
                row.sent_at = None
                row.delay_ms = remaining or None
                replayed += 1
    log.warning("the broker restarted (new run id): %d recent jobs will be sent again", replayed)
    return replayed
