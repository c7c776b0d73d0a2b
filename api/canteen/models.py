"""The canteen (幸福食堂): canteens, price rules, meals, reservations and the kitchen's count sheets.

What the database enforces, so that no race in the application can break it:

- A meal's capacity. ``CanteenMeal.reserved`` counts the active reservations; a reservation takes
  a portion with one conditional ``UPDATE … SET reserved = reserved + 1 WHERE reserved < capacity
  AND closed_at IS NULL``, and ``CHECK (reserved <= capacity)`` makes an over-booked row
  impossible whatever the application does. The UPDATE holds the meal's row lock until commit, so
  the reservations of one meal queue on it and each sees the count its predecessor left.
- One active reservation per resident and meal: a partial unique index
  ``(meal_id, resident_id) WHERE status = 'active'``.
- One meal of each kind per canteen and day, one count sheet per meal (unique keys).
- Closing a meal at its cut-off is the conditional ``UPDATE … SET closed_at = now WHERE closed_at
  IS NULL``: it waits for reservations in flight on the row lock, and after it no reservation or
  cancellation can change the meal.
"""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum
from typing import Any

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


class MealKind(StrEnum):
    BREAKFAST = "breakfast"
    LUNCH = "lunch"
    DINNER = "dinner"


class ReservationStatus(StrEnum):
    ACTIVE = "active"
    CANCELLED = "cancelled"


