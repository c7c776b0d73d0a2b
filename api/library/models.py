"""Library tables: the network's branches, the catalogue, readers, loan rules, loans, holds and notices.

The per-reader loan limit lives in the database: every active loan takes a numbered slot, and
a partial unique index on (reader, slot) among active loans lets no reader hold more slots than
exist. Checkout only ever offers slots 1..max_loans, so concurrent checkouts cannot overrun it.
"""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    Date,
    ForeignKey,
    Index,
    Integer,
    String,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from api.core.db import Base, BigId, JsonDoc, UtcDateTime, pk, stamped_now


class BranchKind(StrEnum):
    CITY = "city"  # 市图书馆
    DISTRICT = "district"  # 区图书馆
    BOOK_HOUSE = "book_house"  # 社区书屋 (漂流书屋)


class FloatPolicy(StrEnum):
    """What happens to a copy of this branch returned elsewhere."""

    FLOAT = "float"  # it stays where it was returned and belongs to that shelf now
    RETURN_HOME = "return_home"  # it goes back home in transit


class CopyStatus(StrEnum):
    AVAILABLE = "available"
    ON_LOAN = "on_loan"
    IN_TRANSIT = "in_transit"
    ON_HOLD_SHELF = "on_hold_shelf"
    LOST = "lost"


class ReaderCategory(StrEnum):
    ADULT = "adult"
    CHILD = "child"  # under 14: registered through a guardian
    ELDER = "elder"  # 60 and over


class HoldStatus(StrEnum):
    WAITING = "waiting"
    TRAPPED = "trapped"  # a copy is set aside for the reader (in transit or on the hold shelf)
    COLLECTED = "collected"
    EXPIRED = "expired"
    CANCELLED = "cancelled"


OPEN_HOLD_SQL = "status IN ('waiting', 'trapped')"
ACTIVE_LOAN_SQL = "returned_at IS NULL"


class Branch(Base):
    """A service point of the city-wide network; a book house belongs to its community for staff rights."""

    __tablename__ = "library_branch"
    __table_args__ = (
        CheckConstraint("kind IN ('city', 'district', 'book_house')", name="kind_known"),
        CheckConstraint("float_policy IN ('float', 'return_home')", name="float_policy_known"),
        CheckConstraint("kind <> 'book_house' OR community_id IS NOT NULL", name="book_house_has_community"),
    )

    id: Mapped[int] = pk()
    code: Mapped[str] = mapped_column(String(50), unique=True)
    name: Mapped[str] = mapped_column(String(100))
    kind: Mapped[str] = mapped_column(String(20))
    # Staff rights: a book house's community; district libraries name their district.
    community_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("community.id", ondelete="SET NULL"), index=True)
    district: Mapped[str | None] = mapped_column(String(50))
    float_policy: Mapped[str] = mapped_column(String(20), default=FloatPolicy.FLOAT.value)
    address: Mapped[str | None] = mapped_column(String(200))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = stamped_now()


class Book(Base):
    """A title, identified network-wide by its ISBN-13."""

    __tablename__ = "library_book"

    id: Mapped[int] = pk()
    isbn: Mapped[str] = mapped_column(String(13), unique=True)
    title: Mapped[str] = mapped_column(String(300), index=True)
    author: Mapped[str] = mapped_column(String(200), index=True)
    publisher: Mapped[str | None] = mapped_column(String(200))
    year: Mapped[int | None] = mapped_column(Integer)
    subjects: Mapped[list[str]] = mapped_column(JsonDoc, default=list)
    created_at: Mapped[datetime] = stamped_now()


class Copy(Base):
    """One physical copy, with its barcode, home branch and the branch it is at now."""

    __tablename__ = "library_copy"
    __table_args__ = (
        CheckConstraint(
            "status IN ('available', 'on_loan', 'in_transit', 'on_hold_shelf', 'lost')", name="status_known"
        ),
        Index("ix_library_copy_book_id_current_branch_id", "book_id", "current_branch_id"),
        Index("ix_library_copy_current_branch_id_status", "current_branch_id", "status"),
        Index("ix_library_copy_home_branch_id", "home_branch_id"),
    )

    id: Mapped[int] = pk()
    barcode: Mapped[str] = mapped_column(String(50), unique=True)
    book_id: Mapped[int] = mapped_column(BigId, ForeignKey("library_book.id", ondelete="CASCADE"))
    home_branch_id: Mapped[int] = mapped_column(BigId, ForeignKey("library_branch.id"))
    current_branch_id: Mapped[int] = mapped_column(BigId, ForeignKey("library_branch.id"))
    # Where a copy in transit is going (home, or a hold's pickup branch).
    transit_to_branch_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("library_branch.id"))
    status: Mapped[str] = mapped_column(String(20), default=CopyStatus.AVAILABLE.value)
    item_type: Mapped[str] = mapped_column(String(20), default="book")
    created_at: Mapped[datetime] = stamped_now()
    updated_at: Mapped[datetime] = stamped_now()


