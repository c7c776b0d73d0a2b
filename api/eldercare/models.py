"""Elder care tables: profiles, assessments, care tiers, volunteers, pairs, visits, campaigns and the time bank.

What the database enforces, so that no race in the application can break it:

- A volunteer is never booked for two overlapping visits. On PostgreSQL an EXCLUDE constraint
  (btree_gist) over ``(responder_id WITH =, tstzrange(starts_at, ends_at) WITH &&)`` for visits that
  are assigned or checked in; declared with ``ddl_if(dialect="postgresql")`` and created by the
  migration. On SQLite every writer holds the one write lock from BEGIN (BEGIN IMMEDIATE), and the
  service books with one conditional ``UPDATE … WHERE NOT EXISTS (an overlapping booking)``.
- One active primary pair per elder: a partial unique index on ``elder_id`` where the pair has not
  ended and its role is primary. A volunteer's load (max elders) is checked under a row lock on the
  volunteer, so two pairings cannot both take the last place.
- Planning twice creates nothing new: visits are unique by ``(resident_id, plan_period, plan_seq)``,
  requests by ``source_key`` and campaign deliveries by ``(campaign_id, household_id)``.
- The time bank never goes negative: each account carries its running balance, updated by a
  conditional ``UPDATE … WHERE balance_minutes >= :amount`` (a row lock in PostgreSQL) and backed by a
  CHECK; a credit for a visit happens once (``visit_id`` is unique on the transaction).
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
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import ExcludeConstraint
from sqlalchemy.orm import Mapped, mapped_column

from api.core.db import Base, BigId, JsonDoc, UtcDateTime, pk, stamped_now


class LivingSituation(StrEnum):
    ALONE = "alone"
    WITH_SPOUSE = "with_spouse"
    WITH_FAMILY = "with_family"
    WITH_CARER = "with_carer"


class VisitType(StrEnum):
    SAFETY_CHECK = "safety_check"  # 安全检查: gas, electricity, fire exits, doors, medicines
    ELECTRICAL_CHECK = "electrical_check"  # 电路检查
    COMPANIONSHIP = "companionship"  # 陪伴聊天
    HOSPITAL_ESCORT = "hospital_escort"  # 陪同就医
    HAIRCUT = "haircut"  # 上门理发
    HOLIDAY_DELIVERY = "holiday_delivery"  # 节日慰问
    MEAL_DELIVERY = "meal_delivery"  # 送餐上门


class VisitState(StrEnum):
    PLANNED = "planned"  # looking for a volunteer
    OFFERED = "offered"  # offered to a volunteer who has not answered yet
    ASSIGNED = "assigned"  # a volunteer accepted (or staff assigned one): booked
    CHECKED_IN = "checked_in"
    DONE = "done"  # checked out
    MISSED = "missed"  # nobody came before the grace period ran out
    CANCELLED = "cancelled"


class VisitSource(StrEnum):
    PLAN = "plan"
    REQUEST = "request"
    CAMPAIGN = "campaign"


class FindingSeverity(StrEnum):
    INFO = "info"
    CONCERN = "concern"
    HAZARD = "hazard"  # opens a repair ticket (or alerts staff when no ticket category fits)


OPEN_VISIT_STATES = (
    VisitState.PLANNED.value,
    VisitState.OFFERED.value,
    VisitState.ASSIGNED.value,
    VisitState.CHECKED_IN.value,
)
BOOKED_VISIT_STATES = (VisitState.ASSIGNED.value, VisitState.CHECKED_IN.value)
_BOOKED_SQL = "responder_id IS NOT NULL AND state IN ('assigned', 'checked_in')"
_ACTIVE_PRIMARY_SQL = "ended_at IS NULL AND role = 'primary'"
_ACTIVE_PAIR_SQL = "ended_at IS NULL"


class ElderCarePolicy(Base):
    """A community's elder-care rules that are data, not code: the 低龄 age range of volunteers."""

    __tablename__ = "elder_care_policy"
    __table_args__ = (
        CheckConstraint(
            "younger_elder_min_age >= 40 AND younger_elder_min_age <= younger_elder_max_age", name="age_range"
        ),
    )

    community_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("community.id", ondelete="CASCADE"), primary_key=True, autoincrement=False
    )
    younger_elder_min_age: Mapped[int] = mapped_column(Integer, default=60)
    younger_elder_max_age: Mapped[int] = mapped_column(Integer, default=75)
    updated_at: Mapped[datetime] = stamped_now()


