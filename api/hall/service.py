"""The service hall: published procedures, applications moved step by step, vehicles and permits.

Every step of an application is an event row with its time, the step's name and who handled it
(display name and role, never a phone number), which is what the applicant sees. Approving an
application of a vehicle or parking-permit procedure makes the change in the same transaction,
so a refused change (the plate is taken, the quota is full) leaves the application as it was.

Concurrency (see api/hall/models.py for the constraints): staff moves lock the application row
(FOR UPDATE on PostgreSQL; SQLite writers hold the database's write lock from BEGIN), a permit
takes the quota row's counter with a conditional UPDATE, and the plate index decides between
two registrations of one plate.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, TypeVar

from sqlalchemy import Select, func, or_, select, tuple_, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from api.accounts.models import Account, RoleGrant
from api.core.clock import CHINA_TZ, utc_now
from api.core.database import UnitOfWork
from api.core.errors import Conflict, NotFound, ValidationFailed
from api.core.images import (
    PhotoLimits,
    PhotoStore,
    PreparedPhoto,
    check_count,
    ensure_prepared,
    store_unless_rolled_back,
)
from api.core.viewer import Permission, Role, Viewer
from api.hall import jobs
from api.hall.models import (
    OPEN_STATES,
    ApplicationState,
    EventKind,
    HallApplication,
    HallApplicationEvent,
    HallAttachment,
    HallProcedure,
    HallProcedureVersion,
    ParkingPermit,
    ParkingQuota,
    ProcedureKind,
    Vehicle,
    VehicleEvent,
    VehicleEventKind,
    VehicleKind,
)
from api.hall.plates import InvalidPlate, check_plate
from api.hall.time_limits import TimeLimit, time_limit
from api.notifications import service as notifications
from api.registry.calendar import calendar_for
from api.registry.models import Compound, Resident

T = TypeVar("T")

MAX_NAME = 100
MAX_TEXT = 4000
MAX_REASON = 500
MAX_DOCUMENTS = 12
MAX_STEPS = 12
MAX_LIMIT_DAYS = 60
MAX_FEE_CENTS = 1_000_000
MAX_QUOTA = 10_000
SCAN_BATCH = 500
APPLICANT_ROLE = "申请人"
SYSTEM_NAME = "系统"

PLATE_INDEX = "uq_hall_vehicle_community_id_plate_active"
PERMIT_VEHICLE_INDEX = "uq_hall_parking_permit_quota_id_vehicle_id_active"
PERMIT_SLOT_INDEX = "uq_hall_parking_permit_quota_id_slot_active"

EVENT_LABELS = {
    EventKind.ACCEPTED.value: "已受理",
    EventKind.ADVANCED.value: "办理中",
    EventKind.DOCUMENTS_REQUESTED.value: "需补充材料",
    EventKind.COMPLETED.value: "已办结",
    EventKind.REJECTED.value: "未予办理",
}
STATE_LABELS = {
    ApplicationState.SUBMITTED.value: "已提交，待受理",
    ApplicationState.IN_PROGRESS.value: "办理中",
    ApplicationState.NEEDS_DOCUMENTS.value: "需补充材料",
    ApplicationState.COMPLETED.value: "已办结",
    ApplicationState.REJECTED.value: "未予办理",
}


# -- errors ------------------------------------------------------------------------------------------


class MissingDocuments(ValidationFailed):
    """Required documents are missing; `missing` names them (slot key, name)."""

    code = "MISSING_DOCUMENTS"

    def __init__(self, missing: Sequence[tuple[str, str]], *, field: str | None = "documents") -> None:
        names = "、".join(name for _, name in missing)
        super().__init__(f"Please attach: {names}.", field=field)
        self.missing = list(missing)


class QuotaFull(Conflict):
    """Every parking permit of the compound's quota for the period is out."""

    code = "QUOTA_FULL"

    def __init__(self, message: str, *, quota: int, field: str | None = None) -> None:
        super().__init__(message, field=field)
        self.quota = quota


class PlateTaken(Conflict):
    """An active vehicle in the community already has this plate."""

    code = "PLATE_TAKEN"


class WrongState(Conflict):
    """The application is not at a point where this move is possible."""

    code = "WRONG_STATE"


class NotResident(Conflict):
    """Only residents registered in the community can apply (and only for their own household)."""

    code = "NOT_RESIDENT"


class NoParkingQuota(Conflict):
    code = "NO_PARKING_QUOTA"


class AlreadyHasPermit(Conflict):
    code = "ALREADY_HAS_PERMIT"


__all__ = [
    "AlreadyHasPermit",
    "InvalidPlate",
    "MissingDocuments",
    "NoParkingQuota",
    "NotResident",
    "PlateTaken",
    "QuotaFull",
    "WrongState",
]


# -- helpers -----------------------------------------------------------------------------------------


def is_staff(viewer: Viewer, community_id: int) -> bool:
    return viewer.can(Permission.MANAGE_HALL, community_id)


def _postgres(session: AsyncSession) -> bool:
    return session.get_bind().dialect.name == "postgresql"


def _for_update(session: AsyncSession, stmt: Select[T]) -> Select[T]:
    return stmt.with_for_update() if _postgres(session) else stmt


def _text(value: str, *, field: str, limit: int, what: str, required: bool = True) -> str:
    cleaned = value.strip()
    if required and not cleaned:
        raise ValidationFailed(f"Please give the {what}.", field=field)
    if len(cleaned) > limit:
        raise ValidationFailed(f"At most {limit} characters.", field=field)
    return cleaned


def _constraint_of(exc: Exception) -> str:
    orig = getattr(exc, "orig", None)
    for candidate in (orig, getattr(orig, "__cause__", None)):
        name = getattr(candidate, "constraint_name", None)
        if name:
            return str(name)
    return str(orig)


def _violates(exc: Exception, index: str, table: str, *columns: str) -> bool:
    what = _constraint_of(exc)
    return what == index or ("UNIQUE" in what and all(f"{table}.{c}" in what for c in columns))


def _rowcount(result: Any) -> int:
    return int(getattr(result, "rowcount", 0) or 0)


def local_day(moment: datetime) -> date:
    return moment.astimezone(CHINA_TZ).date()


async def _display_name(session: AsyncSession, account_id: int | None) -> str:
    if account_id is None:
        return ""
    name = await session.scalar(select(Account.display_name).where(Account.id == account_id))
    return str(name or "")


async def staff_accounts(session: AsyncSession, community_id: int, *, roles: Sequence[Role]) -> set[int]:
    """Active accounts holding one of `roles` in the community."""
    rows = await session.scalars(
        select(RoleGrant.account_id)
        .join(Account, Account.id == RoleGrant.account_id)
        .where(
            RoleGrant.community_id == community_id,
            RoleGrant.role.in_([r.value for r in roles]),
            Account.is_active.is_(True),
        )
    )
    return set(rows.all())


HALL_ROLES = (Role.STAFF, Role.COMMUNITY_ADMIN)


