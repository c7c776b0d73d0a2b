"""Service hall types: procedures, applications with their steps, vehicles, parking quotas and permits."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from typing import Any, Self

import strawberry
from sqlalchemy import select
from strawberry import relay
from strawberry.dataloader import DataLoader

from api.accounts.models import Account
from api.graphql.context import Info
from api.graphql.loaders import request_loader as _loader
from api.hall import models
from api.hall import service as hall_service
from api.hall.plates import PlateKind
from api.registry.models import Compound as CompoundModel
from api.registry.models import Resident as ResidentModel

ProcedureKindEnum = strawberry.enum(
    models.ProcedureKind,
    name="HallProcedureKind",
    description="general (staff do it, the system records it), vehicle (registers, changes or removes a "
    "household vehicle on approval) or parking_permit (issues a permit under the compound's quota on approval).",
)
ApplicationStateEnum = strawberry.enum(
    models.ApplicationState,
    name="HallApplicationState",
    description="submitted (waits for acceptance), in_progress, needs_documents (the applicant resubmits), "
    "completed (办结) or rejected.",
)
EventKindEnum = strawberry.enum(
    models.EventKind, name="HallApplicationEventKind", description="What happened at a step of an application."
)
VehicleKindEnum = strawberry.enum(
    models.VehicleKind,
    name="VehicleKind",
    description="car (7-character blue plate), new_energy_car (8-character green plate), motorcycle, "
    "e_bike (a local plate).",
)
PlateKindEnum = strawberry.enum(
    PlateKind, name="PlateKind", description="ordinary (7 characters), new_energy (8) or local (an e-bike's)."
)
VehicleEventKindEnum = strawberry.enum(
    models.VehicleEventKind, name="VehicleEventKind", description="registered, changed or removed."
)


def _int(raw: str) -> int:
    return int(raw) if raw.isascii() and raw.isdigit() and len(raw) <= 18 else -1


def _rows_by_id(info: Info, key: str, model: Any, *, visible: Any = None) -> DataLoader[int, Any]:
    async def load(ids: list[int]) -> list[Any]:
        stmt = select(model).where(model.id.in_(ids))
        if visible is not None:
            stmt = stmt.where(model.id.in_(visible))
        async with info.context.db.read_session() as session:
            rows = {r.id: r for r in (await session.scalars(stmt)).all()}
        return [rows.get(i) for i in ids]

    return _loader(info, key, load)


def applications_loader(info: Info) -> DataLoader[int, models.HallApplication | None]:
    visible = hall_service.visible_applications(info.context.viewer).with_only_columns(models.HallApplication.id)
    return _rows_by_id(info, "hall.application", models.HallApplication, visible=visible)


def vehicles_loader(info: Info) -> DataLoader[int, models.Vehicle | None]:
    """Vehicles by id, within the viewer's communities (the fields that reach them check more)."""
    visible = select(models.Vehicle.id).where(models.Vehicle.community_id.in_(info.context.viewer.community_ids))
    return _rows_by_id(info, "hall.vehicle", models.Vehicle, visible=visible)


def permits_loader(info: Info) -> DataLoader[int, models.ParkingPermit | None]:
    visible = select(models.ParkingPermit.id).where(
        models.ParkingPermit.community_id.in_(info.context.viewer.community_ids)
    )
    return _rows_by_id(info, "hall.permit", models.ParkingPermit, visible=visible)


def versions_loader(info: Info) -> DataLoader[int, models.HallProcedureVersion | None]:
    return _rows_by_id(info, "hall.version", models.HallProcedureVersion)


def _grouped(info: Info, key: str, fetch: Any) -> DataLoader[int, list[Any]]:
    async def load(ids: list[int]) -> list[list[Any]]:
        async with info.context.db.read_session() as session:
            grouped = await fetch(session, ids)
        return [grouped.get(i, []) for i in ids]

    return _loader(info, key, load)


def _names_loader(info: Info, key: str, column: Any, id_col: Any) -> DataLoader[int, str]:
    async def load(ids: list[int]) -> list[str]:
        async with info.context.db.read_session() as session:
            rows = {int(i): str(n) for i, n in (await session.execute(select(id_col, column).where(id_col.in_(ids))))}
        return [rows.get(i, "") for i in ids]

    return _loader(info, key, load)


