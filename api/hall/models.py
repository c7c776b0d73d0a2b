"""Tables of the service hall: procedures, applications, vehicles and parking permits.

Procedures are versioned; applications keep their steps and attachments; household vehicles keep
their history; parking permits are issued under a quota per compound and period.

What the database enforces, so that no race in the application can break it:

- A procedure's versions are numbered once: unique ``(procedure_id, version)``; an application
  points at the version it was made under, which is never changed afterwards.
- A plate is registered once per community among active vehicles: the partial unique index
  ``(community_id, plate) WHERE removed_at IS NULL``.
- Parking quotas: a permit takes the quota row's counter with a conditional
  ``UPDATE … SET issued = issued + 1 WHERE issued < quota`` (which also holds the row lock until
  commit, so permits of one quota are issued one at a time), ``CHECK (issued <= quota)`` backs it,
  and each active permit holds a slot number 1..quota under the partial unique index
  ``(quota_id, slot) WHERE revoked_at IS NULL``; a vehicle holds one active permit per quota.
- Warnings and escalations happen once: the scan sets ``warned_at``/``escalated_at`` with a
  conditional UPDATE, and inbox notices are unique per (recipient, event).
"""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import CheckConstraint, Date, ForeignKey, Index, Integer, String, Text, UniqueConstraint, func, text
from sqlalchemy.dialects.postgresql import ExcludeConstraint
from sqlalchemy.orm import Mapped, mapped_column

from api.core.db import Base, BigId, JsonDoc, UtcDateTime, pk, stamped_now


class ProcedureKind(StrEnum):
    """What approving an application does besides closing it."""

    GENERAL = "general"  # a certificate, a card, a registration: staff do it, the system records it
    VEHICLE = "vehicle"  # 车辆登记/变更: registers, changes or removes a household vehicle
    PARKING_PERMIT = "parking_permit"  # 停车证: issues a permit under the compound's quota


class ApplicationState(StrEnum):
    SUBMITTED = "submitted"  # waiting to be accepted (受理)
    IN_PROGRESS = "in_progress"  # accepted; moving through its steps
    NEEDS_DOCUMENTS = "needs_documents"  # staff asked for more documents; the applicant resubmits
    COMPLETED = "completed"  # approved and done (办结)
    REJECTED = "rejected"


OPEN_STATES = (
    ApplicationState.SUBMITTED.value,
    ApplicationState.IN_PROGRESS.value,
    ApplicationState.NEEDS_DOCUMENTS.value,
)
# An application is open exactly while `closed_at` is NULL (a CHECK ties the two): the partial
# indexes use `closed_at IS NULL`, a predicate the planner can prove whatever the bound parameters.
OPEN_STATES_SQL = "state IN ('submitted', 'in_progress', 'needs_documents')"
OPEN = "closed_at IS NULL"


class EventKind(StrEnum):
    SUBMITTED = "submitted"
    ACCEPTED = "accepted"
    ADVANCED = "advanced"
    DOCUMENTS_REQUESTED = "documents_requested"
    DOCUMENTS_RESUBMITTED = "documents_resubmitted"
    COMPLETED = "completed"
    REJECTED = "rejected"
    WARNED = "warned"
    ESCALATED = "escalated"


class VehicleKind(StrEnum):
    CAR = "car"  # 小型汽车, blue plate
    NEW_ENERGY_CAR = "new_energy_car"  # 新能源汽车, green 8-character plate
    MOTORCYCLE = "motorcycle"
    E_BIKE = "e_bike"  # 电动自行车: a local plate, not the national format


class VehicleEventKind(StrEnum):
    REGISTERED = "registered"
    CHANGED = "changed"
    REMOVED = "removed"


class HallProcedure(Base):
    """A procedure of the community's published list (小微权力清单); its content lives in versions."""

    __tablename__ = "hall_procedure"
    __table_args__ = (
        UniqueConstraint("community_id", "code"),
        CheckConstraint("latest_version >= 1", name="version_positive"),
    )

    id: Mapped[int] = pk()
    community_id: Mapped[int] = mapped_column(BigId, ForeignKey("community.id", ondelete="CASCADE"), index=True)
    code: Mapped[str] = mapped_column(String(50))
    kind: Mapped[str] = mapped_column(String(20))
    latest_version: Mapped[int] = mapped_column(Integer, default=1)
    published: Mapped[bool] = mapped_column(default=True)
    sort_order: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = stamped_now()
    updated_at: Mapped[datetime] = stamped_now()