class ElderProfile(Base):
    """A resident at or above the elder age whom the community looks after."""

    __tablename__ = "elder_profile"
    __table_args__ = (
        UniqueConstraint("resident_id"),
        CheckConstraint("current_level IS NULL OR (current_level >= 0 AND current_level <= 4)", name="level_range"),
        Index("ix_elder_profile_community_id_active", "community_id", "active"),
    )

    id: Mapped[int] = pk()
    community_id: Mapped[int] = mapped_column(BigId, ForeignKey("community.id", ondelete="CASCADE"))
    resident_id: Mapped[int] = mapped_column(BigId, ForeignKey("resident.id", ondelete="CASCADE"))
    living_situation: Mapped[str] = mapped_column(String(20))
    # Care flags that change the tier (not health data): e.g. fall_risk, hard_of_hearing, housebound.
    care_flags: Mapped[list[str]] = mapped_column(JsonDoc, default=list)
    preferred_volunteer_gender: Mapped[str | None] = mapped_column(String(10))
    # Emergency contacts [{name, relation, phone}] as encrypted JSON; the list shows names and masked phones.
    emergency_contacts_encrypted: Mapped[str | None] = mapped_column(Text)
    emergency_contacts_masked: Mapped[list[dict[str, Any]]] = mapped_column(JsonDoc, default=list)
    # Health data (PIPL sensitive): conditions, encrypted, stored only with a health-data consent.
    conditions_encrypted: Mapped[str | None] = mapped_column(Text)
    current_level: Mapped[int | None] = mapped_column(Integer)
    current_tier_rule_id: Mapped[int | None] = mapped_column(
        BigId, ForeignKey("care_tier_rule.id", ondelete="SET NULL")
    )
    last_assessed_on: Mapped[date | None] = mapped_column(Date)
    reassessment_due_on: Mapped[date | None] = mapped_column(Date, index=True)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = stamped_now()
    updated_at: Mapped[datetime] = stamped_now()


class AbilityAssessment(Base):
    """One GB/T 42195-2022 assessment; the history is kept, the latest sets the elder's level."""

    __tablename__ = "elder_assessment"
    __table_args__ = (
        CheckConstraint("total_score >= 0 AND total_score <= 90", name="total_range"),
        CheckConstraint("preliminary_level >= 0 AND preliminary_level <= 4", name="preliminary_range"),
        CheckConstraint("final_level >= 0 AND final_level <= 4", name="final_range"),
        CheckConstraint("final_level >= preliminary_level", name="raised_only"),
        Index("ix_elder_assessment_elder_id_assessed_on", "elder_id", "assessed_on"),
    )

    id: Mapped[int] = pk()
    community_id: Mapped[int] = mapped_column(BigId, ForeignKey("community.id", ondelete="CASCADE"), index=True)
    elder_id: Mapped[int] = mapped_column(BigId, ForeignKey("elder_profile.id", ondelete="CASCADE"))
    assessed_on: Mapped[date] = mapped_column(Date)
    reason: Mapped[str] = mapped_column(String(20))  # initial, scheduled, change
    assessor_account_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("account.id", ondelete="SET NULL"))
    total_score: Mapped[int] = mapped_column(Integer)
    preliminary_level: Mapped[int] = mapped_column(Integer)
    final_level: Mapped[int] = mapped_column(Integer)
    # Item scores, diagnoses and risk events (health data), encrypted JSON.
    details_encrypted: Mapped[str] = mapped_column(Text)
    next_due_on: Mapped[date] = mapped_column(Date)
    created_at: Mapped[datetime] = stamped_now()


