"""Responders, their availability, dispatch requests and assignments."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import Boolean, Float, ForeignKey, Index, Integer, String, Text, UniqueConstraint, false, text
from sqlalchemy.orm import Mapped, mapped_column

from api.core.db import Base, BigId, JsonDoc, UtcDateTime, pk, stamped_now


class ResponderKind(StrEnum):
    STAFF = "staff"
    CRAFTSPERSON = "craftsperson"
    VOLUNTEER = "volunteer"


class DispatchMode(StrEnum):
    OFFER = "offer"  # offered to the best candidate in turn
    GRAB = "grab"  # 抢单: eligible responders claim it


class RequestState(StrEnum):
    OPEN = "open"  # looking for someone
    ASSIGNED = "assigned"
    ESCALATED = "escalated"  # nobody eligible: staff must act
    CLOSED = "closed"  # the work is done or withdrawn


class AssignmentState(StrEnum):
    OFFERED = "offered"
    ACCEPTED = "accepted"
    DECLINED = "declined"
    EXPIRED = "expired"
    CANCELLED = "cancelled"
    COMPLETED = "completed"


ACTIVE_STATES = (AssignmentState.OFFERED.value, AssignmentState.ACCEPTED.value)
_ACTIVE_SQL = "state IN ('offered', 'accepted')"


class Responder(Base):
    """Someone who can be sent: a staff member, a craftsperson or a volunteer."""

    __tablename__ = "responder"
    __table_args__ = (UniqueConstraint("community_id", "account_id", "kind"),)

    id: Mapped[int] = pk()
    community_id: Mapped[int] = mapped_column(BigId, ForeignKey("community.id", ondelete="CASCADE"), index=True)
    account_id: Mapped[int] = mapped_column(BigId, ForeignKey("account.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(20))
    display_name: Mapped[str] = mapped_column(String(100))
    skills: Mapped[list[str]] = mapped_column(JsonDoc, default=list)
    max_open: Mapped[int] = mapped_column(Integer, default=5)
    # Where they live or are based: same building first, then compound.
    home_building_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("building.id", ondelete="SET NULL"))
    home_compound_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("compound.id", ondelete="SET NULL"))
    grab_enabled: Mapped[bool] = mapped_column(Boolean, default=False)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = stamped_now()


class AvailabilityWindow(Base):
    """A weekly window (China time) in which a responder takes work; none means any time."""

    __tablename__ = "availability_window"

    id: Mapped[int] = pk()
    responder_id: Mapped[int] = mapped_column(BigId, ForeignKey("responder.id", ondelete="CASCADE"), index=True)
    weekday: Mapped[int] = mapped_column(Integer)  # 0 = Monday
    start_minute: Mapped[int] = mapped_column(Integer)
    end_minute: Mapped[int] = mapped_column(Integer)


class TimeOff(Base):
    __tablename__ = "time_off"

    id: Mapped[int] = pk()
    responder_id: Mapped[int] = mapped_column(BigId, ForeignKey("responder.id", ondelete="CASCADE"), index=True)
    starts_at: Mapped[datetime] = mapped_column(UtcDateTime())
    ends_at: Mapped[datetime] = mapped_column(UtcDateTime())
    reason: Mapped[str | None] = mapped_column(String(200))


class DispatchRequest(Base):
    """The need for someone to do one piece of work (a ticket, a visit)."""

    __tablename__ = "dispatch_request"
    __table_args__ = (UniqueConstraint("kind", "subject_id"),)

    id: Mapped[int] = pk()
    community_id: Mapped[int] = mapped_column(BigId, ForeignKey("community.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(20))
    subject_id: Mapped[int] = mapped_column(BigId)
    skill: Mapped[str | None] = mapped_column(String(50))
    building_id: Mapped[int | None] = mapped_column(BigId)
    compound_id: Mapped[int | None] = mapped_column(BigId)
    mode: Mapped[str] = mapped_column(String(10), default=DispatchMode.OFFER.value)
    state: Mapped[str] = mapped_column(String(20), default=RequestState.OPEN.value, index=True)
    preferred_responder_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("responder.id", ondelete="SET NULL"))
    # The preferred responder is offered first (elder care's paired volunteer), not only a tie-breaker.
    preferred_first: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    offer_ttl_seconds: Mapped[int] = mapped_column(Integer, default=900)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = stamped_now()
    updated_at: Mapped[datetime] = stamped_now()


class Assignment(Base):
    """An offer to, or the engagement of, one responder; at most one active per subject."""

    __tablename__ = "assignment"
    __table_args__ = (
        Index(
            "uq_assignment_one_active",
            "kind",
            "subject_id",
            unique=True,
            postgresql_where=text(_ACTIVE_SQL),
            sqlite_where=text(_ACTIVE_SQL),
        ),
        Index("ix_assignment_responder_id_state", "responder_id", "state"),
    )

    id: Mapped[int] = pk()
    community_id: Mapped[int] = mapped_column(BigId, ForeignKey("community.id", ondelete="CASCADE"), index=True)
    request_id: Mapped[int] = mapped_column(BigId, ForeignKey("dispatch_request.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(20))
    subject_id: Mapped[int] = mapped_column(BigId)
    responder_id: Mapped[int] = mapped_column(BigId, ForeignKey("responder.id", ondelete="CASCADE"))
    state: Mapped[str] = mapped_column(String(20))
    mode: Mapped[str] = mapped_column(String(10))  # auto, manual, grab
    score: Mapped[float | None] = mapped_column(Float)
    reasons: Mapped[list[dict[str, Any]]] = mapped_column(JsonDoc, default=list)
    note: Mapped[str | None] = mapped_column(Text)
    offered_at: Mapped[datetime] = stamped_now()
    expires_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    responded_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    assigned_by_account_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("account.id", ondelete="SET NULL"))