class HallProcedureVersion(Base):
    """One published version of a procedure; applications keep the version they were made under."""

    __tablename__ = "hall_procedure_version"
    __table_args__ = (
        UniqueConstraint("procedure_id", "version"),
        CheckConstraint("time_limit_days >= 1", name="limit_positive"),
        CheckConstraint("fee_cents >= 0", name="fee_not_negative"),
    )

    id: Mapped[int] = pk()
    community_id: Mapped[int] = mapped_column(BigId, ForeignKey("community.id", ondelete="CASCADE"), index=True)
    procedure_id: Mapped[int] = mapped_column(BigId, ForeignKey("hall_procedure.id", ondelete="CASCADE"))
    version: Mapped[int] = mapped_column(Integer)
    name: Mapped[str] = mapped_column(String(100))
    purpose: Mapped[str] = mapped_column(Text, default="")
    # [{"key": "id_card", "name": "身份证", "required": true, "note": "…"}]
    documents: Mapped[list[dict[str, Any]]] = mapped_column(JsonDoc, default=list)
    # [{"name": "受理", "role": "综合窗口"}], in order
    steps: Mapped[list[dict[str, Any]]] = mapped_column(JsonDoc, default=list)
    time_limit_days: Mapped[int] = mapped_column(Integer)  # working days
    fee_cents: Mapped[int] = mapped_column(Integer, default=0)
    handled_by: Mapped[str] = mapped_column(String(200), default="")
    basis: Mapped[str] = mapped_column(Text, default="")  # legal or policy basis (办理依据)
    published_by_account_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("account.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = stamped_now()


class HallApplication(Base):
    """A resident's application under one procedure version, moved through its steps by staff."""

    __tablename__ = "hall_application"
    __table_args__ = (
        CheckConstraint("step_index >= 0", name="step_not_negative"),
        CheckConstraint(f"(closed_at IS NULL) = ({OPEN_STATES_SQL})", name="closed_iff_final"),
        # The staff queue: open applications of a community by due date (partial: closed ones drop out).
        Index(
            "ix_hall_application_queue",
            "community_id",
            "due_at",
            "id",
            postgresql_where=text(OPEN),
            sqlite_where=text(OPEN),
        ),
        Index(
            "ix_hall_application_assignee_queue",
            "assignee_account_id",
            "due_at",
            "id",
            postgresql_where=text(OPEN),
            sqlite_where=text(OPEN),
        ),
        # The scan: open applications whose warning or time limit has come.
        Index(
            "ix_hall_application_warn",
            "warn_at",
            postgresql_where=text(f"warned_at IS NULL AND {OPEN}"),
            sqlite_where=text(f"warned_at IS NULL AND {OPEN}"),
        ),
        Index(
            "ix_hall_application_lapse",
            "due_at",
            postgresql_where=text(f"escalated_at IS NULL AND {OPEN}"),
            sqlite_where=text(f"escalated_at IS NULL AND {OPEN}"),
        ),
        Index("ix_hall_application_applicant_account_id_id", "applicant_account_id", "id"),
    )

    id: Mapped[int] = pk()
    community_id: Mapped[int] = mapped_column(BigId, ForeignKey("community.id", ondelete="CASCADE"))
    procedure_id: Mapped[int] = mapped_column(BigId, ForeignKey("hall_procedure.id", ondelete="CASCADE"), index=True)
    version_id: Mapped[int] = mapped_column(BigId, ForeignKey("hall_procedure_version.id", ondelete="CASCADE"))
    applicant_account_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("account.id", ondelete="SET NULL"))
    applicant_resident_id: Mapped[int | None] = mapped_column(
        BigId, ForeignKey("resident.id", ondelete="SET NULL"), index=True
    )
    household_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("household.id", ondelete="SET NULL"))
    state: Mapped[str] = mapped_column(String(20))
    step_index: Mapped[int] = mapped_column(Integer, default=0)
    assignee_account_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("account.id", ondelete="SET NULL"))
    # What the procedure needs besides documents: the vehicle or the permit asked for.
    details: Mapped[dict[str, Any]] = mapped_column(JsonDoc, default=dict)
    note: Mapped[str] = mapped_column(Text, default="")
    submitted_at: Mapped[datetime] = stamped_now()
    due_at: Mapped[datetime] = mapped_column(UtcDateTime())
    warn_at: Mapped[datetime] = mapped_column(UtcDateTime())
    warned_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    escalated_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    closed_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    reason: Mapped[str | None] = mapped_column(String(500))  # why it was rejected
    requested_documents: Mapped[list[str]] = mapped_column(JsonDoc, default=list)  # slots asked for again
    # The time-limit round: each resubmission restarts the clock, and warnings are per round.
    clock_round: Mapped[int] = mapped_column(Integer, default=1)
    vehicle_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("hall_vehicle.id", ondelete="SET NULL"))
    permit_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("hall_parking_permit.id", ondelete="SET NULL"))
    updated_at: Mapped[datetime] = stamped_now()