# -- procedures --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DocumentSpec:
    """A named document slot of a procedure."""

    key: str
    name: str
    required: bool = True
    note: str = ""


@dataclass(frozen=True, slots=True)
class StepSpec:
    """One step of a procedure and the role that handles it."""

    name: str
    role: str


@dataclass(frozen=True, slots=True)
class ProcedureDraft:
    community_id: int
    code: str
    name: str
    kind: ProcedureKind
    time_limit_days: int
    steps: Sequence[StepSpec]
    documents: Sequence[DocumentSpec] = ()
    purpose: str = ""
    fee_cents: int = 0
    handled_by: str = ""
    basis: str = ""
    sort_order: int = 0
    published: bool = True


def _check_draft(draft: ProcedureDraft) -> tuple[str, str, list[dict[str, Any]], list[dict[str, Any]]]:
    code = _text(draft.code, field="code", limit=50, what="code").lower()
    if not all(ch.isascii() and (ch.isalnum() or ch in "-_") for ch in code):
        raise ValidationFailed("A code has letters, digits, - and _ only.", field="code")
    name = _text(draft.name, field="name", limit=MAX_NAME, what="name")
    if not 1 <= draft.time_limit_days <= MAX_LIMIT_DAYS:
        raise ValidationFailed(f"The time limit is 1 to {MAX_LIMIT_DAYS} working days.", field="timeLimitDays")
    if not 0 <= draft.fee_cents <= MAX_FEE_CENTS:
        raise ValidationFailed("The fee is 0 to 10,000 yuan.", field="feeCents")
    if not 2 <= len(draft.steps) <= MAX_STEPS:
        raise ValidationFailed(
            f"A procedure has 2 to {MAX_STEPS} steps: acceptance first, completion last.", field="steps"
        )
    if len(draft.documents) > MAX_DOCUMENTS:
        raise ValidationFailed(f"At most {MAX_DOCUMENTS} documents.", field="documents")
    steps = [
        {
            "name": _text(s.name, field="steps", limit=MAX_NAME, what="step's name"),
            "role": _text(s.role, field="steps", limit=MAX_NAME, what="step's handler role"),
        }
        for s in draft.steps
    ]
    documents: list[dict[str, Any]] = []
    for d in draft.documents:
        key = _text(d.key, field="documents", limit=50, what="document key").lower()
        if key in {x["key"] for x in documents}:
            raise ValidationFailed(f"The document key {key} is given twice.", field="documents")
        documents.append(
            {
                "key": key,
                "name": _text(d.name, field="documents", limit=MAX_NAME, what="document's name"),
                "required": d.required,
                "note": _text(d.note, field="documents", limit=500, what="note", required=False),
            }
        )
    return code, name, steps, documents


async def publish_procedure(
    uow: UnitOfWork, *, viewer: Viewer, draft: ProcedureDraft, now: datetime | None = None
) -> tuple[HallProcedure, HallProcedureVersion]:
    """Publish a procedure, or a new version of the one with the same code.

    Applications made under an older version keep it. Raises Forbidden, ValidationFailed, Conflict.
    """
    viewer.require(Permission.MANAGE_HALL, draft.community_id)
    return await write_procedure(uow, draft=draft, account_id=viewer.account_id, now=now)


async def write_procedure(
    uow: UnitOfWork, *, draft: ProcedureDraft, account_id: int | None, now: datetime | None = None
) -> tuple[HallProcedure, HallProcedureVersion]:
    """Publish without a permission check: for the seed and for callers that checked already."""
    now = now or utc_now()
    code, name, steps, documents = _check_draft(draft)
    procedure = await uow.session.scalar(
        _for_update(
            uow.session,
            select(HallProcedure).where(HallProcedure.community_id == draft.community_id, HallProcedure.code == code),
        )
    )
    if procedure is None:
        procedure = HallProcedure(
            community_id=draft.community_id, code=code, kind=draft.kind.value, latest_version=1,
            published=draft.published, sort_order=draft.sort_order, created_at=now, updated_at=now,
        )  # fmt: skip
        try:
            async with uow.session.begin_nested():
                uow.session.add(procedure)
                await uow.session.flush()
        except IntegrityError as exc:
            raise Conflict("That procedure was just published by someone else; try again.", field="code") from exc
        number = 1
    else:
        if procedure.kind != draft.kind.value:
            raise ValidationFailed("A procedure keeps its kind; publish it under a new code.", field="kind")
        number = procedure.latest_version + 1
        procedure.latest_version = number
        procedure.published = draft.published
        procedure.sort_order = draft.sort_order
        procedure.updated_at = now
    version = HallProcedureVersion(
        community_id=draft.community_id, procedure_id=procedure.id, version=number, name=name,
        purpose=_text(draft.purpose, field="purpose", limit=MAX_TEXT, what="purpose", required=False),
        documents=documents, steps=steps, time_limit_days=draft.time_limit_days, fee_cents=draft.fee_cents,
        handled_by=_text(draft.handled_by, field="handledBy", limit=200, what="handler", required=False),
        basis=_text(draft.basis, field="basis", limit=MAX_TEXT, what="basis", required=False),
        published_by_account_id=account_id, created_at=now,
    )  # fmt: skip
    uow.session.add(version)
    await uow.session.flush()
    return procedure, version


async def list_procedures(
    session: AsyncSession, *, viewer: Viewer, community_id: int, include_unpublished: bool = False
) -> list[tuple[HallProcedure, HallProcedureVersion]]:
    """The community's procedures with their latest versions (unpublished ones for staff only)."""
    if community_id not in viewer.community_ids:
        return []
    stmt = (
        select(HallProcedure, HallProcedureVersion)
        .join(
            HallProcedureVersion,
            (HallProcedureVersion.procedure_id == HallProcedure.id)
            & (HallProcedureVersion.version == HallProcedure.latest_version),
        )
        .where(HallProcedure.community_id == community_id)
        .order_by(HallProcedure.sort_order, HallProcedure.id)
    )
    if not (include_unpublished and is_staff(viewer, community_id)):
        stmt = stmt.where(HallProcedure.published.is_(True))
    return [(p, v) for p, v in (await session.execute(stmt)).all()]


async def versions_by_id(session: AsyncSession, ids: Sequence[int]) -> dict[int, HallProcedureVersion]:
    rows = await session.scalars(select(HallProcedureVersion).where(HallProcedureVersion.id.in_(ids)))
    return {r.id: r for r in rows.all()}


# -- applications ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DocumentUpload:
    """A file for one document slot of the procedure."""

    slot: str
    photo: bytes | PreparedPhoto


@dataclass(frozen=True, slots=True)
class VehicleRequest:
    """What a vehicle application asks for: register a new vehicle, change one, or remove one."""

    action: str  # register, change, remove
    vehicle_id: int | None = None
    plate: str | None = None
    kind: VehicleKind | None = None
    description: str | None = None


@dataclass(frozen=True, slots=True)
class ParkingRequest:
    vehicle_id: int
    compound_id: int