def account_names(info: Info) -> DataLoader[int, str]:
    return _names_loader(info, "hall.account_names", Account.display_name, Account.id)


def resident_names(info: Info) -> DataLoader[int, str]:
    return _names_loader(info, "hall.resident_names", ResidentModel.name, ResidentModel.id)


def compound_names(info: Info) -> DataLoader[int, str]:
    return _names_loader(info, "hall.compound_names", CompoundModel.name, CompoundModel.id)


# -- procedures --------------------------------------------------------------------------------------


@strawberry.type(description="A document a procedure asks for: one named slot.")
class HallDocumentSlot:
    key: str = strawberry.field(description="Stable key of the slot, used when attaching files (e.g. id_card).")
    name: str = strawberry.field(description="What the document is, e.g. 居民身份证.")
    required: bool = strawberry.field(description="Whether an application needs it.")
    note: str = strawberry.field(description="What to bring, e.g. 正反面.")

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Self:
        return cls(key=d["key"], name=d["name"], required=bool(d.get("required", True)), note=d.get("note", ""))


@strawberry.type(description="One step of a procedure and the role that handles it.")
class HallStep:
    index: int = strawberry.field(description="0-based position; 0 is acceptance (受理), the last completion (办结).")
    name: str = strawberry.field(description="What happens at the step, e.g. 审核.")
    role: str = strawberry.field(description="Who handles it, e.g. 综合窗口 or 网格员.")


@strawberry.type(description="One published version of a procedure; an application keeps the one it was made under.")
class HallProcedureRevision:
    version: int = strawberry.field(description="Version number, 1 upwards.")
    name: str = strawberry.field(description="Name, e.g. 居住证明.")
    purpose: str = strawberry.field(description="What it is for.")
    documents: list[HallDocumentSlot] = strawberry.field(description="Documents to attach, in order.")
    steps: list[HallStep] = strawberry.field(description="The steps, in order.")
    time_limit_days: int = strawberry.field(description="Time limit in working days, counted from the next one.")
    fee_cents: int = strawberry.field(description="Fee in fen; 0 is free.")
    handled_by: str = strawberry.field(description="Who handles it, e.g. 社区党群服务中心综合窗口.")
    basis: str = strawberry.field(description="The rule it rests on (办理依据).")
    published_at: dt.datetime = strawberry.field(description="When this version was published.")

    @classmethod
    def from_model(cls, v: models.HallProcedureVersion) -> Self:
        return cls(
            version=v.version, name=v.name, purpose=v.purpose,
            documents=[HallDocumentSlot.from_json(d) for d in v.documents],
            steps=[HallStep(index=i, name=s["name"], role=s["role"]) for i, s in enumerate(v.steps)],
            time_limit_days=v.time_limit_days, fee_cents=v.fee_cents, handled_by=v.handled_by, basis=v.basis,
            published_at=v.created_at,
        )  # fmt: skip


@strawberry.type(description="A procedure of the community's published list (小微权力清单).")
class HallProcedure(relay.Node):
    db_id: relay.NodeID[int]
    code: str = strawberry.field(description="Stable code of the procedure, e.g. residence-certificate.")
    kind: models.ProcedureKind = strawberry.field(description="What approving an application does.")
    published: bool = strawberry.field(description="Whether residents can see it and apply.")
    current: HallProcedureRevision = strawberry.field(description="The version applications are made under now.")

    @classmethod
    def from_models(cls, p: models.HallProcedure, v: models.HallProcedureVersion) -> Self:
        return cls(
            db_id=p.id, code=p.code, kind=models.ProcedureKind(p.kind), published=p.published,
            current=HallProcedureRevision.from_model(v),
        )  # fmt: skip

    @classmethod
    async def resolve_nodes(cls, *, info: Info, node_ids: Iterable[str], required: bool = False) -> list[Any]:
        ids = [_int(i) for i in node_ids]
        viewer = info.context.viewer
        async with info.context.db.read_session() as session:
            rows = (
                await session.execute(
                    select(models.HallProcedure, models.HallProcedureVersion)
                    .join(
                        models.HallProcedureVersion,
                        (models.HallProcedureVersion.procedure_id == models.HallProcedure.id)
                        & (models.HallProcedureVersion.version == models.HallProcedure.latest_version),
                    )
                    .where(
                        models.HallProcedure.id.in_(ids),
                        models.HallProcedure.community_id.in_(viewer.community_ids),
                    )
                )
            ).all()
        found = {
            p.id: cls.from_models(p, v) for p, v in rows if p.published or hall_service.is_staff(viewer, p.community_id)
        }
        return [found.get(i) for i in ids]