class CareTierVersion(Base):
    """One version of a community's care-tier table; editing the table makes a new version."""

    __tablename__ = "care_tier_version"
    __table_args__ = (UniqueConstraint("community_id", "version"),)

    id: Mapped[int] = pk()
    community_id: Mapped[int] = mapped_column(BigId, ForeignKey("community.id", ondelete="CASCADE"), index=True)
    version: Mapped[int] = mapped_column(Integer)
    note: Mapped[str] = mapped_column(String(200), default="")
    created_by_account_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("account.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = stamped_now()


class CareTierRule(Base):
    """A row of the tier table: who it matches (level range, living alone, flags) and the visits they get."""

    __tablename__ = "care_tier_rule"
    __table_args__ = (
        UniqueConstraint("version_id", "position"),
        CheckConstraint("min_level >= 0 AND min_level <= max_level AND max_level <= 4", name="level_range"),
        CheckConstraint("visits_per_month >= 0 AND visits_per_month <= 31", name="visits_range"),
    )

    id: Mapped[int] = pk()
    version_id: Mapped[int] = mapped_column(BigId, ForeignKey("care_tier_version.id", ondelete="CASCADE"))
    position: Mapped[int] = mapped_column(Integer)
    name: Mapped[str] = mapped_column(String(50))
    min_level: Mapped[int] = mapped_column(Integer)
    max_level: Mapped[int] = mapped_column(Integer)
    lives_alone: Mapped[bool | None] = mapped_column(Boolean)  # None: either
    required_flags: Mapped[list[str]] = mapped_column(JsonDoc, default=list)
    visits_per_month: Mapped[int] = mapped_column(Integer)
    visit_types: Mapped[list[str]] = mapped_column(JsonDoc, default=list)


class Volunteer(Base):
    """A volunteer of the elder-care team: a dispatch responder tied to a resident."""

    __tablename__ = "elder_volunteer"
    __table_args__ = (
        UniqueConstraint("responder_id"),
        UniqueConstraint("community_id", "resident_id"),
        CheckConstraint("max_elders >= 1 AND max_elders <= 50", name="max_elders_range"),
    )

    id: Mapped[int] = pk()
    community_id: Mapped[int] = mapped_column(BigId, ForeignKey("community.id", ondelete="CASCADE"), index=True)
    resident_id: Mapped[int] = mapped_column(BigId, ForeignKey("resident.id", ondelete="CASCADE"))
    responder_id: Mapped[int] = mapped_column(BigId, ForeignKey("responder.id", ondelete="CASCADE"))
    max_elders: Mapped[int] = mapped_column(Integer, default=3)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = stamped_now()


class VolunteerTeam(Base):
    """A volunteer team, e.g. the 爱心敲门 team."""

    __tablename__ = "elder_volunteer_team"
    __table_args__ = (UniqueConstraint("community_id", "name"),)

    id: Mapped[int] = pk()
    community_id: Mapped[int] = mapped_column(BigId, ForeignKey("community.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime] = stamped_now()


class VolunteerTeamMember(Base):
    __tablename__ = "elder_volunteer_team_member"
    __table_args__ = (UniqueConstraint("team_id", "volunteer_id"),)

    id: Mapped[int] = pk()
    team_id: Mapped[int] = mapped_column(BigId, ForeignKey("elder_volunteer_team.id", ondelete="CASCADE"))
    volunteer_id: Mapped[int] = mapped_column(BigId, ForeignKey("elder_volunteer.id", ondelete="CASCADE"), index=True)


class CarePair(Base):
    """结对: a volunteer looking after an elder, from `started_at` until `ended_at` (history is kept)."""

    __tablename__ = "elder_care_pair"
    __table_args__ = (
        Index(
            "uq_elder_care_pair_one_primary",
            "elder_id",
            unique=True,
            postgresql_where=text(_ACTIVE_PRIMARY_SQL),
            sqlite_where=text(_ACTIVE_PRIMARY_SQL),
        ),
        Index(
            "uq_elder_care_pair_elder_id_volunteer_id",
            "elder_id",
            "volunteer_id",
            unique=True,
            postgresql_where=text(_ACTIVE_PAIR_SQL),
            sqlite_where=text(_ACTIVE_PAIR_SQL),
        ),
        Index("ix_elder_care_pair_volunteer_id_ended_at", "volunteer_id", "ended_at"),
    )

    id: Mapped[int] = pk()
    community_id: Mapped[int] = mapped_column(BigId, ForeignKey("community.id", ondelete="CASCADE"), index=True)
    elder_id: Mapped[int] = mapped_column(BigId, ForeignKey("elder_profile.id", ondelete="CASCADE"))
    volunteer_id: Mapped[int] = mapped_column(BigId, ForeignKey("elder_volunteer.id", ondelete="CASCADE"))
    role: Mapped[str] = mapped_column(String(10), default="primary")  # primary, backup
    reasons: Mapped[list[dict[str, str]]] = mapped_column(JsonDoc, default=list)
    started_at: Mapped[datetime] = stamped_now()
    ended_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    end_reason: Mapped[str | None] = mapped_column(String(200))
    created_by_account_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("account.id", ondelete="SET NULL"))


class HolidayCampaign(Base):
    """节日慰问: deliveries to every household with a targeted resident, in a date range."""

    __tablename__ = "elder_campaign"
    __table_args__ = (CheckConstraint("ends_at > starts_at", name="ends_after_start"),)

    id: Mapped[int] = pk()
    community_id: Mapped[int] = mapped_column(BigId, ForeignKey("community.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    tags: Mapped[list[str]] = mapped_column(JsonDoc, default=list)
    min_age: Mapped[int | None] = mapped_column(Integer)
    starts_at: Mapped[datetime] = mapped_column(UtcDateTime())
    ends_at: Mapped[datetime] = mapped_column(UtcDateTime())
    note: Mapped[str] = mapped_column(String(500), default="")
    created_by_account_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("account.id", ondelete="SET NULL"))
    generated_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    created_at: Mapped[datetime] = stamped_now()


class Visit(Base):
    """A home visit: planned from the tier table, asked for, or part of a campaign; dispatched to a volunteer."""

    __tablename__ = "elder_visit"
    __table_args__ = (
        CheckConstraint("ends_at > starts_at", name="ends_after_start"),
        CheckConstraint(
            "checked_out_at IS NULL OR (checked_in_at IS NOT NULL AND checked_out_at >= checked_in_at)",
            name="check_out_after_check_in",
        ),
        UniqueConstraint("resident_id", "plan_period", "plan_seq"),
        UniqueConstraint("source_key"),
        UniqueConstraint("campaign_id", "household_id"),
        Index("ix_elder_visit_community_id_starts_at", "community_id", "starts_at"),
        Index("ix_elder_visit_state_ends_at", "state", "ends_at"),
        Index("ix_elder_visit_responder_id_starts_at", "responder_id", "starts_at"),
        # A volunteer is never booked for two overlapping visits (PostgreSQL; see the module docstring).
        ExcludeConstraint(
            ("responder_id", "="),
            (func.tstzrange(text("starts_at"), text("ends_at")), "&&"),
            name="ex_elder_visit_no_double_booking",
            using="gist",
            where=text(_BOOKED_SQL),
        ).ddl_if(dialect="postgresql"),
    )

    id: Mapped[int] = pk()
    community_id: Mapped[int] = mapped_column(BigId, ForeignKey("community.id", ondelete="CASCADE"))
    resident_id: Mapped[int] = mapped_column(BigId, ForeignKey("resident.id", ondelete="CASCADE"), index=True)
    household_id: Mapped[int] = mapped_column(BigId, ForeignKey("household.id", ondelete="CASCADE"), index=True)
    visit_type: Mapped[str] = mapped_column(String(30))
    source: Mapped[str] = mapped_column(String(20))
    plan_period: Mapped[str | None] = mapped_column(String(7))  # YYYY-MM
    plan_seq: Mapped[int | None] = mapped_column(Integer)
    tier_version_id: Mapped[int | None] = mapped_column(
        BigId, ForeignKey("care_tier_version.id", ondelete="SET NULL"), index=True
    )
    tier_rule_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("care_tier_rule.id", ondelete="SET NULL"))
    source_key: Mapped[str | None] = mapped_column(String(120))
    campaign_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("elder_campaign.id", ondelete="CASCADE"))
    requested_by_account_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("account.id", ondelete="SET NULL"))
    starts_at: Mapped[datetime] = mapped_column(UtcDateTime())
    ends_at: Mapped[datetime] = mapped_column(UtcDateTime())
    state: Mapped[str] = mapped_column(String(20), default=VisitState.PLANNED.value)
    volunteer_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("elder_volunteer.id", ondelete="SET NULL"))
    responder_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("responder.id", ondelete="SET NULL"))
    checked_in_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    checked_out_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    checklist: Mapped[dict[str, str]] = mapped_column(JsonDoc, default=dict)
    note: Mapped[str] = mapped_column(String(500), default="")
    report: Mapped[str] = mapped_column(Text, default="")
    escalated_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    cancelled_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    cancel_reason: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = stamped_now()
    updated_at: Mapped[datetime] = stamped_now()