@dataclass(frozen=True, slots=True)
class ApplicationDraft:
    procedure_id: int
    documents: Sequence[DocumentUpload] = ()
    vehicle: VehicleRequest | None = None
    parking: ParkingRequest | None = None
    note: str = ""


def attachment_key(community_id: int, application_id: int, extension: str) -> str:
    return f"hall/{community_id}/{application_id}/{uuid.uuid4().hex}.{extension}"


def _missing(
    version: HallProcedureVersion, slots: set[str], only: Sequence[str] | None = None
) -> list[tuple[str, str]]:
    wanted = [d for d in version.documents if (d["key"] in only if only is not None else d.get("required", True))]
    return [(d["key"], d["name"]) for d in wanted if d["key"] not in slots]


def _check_slots(version: HallProcedureVersion, uploads: Sequence[DocumentUpload]) -> None:
    known = {d["key"] for d in version.documents}
    for u in uploads:
        if u.slot not in known:
            raise ValidationFailed(f"This procedure has no document called {u.slot!r}.", field="documents")


async def _applicant(session: AsyncSession, viewer: Viewer, community_id: int) -> Resident:
    viewer.require_authenticated()
    resident = await session.get(Resident, viewer.resident_id) if viewer.resident_id is not None else None
    if resident is None or resident.community_id != community_id:
        raise NotResident("Only residents registered in this community can apply here.", field="procedureId")
    return resident


async def _household_vehicle(session: AsyncSession, household_id: int | None, vehicle_id: int | None) -> Vehicle:
    vehicle = await session.get(Vehicle, vehicle_id) if vehicle_id is not None else None
    if vehicle is None or vehicle.household_id != household_id or vehicle.removed_at is not None:
        raise NotFound("Your household has no such vehicle.", field="vehicleId")
    return vehicle


async def _plate_in_use(session: AsyncSession, community_id: int, plate: str, *, other_than: int | None) -> bool:
    found = await session.scalar(
        select(Vehicle.id).where(
            Vehicle.community_id == community_id,
            Vehicle.plate == plate,
            Vehicle.removed_at.is_(None),
            Vehicle.id != (other_than or -1),
        )
    )
    return found is not None


async def _vehicle_details(session: AsyncSession, request: VehicleRequest | None, resident: Resident) -> dict[str, Any]:
    if request is None:
        raise ValidationFailed("Say which vehicle to register, change or remove.", field="vehicle")
    if resident.household_id is None:
        raise NotResident("Only a registered household can register vehicles.", field="vehicle")
    cid = resident.community_id
    if request.action == "register":
        if request.kind is None or request.plate is None:
            raise ValidationFailed("Give the plate and the kind of vehicle.", field="vehicle")
        plate, _ = check_plate(request.plate, vehicle_kind=request.kind.value, field="plate")
        if await _plate_in_use(session, cid, plate, other_than=None):
            raise PlateTaken(f"「{plate}」 is already registered in this community.", field="plate")
        return {
            "action": "register", "plate": plate, "kind": request.kind.value,
            "description": _text(request.description or "", field="description", limit=100, what="", required=False),
        }  # fmt: skip
    if request.action in ("change", "remove"):
        vehicle = await _household_vehicle(session, resident.household_id, request.vehicle_id)
        if request.action == "remove":
            return {"action": "remove", "vehicle_id": vehicle.id, "plate": vehicle.plate}
        kind = request.kind.value if request.kind is not None else vehicle.kind
        plate, _ = check_plate(request.plate or vehicle.plate, vehicle_kind=kind, field="plate")
        if plate != vehicle.plate and await _plate_in_use(session, cid, plate, other_than=vehicle.id):
            raise PlateTaken(f"「{plate}」 is already registered in this community.", field="plate")
        description = vehicle.description if request.description is None else request.description
        return {
            "action": "change", "vehicle_id": vehicle.id, "plate": plate, "kind": kind,
            "description": _text(description, field="description", limit=100, what="", required=False),
        }  # fmt: skip
    raise ValidationFailed("The action is register, change or remove.", field="vehicle")


async def current_quota(session: AsyncSession, compound_id: int, day: date) -> ParkingQuota | None:
    return await session.scalar(
        select(ParkingQuota)
        .where(ParkingQuota.compound_id == compound_id, ParkingQuota.starts_on <= day, ParkingQuota.ends_on >= day)
        .order_by(ParkingQuota.starts_on.desc())
        .limit(1)
    )


async def _parking_details(
    session: AsyncSession, request: ParkingRequest | None, resident: Resident, day: date
) -> dict[str, Any]:
    if request is None:
        raise ValidationFailed("Say which vehicle and which compound the permit is for.", field="parking")
    vehicle = await _household_vehicle(session, resident.household_id, request.vehicle_id)
    compound = await session.get(Compound, request.compound_id)
    if compound is None or compound.community_id != resident.community_id:
        raise NotFound("No such compound in this community.", field="compoundId")
    quota = await current_quota(session, compound.id, day)
    if quota is None:
        raise NoParkingQuota(f"{compound.name} gives out no parking permits for this period.", field="compoundId")
    held = await session.scalar(
        select(ParkingPermit.id).where(
            ParkingPermit.quota_id == quota.id,
            ParkingPermit.vehicle_id == vehicle.id,
            ParkingPermit.revoked_at.is_(None),
        )
    )
    if held is not None:
        raise AlreadyHasPermit(f"「{vehicle.plate}」 already has a permit for this period.", field="vehicleId")
    if quota.issued >= quota.quota:
        raise QuotaFull(f"All {quota.quota} parking permits of {compound.name} are out.", quota=quota.quota,
                        field="compoundId")  # fmt: skip
    return {"vehicle_id": vehicle.id, "plate": vehicle.plate, "compound_id": compound.id}


async def _time_limit(session: AsyncSession, community_id: int, received_at: datetime, days: int) -> TimeLimit:
    return time_limit(await calendar_for(session, community_id), received_at, days)


def _event(
    app: HallApplication, kind: EventKind, *, actor: int | None, name: str, role: str, note: str = "",
    step: int | None = None, step_name: str = "", now: datetime,
) -> HallApplicationEvent:  # fmt: skip
    return HallApplicationEvent(
        community_id=app.community_id, application_id=app.id, kind=kind.value, step_index=step, step_name=step_name,
        actor_account_id=actor, actor_name=name, actor_role=role, note=note, created_at=now,
    )  # fmt: skip


async def _record(uow: UnitOfWork, app: HallApplication, event: HallApplicationEvent, *, tell: bool = True) -> None:
    uow.session.add(event)
    await uow.session.flush()
    if tell:
        uow.enqueue(jobs.application_changed(app.id, event.id))