# -- applications ------------------------------------------------------------------------------------


@strawberry.type(description="A step of an application as the applicant sees it: when, what, and who handled it.")
class HallApplicationStep:
    kind: models.EventKind = strawberry.field(description="What happened.")
    step_index: int | None = strawberry.field(description="The procedure step it completed or concerns, if one.")
    step_name: str = strawberry.field(description="That step's name.")
    handler_name: str = strawberry.field(description="Who did it (display name; never a phone number).")
    handler_role: str = strawberry.field(description="In which role, e.g. 综合窗口; empty for the system.")
    note: str = strawberry.field(description="The handler's note, the reason, or the documents asked for.")
    at: dt.datetime = strawberry.field(description="When.")

    @classmethod
    def from_model(cls, e: models.HallApplicationEvent) -> Self:
        return cls(kind=models.EventKind(e.kind), step_index=e.step_index, step_name=e.step_name,
                   handler_name=e.actor_name, handler_role=e.actor_role, note=e.note, at=e.created_at)  # fmt: skip


@strawberry.type(description="A document image attached to an application (metadata removed on upload).")
class HallAttachment:
    id: relay.GlobalID = strawberry.field(description="Global id of the attachment.")
    slot: str = strawberry.field(description="The document slot it was attached for.")
    content_type: str = strawberry.field(description="image/jpeg, image/png or image/webp.")
    width: int = strawberry.field(description="Width in pixels.")
    height: int = strawberry.field(description="Height in pixels.")
    size_bytes: int = strawberry.field(description="Size of the stored file.")
    round: int = strawberry.field(description="1 with the application; 2 and up with each resubmission.")
    created_at: dt.datetime = strawberry.field(description="When it was attached.")

    @classmethod
    def from_model(cls, a: models.HallAttachment) -> Self:
        return cls(id=relay.GlobalID("HallAttachment", str(a.id)), slot=a.slot, content_type=a.content_type,
                   width=a.width, height=a.height, size_bytes=a.size_bytes, round=a.round,
                   created_at=a.created_at)  # fmt: skip

    @strawberry.field(
        description="Where to GET the file with the same bearer token (the applicant and the hall's staff only)."
    )
    def url(self) -> str:
        return f"/media/hall-attachments/{self.id}"


@strawberry.type(description="What a vehicle application asks for.")
class HallVehicleRequest:
    action: str = strawberry.field(description="register, change or remove.")
    plate: str | None = strawberry.field(description="The plate (normalised) after the change.")
    kind: models.VehicleKind | None = strawberry.field(description="The kind of vehicle after the change.")
    description: str | None = strawberry.field(description="Make, model and colour.")


@strawberry.type(description="What a parking-permit application asks for.")
class HallParkingRequest:
    plate: str = strawberry.field(description="The vehicle's plate.")
    compound_name: str = strawberry.field(description="The compound to park in.")


