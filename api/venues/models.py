"""Venues (the fourth-floor rooms), their hours, room bookings, activities and sign-ups.

What the database enforces, so that no race in the application can break it:

- Room bookings never overlap. On PostgreSQL an EXCLUDE constraint (btree_gist) over
  ``(venue_id WITH =, tstzrange(starts_at, ends_at) WITH &&)`` for pending and confirmed bookings.
  It is declared here with ``ddl_if(dialect="postgresql")`` and created by the migration. SQLite has
  no exclusion constraints; there every writer holds the database's one write lock from BEGIN
  (BEGIN IMMEDIATE, api/core/database.py), so the service's conditional insert
  (``INSERT … SELECT … WHERE NOT EXISTS (an overlapping booking)``, one statement) cannot race.
- An activity's seats: a confirmed (or offered) sign-up holds a seat number 1..capacity, and the
  partial unique index ``(activity_id, seat) WHERE seat IS NOT NULL`` lets no two hold the same one.
- Waitlist positions come from ``VenueActivity.waitlist_seq``, bumped by a conditional
  ``UPDATE … RETURNING``; ``(activity_id, waitlist_position)`` is unique too.
- One live sign-up per participant and activity: unique ``(activity_id, participant_resident_id)``
  where the status is not cancelled.
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
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import ExcludeConstraint
from sqlalchemy.orm import Mapped, mapped_column

from api.core.db import Base, BigId, JsonDoc, UtcDateTime, pk, stamped_now


class VenueKind(StrEnum):
    CHILDREN = "children"  # 儿童活动室: slides and toys
    LIBRARY = "library"  # 图书室
    SPORTS = "sports"  # 文体活动室 for older residents
    MEETING = "meeting"  # 会议室, a study room in the holidays


class BookingStatus(StrEnum):
    PENDING = "pending"  # waiting for staff approval
    CONFIRMED = "confirmed"
    REJECTED = "rejected"
    CANCELLED = "cancelled"


HOLDING_BOOKING_STATUSES = (BookingStatus.PENDING.value, BookingStatus.CONFIRMED.value)


class ActivityKind(StrEnum):
    CRAFT = "craft"  # paper cutting, scratch art, pottery
    READING = "reading"
    SPORTS = "sports"
    STUDY = "study"
    TALK = "talk"
    PLAY = "play"
    OTHER = "other"


class SignUpStatus(StrEnum):
    CONFIRMED = "confirmed"  # holds a seat
    WAITLISTED = "waitlisted"
    OFFERED = "offered"  # a freed seat is held for them until the offer expires
    CANCELLED = "cancelled"
    ATTENDED = "attended"  # checked in
    NO_SHOW = "no_show"


# Statuses that hold a seat, and those that count as "signed up" (not cancelled).
SEATED_STATUSES = (SignUpStatus.CONFIRMED.value, SignUpStatus.OFFERED.value)
LIVE_STATUSES = (
    SignUpStatus.CONFIRMED.value,
    SignUpStatus.WAITLISTED.value,
    SignUpStatus.OFFERED.value,
    SignUpStatus.ATTENDED.value,
    SignUpStatus.NO_SHOW.value,
)


class Venue(Base):
    """A room of the community that hosts activities and (if bookable) is booked by residents."""

    __tablename__ = "venue"
    __table_args__ = (
        UniqueConstraint("community_id", "name"),
        CheckConstraint("capacity >= 1", name="capacity_positive"),
        CheckConstraint("min_notice_hours >= 0", name="notice_not_negative"),
        CheckConstraint("max_booking_minutes >= 15", name="booking_length"),
        CheckConstraint("weekly_quota >= 0", name="quota_not_negative"),
    )

    id: Mapped[int] = pk()
    community_id: Mapped[int] = mapped_column(BigId, ForeignKey("community.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(20))
    name: Mapped[str] = mapped_column(String(100))
    location: Mapped[str] = mapped_column(String(200), default="")
    capacity: Mapped[int] = mapped_column(Integer)
    rules: Mapped[str] = mapped_column(Text, default="")
    bookable: Mapped[bool] = mapped_column(Boolean, default=False)
    min_notice_hours: Mapped[int] = mapped_column(Integer, default=2)
    max_booking_minutes: Mapped[int] = mapped_column(Integer, default=120)
    weekly_quota: Mapped[int] = mapped_column(Integer, default=2)  # bookings per resident per week; 0 = no limit
    needs_approval: Mapped[bool] = mapped_column(Boolean, default=False)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = stamped_now()


class VenueOpeningHours(Base):
    """One opening interval on one weekday (0 Monday … 6 Sunday), in minutes of the day, China time."""

    __tablename__ = "venue_opening_hours"
    __table_args__ = (
        UniqueConstraint("venue_id", "weekday", "opens_minute"),
        CheckConstraint("weekday >= 0 AND weekday <= 6", name="weekday_range"),
        CheckConstraint("opens_minute >= 0 AND closes_minute <= 1440 AND opens_minute < closes_minute", name="span"),
    )

    id: Mapped[int] = pk()
    venue_id: Mapped[int] = mapped_column(BigId, ForeignKey("venue.id", ondelete="CASCADE"), index=True)
    weekday: Mapped[int] = mapped_column(Integer)
    opens_minute: Mapped[int] = mapped_column(Integer)
    closes_minute: Mapped[int] = mapped_column(Integer)


class VenueClosure(Base):
    """The venue is closed (a holiday, repairs) from `starts_at` to `ends_at`."""

    __tablename__ = "venue_closure"
    __table_args__ = (CheckConstraint("ends_at > starts_at", name="ends_after_start"),)

    id: Mapped[int] = pk()
    venue_id: Mapped[int] = mapped_column(BigId, ForeignKey("venue.id", ondelete="CASCADE"), index=True)
    starts_at: Mapped[datetime] = mapped_column(UtcDateTime())
    ends_at: Mapped[datetime] = mapped_column(UtcDateTime())
    reason: Mapped[str] = mapped_column(String(200), default="")
    created_at: Mapped[datetime] = stamped_now()


class RoomBooking(Base):
    """A resident's (or a group's) booking of a whole room for a time slot."""

    __tablename__ = "venue_room_booking"
    __table_args__ = (
        CheckConstraint("ends_at > starts_at", name="ends_after_start"),
        Index("ix_venue_room_booking_venue_id_starts_at", "venue_id", "starts_at"),
        # No two pending or confirmed bookings of a room overlap (PostgreSQL; see the module docstring).
        ExcludeConstraint(
            ("venue_id", "="),
            (func.tstzrange(text("starts_at"), text("ends_at")), "&&"),
            name="ex_venue_room_booking_no_overlap",
            using="gist",
            where=text("status IN ('pending', 'confirmed')"),
        ).ddl_if(dialect="postgresql"),
    )

    id: Mapped[int] = pk()
    community_id: Mapped[int] = mapped_column(BigId, ForeignKey("community.id", ondelete="CASCADE"), index=True)
    venue_id: Mapped[int] = mapped_column(BigId, ForeignKey("venue.id", ondelete="CASCADE"))
    resident_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("resident.id", ondelete="SET NULL"), index=True)
    account_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("account.id", ondelete="SET NULL"), index=True)
    starts_at: Mapped[datetime] = mapped_column(UtcDateTime())
    ends_at: Mapped[datetime] = mapped_column(UtcDateTime())
    status: Mapped[str] = mapped_column(String(20))
    purpose: Mapped[str] = mapped_column(String(200), default="")
    attendees: Mapped[int] = mapped_column(Integer, default=1)
    decided_by_account_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("account.id", ondelete="SET NULL"))
    decided_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    decision_note: Mapped[str | None] = mapped_column(String(500))
    created_at: Mapped[datetime] = stamped_now()


class ActivitySeries(Base):
    """A weekly activity (e.g. paper cutting every Saturday 9:00) from which occurrences are made."""

    __tablename__ = "venue_activity_series"
    __table_args__ = (
        CheckConstraint("weekday >= 0 AND weekday <= 6", name="weekday_range"),
        CheckConstraint("until_date >= starts_on", name="until_after_start"),
    )

    id: Mapped[int] = pk()
    community_id: Mapped[int] = mapped_column(BigId, ForeignKey("community.id", ondelete="CASCADE"), index=True)
    venue_id: Mapped[int] = mapped_column(BigId, ForeignKey("venue.id", ondelete="CASCADE"), index=True)
    title: Mapped[str] = mapped_column(String(100))
    kind: Mapped[str] = mapped_column(String(20))
    weekday: Mapped[int] = mapped_column(Integer)
    start_minute: Mapped[int] = mapped_column(Integer)  # China time
    duration_minutes: Mapped[int] = mapped_column(Integer)
    starts_on: Mapped[date] = mapped_column(Date)
    until_date: Mapped[date] = mapped_column(Date)
    exceptions: Mapped[list[str]] = mapped_column(JsonDoc, default=list)  # ISO dates skipped
    organiser_account_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("account.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = stamped_now()


class VenueActivity(Base):
    """One session of an activity in a venue, with its places, age range and sign-up window."""

    __tablename__ = "venue_activity"
    __table_args__ = (
        CheckConstraint("ends_at > starts_at", name="ends_after_start"),
        CheckConstraint("capacity >= 1", name="capacity_positive"),
        CheckConstraint("signup_closes_at > signup_opens_at", name="window"),
        CheckConstraint("min_age IS NULL OR max_age IS NULL OR min_age <= max_age", name="age_range"),
        CheckConstraint("price_cents >= 0", name="price_not_negative"),
        # An occurrence of a series is made once, however often the series is extended.
        UniqueConstraint("series_id", "starts_at"),
        Index("ix_venue_activity_community_id_starts_at", "community_id", "starts_at"),
        Index("ix_venue_activity_venue_id_starts_at", "venue_id", "starts_at"),
    )

    id: Mapped[int] = pk()
    community_id: Mapped[int] = mapped_column(BigId, ForeignKey("community.id", ondelete="CASCADE"))
    venue_id: Mapped[int] = mapped_column(BigId, ForeignKey("venue.id", ondelete="CASCADE"))
    series_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("venue_activity_series.id", ondelete="SET NULL"))
    kind: Mapped[str] = mapped_column(String(20))
    title: Mapped[str] = mapped_column(String(100))
    description: Mapped[str] = mapped_column(Text, default="")
    starts_at: Mapped[datetime] = mapped_column(UtcDateTime())
    ends_at: Mapped[datetime] = mapped_column(UtcDateTime())
    capacity: Mapped[int] = mapped_column(Integer)
    min_age: Mapped[int | None] = mapped_column(Integer)
    max_age: Mapped[int | None] = mapped_column(Integer)
    signup_opens_at: Mapped[datetime] = mapped_column(UtcDateTime())
    signup_closes_at: Mapped[datetime] = mapped_column(UtcDateTime())
    price_cents: Mapped[int] = mapped_column(Integer, default=0)
    organiser_account_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("account.id", ondelete="SET NULL"))
    # The waitlist's ticket machine: each waitlisted sign-up takes the next number.
    waitlist_seq: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    cancelled_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    cancel_reason: Mapped[str | None] = mapped_column(String(500))
    reminded_at: Mapped[datetime | None] = mapped_column(UtcDateTime())  # the day-before reminders went out
    attendance_closed_at: Mapped[datetime | None] = mapped_column(UtcDateTime())  # no-shows recorded
    created_at: Mapped[datetime] = stamped_now()


class SignUp(Base):
    """A participant's place (or place in line) at one activity, made by them or their guardian."""

    __tablename__ = "venue_sign_up"
    __table_args__ = (
        CheckConstraint("seat IS NULL OR seat >= 1", name="seat_positive"),
        CheckConstraint("waitlist_position IS NULL OR waitlist_position >= 1", name="position_positive"),
        # Capacity: a seat number is held by one sign-up at most (the service hands out 1..capacity).
        Index(
            "uq_venue_sign_up_activity_id_seat",
            "activity_id",
            "seat",
            unique=True,
            postgresql_where=text("seat IS NOT NULL"),
            sqlite_where=text("seat IS NOT NULL"),
        ),
        Index(
            "uq_venue_sign_up_activity_id_waitlist_position",
            "activity_id",
            "waitlist_position",
            unique=True,
            postgresql_where=text("waitlist_position IS NOT NULL"),
            sqlite_where=text("waitlist_position IS NOT NULL"),
        ),
        # One live sign-up per participant and activity.
        Index(
            "uq_venue_sign_up_activity_id_participant",
            "activity_id",
            "participant_resident_id",
            unique=True,
            postgresql_where=text("status <> 'cancelled'"),
            sqlite_where=text("status <> 'cancelled'"),
        ),
        UniqueConstraint("activity_id", "check_in_code"),
        Index("ix_venue_sign_up_activity_id_status", "activity_id", "status"),
        Index("ix_venue_sign_up_participant_resident_id_status", "participant_resident_id", "status"),
    )

    id: Mapped[int] = pk()
    community_id: Mapped[int] = mapped_column(BigId, ForeignKey("community.id", ondelete="CASCADE"), index=True)
    activity_id: Mapped[int] = mapped_column(BigId, ForeignKey("venue_activity.id", ondelete="CASCADE"))
    participant_resident_id: Mapped[int] = mapped_column(BigId, ForeignKey("resident.id", ondelete="CASCADE"))
    signed_up_by_account_id: Mapped[int | None] = mapped_column(
        BigId, ForeignKey("account.id", ondelete="SET NULL"), index=True
    )
    status: Mapped[str] = mapped_column(String(20))
    seat: Mapped[int | None] = mapped_column(Integer)
    waitlist_position: Mapped[int | None] = mapped_column(Integer)
    offer_expires_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), index=True)
    check_in_code: Mapped[str] = mapped_column(String(12))
    checked_in_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    cancelled_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    cancel_reason: Mapped[str | None] = mapped_column(String(30))  # participant, organiser, offer_expired
    created_at: Mapped[datetime] = stamped_now()
    updated_at: Mapped[datetime] = stamped_now()


class CalendarToken(Base):
    """An account's secret for its personal iCalendar feed (stored as a SHA-256 digest)."""

    __tablename__ = "venue_calendar_token"

    id: Mapped[int] = pk()
    account_id: Mapped[int] = mapped_column(BigId, ForeignKey("account.id", ondelete="CASCADE"), unique=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = stamped_now()


class VenuePhoto(Base):
    """A photo of a venue, stored under the media directory; public to anyone who can see its community."""

    __tablename__ = "venue_photo"

    id: Mapped[int] = pk()
    community_id: Mapped[int] = mapped_column(BigId, ForeignKey("community.id", ondelete="CASCADE"), index=True)
    venue_id: Mapped[int] = mapped_column(BigId, ForeignKey("venue.id", ondelete="CASCADE"), index=True)
    storage_key: Mapped[str] = mapped_column(String(200), unique=True)
    content_type: Mapped[str] = mapped_column(String(50))
    size_bytes: Mapped[int] = mapped_column(Integer)
    width: Mapped[int] = mapped_column(Integer)
    height: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = stamped_now()