class HallApplicationEvent(Base):
    """One step of an application, with time and handler: what the applicant sees (阳光下操作)."""

    __tablename__ = "hall_application_event"
    __table_args__ = (Index("ix_hall_application_event_application_id_id", "application_id", "id"),)

    id: Mapped[int] = pk()
    community_id: Mapped[int] = mapped_column(BigId, ForeignKey("community.id", ondelete="CASCADE"), index=True)
    application_id: Mapped[int] = mapped_column(BigId, ForeignKey("hall_application.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(30))
    step_index: Mapped[int | None] = mapped_column(Integer)
    step_name: Mapped[str] = mapped_column(String(100), default="")
    actor_account_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("account.id", ondelete="SET NULL"))
    # Who, as shown to the applicant: a display name and a role (never a phone number).
    actor_name: Mapped[str] = mapped_column(String(100), default="")
    actor_role: Mapped[str] = mapped_column(String(100), default="")
    note: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = stamped_now()


class HallAttachment(Base):
    """A document image attached to an application, in one of the procedure's document slots."""

    __tablename__ = "hall_attachment"

    id: Mapped[int] = pk()
    community_id: Mapped[int] = mapped_column(BigId, ForeignKey("community.id", ondelete="CASCADE"), index=True)
    application_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("hall_application.id", ondelete="CASCADE"), index=True
    )
    slot: Mapped[str] = mapped_column(String(50))
    storage_key: Mapped[str] = mapped_column(String(200), unique=True)
    content_type: Mapped[str] = mapped_column(String(50))
    size_bytes: Mapped[int] = mapped_column(Integer)
    width: Mapped[int] = mapped_column(Integer)
    height: Mapped[int] = mapped_column(Integer)
    round: Mapped[int] = mapped_column(Integer, default=1)  # 1 with the application, 2+ resubmissions
    uploaded_by_account_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("account.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = stamped_now()


class Vehicle(Base):
    """A household's vehicle; a plate is registered once per community among active vehicles."""

    __tablename__ = "hall_vehicle"
    __table_args__ = (
        Index(
            "uq_hall_vehicle_community_id_plate_active",
            "community_id",
            "plate",
            unique=True,
            postgresql_where=text("removed_at IS NULL"),
            sqlite_where=text("removed_at IS NULL"),
        ),
    )

    id: Mapped[int] = pk()
    community_id: Mapped[int] = mapped_column(BigId, ForeignKey("community.id", ondelete="CASCADE"))
    household_id: Mapped[int] = mapped_column(BigId, ForeignKey("household.id", ondelete="CASCADE"), index=True)
    plate: Mapped[str] = mapped_column(String(16))
    kind: Mapped[str] = mapped_column(String(20))
    description: Mapped[str] = mapped_column(String(100), default="")  # make, model, colour
    registered_at: Mapped[datetime] = stamped_now()
    updated_at: Mapped[datetime] = stamped_now()
    removed_at: Mapped[datetime | None] = mapped_column(UtcDateTime())


class VehicleEvent(Base):
    """History of a vehicle: registration, each change (before and after) and removal."""

    __tablename__ = "hall_vehicle_event"
    __table_args__ = (Index("ix_hall_vehicle_event_vehicle_id_id", "vehicle_id", "id"),)

    id: Mapped[int] = pk()
    community_id: Mapped[int] = mapped_column(BigId, ForeignKey("community.id", ondelete="CASCADE"), index=True)
    vehicle_id: Mapped[int] = mapped_column(BigId, ForeignKey("hall_vehicle.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(20))
    before: Mapped[dict[str, Any]] = mapped_column(JsonDoc, default=dict)
    after: Mapped[dict[str, Any]] = mapped_column(JsonDoc, default=dict)
    application_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("hall_application.id", ondelete="SET NULL"))
    actor_account_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("account.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = stamped_now()


class ParkingQuota(Base):
    """How many parking permits a compound gives out for a period, and how many are out now."""

    __tablename__ = "hall_parking_quota"
    __table_args__ = (
        UniqueConstraint("compound_id", "starts_on"),
        CheckConstraint("quota >= 0", name="quota_not_negative"),
        CheckConstraint("issued >= 0 AND issued <= quota", name="issued_within_quota"),
        CheckConstraint("ends_on >= starts_on", name="period"),
        # A compound's quota periods never overlap (PostgreSQL; SQLite writers are serialised).
        ExcludeConstraint(
            ("compound_id", "="),
            (func.daterange(text("starts_on"), text("ends_on"), text("'[]'")), "&&"),
            name="ex_hall_parking_quota_no_overlap",
            using="gist",
        ).ddl_if(dialect="postgresql"),
    )

    id: Mapped[int] = pk()
    community_id: Mapped[int] = mapped_column(BigId, ForeignKey("community.id", ondelete="CASCADE"), index=True)
    compound_id: Mapped[int] = mapped_column(BigId, ForeignKey("compound.id", ondelete="CASCADE"))
    starts_on: Mapped[date] = mapped_column(Date)
    ends_on: Mapped[date] = mapped_column(Date)
    quota: Mapped[int] = mapped_column(Integer)
    issued: Mapped[int] = mapped_column(Integer, default=0, server_default="0")  # active permits
    created_at: Mapped[datetime] = stamped_now()
    updated_at: Mapped[datetime] = stamped_now()


class ParkingPermit(Base):
    """A vehicle's permit to park in a compound for a quota's period; holds one slot 1..quota."""

    __tablename__ = "hall_parking_permit"
    __table_args__ = (
        CheckConstraint("slot >= 1", name="slot_positive"),
        Index(
            "uq_hall_parking_permit_quota_id_slot_active",
            "quota_id",
            "slot",
            unique=True,
            postgresql_where=text("revoked_at IS NULL"),
            sqlite_where=text("revoked_at IS NULL"),
        ),
        Index(
            "uq_hall_parking_permit_quota_id_vehicle_id_active",
            "quota_id",
            "vehicle_id",
            unique=True,
            postgresql_where=text("revoked_at IS NULL"),
            sqlite_where=text("revoked_at IS NULL"),
        ),
    )

    id: Mapped[int] = pk()
    community_id: Mapped[int] = mapped_column(BigId, ForeignKey("community.id", ondelete="CASCADE"), index=True)
    quota_id: Mapped[int] = mapped_column(BigId, ForeignKey("hall_parking_quota.id", ondelete="CASCADE"))
    compound_id: Mapped[int] = mapped_column(BigId, ForeignKey("compound.id", ondelete="CASCADE"))
    vehicle_id: Mapped[int] = mapped_column(BigId, ForeignKey("hall_vehicle.id", ondelete="CASCADE"), index=True)
    household_id: Mapped[int] = mapped_column(BigId, ForeignKey("household.id", ondelete="CASCADE"), index=True)
    slot: Mapped[int] = mapped_column(Integer)
    starts_on: Mapped[date] = mapped_column(Date)
    ends_on: Mapped[date] = mapped_column(Date)
    issued_at: Mapped[datetime] = stamped_now()
    revoked_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    revoke_reason: Mapped[str | None] = mapped_column(String(200))