async def _store(
    uow: UnitOfWork, app: HallApplication, store: PhotoStore, uploads: Sequence[DocumentUpload], *,
    limits: PhotoLimits, round_: int, account_id: int | None, now: datetime,
) -> list[HallAttachment]:  # fmt: skip
    prepared = await ensure_prepared([u.photo for u in uploads], limits)
    keys = await store_unless_rolled_back(
        uow.session, store, prepared, lambda p: attachment_key(app.community_id, app.id, p.extension)
    )
    rows = [
        HallAttachment(
            community_id=app.community_id,
            application_id=app.id,
            slot=u.slot,
            storage_key=key,
            content_type=p.content_type,
            size_bytes=len(p.content),
            width=p.width,
            height=p.height,
            round=round_,
            uploaded_by_account_id=account_id,
            created_at=now,
        )
        for u, p, key in zip(uploads, prepared, keys, strict=True)
    ]
    uow.session.add_all(rows)
    await uow.session.flush()
    return rows


async def submit_application(
    uow: UnitOfWork, *, viewer: Viewer, store: PhotoStore, draft: ApplicationDraft,
    limits: PhotoLimits = PhotoLimits(), now: datetime | None = None,
) -> HallApplication:  # fmt: skip
    """A resident applies under the procedure's current version, with a file for each document.

    Raises Unauthenticated, NotFound, NotResident, MissingDocuments, ValidationFailed, InvalidPlate,
    PlateTaken, NoParkingQuota, QuotaFull, AlreadyHasPermit, PhotoRejected.
    """
    viewer.require_authenticated()
    now = now or utc_now()
    procedure = await uow.session.get(HallProcedure, draft.procedure_id)
    if procedure is None or procedure.community_id not in viewer.community_ids or not procedure.published:
        raise NotFound("No such procedure.", field="procedureId")
    resident = await _applicant(uow.session, viewer, procedure.community_id)
    version = await uow.session.scalar(
        select(HallProcedureVersion).where(
            HallProcedureVersion.procedure_id == procedure.id, HallProcedureVersion.version == procedure.latest_version
        )
    )
    assert version is not None
    check_count(len(draft.documents), limits, owner="hall application")
    _check_slots(version, draft.documents)
    missing = _missing(version, {u.slot for u in draft.documents})
    if missing:
        raise MissingDocuments(missing)
    details: dict[str, Any] = {}
    if procedure.kind == ProcedureKind.VEHICLE.value:
        details = await _vehicle_details(uow.session, draft.vehicle, resident)
    elif procedure.kind == ProcedureKind.PARKING_PERMIT.value:
        details = await _parking_details(uow.session, draft.parking, resident, local_day(now))
    limit = await _time_limit(uow.session, procedure.community_id, now, version.time_limit_days)
    app = HallApplication(
        community_id=procedure.community_id, procedure_id=procedure.id, version_id=version.id,
        applicant_account_id=viewer.account_id, applicant_resident_id=resident.id, household_id=resident.household_id,
        state=ApplicationState.SUBMITTED.value, step_index=0, details=details,
        note=_text(draft.note, field="note", limit=MAX_TEXT, what="note", required=False), submitted_at=now,
        due_at=limit.due_at, warn_at=limit.warn_at, clock_round=1, requested_documents=[], updated_at=now,
    )  # fmt: skip
    uow.session.add(app)
    await uow.session.flush()
    await _store(uow, app, store, draft.documents, limits=limits, round_=1, account_id=viewer.account_id, now=now)
    submitted = _event(
        app,
        EventKind.SUBMITTED,
        actor=viewer.account_id,
        name=resident.name,
        role=APPLICANT_ROLE,
        note=app.note,
        now=now,
    )
    await _record(uow, app, submitted)
    return app


def visible_applications(viewer: Viewer) -> Select[HallApplication]:
    """Applications that exist for the viewer: their own, and every one of the communities they staff."""
    staff_of = [cid for cid in viewer.community_ids if is_staff(viewer, cid)]
    conds: list[Any] = [HallApplication.community_id.in_(staff_of)]
    if viewer.account_id is not None:
        conds.append(
            (HallApplication.applicant_account_id == viewer.account_id)
            & HallApplication.community_id.in_(viewer.community_ids)
        )
    return select(HallApplication).where(or_(*conds))


async def _for_staff(
    uow: UnitOfWork, viewer: Viewer, application_id: int
) -> tuple[HallApplication, HallProcedureVersion]:
    """The application, locked for this move, and its version. Raises NotFound, Forbidden."""
    viewer.require_authenticated()
    app = await uow.session.scalar(
        _for_update(uow.session, select(HallApplication).where(HallApplication.id == application_id))
    )
    if app is None or app.community_id not in viewer.community_ids:
        raise NotFound("No such application.", field="applicationId")
    viewer.require(Permission.MANAGE_HALL, app.community_id)
    version = await uow.session.get(HallProcedureVersion, app.version_id)
    assert version is not None
    return app, version


def _step(version: HallProcedureVersion, index: int) -> dict[str, Any]:
    steps = version.steps
    return steps[min(index, len(steps) - 1)]


def _close(app: HallApplication, state: ApplicationState, now: datetime) -> None:
    app.state = state.value
    app.closed_at = now
    app.updated_at = now


async def accept_application(
    uow: UnitOfWork, *, viewer: Viewer, application_id: int, note: str = "", now: datetime | None = None
) -> HallApplication:
    """Accept (受理) a submitted application: the first step is done and the viewer handles it.

    Raises NotFound, Forbidden, WrongState.
    """
    now = now or utc_now()
    app, version = await _for_staff(uow, viewer, application_id)
    if app.state != ApplicationState.SUBMITTED.value:
        raise WrongState(f"Only a submitted application can be accepted (this one is {app.state}).")
    step = _step(version, 0)
    app.state = ApplicationState.IN_PROGRESS.value
    app.step_index = 1
    app.assignee_account_id = viewer.account_id
    app.updated_at = now
    name = await _display_name(uow.session, viewer.account_id)
    note = _text(note, field="note", limit=MAX_REASON, what="note", required=False)
    await _record(uow, app, _event(app, EventKind.ACCEPTED, actor=viewer.account_id, name=name, role=step["role"],
                                   step=0, step_name=step["name"], note=note, now=now))  # fmt: skip
    return app


async def advance_application(
    uow: UnitOfWork, *, viewer: Viewer, application_id: int, note: str = "", now: datetime | None = None
) -> HallApplication:
    """Complete the current step and move to the next (not the last: that is approval).

    Raises NotFound, Forbidden, WrongState.
    """
    now = now or utc_now()
    app, version = await _for_staff(uow, viewer, application_id)
    last = len(version.steps) - 1
    if app.state != ApplicationState.IN_PROGRESS.value:
        raise WrongState(f"Only an application in progress moves on (this one is {app.state}).")
    if app.step_index >= last:
        raise WrongState("This is the last step: approve or reject the application.")
    step = _step(version, app.step_index)
    done = app.step_index
    app.step_index = done + 1
    app.updated_at = now
    name = await _display_name(uow.session, viewer.account_id)
    note = _text(note, field="note", limit=MAX_REASON, what="note", required=False)
    await _record(uow, app, _event(app, EventKind.ADVANCED, actor=viewer.account_id, name=name, role=step["role"],
                                   step=done, step_name=step["name"], note=note, now=now))  # fmt: skip
    return app


