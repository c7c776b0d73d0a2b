"""Registry tables: the address hierarchy and the people who live there."""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum

from sqlalchemy import Boolean, Date, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from api.core.db import Base, BigId, JsonDoc, UtcDateTime, pk, stamped_now


class Gender(StrEnum):
    MALE = "male"
    FEMALE = "female"


class ResidentTag(StrEnum):
    """Circumstances that change how the community serves a person."""

    LIVES_ALONE = "lives_alone"
    DISABLED = "disabled"
    LOW_INCOME = "low_income"
    NO_FAMILY_SUPPORT = "no_family_support"  # 孤寡: no children or family to rely on


class ConsentPurpose(StrEnum):
    PERSONAL_DATA = "personal_data"
    HEALTH_DATA = "health_data"
    PHOTOS = "photos"
    CONTACT = "contact"


class Community(Base):
    """The tenant: one residents' committee (社区居委会)."""

    __tablename__ = "community"

    id: Mapped[int] = pk()
    code: Mapped[str] = mapped_column(String(50), unique=True)
    name: Mapped[str] = mapped_column(String(100))
    city: Mapped[str] = mapped_column(String(50))
    district: Mapped[str] = mapped_column(String(50), index=True)
    street: Mapped[str] = mapped_column(String(50))
    address: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = stamped_now()


class Compound(Base):
    """A residential estate (小区) inside a community."""

    __tablename__ = "compound"
    __table_args__ = (UniqueConstraint("community_id", "name"),)

    id: Mapped[int] = pk()
    community_id: Mapped[int] = mapped_column(BigId, ForeignKey("community.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(100))


class Building(Base):
    """A building (楼栋) in a compound; households are numbered by unit and room."""

    __tablename__ = "building"
    __table_args__ = (UniqueConstraint("compound_id", "name"),)

    id: Mapped[int] = pk()
    community_id: Mapped[int] = mapped_column(BigId, ForeignKey("community.id", ondelete="CASCADE"), index=True)
    compound_id: Mapped[int] = mapped_column(BigId, ForeignKey("compound.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(50))
    floors: Mapped[int] = mapped_column(Integer)
    units: Mapped[int] = mapped_column(Integer)


class Household(Base):
    """A dwelling (户): building, unit number and room."""

    __tablename__ = "household"
    __table_args__ = (UniqueConstraint("building_id", "unit", "room"),)

    id: Mapped[int] = pk()
    community_id: Mapped[int] = mapped_column(BigId, ForeignKey("community.id", ondelete="CASCADE"), index=True)
    building_id: Mapped[int] = mapped_column(BigId, ForeignKey("building.id"), index=True)
    unit: Mapped[int] = mapped_column(Integer)
    room: Mapped[str] = mapped_column(String(20))
    created_at: Mapped[datetime] = stamped_now()


class HouseholdMove(Base):
    """History of a household's address changes."""

    __tablename__ = "household_move"

    id: Mapped[int] = pk()
    community_id: Mapped[int] = mapped_column(BigId, ForeignKey("community.id", ondelete="CASCADE"), index=True)
    household_id: Mapped[int] = mapped_column(BigId, ForeignKey("household.id", ondelete="CASCADE"), index=True)
    from_building_id: Mapped[int] = mapped_column(BigId, ForeignKey("building.id"))
    from_unit: Mapped[int] = mapped_column(Integer)
    from_room: Mapped[str] = mapped_column(String(20))
    to_building_id: Mapped[int] = mapped_column(BigId, ForeignKey("building.id"))
    to_unit: Mapped[int] = mapped_column(Integer)
    to_room: Mapped[str] = mapped_column(String(20))
    moved_by_account_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("account.id", ondelete="SET NULL"))
    moved_at: Mapped[datetime] = stamped_now()


class Resident(Base):
    """A person (居民). ID number and phone are stored encrypted, hashed for lookup and masked."""

    __tablename__ = "resident"
    __table_args__ = (
        UniqueConstraint("community_id", "national_id_hash"),
        Index("ix_resident_community_id_birth_date", "community_id", "birth_date"),
    )

    id: Mapped[int] = pk()
    community_id: Mapped[int] = mapped_column(BigId, ForeignKey("community.id", ondelete="CASCADE"))
    household_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("household.id"), index=True)
    name: Mapped[str] = mapped_column(String(50), index=True)
    gender: Mapped[str] = mapped_column(String(10))
    birth_date: Mapped[date] = mapped_column(Date)
    national_id_encrypted: Mapped[str] = mapped_column(String(300))
    national_id_hash: Mapped[str] = mapped_column(String(64), index=True)
    national_id_masked: Mapped[str] = mapped_column(String(18))
    phone_encrypted: Mapped[str | None] = mapped_column(String(300))
    phone_hash: Mapped[str | None] = mapped_column(String(64), index=True)
    phone_masked: Mapped[str | None] = mapped_column(String(20))
    relation_to_head: Mapped[str | None] = mapped_column(String(20))
    guardian_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("resident.id", ondelete="SET NULL"), index=True)
    created_at: Mapped[datetime] = stamped_now()
    updated_at: Mapped[datetime] = stamped_now()


class ResidentTagLink(Base):
    __tablename__ = "resident_tag"
    __table_args__ = (
        UniqueConstraint("resident_id", "tag"),
        Index("ix_resident_tag_community_id_tag", "community_id", "tag"),
    )

    id: Mapped[int] = pk()
    community_id: Mapped[int] = mapped_column(BigId, ForeignKey("community.id", ondelete="CASCADE"))
    resident_id: Mapped[int] = mapped_column(BigId, ForeignKey("resident.id", ondelete="CASCADE"))
    tag: Mapped[str] = mapped_column(String(32))


class ConsentRecord(Base):
    """A resident's (or their guardian's) consent to a purpose; new records supersede old ones."""

    __tablename__ = "consent_record"

    id: Mapped[int] = pk()
    community_id: Mapped[int] = mapped_column(BigId, ForeignKey("community.id", ondelete="CASCADE"), index=True)
    resident_id: Mapped[int] = mapped_column(BigId, ForeignKey("resident.id", ondelete="CASCADE"), index=True)
    purpose: Mapped[str] = mapped_column(String(32))
    granted: Mapped[bool] = mapped_column(Boolean)
    given_by_resident_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("resident.id", ondelete="SET NULL"))
    recorded_by_account_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("account.id", ondelete="SET NULL"))
    note: Mapped[str | None] = mapped_column(Text)
    recorded_at: Mapped[datetime] = stamped_now()


