"""Idempotency keys: the same key replays the first answer; the same key with another request is refused.

A client that retries a creating request (a lost answer on a bad mobile connection) sends the same
`Idempotency-Key`. The first request claims the key with a unique row before it runs; the answer is
stored when it ends. A retry then gets the stored answer, a concurrent retry is told to wait, and a
different request under the same key is refused. A claim whose request crashed (no answer after
`stale_after`) may be taken over, and keys are forgotten after the retention period.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from sqlalchemy import Integer, LargeBinary, String, UniqueConstraint, delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, mapped_column

from api.core.clock import utc_now
from api.core.database import Database
from api.core.db import Base, UtcDateTime, is_unique_violation, pk


class IdempotencyRecord(Base):
    """One claimed key and, once the request ended, its answer."""

    __tablename__ = "idempotency_key"
    __table_args__ = (UniqueConstraint("scope", "key"),)

    id: Mapped[int] = pk()
    scope: Mapped[str] = mapped_column(String(80))  # whose key: "account:<id>"
    key: Mapped[str] = mapped_column(String(200))
    request_hash: Mapped[str] = mapped_column(String(64))
    status_code: Mapped[int | None] = mapped_column(Integer)
    content_type: Mapped[str | None] = mapped_column(String(100))
    body: Mapped[bytes | None] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utc_now, nullable=False, index=True)
    completed_at: Mapped[datetime | None] = mapped_column(UtcDateTime())


class Outcome(StrEnum):
    RUN = "run"  # the key is ours: run the request, then complete() or release()
    REPLAY = "replay"  # the stored answer
    IN_PROGRESS = "in_progress"  # another request holds the key now
    MISMATCH = "mismatch"  # the key was used for a different request


@dataclass(frozen=True, slots=True)
class Claim:
    outcome: Outcome
    record_id: int | None = None
    status_code: int | None = None
    content_type: str | None = None
    body: bytes | None = None


async def claim(db: Database, *, scope: str, key: str, request_hash: str, stale_after: timedelta) -> Claim:
    """Claim `key` for this request, or say what to answer instead."""
    now = utc_now()
    try:
        async with db.unit_of_work() as uow:
            record = IdempotencyRecord(scope=scope, key=key, request_hash=request_hash, created_at=now)
            uow.session.add(record)
            await uow.session.flush()
            return Claim(Outcome.RUN, record.id)
    except IntegrityError as exc:
        if not is_unique_violation(exc):
            raise
    async with db.unit_of_work() as uow:
        record_or_none = await uow.session.scalar(
            select(IdempotencyRecord)
            .where(IdempotencyRecord.scope == scope, IdempotencyRecord.key == key)
            .with_for_update()
        )
        if record_or_none is None:  # released between our insert and this read: try once more
            return await claim(db, scope=scope, key=key, request_hash=request_hash, stale_after=stale_after)
        record = record_or_none
        if record.request_hash != request_hash:
            return Claim(Outcome.MISMATCH)
        if record.completed_at is not None:
            return Claim(Outcome.REPLAY, record.id, record.status_code, record.content_type, record.body)
        if record.created_at > now - stale_after:
            return Claim(Outcome.IN_PROGRESS)
        record.created_at = now  # the holder crashed: take the key over
        return Claim(Outcome.RUN, record.id)


async def complete(db: Database, record_id: int, *, status_code: int, content_type: str | None, body: bytes) -> None:
    async with db.unit_of_work() as uow:
        await uow.session.execute(
            update(IdempotencyRecord)
            .where(IdempotencyRecord.id == record_id)
            .values(status_code=status_code, content_type=content_type, body=body, completed_at=utc_now())
        )


async def release(db: Database, record_id: int) -> None:
    """Forget a claim whose request failed on the server side, so a retry runs again."""
    async with db.unit_of_work() as uow:
        await uow.session.execute(delete(IdempotencyRecord).where(IdempotencyRecord.id == record_id))


async def purge(db: Database, *, older_than: timedelta) -> int:
    async with db.unit_of_work() as uow:
        result = await uow.session.execute(
            delete(IdempotencyRecord).where(IdempotencyRecord.created_at < utc_now() - older_than)
        )
    return int(getattr(result, "rowcount", 0) or 0)