async def request_documents(
    uow: UnitOfWork, *, viewer: Viewer, application_id: int, slots: Sequence[str], note: str,
    now: datetime | None = None,
) -> HallApplication:  # fmt: skip
    """Ask the applicant for more or better documents (补正); the clock restarts on resubmission.

    Raises NotFound, Forbidden, WrongState, ValidationFailed.
    """
    now = now or utc_now()
    app, version = await _for_staff(uow, viewer, application_id)
    if app.state not in (ApplicationState.SUBMITTED.value, ApplicationState.IN_PROGRESS.value):
        raise WrongState(f"Documents can be asked for only while the application is open (it is {app.state}).")
    known = {d["key"]: d["name"] for d in version.documents}
    wanted = list(dict.fromkeys(s.strip().lower() for s in slots))
    if not wanted:
        raise ValidationFailed("Say which documents are needed.", field="slots")
    unknown = [s for s in wanted if s not in known]
    if unknown:
        raise ValidationFailed(f"This procedure has no document called {unknown[0]!r}.", field="slots")
    note = _text(note, field="note", limit=MAX_REASON, what="reason the documents are needed")
    step = _step(version, app.step_index)
    app.state = ApplicationState.NEEDS_DOCUMENTS.value
    app.requested_documents = wanted
    app.updated_at = now
    name = await _display_name(uow.session, viewer.account_id)
    listed = "、".join(known[s] for s in wanted)
    await _record(uow, app, _event(app, EventKind.DOCUMENTS_REQUESTED, actor=viewer.account_id, name=name,
                                   role=step["role"], step=app.step_index, step_name=step["name"],
                                   note=f"{listed}：{note}", now=now))  # fmt: skip
    return app


async def resubmit_documents(
    uow: UnitOfWork, *, viewer: Viewer, store: PhotoStore, application_id: int, documents: Sequence[DocumentUpload],
    note: str = "", limits: PhotoLimits = PhotoLimits(), now: datetime | None = None,
) -> HallApplication:  # fmt: skip
    """The applicant sends the documents asked for; the application goes back with a new time limit.

    Raises Unauthenticated, NotFound, WrongState, MissingDocuments, PhotoRejected.
    """
    viewer.require_authenticated()
    now = now or utc_now()
    app = await uow.session.scalar(
        _for_update(uow.session, select(HallApplication).where(HallApplication.id == application_id))
    )
    if app is None or app.applicant_account_id != viewer.account_id or app.community_id not in viewer.community_ids:
        raise NotFound("No such application.", field="applicationId")
    if app.state != ApplicationState.NEEDS_DOCUMENTS.value:
        raise WrongState("No documents have been asked for.")
    version = await uow.session.get(HallProcedureVersion, app.version_id)
    assert version is not None
    check_count(len(documents), limits, owner="hall application")
    _check_slots(version, documents)
    missing = _missing(version, {u.slot for u in documents}, only=app.requested_documents)
    if missing:
        raise MissingDocuments(missing)
    round_ = app.clock_round + 1
    await _store(uow, app, store, documents, limits=limits, round_=round_, account_id=viewer.account_id, now=now)
    limit = await _time_limit(uow.session, app.community_id, now, version.time_limit_days)
    app.state = (
        ApplicationState.IN_PROGRESS.value if app.assignee_account_id is not None else ApplicationState.SUBMITTED.value
    )
    app.requested_documents = []
    app.clock_round = round_
    app.due_at, app.warn_at = limit.due_at, limit.warn_at
    app.warned_at = app.escalated_at = None
    app.updated_at = now
    resident = await uow.session.get(Resident, app.applicant_resident_id) if app.applicant_resident_id else None
    name = resident.name if resident else await _display_name(uow.session, viewer.account_id)
    note = _text(note, field="note", limit=MAX_REASON, what="note", required=False)
    await _record(uow, app, _event(app, EventKind.DOCUMENTS_RESUBMITTED, actor=viewer.account_id, name=name,
                                   role=APPLICANT_ROLE, note=note, now=now))  # fmt: skip
    return app


async def reject_application(
    uow: UnitOfWork, *, viewer: Viewer, application_id: int, reason: str, now: datetime | None = None
) -> HallApplication:
    """Refuse an open application with a reason the applicant sees.

    Raises NotFound, Forbidden, WrongState, ValidationFailed.
    """
    now = now or utc_now()
    app, version = await _for_staff(uow, viewer, application_id)
    if app.state not in OPEN_STATES:
        raise WrongState(f"The application is closed already ({app.state}).")
    reason = _text(reason, field="reason", limit=MAX_REASON, what="reason")
    step = _step(version, app.step_index)
    _close(app, ApplicationState.REJECTED, now)
    app.reason = reason
    name = await _display_name(uow.session, viewer.account_id)
    await _record(uow, app, _event(app, EventKind.REJECTED, actor=viewer.account_id, name=name, role=step["role"],
                                   step=app.step_index, step_name=step["name"], note=reason, now=now))  # fmt: skip
    return app


async def approve_application(
    uow: UnitOfWork, *, viewer: Viewer, application_id: int, note: str = "", now: datetime | None = None
) -> HallApplication:
    """Complete the last step (办结); a vehicle or permit application makes its change in this transaction.

    Raises NotFound, Forbidden, WrongState, PlateTaken, QuotaFull, NoParkingQuota, AlreadyHasPermit.
    """
    now = now or utc_now()
    app, version = await _for_staff(uow, viewer, application_id)
    last = len(version.steps) - 1
    if app.state != ApplicationState.IN_PROGRESS.value or app.step_index < last:
        raise WrongState("Only an application at its last step can be approved.")
    procedure = await uow.session.get(HallProcedure, app.procedure_id)
    assert procedure is not None
    if procedure.kind == ProcedureKind.VEHICLE.value:
        vehicle = await _apply_vehicle_change(uow, app, viewer=viewer, now=now)
        app.vehicle_id = vehicle.id
    elif procedure.kind == ProcedureKind.PARKING_PERMIT.value:
        permit = await _issue_permit_for(uow, app, now=now)
        app.permit_id = permit.id
        app.vehicle_id = permit.vehicle_id
    step = _step(version, last)
    _close(app, ApplicationState.COMPLETED, now)
    name = await _display_name(uow.session, viewer.account_id)
    note = _text(note, field="note", limit=MAX_REASON, what="note", required=False)
    await _record(uow, app, _event(app, EventKind.COMPLETED, actor=viewer.account_id, name=name, role=step["role"],
                                   step=last, step_name=step["name"], note=note, now=now))  # fmt: skip
    return app


# -- vehicles ----------------------------------------------------------------------------------------


def _snapshot(v: Vehicle) -> dict[str, Any]:
    return {"plate": v.plate, "kind": v.kind, "description": v.description}


async def _flush_vehicle(uow: UnitOfWork, plate: str) -> None:
    try:
        async with uow.session.begin_nested():
            await uow.session.flush()
    except IntegrityError as exc:
        if _violates(exc, PLATE_INDEX, "hall_vehicle", "community_id", "plate"):
            raise PlateTaken(f"「{plate}」 is already registered in this community.", field="plate") from exc
        raise


