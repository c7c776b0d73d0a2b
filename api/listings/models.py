"""Listings (帮你办): rentals, sales, job and rental-wanted ads, needs, photos, reports and conversations.

Conversations put people in touch without showing either phone number.

What the database enforces, so that no race in the application can break it:

- One report per reporter and listing: unique ``(listing_id, reporter_account_id)``. The count of
  distinct reporters on the listing is bumped by a conditional ``UPDATE … RETURNING`` in the same
  transaction as the report, and that one statement also hides the listing when the count reaches
  the threshold, so exactly one report hides it however many arrive at once.
- One conversation per listing and inquirer: unique ``(listing_id, inquirer_account_id)``. Sending a
  message locks the conversation row (``FOR UPDATE`` on PostgreSQL) before counting the sender's
  messages of the day, so the daily limit holds under concurrent sends. On SQLite every writer holds
  the database's one write lock from BEGIN (BEGIN IMMEDIATE, api/core/database.py).
- A status change locks the listing's row and then checks its status (PostgreSQL ``FOR UPDATE``), so
  two moderators deciding the same listing at once cannot both win; the expiry scan is a conditional
  ``UPDATE … WHERE status = 'published'`` and never expires a listing twice.
- CHECK constraints keep the shape honest: a known kind and status, non-negative prices, a positive
  area, a published listing has an expiry, a rejected one has a reason.
- Keyword search on PostgreSQL uses one pg_trgm GIN index over ``title || ' ' || description`` (created
  by the migration, PostgreSQL only; ``ILIKE '%…%'`` on that expression with three or more characters
  uses it). One index for both columns lets the planner estimate and use it; an OR over two indexes
  ended in sequential scans.
"""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    Date,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from api.core.db import Base, BigId, JsonDoc, UtcDateTime, pk, stamped_now


class ListingKind(StrEnum):
    RENTAL = "rental"  # 房屋出租
    SALE = "sale"  # 闲置出售
    JOB = "job"  # 招聘
    RENTAL_WANTED = "rental_wanted"  # 求租
    NEED = "need"  # 需求发布


class ListingStatus(StrEnum):
    DRAFT = "draft"
    PENDING = "pending"  # submitted, waiting for moderation
    PUBLISHED = "published"
    REJECTED = "rejected"
    EXPIRED = "expired"
    WITHDRAWN = "withdrawn"  # by the poster
    REMOVED = "removed"  # by staff, after reports


class ItemCondition(StrEnum):
    NEW = "new"  # 全新
    LIKE_NEW = "like_new"  # 几乎全新
    GOOD = "good"  # 有使用痕迹
    FAIR = "fair"  # 明显旧
    FOR_PARTS = "for_parts"  # 仅作配件


class ReportReason(StrEnum):
    SPAM = "spam"
    FRAUD = "fraud"
    OFFENSIVE = "offensive"
    PROHIBITED = "prohibited"  # goods or jobs that may not be offered
    WRONG_CATEGORY = "wrong_category"
    OTHER = "other"


KINDS_SQL = ", ".join(f"'{k.value}'" for k in ListingKind)
STATUSES_SQL = ", ".join(f"'{s.value}'" for s in ListingStatus)
# Statuses the poster may still change (and so may withdraw from).
OPEN_STATUSES = (
    ListingStatus.DRAFT.value,
    ListingStatus.PENDING.value,
    ListingStatus.PUBLISHED.value,
    ListingStatus.REJECTED.value,
    ListingStatus.EXPIRED.value,
)
EDITABLE_STATUSES = (ListingStatus.DRAFT.value, ListingStatus.PENDING.value, ListingStatus.REJECTED.value)


class Listing(Base):
    """A resident's (or staff's) listing: common fields, typed search columns and a per-kind document."""

    __tablename__ = "listing"
    __table_args__ = (
        CheckConstraint(f"kind IN ({KINDS_SQL})", name="kind_known"),
        CheckConstraint(f"status IN ({STATUSES_SQL})", name="status_known"),
        CheckConstraint("price_cents IS NULL OR price_cents >= 0", name="price_not_negative"),
        CheckConstraint("area_m2 IS NULL OR area_m2 > 0", name="area_positive"),
        CheckConstraint("status <> 'published' OR expires_at IS NOT NULL", name="published_expires"),
        CheckConstraint("status <> 'rejected' OR reject_reason IS NOT NULL", name="rejected_has_reason"),
        CheckConstraint("report_count >= 0", name="report_count_not_negative"),
        # Moderation queues and a community's listings by status.
        Index("ix_listing_community_id_status_sort_at", "community_id", "status", "sort_at"),
        # The resident feed and its filters: published, not hidden, newest first. On PostgreSQL the
        # filtered columns ride along (INCLUDE), so a page and its totalCount are index-only scans.
        Index(
            "ix_listing_public_feed",
            "community_id",
            "sort_at",
            "id",
            postgresql_where=text("status = 'published' AND hidden_at IS NULL"),
            sqlite_where=text("status = 'published' AND hidden_at IS NULL"),
            postgresql_include=["expires_at", "kind", "price_cents", "area_m2", "compound_id"],
        ),
        # The expiry scan.
        Index("ix_listing_status_expires_at", "status", "expires_at"),
        Index("ix_listing_poster_account_id_status", "poster_account_id", "status"),
    )

    id: Mapped[int] = pk()
    community_id: Mapped[int] = mapped_column(BigId, ForeignKey("community.id", ondelete="CASCADE"))
    compound_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("compound.id", ondelete="SET NULL"), index=True)
    poster_account_id: Mapped[int] = mapped_column(BigId, ForeignKey("account.id", ondelete="CASCADE"))
    poster_resident_id: Mapped[int | None] = mapped_column(
        BigId, ForeignKey("resident.id", ondelete="SET NULL"), index=True
    )
    kind: Mapped[str] = mapped_column(String(20))
    status: Mapped[str] = mapped_column(String(20))
    title: Mapped[str] = mapped_column(String(100))
    description: Mapped[str] = mapped_column(Text, default="")
    # Typed columns that search filters on: the price, the monthly rent (or budget, or lowest salary).
    price_cents: Mapped[int | None] = mapped_column(Integer)
    area_m2: Mapped[float | None] = mapped_column(Float)
    # The rest of the kind's fields, validated per kind by the service.
    details: Mapped[dict[str, Any]] = mapped_column(JsonDoc, default=dict)
    # Bumped on every submission: notices about a decision are keyed by it, so each decision is told once.
    revision: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    renewals: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    submitted_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    published_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    # Newest first: the time it was last published (a renewal moves it up again).
    sort_at: Mapped[datetime] = stamped_now()
    expires_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    expiry_warned_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    expired_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    withdrawn_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    moderated_by_account_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("account.id", ondelete="SET NULL"))
    moderated_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    reject_reason: Mapped[str | None] = mapped_column(String(500))
    # Abuse reports: distinct reporters since the last review; hidden pending review at the threshold.
    report_count: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    hidden_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    hidden_reason: Mapped[str | None] = mapped_column(String(20))  # reports, staff_report
    reviewed_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    review_note: Mapped[str | None] = mapped_column(String(500))
    created_at: Mapped[datetime] = stamped_now()
    updated_at: Mapped[datetime] = stamped_now()


