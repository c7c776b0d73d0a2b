"""Community notices (公告): the notice with its audience, and one delivery (read receipt) per account.

What the database enforces: a notice reaches each account at most once (unique ``(notice_id,
account_id)``), so a redelivered job adds nothing; a state change is a conditional UPDATE on the
notice's status (e.g. scheduled → published only once, however many schedulers race).
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import Boolean, CheckConstraint, ForeignKey, Index, String, Text, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from api.core.db import Base, BigId, JsonDoc, UtcDateTime, pk, stamped_now


class NoticeStatus(StrEnum):
    DRAFT = "draft"
    SCHEDULED = "scheduled"  # published by the worker at `publish_at`
    PUBLISHED = "published"
    WITHDRAWN = "withdrawn"


class Notice(Base):
    """An announcement to the whole community, or to compounds, buildings and tagged residents (a union)."""

    __tablename__ = "notice"
    __table_args__ = (
        CheckConstraint("status IN ('draft', 'scheduled', 'published', 'withdrawn')", name="status_known"),
        CheckConstraint("status <> 'scheduled' OR publish_at IS NOT NULL", name="scheduled_has_time"),
        Index("ix_notice_community_id_id", "community_id", "id"),
        Index(
            "ix_notice_scheduled_publish_at",
            "publish_at",
            postgresql_where=text("status = 'scheduled'"),
            sqlite_where=text("status = 'scheduled'"),
        ),
    )

    id: Mapped[int] = pk()
    community_id: Mapped[int] = mapped_column(BigId, ForeignKey("community.id", ondelete="CASCADE"))
    title: Mapped[str] = mapped_column(String(100))
    body: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(20))
    whole_community: Mapped[bool] = mapped_column(Boolean, default=False)
    compound_ids: Mapped[list[int]] = mapped_column(JsonDoc, default=list)
    building_ids: Mapped[list[int]] = mapped_column(JsonDoc, default=list)
    tags: Mapped[list[str]] = mapped_column(JsonDoc, default=list)
    author_account_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("account.id", ondelete="SET NULL"))
    publish_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    published_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    delivered_at: Mapped[datetime | None] = mapped_column(UtcDateTime())  # the inboxes were filled
    withdrawn_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    created_at: Mapped[datetime] = stamped_now()
    updated_at: Mapped[datetime] = stamped_now()


class NoticeDelivery(Base):
    """The notice reached this account (once); `read_at` is its read receipt."""

    __tablename__ = "notice_delivery"
    __table_args__ = (
        UniqueConstraint("notice_id", "account_id"),
        Index("ix_notice_delivery_account_id_read_at", "account_id", "read_at"),
    )

    id: Mapped[int] = pk()
    community_id: Mapped[int] = mapped_column(BigId, ForeignKey("community.id", ondelete="CASCADE"), index=True)
    notice_id: Mapped[int] = mapped_column(BigId, ForeignKey("notice.id", ondelete="CASCADE"))
    account_id: Mapped[int] = mapped_column(BigId, ForeignKey("account.id", ondelete="CASCADE"))
    resident_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("resident.id", ondelete="SET NULL"))
    delivered_at: Mapped[datetime] = stamped_now()
    read_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