@strawberry.type(description="An application to the service hall, moved through its procedure's steps in the open.")
class HallApplication(relay.Node):
    db_id: relay.NodeID[int]
    state: models.ApplicationState = strawberry.field(description="Where it stands.")
    state_label: str = strawberry.field(description="The state in words, e.g. 办理中.")
    step_index: int = strawberry.field(description="The step being handled now (0-based).")
    note: str = strawberry.field(description="The applicant's note.")
    submitted_at: dt.datetime = strawberry.field(description="When it was received.")
    due_at: dt.datetime = strawberry.field(description="When the time limit runs out (restarts on resubmission).")
    warned_at: dt.datetime | None = strawberry.field(description="When staff were warned it is about to lapse.")
    escalated_at: dt.datetime | None = strawberry.field(description="When it lapsed and went to the community's heads.")
    closed_at: dt.datetime | None = strawberry.field(description="When it was completed or rejected.")
    rejection_reason: str | None = strawberry.field(description="Why it was rejected.")
    vehicle_request: HallVehicleRequest | None = strawberry.field(description="For a vehicle procedure.")
    version_id: strawberry.Private[int]
    community_id: strawberry.Private[int]
    requested: strawberry.Private[list[str]]
    details: strawberry.Private[dict[str, Any]]
    applicant_resident_id: strawberry.Private[int | None]
    assignee_account_id: strawberry.Private[int | None]
    vehicle_id: strawberry.Private[int | None]
    permit_id: strawberry.Private[int | None]

    @classmethod
    def from_model(cls, a: models.HallApplication) -> Self:
        d = a.details or {}
        vehicle_request = None
        if "action" in d:
            vehicle_request = HallVehicleRequest(
                action=d["action"], plate=d.get("plate"),
                kind=models.VehicleKind(d["kind"]) if d.get("kind") else None, description=d.get("description"),
            )  # fmt: skip
        return cls(
            db_id=a.id, state=models.ApplicationState(a.state),
            state_label=hall_service.STATE_LABELS.get(a.state, a.state), step_index=a.step_index, note=a.note,
            submitted_at=a.submitted_at, due_at=a.due_at, warned_at=a.warned_at, escalated_at=a.escalated_at,
            closed_at=a.closed_at, rejection_reason=a.reason, vehicle_request=vehicle_request,
            version_id=a.version_id, community_id=a.community_id, requested=list(a.requested_documents or []),
            details=d, applicant_resident_id=a.applicant_resident_id, assignee_account_id=a.assignee_account_id,
            vehicle_id=a.vehicle_id, permit_id=a.permit_id,
        )  # fmt: skip

    @classmethod
    async def resolve_nodes(cls, *, info: Info, node_ids: Iterable[str], required: bool = False) -> list[Any]:
        rows = await applications_loader(info).load_many([_int(i) for i in node_ids])
        return [cls.from_model(r) if r else None for r in rows]

    async def _version(self, info: Info) -> models.HallProcedureVersion:
        version = await versions_loader(info).load(self.version_id)
        assert version is not None
        return version

    @strawberry.field(description="The procedure as it was when the application was made.")
    async def procedure(self, info: Info) -> HallProcedureRevision:
        return HallProcedureRevision.from_model(await self._version(info))

    @strawberry.field(description="The step being handled now; null once closed.")
    async def current_step(self, info: Info) -> HallStep | None:
        if self.closed_at is not None:
            return None
        steps = (await self._version(info)).steps
        i = min(self.step_index, len(steps) - 1)
        return HallStep(index=i, name=steps[i]["name"], role=steps[i]["role"])

    @strawberry.field(description="Documents staff asked for again (while needs_documents).")
    async def requested_documents(self, info: Info) -> list[HallDocumentSlot]:
        slots = {d["key"]: d for d in (await self._version(info)).documents}
        return [HallDocumentSlot.from_json(slots[k]) for k in self.requested if k in slots]

    @strawberry.field(description="Every step so far with its time and handler, oldest first (阳光下操作).")
    async def timeline(self, info: Info) -> list[HallApplicationStep]:
        rows = await _grouped(info, "hall.events", hall_service.events_of).load(self.db_id)
        return [HallApplicationStep.from_model(e) for e in rows]

    @strawberry.field(description="Attached documents, oldest first.")
    async def attachments(self, info: Info) -> list[HallAttachment]:
        rows = await _grouped(info, "hall.attachments", hall_service.attachments_of).load(self.db_id)
        return [HallAttachment.from_model(a) for a in rows]

    @strawberry.field(description="The applicant's name.")
    async def applicant_name(self, info: Info) -> str:
        if self.applicant_resident_id is None:
            return ""
        return await resident_names(info).load(self.applicant_resident_id)

    @strawberry.field(description="Display name of the staff member handling it; null until accepted.")
    async def handler_name(self, info: Info) -> str | None:
        if self.assignee_account_id is None:
            return None
        return await account_names(info).load(self.assignee_account_id)

    @strawberry.field(description="For a parking-permit procedure: the vehicle and compound asked for.")
    async def parking_request(self, info: Info) -> HallParkingRequest | None:
        if "compound_id" not in self.details:
            return None
        name = await compound_names(info).load(int(self.details["compound_id"]))
        return HallParkingRequest(plate=str(self.details.get("plate", "")), compound_name=name)

    @strawberry.field(description="The vehicle registered, changed or removed, or the one given a permit.")
    async def vehicle(self, info: Info) -> Vehicle | None:
        if self.vehicle_id is None:
            return None
        row = await vehicles_loader(info).load(self.vehicle_id)
        return Vehicle.from_model(row) if row else None

    @strawberry.field(description="The parking permit issued on approval.")
    async def permit(self, info: Info) -> ParkingPermit | None:
        if self.permit_id is None:
            return None
        row = await permits_loader(info).load(self.permit_id)
        return ParkingPermit.from_model(row) if row else None