class ListingPhoto(Base):
    """A photo of a listing, stored under the media directory; visible to whoever can see the listing."""

    __tablename__ = "listing_photo"

    id: Mapped[int] = pk()
    community_id: Mapped[int] = mapped_column(BigId, ForeignKey("community.id", ondelete="CASCADE"), index=True)
    listing_id: Mapped[int] = mapped_column(BigId, ForeignKey("listing.id", ondelete="CASCADE"), index=True)
    storage_key: Mapped[str] = mapped_column(String(200), unique=True)
    content_type: Mapped[str] = mapped_column(String(50))
    size_bytes: Mapped[int] = mapped_column(Integer)
    width: Mapped[int] = mapped_column(Integer)
    height: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = stamped_now()


class ListingReport(Base):
    """A resident's (or staff's) report of an abusive listing; one per reporter and listing."""

    __tablename__ = "listing_report"
    __table_args__ = (UniqueConstraint("listing_id", "reporter_account_id"),)

    id: Mapped[int] = pk()
    community_id: Mapped[int] = mapped_column(BigId, ForeignKey("community.id", ondelete="CASCADE"), index=True)
    listing_id: Mapped[int] = mapped_column(BigId, ForeignKey("listing.id", ondelete="CASCADE"))
    reporter_account_id: Mapped[int] = mapped_column(BigId, ForeignKey("account.id", ondelete="CASCADE"), index=True)
    reason: Mapped[str] = mapped_column(String(20))
    note: Mapped[str] = mapped_column(String(500), default="")
    by_staff: Mapped[bool] = mapped_column(Boolean, default=False)
    resolved_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    created_at: Mapped[datetime] = stamped_now()


class ListingConversation(Base):
    """The private channel between a listing's poster and one inquirer; neither sees the other's phone."""

    __tablename__ = "listing_conversation"
    __table_args__ = (UniqueConstraint("listing_id", "inquirer_account_id"),)

    id: Mapped[int] = pk()
    community_id: Mapped[int] = mapped_column(BigId, ForeignKey("community.id", ondelete="CASCADE"), index=True)
    listing_id: Mapped[int] = mapped_column(BigId, ForeignKey("listing.id", ondelete="CASCADE"))
    inquirer_account_id: Mapped[int] = mapped_column(BigId, ForeignKey("account.id", ondelete="CASCADE"), index=True)
    poster_account_id: Mapped[int] = mapped_column(BigId, ForeignKey("account.id", ondelete="CASCADE"), index=True)
    last_message_at: Mapped[datetime] = stamped_now()
    created_at: Mapped[datetime] = stamped_now()


class ListingMessage(Base):
    """One message in a conversation; `sent_on` (China date) is what the daily limit counts by."""

    __tablename__ = "listing_message"
    __table_args__ = (
        Index("ix_listing_message_conversation_id_sender_sent_on", "conversation_id", "sender_account_id", "sent_on"),
    )

    id: Mapped[int] = pk()
    community_id: Mapped[int] = mapped_column(BigId, ForeignKey("community.id", ondelete="CASCADE"), index=True)
    conversation_id: Mapped[int] = mapped_column(BigId, ForeignKey("listing_conversation.id", ondelete="CASCADE"))
    listing_id: Mapped[int] = mapped_column(BigId, ForeignKey("listing.id", ondelete="CASCADE"), index=True)
    sender_account_id: Mapped[int] = mapped_column(BigId, ForeignKey("account.id", ondelete="CASCADE"))
    recipient_account_id: Mapped[int] = mapped_column(BigId, ForeignKey("account.id", ondelete="CASCADE"), index=True)
    body: Mapped[str] = mapped_column(Text)
    sent_on: Mapped[date] = mapped_column(Date)
    created_at: Mapped[datetime] = stamped_now()