class Reader(Base):
    """A resident who borrows: the national ID card is the reader card (found by its keyed hash)."""

    __tablename__ = "library_reader"
    __table_args__ = (CheckConstraint("category IN ('adult', 'child', 'elder')", name="category_known"),)

    id: Mapped[int] = pk()
    resident_id: Mapped[int] = mapped_column(BigId, ForeignKey("resident.id", ondelete="CASCADE"), unique=True)
    # The resident's national_id_hash: the lookup key of the ID card; never the plain number.
    id_hash: Mapped[str] = mapped_column(String(64), unique=True)
    category: Mapped[str] = mapped_column(String(10))
    guardian_resident_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("resident.id", ondelete="SET NULL"))
    suspended_until: Mapped[datetime | None] = mapped_column(UtcDateTime())
    registered_branch_id: Mapped[int | None] = mapped_column(
        BigId, ForeignKey("library_branch.id", ondelete="SET NULL")
    )
    created_at: Mapped[datetime] = stamped_now()


class LoanRule(Base):
    """Circulation rule for branch × reader category × item type (null = any); the most specific wins."""

    __tablename__ = "library_loan_rule"
    __table_args__ = (
        CheckConstraint("max_loans >= 0 AND max_loans <= 50", name="max_loans_range"),
        CheckConstraint("loan_days >= 1", name="loan_days_positive"),
        CheckConstraint("renewals >= 0 AND renewal_days >= 1", name="renewals_valid"),
        CheckConstraint("holds_allowed >= 0 AND hold_pickup_days >= 1", name="holds_valid"),
        CheckConstraint("suspension_days_per_overdue_day >= 0", name="suspension_valid"),
        Index("ix_library_loan_rule_branch_id", "branch_id"),
    )

    id: Mapped[int] = pk()
    branch_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("library_branch.id", ondelete="CASCADE"))
    reader_category: Mapped[str | None] = mapped_column(String(10))
    item_type: Mapped[str | None] = mapped_column(String(20))
    max_loans: Mapped[int] = mapped_column(Integer, default=3)
    loan_days: Mapped[int] = mapped_column(Integer, default=30)
    renewals: Mapped[int] = mapped_column(Integer, default=1)
    renewal_days: Mapped[int] = mapped_column(Integer, default=30)
    holds_allowed: Mapped[int] = mapped_column(Integer, default=3)  # open holds a reader may have; 0 = none
    hold_pickup_days: Mapped[int] = mapped_column(Integer, default=7)
    suspension_days_per_overdue_day: Mapped[int] = mapped_column(Integer, default=1)
    max_suspension_days: Mapped[int] = mapped_column(Integer, default=90)
    created_at: Mapped[datetime] = stamped_now()