class VisitFinding(Base):
    """Something a visitor found, by checklist item and severity; a hazard links to its repair ticket."""

    __tablename__ = "elder_visit_finding"

    id: Mapped[int] = pk()
    community_id: Mapped[int] = mapped_column(BigId, ForeignKey("community.id", ondelete="CASCADE"), index=True)
    visit_id: Mapped[int] = mapped_column(BigId, ForeignKey("elder_visit.id", ondelete="CASCADE"), index=True)
    item_code: Mapped[str] = mapped_column(String(40))
    hazard_kind: Mapped[str] = mapped_column(String(20))  # gas, electrical, water, fire, door, medicine, other
    severity: Mapped[str] = mapped_column(String(10))
    note: Mapped[str] = mapped_column(String(1000), default="")
    ticket_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("ticket.id", ondelete="SET NULL"))
    staff_alerted_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    recorded_by_account_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("account.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = stamped_now()


class TimeAccount(Base):
    """时间银行 account: one per volunteer, and one pool per community that hours are issued from."""

    __tablename__ = "elder_time_account"
    __table_args__ = (
        UniqueConstraint("volunteer_id"),
        Index(
            "uq_elder_time_account_one_pool",
            "community_id",
            unique=True,
            postgresql_where=text("kind = 'pool'"),
            sqlite_where=text("kind = 'pool'"),
        ),
        # The pool is the counterparty of every credit and runs negative; a volunteer never does.
        CheckConstraint("kind = 'pool' OR balance_minutes >= 0", name="never_negative"),
        CheckConstraint("(kind = 'pool') = (volunteer_id IS NULL)", name="pool_has_no_volunteer"),
    )

    id: Mapped[int] = pk()
    community_id: Mapped[int] = mapped_column(BigId, ForeignKey("community.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(10))  # volunteer, pool
    volunteer_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("elder_volunteer.id", ondelete="CASCADE"))
    balance_minutes: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = stamped_now()


class TimeTransaction(Base):
    """One balanced movement of minutes (a credit for a visit, a redemption); its entries sum to zero."""

    __tablename__ = "elder_time_transaction"
    __table_args__ = (UniqueConstraint("visit_id"), UniqueConstraint("redeem_visit_id"))

    id: Mapped[int] = pk()
    community_id: Mapped[int] = mapped_column(BigId, ForeignKey("community.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(10))  # credit, redeem
    visit_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("elder_visit.id", ondelete="SET NULL"))
    redeem_visit_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("elder_visit.id", ondelete="SET NULL"))
    note: Mapped[str] = mapped_column(String(200), default="")
    created_by_account_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("account.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = stamped_now()


class TimeEntry(Base):
    """One leg of a transaction on one account, with the account's balance after it."""

    __tablename__ = "elder_time_entry"
    __table_args__ = (
        CheckConstraint("amount_minutes <> 0", name="not_zero"),
        Index("ix_elder_time_entry_account_id_id", "account_id", "id"),
    )

    id: Mapped[int] = pk()
    transaction_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("elder_time_transaction.id", ondelete="CASCADE"), index=True
    )
    account_id: Mapped[int] = mapped_column(BigId, ForeignKey("elder_time_account.id", ondelete="CASCADE"))
    amount_minutes: Mapped[int] = mapped_column(Integer)
    balance_after: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = stamped_now()