async def _apply_vehicle_change(uow: UnitOfWork, app: HallApplication, *, viewer: Viewer, now: datetime) -> Vehicle:
    d = app.details
    action = d.get("action")
    if action == "register":
        if app.household_id is None:
            raise NotResident("The applicant's household is no longer registered.", field="applicationId")
        vehicle = Vehicle(
            community_id=app.community_id, household_id=app.household_id, plate=d["plate"], kind=d["kind"],
            description=d.get("description", ""), registered_at=now, updated_at=now,
        )  # fmt: skip
        uow.session.add(vehicle)
        await _flush_vehicle(uow, vehicle.plate)
        uow.session.add(
            VehicleEvent(community_id=app.community_id, vehicle_id=vehicle.id, kind=VehicleEventKind.REGISTERED.value,
                         before={}, after=_snapshot(vehicle), application_id=app.id,
                         actor_account_id=viewer.account_id, created_at=now)
        )  # fmt: skip
        return vehicle
    changing = await uow.session.scalar(_for_update(uow.session, select(Vehicle).where(Vehicle.id == d["vehicle_id"])))
    if changing is None or changing.removed_at is not None:
        raise WrongState("The vehicle has been removed meanwhile; reject this application.", field="applicationId")
    vehicle = changing
    before = _snapshot(vehicle)
    if action == "remove":
        vehicle.removed_at = now
        vehicle.updated_at = now
        await uow.session.flush()
        for permit in (
            await uow.session.scalars(
                select(ParkingPermit).where(ParkingPermit.vehicle_id == vehicle.id, ParkingPermit.revoked_at.is_(None))
            )
        ).all():
            await _revoke(uow, permit, reason="车辆已注销", now=now)
        kind, after = VehicleEventKind.REMOVED, {}
    else:
        vehicle.plate, vehicle.kind, vehicle.description = d["plate"], d["kind"], d.get("description", "")
        vehicle.updated_at = now
        await _flush_vehicle(uow, vehicle.plate)
        kind, after = VehicleEventKind.CHANGED, _snapshot(vehicle)
    uow.session.add(
        VehicleEvent(community_id=app.community_id, vehicle_id=vehicle.id, kind=kind.value, before=before,
                     after=after, application_id=app.id, actor_account_id=viewer.account_id, created_at=now)
    )  # fmt: skip
    await uow.session.flush()
    return vehicle


def visible_vehicles(viewer: Viewer, household_ids: Sequence[int] = ()) -> Select[Vehicle]:
    """Active vehicles the viewer may see: staff see their communities', residents their household's."""
    staff_of = [cid for cid in viewer.community_ids if is_staff(viewer, cid)]
    conds: list[Any] = [Vehicle.community_id.in_(staff_of)]
    if household_ids:
        conds.append(Vehicle.household_id.in_(household_ids) & Vehicle.community_id.in_(viewer.community_ids))
    return select(Vehicle).where(or_(*conds), Vehicle.removed_at.is_(None))


async def viewer_household_ids(session: AsyncSession, viewer: Viewer) -> list[int]:
    if viewer.resident_id is None:
        return []
    hid = await session.scalar(select(Resident.household_id).where(Resident.id == viewer.resident_id))
    return [hid] if hid is not None else []


async def vehicle_history(session: AsyncSession, vehicle_ids: Sequence[int]) -> dict[int, list[VehicleEvent]]:
    out: dict[int, list[VehicleEvent]] = defaultdict(list)
    rows = await session.scalars(
        select(VehicleEvent).where(VehicleEvent.vehicle_id.in_(vehicle_ids)).order_by(VehicleEvent.id)
    )
    for r in rows.all():
        out[r.vehicle_id].append(r)
    return out


# -- parking permits ---------------------------------------------------------------------------------


async def set_parking_quota(
    uow: UnitOfWork, *, viewer: Viewer, compound_id: int, starts_on: date, ends_on: date, quota: int,
    now: datetime | None = None,
) -> ParkingQuota:  # fmt: skip
    """Set how many permits a compound gives out for a period (a new period, or a change to one).

    Raises NotFound, Forbidden, ValidationFailed, Conflict (below the permits out, or overlapping).
    """
    viewer.require_authenticated()
    now = now or utc_now()
    compound = await uow.session.get(Compound, compound_id)
    if compound is None or compound.community_id not in viewer.community_ids:
        raise NotFound("No such compound.", field="compoundId")
    viewer.require(Permission.MANAGE_HALL, compound.community_id)
    if not 0 <= quota <= MAX_QUOTA:
        raise ValidationFailed(f"A quota is 0 to {MAX_QUOTA}.", field="quota")
    if ends_on < starts_on:
        raise ValidationFailed("The period ends on or after its first day.", field="endsOn")
    row = await uow.session.scalar(
        _for_update(
            uow.session,
            select(ParkingQuota).where(ParkingQuota.compound_id == compound_id, ParkingQuota.starts_on == starts_on),
        )
    )
    overlapping = await uow.session.scalar(
        select(ParkingQuota.id).where(
            ParkingQuota.compound_id == compound_id,
            ParkingQuota.starts_on <= ends_on,
            ParkingQuota.ends_on >= starts_on,
            ParkingQuota.id != (row.id if row else -1),
        )
    )
    if overlapping is not None:
        raise Conflict("Another quota period of this compound overlaps these dates.", field="startsOn")
    if row is None:
        row = ParkingQuota(community_id=compound.community_id, compound_id=compound_id, starts_on=starts_on,
                           ends_on=ends_on, quota=quota, issued=0, created_at=now, updated_at=now)  # fmt: skip
        uow.session.add(row)
    else:
        if quota < row.issued:
            raise Conflict(f"{row.issued} permits are out already; revoke some before lowering the quota.",
                           field="quota")  # fmt: skip
        row.quota, row.ends_on, row.updated_at = quota, ends_on, now
    try:
        async with uow.session.begin_nested():
            await uow.session.flush()
    except IntegrityError as exc:
        raise Conflict("The quota changed meanwhile, or its period overlaps another; try again.",
                       field="quota") from exc  # fmt: skip
    return row


async def _issue_permit_for(uow: UnitOfWork, app: HallApplication, *, now: datetime) -> ParkingPermit:
    d = app.details
    vehicle = await uow.session.get(Vehicle, d["vehicle_id"])
    if vehicle is None or vehicle.removed_at is not None:
        raise WrongState("The vehicle has been removed meanwhile; reject this application.", field="applicationId")
    return await issue_permit(uow, vehicle=vehicle, compound_id=d["compound_id"], day=local_day(now), now=now)