class Loan(Base):
    """A checkout; while it is out (returned_at NULL) it holds one of the reader's numbered slots."""

    __tablename__ = "library_loan"
    __table_args__ = (
        # The loan limit: no two active loans of a reader share a slot, and slots are 1..max_loans.
        Index(
            "uq_library_loan_active_reader_slot",
            "reader_id",
            "slot",
            unique=True,
            postgresql_where=text(ACTIVE_LOAN_SQL),
            sqlite_where=text(ACTIVE_LOAN_SQL),
        ),
        # A copy is on at most one active loan.
        Index(
            "uq_library_loan_active_copy",
            "copy_id",
            unique=True,
            postgresql_where=text(ACTIVE_LOAN_SQL),
            sqlite_where=text(ACTIVE_LOAN_SQL),
        ),
        CheckConstraint("slot >= 1", name="slot_positive"),
        Index("ix_library_loan_branch_id_loaned_at", "branch_id", "loaned_at"),
        Index("ix_library_loan_reader_id_loaned_at", "reader_id", "loaned_at"),
        Index("ix_library_loan_due_at", "due_at"),
        Index("ix_library_loan_book_id", "book_id"),
        Index("ix_library_loan_returned_at", "returned_at"),
    )

    id: Mapped[int] = pk()
    copy_id: Mapped[int] = mapped_column(BigId, ForeignKey("library_copy.id"))
    book_id: Mapped[int] = mapped_column(BigId, ForeignKey("library_book.id"))
    # NULL once the history is anonymised (statistics keep the rest of the row).
    reader_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("library_reader.id", ondelete="SET NULL"))
    reader_category: Mapped[str] = mapped_column(String(10))
    slot: Mapped[int] = mapped_column(Integer)
    branch_id: Mapped[int] = mapped_column(BigId, ForeignKey("library_branch.id"))
    return_branch_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("library_branch.id"))
    loaned_at: Mapped[datetime] = mapped_column(UtcDateTime())
    due_at: Mapped[datetime] = mapped_column(UtcDateTime())
    returned_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    renewals: Mapped[int] = mapped_column(Integer, default=0)
    overdue_stage: Mapped[int] = mapped_column(Integer, default=0)  # the last overdue notice sent (days)
    anonymised_at: Mapped[datetime | None] = mapped_column(UtcDateTime())


class Hold(Base):
    """A reader's request for a title, picked up at a branch; the queue is ordered by id."""

    __tablename__ = "library_hold"
    __table_args__ = (
        CheckConstraint("status IN ('waiting', 'trapped', 'collected', 'expired', 'cancelled')", name="status_known"),
        # One open hold per reader and title.
        Index(
            "uq_library_hold_open_reader_book",
            "reader_id",
            "book_id",
            unique=True,
            postgresql_where=text(OPEN_HOLD_SQL),
            sqlite_where=text(OPEN_HOLD_SQL),
        ),
        # A copy is set aside for at most one hold.
        Index(
            "uq_library_hold_trapped_copy",
            "trapped_copy_id",
            unique=True,
            postgresql_where=text("status = 'trapped'"),
            sqlite_where=text("status = 'trapped'"),
        ),
        Index("ix_library_hold_book_id_status", "book_id", "status"),
        Index("ix_library_hold_reader_id_status", "reader_id", "status"),
        Index("ix_library_hold_expires_at", "expires_at"),
    )

    id: Mapped[int] = pk()
    book_id: Mapped[int] = mapped_column(BigId, ForeignKey("library_book.id", ondelete="CASCADE"))
    reader_id: Mapped[int] = mapped_column(BigId, ForeignKey("library_reader.id", ondelete="CASCADE"))
    pickup_branch_id: Mapped[int] = mapped_column(BigId, ForeignKey("library_branch.id"))
    status: Mapped[str] = mapped_column(String(20), default=HoldStatus.WAITING.value)
    trapped_copy_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("library_copy.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = stamped_now()
    trapped_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    # Set when the copy is on the pickup branch's hold shelf: collect it by then.
    expires_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    closed_at: Mapped[datetime | None] = mapped_column(UtcDateTime())


class ClosedDay(Base):
    """A day a branch is closed: a loan due that day is due the next open day."""

    __tablename__ = "library_closed_day"
    __table_args__ = (UniqueConstraint("branch_id", "day"),)

    id: Mapped[int] = pk()
    branch_id: Mapped[int] = mapped_column(BigId, ForeignKey("library_branch.id", ondelete="CASCADE"))
    day: Mapped[date] = mapped_column(Date)
    note: Mapped[str | None] = mapped_column(String(100))


class LibraryNotice(Base):
    """A notice sent about a loan or a hold at one stage; the unique keys make each go out once."""

    __tablename__ = "library_notice"
    __table_args__ = (
        UniqueConstraint("loan_id", "stage"),
        UniqueConstraint("hold_id", "stage"),
        CheckConstraint("(loan_id IS NULL) <> (hold_id IS NULL)", name="one_subject"),
    )

    id: Mapped[int] = pk()
    loan_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("library_loan.id", ondelete="CASCADE"))
    hold_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("library_hold.id", ondelete="CASCADE"))
    stage: Mapped[str] = mapped_column(String(30))
    recipients: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = stamped_now()