class PersonalDataAccess(Base):
    """Access log: one row per unmasked read of a personal field."""

    __tablename__ = "personal_data_access"

    id: Mapped[int] = pk()
    community_id: Mapped[int] = mapped_column(BigId, ForeignKey("community.id", ondelete="CASCADE"), index=True)
    actor_account_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("account.id", ondelete="SET NULL"))
    subject_resident_id: Mapped[int] = mapped_column(BigId, ForeignKey("resident.id", ondelete="CASCADE"), index=True)
    field: Mapped[str] = mapped_column(String(50))
    purpose: Mapped[str] = mapped_column(String(200))
    request_id: Mapped[str | None] = mapped_column(String(64))
    accessed_at: Mapped[datetime] = mapped_column(UtcDateTime())


class CommunityCalendar(Base):
    """A community's office hours and holidays, the clock that SLA targets run on."""

    __tablename__ = "community_calendar"

    community_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("community.id", ondelete="CASCADE"), primary_key=True, autoincrement=False
    )
    # {"0": [510, 1050], ...}: minutes after midnight (China time) per weekday, 0 = Monday.
    week: Mapped[dict[str, list[int]]] = mapped_column(JsonDoc)
    holidays: Mapped[list[str]] = mapped_column(JsonDoc, default=list)  # ISO dates
    updated_at: Mapped[datetime] = stamped_now()