async def issue_permit(
    uow: UnitOfWork, *, vehicle: Vehicle, compound_id: int, day: date, now: datetime | None = None
) -> ParkingPermit:
    """Issue a permit under the compound's quota for `day`'s period; the quota row's counter decides.

    The conditional UPDATE takes the row lock until commit, so concurrent permits of one quota are
    issued one at a time and each sees the slots the others took. Raises NoParkingQuota, QuotaFull,
    AlreadyHasPermit.
    """
    now = now or utc_now()
    quota = await current_quota(uow.session, compound_id, day)
    if quota is None:
        raise NoParkingQuota("The compound gives out no parking permits for this period.", field="compoundId")
    taken = await uow.session.scalar(
        update(ParkingQuota)
        .where(ParkingQuota.id == quota.id, ParkingQuota.issued < ParkingQuota.quota)
        .values(issued=ParkingQuota.issued + 1, updated_at=now)
        .returning(ParkingQuota.issued)
        .execution_options(synchronize_session=False)
    )
    if taken is None:
        raise QuotaFull(f"All {quota.quota} parking permits of this period are out.", quota=quota.quota,
                        field="compoundId")  # fmt: skip
    slots = set(
        (
            await uow.session.scalars(
                select(ParkingPermit.slot).where(ParkingPermit.quota_id == quota.id, ParkingPermit.revoked_at.is_(None))
            )
        ).all()
    )
    slot = next(s for s in range(1, quota.quota + 1) if s not in slots)  # the counter guarantees one is free
    permit = ParkingPermit(
        community_id=quota.community_id, quota_id=quota.id, compound_id=compound_id, vehicle_id=vehicle.id,
        household_id=vehicle.household_id, slot=slot, starts_on=quota.starts_on, ends_on=quota.ends_on,
        issued_at=now,
    )  # fmt: skip
    try:
        async with uow.session.begin_nested():
            uow.session.add(permit)
            await uow.session.flush()
    except IntegrityError as exc:
        if _violates(exc, PERMIT_VEHICLE_INDEX, "hall_parking_permit", "quota_id", "vehicle_id"):
            raise AlreadyHasPermit(f"「{vehicle.plate}」 already has a permit for this period.",
                                   field="vehicleId") from exc  # fmt: skip
        raise
    return permit


async def _revoke(uow: UnitOfWork, permit: ParkingPermit, *, reason: str, now: datetime) -> bool:
    result = await uow.session.execute(
        update(ParkingPermit)
        .where(ParkingPermit.id == permit.id, ParkingPermit.revoked_at.is_(None))
        .values(revoked_at=now, revoke_reason=reason[:200])
        .execution_options(synchronize_session=False)
    )
    if _rowcount(result) == 0:
        return False
    await uow.session.execute(
        update(ParkingQuota)
        .where(ParkingQuota.id == permit.quota_id)
        .values(issued=ParkingQuota.issued - 1, updated_at=now)
        .execution_options(synchronize_session=False)
    )
    return True


async def revoke_permit(
    uow: UnitOfWork, *, viewer: Viewer, permit_id: int, reason: str, now: datetime | None = None
) -> ParkingPermit:
    """Revoke an active permit; its slot goes back to the quota. Raises NotFound, Forbidden, WrongState."""
    viewer.require_authenticated()
    now = now or utc_now()
    permit = await uow.session.get(ParkingPermit, permit_id)
    if permit is None or permit.community_id not in viewer.community_ids:
        raise NotFound("No such permit.", field="permitId")
    viewer.require(Permission.MANAGE_HALL, permit.community_id)
    reason = _text(reason, field="reason", limit=200, what="reason")
    if not await _revoke(uow, permit, reason=reason, now=now):
        raise WrongState("The permit has been revoked already.", field="permitId")
    await uow.session.refresh(permit)
    return permit


async def quotas(session: AsyncSession, *, viewer: Viewer, community_id: int, day: date) -> list[ParkingQuota]:
    """The community's quota periods that have not ended by `day`, by compound and start."""
    if community_id not in viewer.community_ids:
        return []
    rows = await session.scalars(
        select(ParkingQuota)
        .where(ParkingQuota.community_id == community_id, ParkingQuota.ends_on >= day)
        .order_by(ParkingQuota.compound_id, ParkingQuota.starts_on)
    )
    return list(rows.all())


async def permits_of(session: AsyncSession, vehicle_ids: Sequence[int]) -> dict[int, list[ParkingPermit]]:
    out: dict[int, list[ParkingPermit]] = defaultdict(list)
    rows = await session.scalars(
        select(ParkingPermit)
        .where(ParkingPermit.vehicle_id.in_(vehicle_ids), ParkingPermit.revoked_at.is_(None))
        .order_by(ParkingPermit.id)
    )
    for r in rows.all():
        out[r.vehicle_id].append(r)
    return out


# -- the staff queue ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class QueueFilter:
    procedure_id: int | None = None
    states: Sequence[ApplicationState] = ()
    assignee_account_id: int | None = None
    unassigned: bool = False
    escalated_only: bool = False


def queue_statement(viewer: Viewer, *, community_id: int, filt: QueueFilter = QueueFilter()) -> Select[HallApplication]:
    """Open applications of the community (staff), to be ordered by due date. Raises Forbidden."""
    viewer.require(Permission.MANAGE_HALL, community_id)
    stmt = select(HallApplication).where(
        HallApplication.community_id == community_id, HallApplication.closed_at.is_(None)
    )
    if filt.procedure_id is not None:
        stmt = stmt.where(HallApplication.procedure_id == filt.procedure_id)
    if filt.states:
        stmt = stmt.where(HallApplication.state.in_([s.value for s in filt.states]))
    if filt.assignee_account_id is not None:
        stmt = stmt.where(HallApplication.assignee_account_id == filt.assignee_account_id)
    if filt.unassigned:
        stmt = stmt.where(HallApplication.assignee_account_id.is_(None))
    if filt.escalated_only:
        stmt = stmt.where(HallApplication.escalated_at.is_not(None))
    return stmt


@dataclass(frozen=True, slots=True)
class QueuePage:
    items: list[HallApplication]
    has_next: bool


async def queue_page(
    session: AsyncSession, stmt: Select[HallApplication], *, first: int, after: tuple[datetime, int] | None
) -> QueuePage:
    """A keyset page ordered by (due date, id), read from the partial queue index."""
    if after is not None:
        stmt = stmt.where(tuple_(HallApplication.due_at, HallApplication.id) > tuple_(*after))
    rows = list(
        (await session.scalars(stmt.order_by(HallApplication.due_at, HallApplication.id).limit(first + 1))).all()
    )
    return QueuePage(rows[:first], len(rows) > first)


async def count_rows(session: AsyncSession, stmt: Select[Any]) -> int:
    return int(await session.scalar(select(func.count()).select_from(stmt.order_by(None).subquery())) or 0)


async def events_of(session: AsyncSession, application_ids: Sequence[int]) -> dict[int, list[HallApplicationEvent]]:
    out: dict[int, list[HallApplicationEvent]] = defaultdict(list)
    rows = await session.scalars(
        select(HallApplicationEvent)
        .where(HallApplicationEvent.application_id.in_(application_ids))
        .order_by(HallApplicationEvent.id)
    )
    for r in rows.all():
        out[r.application_id].append(r)
    return out


