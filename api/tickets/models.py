"""Ticket categories, tickets, their events and photos."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import Boolean, CheckConstraint, Float, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from api.core.db import Base, BigId, JsonDoc, UtcDateTime, pk, stamped_now


class TicketKind(StrEnum):
    REPORT = "report"  # 随手拍: a problem in a public place
    REPAIR = "repair"  # 报事报修: a repair at home or in a common area
    WORKSHOP = "workshop"  # 小修小补: a booked service from a craftsperson


class TicketStatus(StrEnum):
    SUBMITTED = "submitted"
    ACKNOWLEDGED = "acknowledged"  # first contact done (回访: the call-back)
    ASSIGNED = "assigned"
    IN_PROGRESS = "in_progress"
    RESOLVED = "resolved"
    CLOSED = "closed"
    REJECTED = "rejected"
    DUPLICATE = "duplicate"
    CANCELLED = "cancelled"
    REOPENED = "reopened"


OPEN_STATUSES = frozenset(
    {
        TicketStatus.SUBMITTED,
        TicketStatus.ACKNOWLEDGED,
        TicketStatus.ASSIGNED,
        TicketStatus.IN_PROGRESS,
        TicketStatus.REOPENED,
    }
)
OPEN_STATUS_VALUES = tuple(sorted(s.value for s in OPEN_STATUSES))


class Channel(StrEnum):
    APP = "app"
    PHONE = "phone"  # taken by staff on the resident's behalf
    WALK_IN = "walk_in"
    OPEN311 = "open311"


class Area(StrEnum):
    PUBLIC = "public"
    HOME = "home"


class TicketCategory(Base):
    """A kind of problem or service, with its skill, SLA targets and extra questions."""

    __tablename__ = "ticket_category"
    __table_args__ = (UniqueConstraint("community_id", "code"),)

    id: Mapped[int] = pk()
    community_id: Mapped[int] = mapped_column(BigId, ForeignKey("community.id", ondelete="CASCADE"), index=True)
    code: Mapped[str] = mapped_column(String(50))
    name: Mapped[str] = mapped_column(String(100))
    group: Mapped[str] = mapped_column(String(50))
    kind: Mapped[str] = mapped_column(String(20))
    area: Mapped[str] = mapped_column(String(20))
    skill: Mapped[str | None] = mapped_column(String(50))
    description: Mapped[str] = mapped_column(Text, default="")
    keywords: Mapped[str] = mapped_column(String(200), default="")
    callback_minutes: Mapped[int] = mapped_column(Integer)  # first contact target
    injury_callback_minutes: Mapped[int] = mapped_column(Integer)  # tighter when someone is hurt
    resolution_hours: Mapped[int] = mapped_column(Integer)  # business hours
    duplicate_radius_m: Mapped[int] = mapped_column(Integer, default=50)
    dispatch_mode: Mapped[str] = mapped_column(String(10), default="offer")
    follow_up_days: Mapped[int] = mapped_column(Integer, default=7)
    # [{code, label, kind: text|number|boolean|choice, required, choices, blocking_answers, notice}]
    questions: Mapped[list[dict[str, Any]]] = mapped_column(JsonDoc, default=list)
    active: Mapped[bool] = mapped_column(Boolean, default=True)


class Ticket(Base):
    """One report, repair or workshop booking, from submission to closing."""

    __tablename__ = "ticket"
    __table_args__ = (
        Index("ix_ticket_community_id_status", "community_id", "status"),
        Index("ix_ticket_category_id_created_at", "category_id", "created_at"),
        CheckConstraint("rating IS NULL OR (rating >= 1 AND rating <= 5)", name="rating_range"),
    )

    id: Mapped[int] = pk()
    community_id: Mapped[int] = mapped_column(BigId, ForeignKey("community.id", ondelete="CASCADE"))
    category_id: Mapped[int] = mapped_column(BigId, ForeignKey("ticket_category.id"))
    kind: Mapped[str] = mapped_column(String(20))
    status: Mapped[str] = mapped_column(String(20))
    channel: Mapped[str] = mapped_column(String(20))
    description: Mapped[str] = mapped_column(Text)
    answers: Mapped[dict[str, Any]] = mapped_column(JsonDoc, default=dict)
    injury: Mapped[bool] = mapped_column(Boolean, default=False)
    reporter_resident_id: Mapped[int | None] = mapped_column(
        BigId, ForeignKey("resident.id", ondelete="SET NULL"), index=True
    )
    reporter_account_id: Mapped[int | None] = mapped_column(
        BigId, ForeignKey("account.id", ondelete="SET NULL"), index=True
    )
    created_by_account_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("account.id", ondelete="SET NULL"))
    contact_name: Mapped[str | None] = mapped_column(String(50))
    building_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("building.id", ondelete="SET NULL"), index=True)
    compound_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("compound.id", ondelete="SET NULL"))
    unit: Mapped[int | None] = mapped_column(Integer)
    room: Mapped[str | None] = mapped_column(String(20))
    latitude: Mapped[float | None] = mapped_column(Float)
    longitude: Mapped[float | None] = mapped_column(Float)
    address_text: Mapped[str | None] = mapped_column(String(200))
    duplicate_of_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("ticket.id", ondelete="SET NULL"), index=True)
    assignee_responder_id: Mapped[int | None] = mapped_column(
        BigId, ForeignKey("responder.id", ondelete="SET NULL"), index=True
    )
    created_at: Mapped[datetime] = stamped_now()
    updated_at: Mapped[datetime] = stamped_now()
    acknowledged_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    resolved_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    closed_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    # SLA: due times on the community's business-hours calendar.
    callback_due_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), index=True)
    resolution_due_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), index=True)
    waiting_since: Mapped[datetime | None] = mapped_column(UtcDateTime())  # paused: waiting on the resident
    sla_warned_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    escalation_level: Mapped[int] = mapped_column(Integer, default=0)
    cycle: Mapped[int] = mapped_column(Integer, default=1)  # a reopen starts a new cycle
    rating: Mapped[int | None] = mapped_column(Integer)
    rating_comment: Mapped[str | None] = mapped_column(Text)
    rated_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    follow_up_due_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), index=True)
    follow_up_answer: Mapped[str | None] = mapped_column(String(20))  # fixed, not_fixed


class TicketEvent(Base):
    """Every change of a ticket: who, when, what, with a public or internal note."""

    __tablename__ = "ticket_event"
    __table_args__ = (
        Index("ix_ticket_event_ticket_id_id", "ticket_id", "id"),
        # Events caused by a job carry a key, so a redelivered job cannot record them twice.
        UniqueConstraint("ticket_id", "dedupe_key"),
    )

    id: Mapped[int] = pk()
    community_id: Mapped[int] = mapped_column(BigId, ForeignKey("community.id", ondelete="CASCADE"), index=True)
    ticket_id: Mapped[int] = mapped_column(BigId, ForeignKey("ticket.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(30))  # status, comment, assignment, sla, rating, follow_up
    from_status: Mapped[str | None] = mapped_column(String(20))
    to_status: Mapped[str | None] = mapped_column(String(20))
    actor_account_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("account.id", ondelete="SET NULL"))
    note: Mapped[str | None] = mapped_column(Text)
    public: Mapped[bool] = mapped_column(Boolean, default=True)
    dedupe_key: Mapped[str | None] = mapped_column(String(80))
    created_at: Mapped[datetime] = stamped_now()


class TicketPhoto(Base):
    """A photo stored on disk under the media directory, served only to those who may see the ticket."""

    __tablename__ = "ticket_photo"

    id: Mapped[int] = pk()
    community_id: Mapped[int] = mapped_column(BigId, ForeignKey("community.id", ondelete="CASCADE"), index=True)
    ticket_id: Mapped[int] = mapped_column(BigId, ForeignKey("ticket.id", ondelete="CASCADE"), index=True)
    event_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("ticket_event.id", ondelete="SET NULL"))
    storage_key: Mapped[str] = mapped_column(String(200), unique=True)
    content_type: Mapped[str] = mapped_column(String(50))
    size_bytes: Mapped[int] = mapped_column(Integer)
    width: Mapped[int] = mapped_column(Integer)
    height: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = stamped_now()


class WorkshopSession(Base):
    """A craftsperson's bookable session (e.g. the Saturday pop-up in the square), cut into slots."""

    __tablename__ = "workshop_session"
    __table_args__ = (CheckConstraint("ends_at > starts_at", name="ends_after_start"),)

    id: Mapped[int] = pk()
    community_id: Mapped[int] = mapped_column(BigId, ForeignKey("community.id", ondelete="CASCADE"), index=True)
    responder_id: Mapped[int] = mapped_column(BigId, ForeignKey("responder.id", ondelete="CASCADE"), index=True)
    category_id: Mapped[int] = mapped_column(BigId, ForeignKey("ticket_category.id"))
    title: Mapped[str] = mapped_column(String(100))
    location: Mapped[str] = mapped_column(String(200))
    starts_at: Mapped[datetime] = mapped_column(UtcDateTime(), index=True)
    ends_at: Mapped[datetime] = mapped_column(UtcDateTime())
    slot_minutes: Mapped[int] = mapped_column(Integer)
    seats_per_slot: Mapped[int] = mapped_column(Integer, default=1)
    price_cents: Mapped[int] = mapped_column(Integer, default=0)  # 0 = free
    cancelled_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    created_at: Mapped[datetime] = stamped_now()


