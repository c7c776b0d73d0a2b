"""The outbox relay: sends jobs whose immediate publish did not happen (broker down, crash)."""

from __future__ import annotations

import logging
from datetime import timedelta

from sqlalchemy import func, select, update

from api.core.clock import utc_now
from api.core.database import Database
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