async def attachments_of(session: AsyncSession, application_ids: Sequence[int]) -> dict[int, list[HallAttachment]]:
    out: dict[int, list[HallAttachment]] = defaultdict(list)
    rows = await session.scalars(
        select(HallAttachment).where(HallAttachment.application_id.in_(application_ids)).order_by(HallAttachment.id)
    )
    for r in rows.all():
        out[r.application_id].append(r)
    return out


# -- notices and the scan ----------------------------------------------------------------------------


async def _procedure_name(session: AsyncSession, app: HallApplication) -> str:
    version = await session.get(HallProcedureVersion, app.version_id)
    return version.name if version else "办事申请"


async def tell_application_changed(uow: UnitOfWork, *, application_id: int, event_id: int) -> int:
    """Inbox notices for one step: the applicant always; staff for a new or resubmitted application.

    Idempotent: one notice per (recipient, event). Returns notices added.
    """
    app = await uow.session.get(HallApplication, application_id)
    event = await uow.session.get(HallApplicationEvent, event_id)
    if app is None or event is None or event.application_id != app.id:
        return 0  # gone meanwhile
    what = await _procedure_name(uow.session, app)
    label = EVENT_LABELS.get(event.kind)
    added = 0
    if app.applicant_account_id is not None and label is not None:  # not the applicant's own steps
        body = f"{event.step_name or label}（{event.actor_name} {event.actor_role}）{event.note}".strip()
        added += await notifications.notify(
            uow, recipients=[app.applicant_account_id],
            message=notifications.Message(community_id=app.community_id, event_key=f"hall-app:{app.id}:{event.id}",
                                          subject_kind="hall_application", subject_id=app.id,
                                          title=f"{what}：{label}", body=body),
        )  # fmt: skip
    if event.kind in (EventKind.SUBMITTED.value, EventKind.DOCUMENTS_RESUBMITTED.value):
        staff = await staff_accounts(uow.session, app.community_id, roles=HALL_ROLES)
        if app.assignee_account_id is not None:
            staff = {app.assignee_account_id}
        added += await notifications.notify(
            uow, recipients=staff,
            message=notifications.Message(community_id=app.community_id, event_key=f"hall-app:{app.id}:{event.id}",
                                          subject_kind="hall_application", subject_id=app.id,
                                          title=f"新的办事申请：{what}",
                                          body=f"办结时限 {app.due_at.astimezone(CHINA_TZ):%Y-%m-%d %H:%M}"),
        )  # fmt: skip
    return added


@dataclass
class ScanOutcome:
    warned: list[int] = field(default_factory=list)
    escalated: list[int] = field(default_factory=list)

    @property
    def more(self) -> bool:
        return len(self.warned) >= SCAN_BATCH or len(self.escalated) >= SCAN_BATCH


async def scan(uow: UnitOfWork, *, now: datetime | None = None, batch: int = SCAN_BATCH) -> ScanOutcome:
    """Warn about open applications with one working day left, escalate lapsed ones; each once.

    The conditional UPDATEs (warned_at / escalated_at still NULL) decide which run does it, and the
    notices are unique per (recipient, event): a repeated scan changes nothing.
    """
    now = now or utc_now()
    outcome = ScanOutcome()
    open_ = HallApplication.closed_at.is_(None)
    warn_ids = (
        select(HallApplication.id)
        .where(open_, HallApplication.warned_at.is_(None), HallApplication.warn_at <= now, HallApplication.due_at > now)
        .limit(batch)
    )
    warned = (
        await uow.session.scalars(
            update(HallApplication)
            .where(HallApplication.id.in_(warn_ids), HallApplication.warned_at.is_(None))
            .values(warned_at=now)
            .returning(HallApplication.id)
            .execution_options(synchronize_session=False)
        )
    ).all()
    outcome.warned = sorted(warned)
    lapse_ids = (
        select(HallApplication.id)
        .where(open_, HallApplication.escalated_at.is_(None), HallApplication.due_at <= now)
        .limit(batch)
    )
    escalated = (
        await uow.session.scalars(
            update(HallApplication)
            .where(HallApplication.id.in_(lapse_ids), HallApplication.escalated_at.is_(None))
            .values(escalated_at=now, warned_at=func.coalesce(HallApplication.warned_at, now))
            .returning(HallApplication.id)
            .execution_options(synchronize_session=False)
        )
    ).all()
    outcome.escalated = sorted(escalated)
    ids = [*outcome.warned, *outcome.escalated]
    if not ids:
        return outcome
    apps = {
        a.id: a for a in (await uow.session.scalars(select(HallApplication).where(HallApplication.id.in_(ids)))).all()
    }
    versions = await versions_by_id(uow.session, list({a.version_id for a in apps.values()}))
    staff_by: dict[int, set[int]] = {}
    admins_by: dict[int, set[int]] = {}
    for app_id in outcome.warned:
        app = apps[app_id]
        version = versions[app.version_id]
        if app.community_id not in staff_by:
            staff_by[app.community_id] = await staff_accounts(uow.session, app.community_id, roles=HALL_ROLES)
        who = set(staff_by[app.community_id])  # the hall's staff, and the handler whatever their role
        if app.assignee_account_id is not None:
            who.add(app.assignee_account_id)
        due = f"{app.due_at.astimezone(CHINA_TZ):%Y-%m-%d %H:%M}"
        uow.session.add(_event(app, EventKind.WARNED, actor=None, name=SYSTEM_NAME, role="",
                               note=f"距办结时限仅剩一个工作日（{due}）", now=now))  # fmt: skip
        await notifications.notify(
            uow, recipients=who,
            message=notifications.Message(community_id=app.community_id,
                                          event_key=f"hall-app:{app.id}:warn:{app.clock_round}",
                                          subject_kind="hall_application", subject_id=app.id,
                                          title=f"即将超时：{version.name}", body=f"办结时限 {due}，请尽快办理。"),
        )  # fmt: skip
    for app_id in outcome.escalated:
        app = apps[app_id]
        version = versions[app.version_id]
        if app.community_id not in admins_by:
            admins_by[app.community_id] = await staff_accounts(uow.session, app.community_id,
                                                               roles=(Role.COMMUNITY_ADMIN,))  # fmt: skip
        who = set(admins_by[app.community_id])
        if app.assignee_account_id is not None:
            who.add(app.assignee_account_id)
        due = f"{app.due_at.astimezone(CHINA_TZ):%Y-%m-%d %H:%M}"
        uow.session.add(_event(app, EventKind.ESCALATED, actor=None, name=SYSTEM_NAME, role="",
                               note=f"已超过办结时限（{due}），已上报社区负责人", now=now))  # fmt: skip
        await notifications.notify(
            uow, recipients=who,
            message=notifications.Message(community_id=app.community_id,
                                          event_key=f"hall-app:{app.id}:escalate:{app.clock_round}",
                                          subject_kind="hall_application", subject_id=app.id,
                                          title=f"已超时：{version.name}",
                                          body=f"申请 #{app.id} 已超过办结时限 {due}，请督办。"),
        )  # fmt: skip
    await uow.session.flush()
    return outcome