class Canteen(Base):
    """A community canteen with its opening days and its reservation cut-offs per meal kind.

    A cut-off is in minutes from midnight (China time) of the meal's day; negative means the day
    before (-240 is 20:00 the evening before).
    """

    __tablename__ = "canteen"
    __table_args__ = (
        UniqueConstraint("community_id", "name"),
        CheckConstraint("default_capacity >= 1", name="capacity_positive"),
        CheckConstraint(
            "breakfast_cutoff_minute BETWEEN -2880 AND 1440 AND lunch_cutoff_minute BETWEEN -2880 AND 1440"
            " AND dinner_cutoff_minute BETWEEN -2880 AND 1440",
            name="cutoff_range",
        ),
    )

    id: Mapped[int] = pk()
    community_id: Mapped[int] = mapped_column(BigId, ForeignKey("community.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    location: Mapped[str] = mapped_column(String(200), default="")
    # Weekdays it serves on, 0 Monday … 6 Sunday.
    opening_days: Mapped[list[int]] = mapped_column(JsonDoc, default=list)
    default_capacity: Mapped[int] = mapped_column(Integer, default=60)
    breakfast_cutoff_minute: Mapped[int] = mapped_column(Integer, default=-240)
    lunch_cutoff_minute: Mapped[int] = mapped_column(Integer, default=570)
    dinner_cutoff_minute: Mapped[int] = mapped_column(Integer, default=900)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = stamped_now()


class CanteenPriceRule(Base):
    """A price for the eligible: a minimum age and/or a registry tag; the cheapest matching rule wins."""

    __tablename__ = "canteen_price_rule"
    __table_args__ = (
        UniqueConstraint("canteen_id", "name"),
        CheckConstraint("price_fen >= 0", name="price_not_negative"),
        CheckConstraint("min_age IS NOT NULL OR tag IS NOT NULL", name="has_condition"),
        CheckConstraint("min_age IS NULL OR (min_age >= 0 AND min_age <= 150)", name="age_range"),
    )

    id: Mapped[int] = pk()
    community_id: Mapped[int] = mapped_column(BigId, ForeignKey("community.id", ondelete="CASCADE"), index=True)
    canteen_id: Mapped[int] = mapped_column(BigId, ForeignKey("canteen.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(50))
    min_age: Mapped[int | None] = mapped_column(Integer)
    tag: Mapped[str | None] = mapped_column(String(32))
    meal_kind: Mapped[str | None] = mapped_column(String(20))  # None: every meal
    price_fen: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = stamped_now()


class CanteenMeal(Base):
    """One meal (breakfast, lunch or dinner) of a canteen on one day: the menu, price and portions."""

    __tablename__ = "canteen_meal"
    __table_args__ = (
        UniqueConstraint("canteen_id", "served_on", "kind"),
        CheckConstraint("capacity >= 1", name="capacity_positive"),
        CheckConstraint("reserved >= 0 AND reserved <= capacity", name="within_capacity"),
        CheckConstraint("base_price_fen >= 0", name="price_not_negative"),
        CheckConstraint("serves_until > serves_from", name="serving_window"),
        Index("ix_canteen_meal_community_id_served_on", "community_id", "served_on"),
        Index(
            "ix_canteen_meal_open_cutoff",
            "cutoff_at",
            postgresql_where=text("closed_at IS NULL"),
            sqlite_where=text("closed_at IS NULL"),
        ),
    )

    id: Mapped[int] = pk()
    community_id: Mapped[int] = mapped_column(BigId, ForeignKey("community.id", ondelete="CASCADE"))
    canteen_id: Mapped[int] = mapped_column(BigId, ForeignKey("canteen.id", ondelete="CASCADE"))
    served_on: Mapped[date] = mapped_column(Date)
    kind: Mapped[str] = mapped_column(String(20))
    dishes: Mapped[list[str]] = mapped_column(JsonDoc, default=list)
    base_price_fen: Mapped[int] = mapped_column(Integer)
    capacity: Mapped[int] = mapped_column(Integer)
    # Active reservations; kept by the service's conditional updates and bounded by the CHECK.
    reserved: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    serves_from: Mapped[datetime] = mapped_column(UtcDateTime())
    serves_until: Mapped[datetime] = mapped_column(UtcDateTime())
    cutoff_at: Mapped[datetime] = mapped_column(UtcDateTime())
    closed_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    created_at: Mapped[datetime] = stamped_now()
    updated_at: Mapped[datetime] = stamped_now()


class CanteenReservation(Base):
    """A resident's portion of one meal, with the price frozen when it was made, picked up or delivered."""

    __tablename__ = "canteen_reservation"
    __table_args__ = (
        CheckConstraint("price_fen >= 0", name="price_not_negative"),
        CheckConstraint("status IN ('active', 'cancelled')", name="status_known"),
        Index(
            "uq_canteen_reservation_meal_id_resident_id",
            "meal_id",
            "resident_id",
            unique=True,
            postgresql_where=text("status = 'active'"),
            sqlite_where=text("status = 'active'"),
        ),
        Index("ix_canteen_reservation_meal_id_status", "meal_id", "status"),
        Index("ix_canteen_reservation_resident_id_id", "resident_id", "id"),
    )

    id: Mapped[int] = pk()
    community_id: Mapped[int] = mapped_column(BigId, ForeignKey("community.id", ondelete="CASCADE"), index=True)
    meal_id: Mapped[int] = mapped_column(BigId, ForeignKey("canteen_meal.id", ondelete="CASCADE"))
    resident_id: Mapped[int] = mapped_column(BigId, ForeignKey("resident.id", ondelete="CASCADE"))
    reserved_by_account_id: Mapped[int | None] = mapped_column(
        BigId, ForeignKey("account.id", ondelete="SET NULL"), index=True
    )
    status: Mapped[str] = mapped_column(String(20))
    price_fen: Mapped[int] = mapped_column(Integer)
    price_rule_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("canteen_price_rule.id", ondelete="SET NULL"))
    price_rule_name: Mapped[str] = mapped_column(String(50))  # frozen with the price; 标准价 for the base price
    delivery: Mapped[bool] = mapped_column(Boolean, default=False)
    delivery_override: Mapped[bool] = mapped_column(Boolean, default=False)  # staff allowed delivery
    note: Mapped[str] = mapped_column(String(200), default="")
    created_at: Mapped[datetime] = stamped_now()
    cancelled_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    cancelled_by_account_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("account.id", ondelete="SET NULL"))


class CanteenCountSheet(Base):
    """The kitchen's count for one meal, made once when reservations close at the cut-off."""

    __tablename__ = "canteen_count_sheet"

    id: Mapped[int] = pk()
    community_id: Mapped[int] = mapped_column(BigId, ForeignKey("community.id", ondelete="CASCADE"), index=True)
    meal_id: Mapped[int] = mapped_column(BigId, ForeignKey("canteen_meal.id", ondelete="CASCADE"), unique=True)
    portions: Mapped[int] = mapped_column(Integer)
    pickup: Mapped[int] = mapped_column(Integer)
    delivery: Mapped[int] = mapped_column(Integer)
    takings_fen: Mapped[int] = mapped_column(Integer)
    # [{"rule": "80岁以上", "price_fen": 600, "portions": 12}, …] by price then rule name.
    by_rule: Mapped[list[dict[str, Any]]] = mapped_column(JsonDoc, default=list)
    made_at: Mapped[datetime] = stamped_now()