# -- vehicles and permits ----------------------------------------------------------------------------


@strawberry.type(description="One entry in a vehicle's history.")
class VehicleHistoryEntry:
    kind: models.VehicleEventKind = strawberry.field(description="What happened.")
    before_plate: str | None = strawberry.field(description="The plate before (changes and removal).")
    after_plate: str | None = strawberry.field(description="The plate after (registration and changes).")
    before_kind: models.VehicleKind | None = strawberry.field(description="The kind before.")
    after_kind: models.VehicleKind | None = strawberry.field(description="The kind after.")
    application_id: relay.GlobalID | None = strawberry.field(description="The service-hall application behind it.")
    at: dt.datetime = strawberry.field(description="When.")

    @classmethod
    def from_model(cls, e: models.VehicleEvent) -> Self:
        def kind(raw: Any) -> models.VehicleKind | None:
            return models.VehicleKind(raw) if raw else None

        return cls(
            kind=models.VehicleEventKind(e.kind), before_plate=e.before.get("plate"), after_plate=e.after.get("plate"),
            before_kind=kind(e.before.get("kind")), after_kind=kind(e.after.get("kind")),
            application_id=relay.GlobalID("HallApplication", str(e.application_id)) if e.application_id else None,
            at=e.created_at,
        )  # fmt: skip


@strawberry.type(description="A household's vehicle.")
class Vehicle(relay.Node):
    db_id: relay.NodeID[int]
    plate: str = strawberry.field(description="The plate, normalised (upper case, no spaces or dots).")
    kind: models.VehicleKind = strawberry.field(description="The kind of vehicle.")
    description: str = strawberry.field(description="Make, model and colour.")
    registered_at: dt.datetime = strawberry.field(description="When it was registered.")
    removed_at: dt.datetime | None = strawberry.field(description="When it was removed; null while active.")
    household_id: relay.GlobalID = strawberry.field(description="The household it belongs to.")

    @classmethod
    def from_model(cls, v: models.Vehicle) -> Self:
        return cls(db_id=v.id, plate=v.plate, kind=models.VehicleKind(v.kind), description=v.description,
                   registered_at=v.registered_at, removed_at=v.removed_at,
                   household_id=relay.GlobalID("Household", str(v.household_id)))  # fmt: skip

    @classmethod
    async def resolve_nodes(cls, *, info: Info, node_ids: Iterable[str], required: bool = False) -> list[Any]:
        viewer = info.context.viewer
        async with info.context.db.read_session() as session:
            households = await hall_service.viewer_household_ids(session, viewer)
            stmt = hall_service.visible_vehicles(viewer, households).where(
                models.Vehicle.id.in_([_int(i) for i in node_ids])
            )
            rows = {r.id: r for r in (await session.scalars(stmt)).all()}
        return [cls.from_model(rows[i]) if i in rows else None for i in (_int(n) for n in node_ids)]

    @strawberry.field(description="Registration, changes and removal, oldest first.")
    async def history(self, info: Info) -> list[VehicleHistoryEntry]:
        rows = await _grouped(info, "hall.vehicle_history", hall_service.vehicle_history).load(self.db_id)
        return [VehicleHistoryEntry.from_model(e) for e in rows]

    @strawberry.field(description="Active parking permits of the vehicle.")
    async def permits(self, info: Info) -> list[ParkingPermit]:
        rows = await _grouped(info, "hall.vehicle_permits", hall_service.permits_of).load(self.db_id)
        return [ParkingPermit.from_model(p) for p in rows]


