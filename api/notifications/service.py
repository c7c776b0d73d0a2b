"""Write inbox notifications exactly once per (recipient, event), and read the inbox."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from api.core.clock import utc_now
from api.core.database import UnitOfWork
from api.notifications.models import Notification


@dataclass(frozen=True, slots=True)
class Message:
    community_id: int
    event_key: str
    subject_kind: str
    subject_id: int
    title: str
    body: str


async def notify(uow: UnitOfWork, *, recipients: Iterable[int], message: Message) -> int:
    """Put `message` in each recipient's inbox; a repeat of the same event adds nothing. Returns rows added."""
    rows = [
        {
            "community_id": message.community_id,
            "recipient_account_id": account_id,
            "event_key": message.event_key[:120],
            "subject_kind": message.subject_kind,
            "subject_id": message.subject_id,
            "title": message.title[:200],
            "body": message.body,
            "created_at": utc_now(),
        }
        for account_id in sorted(set(recipients))
    ]
    if not rows:
        return 0
    dialect = uow.session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    stmt = (
        insert(Notification).values(rows).on_conflict_do_nothing(index_elements=["recipient_account_id", "event_key"])
    )
    result = await uow.session.execute(stmt)
    return int(getattr(result, "rowcount", 0) or 0)


async def unread_count(session: AsyncSession, *, account_id: int) -> int:
    return int(
        await session.scalar(
            select(func.count()).where(Notification.recipient_account_id == account_id, Notification.read_at.is_(None))
        )
        or 0
    )


async def mark_read(uow: UnitOfWork, *, account_id: int, notification_ids: list[int]) -> int:
    """Mark the viewer's own notifications read; others' ids are ignored."""
    result = await uow.session.execute(
        update(Notification)
        .where(
            Notification.recipient_account_id == account_id,
            Notification.id.in_(notification_ids),
            Notification.read_at.is_(None),
        )
        .values(read_at=utc_now())
    )
    return int(getattr(result, "rowcount", 0) or 0)