class WorkshopBooking(Base):
    """A resident's seat in one slot; the unique seat number caps each slot at its seats."""

    __tablename__ = "workshop_booking"
    __table_args__ = (
        UniqueConstraint("session_id", "slot_start", "seat"),
        CheckConstraint("seat >= 1", name="seat_positive"),
    )

    id: Mapped[int] = pk()
    community_id: Mapped[int] = mapped_column(BigId, ForeignKey("community.id", ondelete="CASCADE"), index=True)
    session_id: Mapped[int] = mapped_column(BigId, ForeignKey("workshop_session.id", ondelete="CASCADE"), index=True)
    slot_start: Mapped[datetime] = mapped_column(UtcDateTime())
    seat: Mapped[int | None] = mapped_column(Integer)  # null once cancelled, freeing the seat
    resident_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("resident.id", ondelete="SET NULL"))
    account_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("account.id", ondelete="SET NULL"), index=True)
    ticket_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("ticket.id", ondelete="SET NULL"))
    status: Mapped[str] = mapped_column(String(20), default="booked")  # booked, cancelled
    created_at: Mapped[datetime] = stamped_now()


class Open311Client(Base):
    """An Open311 client allowed to POST requests for one community (the key is stored hashed)."""

    __tablename__ = "open311_client"

    id: Mapped[int] = pk()
    community_id: Mapped[int] = mapped_column(BigId, ForeignKey("community.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = stamped_now()