@strawberry.type(description="A permit to park a vehicle in a compound for a quota period.")
class ParkingPermit(relay.Node):
    db_id: relay.NodeID[int]
    slot: int = strawberry.field(description="The permit's number within the quota, 1 to the quota.")
    starts_on: dt.date = strawberry.field(description="Valid from.")
    ends_on: dt.date = strawberry.field(description="Valid until (inclusive).")
    issued_at: dt.datetime = strawberry.field(description="When it was issued.")
    revoked_at: dt.datetime | None = strawberry.field(description="When it was revoked; null while active.")
    revoke_reason: str | None = strawberry.field(description="Why it was revoked.")
    compound_id: strawberry.Private[int]
    vehicle_id: strawberry.Private[int]

    @classmethod
    def from_model(cls, p: models.ParkingPermit) -> Self:
        return cls(db_id=p.id, slot=p.slot, starts_on=p.starts_on, ends_on=p.ends_on, issued_at=p.issued_at,
                   revoked_at=p.revoked_at, revoke_reason=p.revoke_reason, compound_id=p.compound_id,
                   vehicle_id=p.vehicle_id)  # fmt: skip

    @classmethod
    async def resolve_nodes(cls, *, info: Info, node_ids: Iterable[str], required: bool = False) -> list[Any]:
        rows = await permits_loader(info).load_many([_int(i) for i in node_ids])
        viewer = info.context.viewer
        async with info.context.db.read_session() as session:
            households = set(await hall_service.viewer_household_ids(session, viewer))
        return [
            cls.from_model(r)
            if r is not None and (hall_service.is_staff(viewer, r.community_id) or r.household_id in households)
            else None
            for r in rows
        ]

    @strawberry.field(description="The compound's name.")
    async def compound_name(self, info: Info) -> str:
        return await compound_names(info).load(self.compound_id)

    @strawberry.field(description="The vehicle's plate.")
    async def plate(self, info: Info) -> str:
        row = await vehicles_loader(info).load(self.vehicle_id)
        return row.plate if row else ""


@strawberry.type(description="How many parking permits a compound gives out for a period, and how many are out.")
class ParkingQuota(relay.Node):
    db_id: relay.NodeID[int]
    starts_on: dt.date = strawberry.field(description="First day of the period.")
    ends_on: dt.date = strawberry.field(description="Last day of the period.")
    quota: int = strawberry.field(description="Permits the compound gives out for the period.")
    issued: int = strawberry.field(description="Active permits now.")
    left: int = strawberry.field(description="Permits still available.")
    compound_id: strawberry.Private[int]
    community_id: strawberry.Private[int]

    @classmethod
    def from_model(cls, q: models.ParkingQuota) -> Self:
        return cls(db_id=q.id, starts_on=q.starts_on, ends_on=q.ends_on, quota=q.quota, issued=q.issued,
                   left=max(q.quota - q.issued, 0), compound_id=q.compound_id,
                   community_id=q.community_id)  # fmt: skip

    @classmethod
    async def resolve_nodes(cls, *, info: Info, node_ids: Iterable[str], required: bool = False) -> list[Any]:
        rows = await _rows_by_id(
            info, "hall.quota", models.ParkingQuota,
            visible=select(models.ParkingQuota.id).where(
                models.ParkingQuota.community_id.in_(info.context.viewer.community_ids)
            ),
        ).load_many([_int(i) for i in node_ids])  # fmt: skip
        return [cls.from_model(r) if r else None for r in rows]

    @strawberry.field(description="The compound's name.")
    async def compound_name(self, info: Info) -> str:
        return await compound_names(info).load(self.compound_id)


@strawberry.type(description="A plate checked against the national format (GA 36-2018).")
class PlateCheck:
    plate: str = strawberry.field(description="The plate normalised: upper case, no spaces or dots.")
    valid: bool = strawberry.field(description="Whether it is valid for the kind of vehicle.")
    plate_kind: PlateKind | None = strawberry.field(description="ordinary, new_energy or local, when valid.")
    message: str | None = strawberry.field(description="Why not, when invalid.")


def applications(rows: Sequence[models.HallApplication]) -> list[HallApplication]:
    return [HallApplication.from_model(r) for r in rows]
