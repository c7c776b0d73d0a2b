"""Service hall queries and mutations: procedures, applications and their steps, vehicles, permits."""

from __future__ import annotations

import base64
import datetime as dt
from typing import Annotated, Any

import strawberry
from graphql import GraphQLError
from strawberry import relay
from strawberry.file_uploads import Upload

from api.core.clock import local_today
from api.core.errors import DomainError, Forbidden, Unauthenticated, ValidationFailed
from api.core.images import PhotoRejected, prepare_photos
from api.graphql.context import Info
from api.graphql.errors import ConflictError, NotFoundError, UserError, ValidationError, auth_error, to_user_error
from api.graphql.hall.types import (
    HallApplication,
    HallDocumentSlot,
    HallProcedure,
    ParkingPermit,
    ParkingQuota,
    PlateCheck,
    Vehicle,
)
from api.graphql.pagination import Connection, decode_id, page_args, paged
from api.graphql.tickets.photos import PhotoError, close_uploads, photo_limits, read_uploads
from api.hall import models
from api.hall import service as hall_service
from api.hall.plates import InvalidPlate, check_plate, normalise_plate

InputArg = strawberry.argument(description="The mutation's input.")
CommunityArg = Annotated[relay.GlobalID, strawberry.argument(description="The community.")]
FirstArg = Annotated[int | None, strawberry.argument(description="Page size, 1 to 100 (default 20).")]
AfterArg = Annotated[str | None, strawberry.argument(description="Return results after this cursor.")]


# -- errors -------------------------------------------------------------------------------------------


@strawberry.type(description="Required documents are missing; `missing` lists them.")
class MissingDocumentsError(UserError):
    missing: list[HallDocumentSlot] = strawberry.field(description="The documents still to attach.")


@strawberry.type(description="Every parking permit of the compound's quota for the period is out.")
class QuotaFullError(UserError):
    quota: int = strawberry.field(description="The quota of the period.")


@strawberry.type(description="The plate is not a valid Chinese plate for this kind of vehicle (GA 36-2018).")
class InvalidPlateError(UserError):
    pass


@strawberry.type(description="An active vehicle of the community already has this plate.")
class PlateTakenError(UserError):
    pass


@strawberry.type(description="The application is not at a point where this is possible (e.g. closed already).")
class HallStateError(UserError):
    pass


@strawberry.type(description="Only residents registered in the community (with a household, for vehicles) can apply.")
class HallNotResidentError(UserError):
    pass


@strawberry.type(description="The compound gives out no parking permits for this period.")
class NoParkingQuotaError(UserError):
    pass


@strawberry.type(description="The vehicle already has a parking permit for this period.")
class AlreadyHasPermitError(UserError):
    pass


_TYPED: dict[type[DomainError], type[UserError]] = {
    InvalidPlate: InvalidPlateError,
    hall_service.PlateTaken: PlateTakenError,
    hall_service.WrongState: HallStateError,
    hall_service.NotResident: HallNotResidentError,
    hall_service.NoParkingQuota: NoParkingQuotaError,
    hall_service.AlreadyHasPermit: AlreadyHasPermitError,
}

ERROR_TYPES: list[type[UserError]] = [*_TYPED.values(), MissingDocumentsError, QuotaFullError]


def _error(exc: DomainError, allowed: list[type[UserError]]) -> Any:
    if isinstance(exc, hall_service.MissingDocuments) and MissingDocumentsError in allowed:
        missing = [HallDocumentSlot(key=k, name=n, required=True, note="") for k, n in exc.missing]
        return MissingDocumentsError(message=exc.message, field=exc.field, code=exc.code, missing=missing)
    if isinstance(exc, hall_service.QuotaFull) and QuotaFullError in allowed:
        return QuotaFullError(message=exc.message, field=exc.field, code=exc.code, quota=exc.quota)
    if isinstance(exc, PhotoRejected) and PhotoError in allowed:
        return PhotoError.from_error(exc)
    gql_type = _TYPED.get(type(exc))
    if gql_type is not None and gql_type in allowed:
        return gql_type(message=exc.message, field=exc.field, code=exc.code)
    return to_user_error(exc, allowed)


def _raise(exc: DomainError) -> GraphQLError:
    if isinstance(exc, Forbidden | Unauthenticated):
        return auth_error(exc)
    return GraphQLError(exc.message, extensions={"code": "BAD_USER_INPUT", "field": exc.field})


# -- inputs and results -------------------------------------------------------------------------------


@strawberry.input(description="A document slot of a procedure.")
class HallDocumentSlotInput:
    key: str = strawberry.field(description="Stable key (letters, digits, - and _), e.g. id_card.")
    name: str = strawberry.field(description="What the document is, e.g. 居民身份证.")
    required: bool = strawberry.field(default=True, description="Whether an application needs it.")
    note: str = strawberry.field(default="", description="What to bring, e.g. 正反面.")


@strawberry.input(description="A step of a procedure.")
class HallStepInput:
    name: str = strawberry.field(description="What happens, e.g. 审核.")
    role: str = strawberry.field(description="Who handles it, e.g. 网格员.")


@strawberry.input(description="Publish a procedure, or a new version of the one with the same code (staff).")
class PublishHallProcedureInput:
    community_id: relay.GlobalID = strawberry.field(description="The community.")
    code: str = strawberry.field(description="Stable code; publishing the same code again makes a new version.")
    name: str = strawberry.field(description="Name, e.g. 居住证明.")
    kind: models.ProcedureKind = strawberry.field(description="What approving an application does.")
    time_limit_days: int = strawberry.field(description="Time limit in working days (1 to 60).")
    steps: list[HallStepInput] = strawberry.field(description="2 to 12 steps: acceptance first, completion last.")
    documents: list[HallDocumentSlotInput] = strawberry.field(
        default_factory=list, description="Documents to attach (at most 12)."
    )
    purpose: str = strawberry.field(default="", description="What it is for.")
    fee_cents: int = strawberry.field(default=0, description="Fee in fen; 0 is free.")
    handled_by: str = strawberry.field(default="", description="Who handles it.")
    basis: str = strawberry.field(default="", description="The rule it rests on (办理依据).")
    sort_order: int = strawberry.field(default=0, description="Position in the published list.")
    published: bool = strawberry.field(default=True, description="Whether residents can see it and apply.")


@strawberry.type(description="The procedure.")
class HallProcedureSuccess:
    procedure: HallProcedure = strawberry.field(description="The procedure with its new current version.")


PUBLISH_ERRORS: list[type[UserError]] = [ValidationError, NotFoundError, ConflictError]
PublishHallProcedureResult = Annotated[
    HallProcedureSuccess | ValidationError | NotFoundError | ConflictError,
    strawberry.union("PublishHallProcedureResult", description="The procedure, or why it was refused."),
]


@strawberry.input(description="A file for one document slot, sent as a multipart request part.")
class HallDocumentInput:
    slot: str = strawberry.field(description="The document slot's key.")
    file: Upload = strawberry.field(description="A JPEG, PNG or WebP image of the document (PDF is not accepted).")


@strawberry.input(description="What a vehicle application asks for.")
class VehicleRequestInput:
    action: str = strawberry.field(description="register, change or remove.")
    vehicle_id: relay.GlobalID | None = strawberry.field(default=None, description="The vehicle (change, remove).")
    plate: str | None = strawberry.field(default=None, description="The plate (register; change to a new one).")
    kind: models.VehicleKind | None = strawberry.field(default=None, description="The kind (register, change).")
    description: str | None = strawberry.field(default=None, description="Make, model and colour.")


@strawberry.input(description="What a parking-permit application asks for.")
class ParkingRequestInput:
    vehicle_id: relay.GlobalID = strawberry.field(description="The household's vehicle.")
    compound_id: relay.GlobalID = strawberry.field(description="The compound to park in.")


@strawberry.input(description="Apply under a published procedure (a resident of its community).")
class SubmitHallApplicationInput:
    procedure_id: relay.GlobalID = strawberry.field(description="The procedure.")
    documents: list[HallDocumentInput] = strawberry.field(
        default_factory=list, description="Files for the document slots (at most photoUploadLimits.maxPerTicket)."
    )
    vehicle: VehicleRequestInput | None = strawberry.field(default=None, description="For a vehicle procedure.")
    parking: ParkingRequestInput | None = strawberry.field(default=None, description="For a parking permit.")
    note: str = strawberry.field(default="", description="A note to the hall.")


@strawberry.type(description="The application.")
class HallApplicationSuccess:
    application: HallApplication = strawberry.field(description="The application as it stands now.")


SUBMIT_ERRORS: list[type[UserError]] = [
    MissingDocumentsError, InvalidPlateError, PlateTakenError, QuotaFullError, NoParkingQuotaError,
    AlreadyHasPermitError, HallNotResidentError, PhotoError, ValidationError, NotFoundError, ConflictError,
]  # fmt: skip
SubmitHallApplicationResult = Annotated[
    HallApplicationSuccess | MissingDocumentsError | InvalidPlateError | PlateTakenError | QuotaFullError
    | NoParkingQuotaError | AlreadyHasPermitError | HallNotResidentError | PhotoError | ValidationError
    | NotFoundError | ConflictError,
    strawberry.union("SubmitHallApplicationResult", description="The application, or why it was refused."),
]  # fmt: skip


@strawberry.input(description="Move an application on (staff): accept it, or complete its current step.")
class MoveHallApplicationInput:
    application_id: relay.GlobalID = strawberry.field(description="The application.")
    note: str = strawberry.field(default="", description="A note the applicant sees (at most 500 characters).")


@strawberry.input(description="Ask the applicant for more or better documents (staff).")
class RequestHallDocumentsInput:
    application_id: relay.GlobalID = strawberry.field(description="The application.")
    slots: list[str] = strawberry.field(description="Keys of the documents needed (at most 12).")
    note: str = strawberry.field(description="What is wrong or missing; the applicant sees it.")


@strawberry.input(description="Reject an application with a reason the applicant sees (staff).")
class RejectHallApplicationInput:
    application_id: relay.GlobalID = strawberry.field(description="The application.")
    reason: str = strawberry.field(description="Why (at most 500 characters).")


MOVE_ERRORS: list[type[UserError]] = [HallStateError, ValidationError, NotFoundError]
MoveHallApplicationResult = Annotated[
    HallApplicationSuccess | HallStateError | ValidationError | NotFoundError,
    strawberry.union("MoveHallApplicationResult", description="The application, or why it cannot move."),
]

APPROVE_ERRORS: list[type[UserError]] = [
    HallStateError, QuotaFullError, PlateTakenError, NoParkingQuotaError, AlreadyHasPermitError,
    HallNotResidentError, ValidationError, NotFoundError, ConflictError,
]  # fmt: skip
ApproveHallApplicationResult = Annotated[
    HallApplicationSuccess | HallStateError | QuotaFullError | PlateTakenError | NoParkingQuotaError
    | AlreadyHasPermitError | HallNotResidentError | ValidationError | NotFoundError | ConflictError,
    strawberry.union("ApproveHallApplicationResult",
                     description="The completed application, or why the change could not be made (nothing changed)."),
]  # fmt: skip


@strawberry.input(description="Send the documents staff asked for (the applicant).")
class ResubmitHallDocumentsInput:
    application_id: relay.GlobalID = strawberry.field(description="The application.")
    documents: list[HallDocumentInput] = strawberry.field(description="Files for the slots asked for.")
    note: str = strawberry.field(default="", description="A note to the hall.")


RESUBMIT_ERRORS: list[type[UserError]] = [MissingDocumentsError, HallStateError, PhotoError, ValidationError,
                                          NotFoundError]  # fmt: skip
ResubmitHallDocumentsResult = Annotated[
    HallApplicationSuccess | MissingDocumentsError | HallStateError | PhotoError | ValidationError | NotFoundError,
    strawberry.union("ResubmitHallDocumentsResult", description="The application, or why it was refused."),
]


@strawberry.input(description="Set how many parking permits a compound gives out for a period (staff).")
class SetParkingQuotaInput:
    compound_id: relay.GlobalID = strawberry.field(description="The compound.")
    starts_on: dt.date = strawberry.field(description="First day of the period.")
    ends_on: dt.date = strawberry.field(description="Last day of the period.")
    quota: int = strawberry.field(description="Permits for the period (0 to 10,000; not below those out).")


@strawberry.type(description="The quota.")
class ParkingQuotaSuccess:
    quota: ParkingQuota = strawberry.field(description="The quota.")


SetParkingQuotaResult = Annotated[
    ParkingQuotaSuccess | ValidationError | NotFoundError | ConflictError,
    strawberry.union("SetParkingQuotaResult", description="The quota, or why it was refused."),
]


@strawberry.input(description="Revoke a parking permit; its place goes back to the quota (staff).")
class RevokeParkingPermitInput:
    permit_id: relay.GlobalID = strawberry.field(description="The permit.")
    reason: str = strawberry.field(description="Why (at most 200 characters).")


@strawberry.type(description="The permit.")
class ParkingPermitSuccess:
    permit: ParkingPermit = strawberry.field(description="The revoked permit.")


RevokeParkingPermitResult = Annotated[
    ParkingPermitSuccess | HallStateError | ValidationError | NotFoundError,
    strawberry.union("RevokeParkingPermitResult", description="The permit, or why it was refused."),
]


@strawberry.input(description="Conditions on the staff queue.")
class HallQueueFilter:
    procedure_id: relay.GlobalID | None = strawberry.field(default=None, description="Only this procedure.")
    states: list[models.ApplicationState] = strawberry.field(
        default_factory=list, description="Only these open states (default: every open one)."
    )
    assignee_id: relay.GlobalID | None = strawberry.field(
        default=None, description="Only applications handled by this account."
    )
    mine: bool = strawberry.field(default=False, description="Only applications you handle.")
    unassigned: bool = strawberry.field(default=False, description="Only applications nobody has accepted yet.")
    escalated_only: bool = strawberry.field(default=False, description="Only lapsed (escalated) applications.")


# -- the staff queue: keyset pages by (due date, id) --------------------------------------------------

_QUEUE_PREFIX = "hallq:"


def _queue_cursor(row: models.HallApplication) -> str:
    raw = f"{_QUEUE_PREFIX}{int(row.due_at.timestamp() * 1_000_000)}:{row.id}"
    return base64.urlsafe_b64encode(raw.encode()).decode()


def _decode_queue_cursor(cursor: str) -> tuple[dt.datetime, int]:
    try:
        raw = base64.urlsafe_b64decode(cursor.encode()).decode()
        if raw.startswith(_QUEUE_PREFIX):
            micros, id_ = raw[len(_QUEUE_PREFIX) :].split(":")
            return dt.datetime.fromtimestamp(int(micros) / 1_000_000, dt.UTC), int(id_)
    except (ValueError, UnicodeDecodeError):
        pass
    raise GraphQLError("The `after` cursor is not one this API gave out.", extensions={"code": "BAD_USER_INPUT"})


def _to_drafts(documents: list[HallDocumentInput]) -> list[Any]:
    return [d.file for d in documents]


# -- queries ------------------------------------------------------------------------------------------


@strawberry.type
class HallQuery:
    @strawberry.field(description="The community's published procedures (小微权力清单), in list order.")
    async def hall_procedures(
        self,
        info: Info,
        community_id: CommunityArg,
        include_unpublished: Annotated[bool, strawberry.argument(description="Also unpublished ones (staff).")] = False,
    ) -> list[HallProcedure]:
        async with info.context.db.read_session() as session:
            rows = await hall_service.list_procedures(
                session, viewer=info.context.viewer, community_id=decode_id(community_id, "Community"),
                include_unpublished=include_unpublished,
            )  # fmt: skip
        return [HallProcedure.from_models(p, v) for p, v in rows]

    @strawberry.field(description="Your applications to the service hall, oldest first.")
    async def my_hall_applications(
        self, info: Info, first: FirstArg = None, after: AfterArg = None
    ) -> Connection[HallApplication]:
        viewer = info.context.viewer
        stmt = hall_service.visible_applications(viewer).where(
            models.HallApplication.applicant_account_id == (viewer.account_id or -1)
        )
        return await paged(
            info.context.db, stmt, models.HallApplication.id, page_args(first, after), HallApplication.from_model
        )

    @strawberry.field(
        description="The staff queue: open applications of the community, soonest due first (staff of the hall)."
    )
    async def hall_queue(
        self,
        info: Info,
        community_id: CommunityArg,
        filter: Annotated[HallQueueFilter | None, strawberry.argument(description="Conditions.")] = None,
        first: FirstArg = None,
        after: AfterArg = None,
    ) -> Connection[HallApplication]:
        viewer = info.context.viewer
        f = filter or HallQueueFilter()
        args = page_args(first, None)
        cursor = _decode_queue_cursor(after) if after else None
        assignee = decode_id(f.assignee_id, "Account") if f.assignee_id is not None else None
        if f.mine:
            assignee = viewer.account_id or -1
        try:
            stmt = hall_service.queue_statement(
                viewer, community_id=decode_id(community_id, "Community"),
                filt=hall_service.QueueFilter(
                    procedure_id=decode_id(f.procedure_id, "HallProcedure") if f.procedure_id else None,
                    states=f.states[:5], assignee_account_id=assignee, unassigned=f.unassigned,
                    escalated_only=f.escalated_only,
                ),
            )  # fmt: skip
        except DomainError as exc:
            raise _raise(exc) from exc
        db = info.context.db
        async with db.read_session() as session:
            page = await hall_service.queue_page(session, stmt, first=args.first, after=cursor)

        async def count() -> int:
            async with db.read_session() as session:
                return await hall_service.count_rows(session, stmt)

        edges = [relay.Edge(node=HallApplication.from_model(r), cursor=_queue_cursor(r)) for r in page.items]
        return Connection(
            edges=edges,
            page_info=relay.PageInfo(
                has_next_page=page.has_next,
                has_previous_page=cursor is not None,
                start_cursor=edges[0].cursor if edges else None,
                end_cursor=edges[-1].cursor if edges else None,
            ),
            _count=count,
        )

    @strawberry.field(description="Active vehicles of your household (staff: of any household of their communities).")
    async def vehicles(
        self,
        info: Info,
        household_id: Annotated[
            relay.GlobalID | None, strawberry.argument(description="A household (staff); default: your own.")
        ] = None,
    ) -> list[Vehicle]:
        viewer = info.context.viewer
        async with info.context.db.read_session() as session:
            own = await hall_service.viewer_household_ids(session, viewer)
            stmt = hall_service.visible_vehicles(viewer, own)
            stmt = stmt.where(
                models.Vehicle.household_id.in_([decode_id(household_id, "Household")] if household_id else own)
            )
            rows = (await session.scalars(stmt.order_by(models.Vehicle.id).limit(100))).all()
        return [Vehicle.from_model(r) for r in rows]

    @strawberry.field(description="Parking quotas of the community's compounds that have not ended.")
    async def parking_quotas(self, info: Info, community_id: CommunityArg) -> list[ParkingQuota]:
        async with info.context.db.read_session() as session:
            rows = await hall_service.quotas(
                session, viewer=info.context.viewer, community_id=decode_id(community_id, "Community"),
                day=local_today(),
            )  # fmt: skip
        return [ParkingQuota.from_model(r) for r in rows]

    @strawberry.field(description="Check a plate before applying: normalised form, validity and kind.")
    def check_plate(
        self,
        plate: Annotated[str, strawberry.argument(description="The plate as typed, e.g. 冀a·12345.")],
        kind: Annotated[
            models.VehicleKind, strawberry.argument(description="The kind of vehicle it is for.")
        ] = models.VehicleKind.CAR,
    ) -> PlateCheck:
        try:
            normalised, plate_kind = check_plate(plate[:40], vehicle_kind=kind.value)
        except InvalidPlate as exc:
            return PlateCheck(plate=normalise_plate(plate[:40]), valid=False, plate_kind=None, message=exc.message)
        return PlateCheck(plate=normalised, valid=True, plate_kind=plate_kind, message=None)


# -- mutations ----------------------------------------------------------------------------------------


async def _uploads(info: Info, documents: list[HallDocumentInput]) -> list[hall_service.DocumentUpload]:
    """Read and decode the files before any transaction (decoding is slow)."""
    limits = photo_limits(info.context.services.settings)
    data = await read_uploads([d.file for d in documents], limits, info.context.viewer)
    prepared = await prepare_photos(data, limits=limits, owner="hall application")
    return [
        hall_service.DocumentUpload(slot=d.slot.strip().lower(), photo=p)
        for d, p in zip(documents, prepared, strict=True)
    ]


@strawberry.type
class HallMutation:
    @strawberry.mutation(description="Publish a procedure, or a new version of it (staff of the hall).")
    async def publish_hall_procedure(
        self, info: Info, input: Annotated[PublishHallProcedureInput, InputArg]
    ) -> PublishHallProcedureResult:
        try:
            draft = hall_service.ProcedureDraft(
                community_id=decode_id(input.community_id, "Community"), code=input.code, name=input.name,
                kind=input.kind, time_limit_days=input.time_limit_days,
                steps=[hall_service.StepSpec(s.name, s.role) for s in input.steps[:20]],
                documents=[hall_service.DocumentSpec(d.key, d.name, d.required, d.note) for d in input.documents[:20]],
                purpose=input.purpose, fee_cents=input.fee_cents, handled_by=input.handled_by, basis=input.basis,
                sort_order=input.sort_order, published=input.published,
            )  # fmt: skip
            async with info.context.db.unit_of_work(info.context.jobs) as uow:
                procedure, version = await hall_service.publish_procedure(uow, viewer=info.context.viewer, draft=draft)
        except DomainError as exc:
            return _error(exc, PUBLISH_ERRORS)
        return HallProcedureSuccess(procedure=HallProcedure.from_models(procedure, version))

    @strawberry.mutation(
        description="Apply under a procedure with its documents (multipart upload); missing ones are refused."
    )
    async def submit_hall_application(
        self, info: Info, input: Annotated[SubmitHallApplicationInput, InputArg]
    ) -> SubmitHallApplicationResult:
        viewer = info.context.viewer
        try:
            try:
                if len(input.documents) > info.context.services.settings.photo_max_count:
                    raise ValidationFailed("Too many files.", field="documents")
                vehicle = None
                if input.vehicle is not None:
                    v = input.vehicle
                    vehicle = hall_service.VehicleRequest(
                        action=v.action.strip().lower(),
                        vehicle_id=decode_id(v.vehicle_id, "Vehicle") if v.vehicle_id else None,
                        plate=v.plate, kind=v.kind, description=v.description,
                    )  # fmt: skip
                parking = None
                if input.parking is not None:
                    parking = hall_service.ParkingRequest(
                        vehicle_id=decode_id(input.parking.vehicle_id, "Vehicle"),
                        compound_id=decode_id(input.parking.compound_id, "Compound"),
                    )
                procedure_id = decode_id(input.procedure_id, "HallProcedure")
            except DomainError:
                await close_uploads(_to_drafts(input.documents))
                raise
            documents = await _uploads(info, input.documents)
            draft = hall_service.ApplicationDraft(
                procedure_id=procedure_id, documents=documents, vehicle=vehicle, parking=parking, note=input.note
            )
            async with info.context.db.unit_of_work(info.context.jobs) as uow:
                row = await hall_service.submit_application(
                    uow, viewer=viewer, store=info.context.services.photos, draft=draft,
                    limits=photo_limits(info.context.services.settings),
                )  # fmt: skip
        except DomainError as exc:
            return _error(exc, SUBMIT_ERRORS)
        return HallApplicationSuccess(application=HallApplication.from_model(row))

    @strawberry.mutation(description="Accept (受理) a submitted application; you handle it from now on (staff).")
    async def accept_hall_application(
        self, info: Info, input: Annotated[MoveHallApplicationInput, InputArg]
    ) -> MoveHallApplicationResult:
        try:
            async with info.context.db.unit_of_work(info.context.jobs) as uow:
                row = await hall_service.accept_application(
                    uow, viewer=info.context.viewer, application_id=decode_id(input.application_id, "HallApplication"),
                    note=input.note,
                )  # fmt: skip
        except DomainError as exc:
            return _error(exc, MOVE_ERRORS)
        return HallApplicationSuccess(application=HallApplication.from_model(row))

    @strawberry.mutation(description="Complete the current step and move to the next (staff); not the last step.")
    async def advance_hall_application(
        self, info: Info, input: Annotated[MoveHallApplicationInput, InputArg]
    ) -> MoveHallApplicationResult:
        try:
            async with info.context.db.unit_of_work(info.context.jobs) as uow:
                row = await hall_service.advance_application(
                    uow, viewer=info.context.viewer, application_id=decode_id(input.application_id, "HallApplication"),
                    note=input.note,
                )  # fmt: skip
        except DomainError as exc:
            return _error(exc, MOVE_ERRORS)
        return HallApplicationSuccess(application=HallApplication.from_model(row))

    @strawberry.mutation(description="Ask the applicant for more documents (补正); the clock restarts when they come.")
    async def request_hall_documents(
        self, info: Info, input: Annotated[RequestHallDocumentsInput, InputArg]
    ) -> MoveHallApplicationResult:
        try:
            async with info.context.db.unit_of_work(info.context.jobs) as uow:
                row = await hall_service.request_documents(
                    uow, viewer=info.context.viewer, application_id=decode_id(input.application_id, "HallApplication"),
                    slots=input.slots[:12], note=input.note,
                )  # fmt: skip
        except DomainError as exc:
            return _error(exc, MOVE_ERRORS)
        return HallApplicationSuccess(application=HallApplication.from_model(row))

    @strawberry.mutation(
        description="Send the documents asked for (the applicant); the application goes back to staff."
    )
    async def resubmit_hall_documents(
        self, info: Info, input: Annotated[ResubmitHallDocumentsInput, InputArg]
    ) -> ResubmitHallDocumentsResult:
        try:
            documents = await _uploads(info, input.documents)
            async with info.context.db.unit_of_work(info.context.jobs) as uow:
                row = await hall_service.resubmit_documents(
                    uow, viewer=info.context.viewer, store=info.context.services.photos,
                    application_id=decode_id(input.application_id, "HallApplication"), documents=documents,
                    note=input.note, limits=photo_limits(info.context.services.settings),
                )  # fmt: skip
        except DomainError as exc:
            return _error(exc, RESUBMIT_ERRORS)
        return HallApplicationSuccess(application=HallApplication.from_model(row))

    @strawberry.mutation(
        description="Approve at the last step (办结): vehicle and permit applications make their change now (staff)."
    )
    async def approve_hall_application(
        self, info: Info, input: Annotated[MoveHallApplicationInput, InputArg]
    ) -> ApproveHallApplicationResult:
        try:
            async with info.context.db.unit_of_work(info.context.jobs) as uow:
                row = await hall_service.approve_application(
                    uow, viewer=info.context.viewer, application_id=decode_id(input.application_id, "HallApplication"),
                    note=input.note,
                )  # fmt: skip
        except DomainError as exc:
            return _error(exc, APPROVE_ERRORS)
        return HallApplicationSuccess(application=HallApplication.from_model(row))

    @strawberry.mutation(description="Reject an open application with a reason the applicant sees (staff).")
    async def reject_hall_application(
        self, info: Info, input: Annotated[RejectHallApplicationInput, InputArg]
    ) -> MoveHallApplicationResult:
        try:
            async with info.context.db.unit_of_work(info.context.jobs) as uow:
                row = await hall_service.reject_application(
                    uow, viewer=info.context.viewer, application_id=decode_id(input.application_id, "HallApplication"),
                    reason=input.reason,
                )  # fmt: skip
        except DomainError as exc:
            return _error(exc, MOVE_ERRORS)
        return HallApplicationSuccess(application=HallApplication.from_model(row))

    @strawberry.mutation(description="Set a compound's parking quota for a period (staff of the hall).")
    async def set_parking_quota(
        self, info: Info, input: Annotated[SetParkingQuotaInput, InputArg]
    ) -> SetParkingQuotaResult:
        try:
            async with info.context.db.unit_of_work(info.context.jobs) as uow:
                row = await hall_service.set_parking_quota(
                    uow, viewer=info.context.viewer, compound_id=decode_id(input.compound_id, "Compound"),
                    starts_on=input.starts_on, ends_on=input.ends_on, quota=input.quota,
                )  # fmt: skip
        except DomainError as exc:
            return _error(exc, [ValidationError, NotFoundError, ConflictError])
        return ParkingQuotaSuccess(quota=ParkingQuota.from_model(row))

    @strawberry.mutation(description="Revoke a parking permit; its place goes back to the quota (staff of the hall).")
    async def revoke_parking_permit(
        self, info: Info, input: Annotated[RevokeParkingPermitInput, InputArg]
    ) -> RevokeParkingPermitResult:
        try:
            async with info.context.db.unit_of_work(info.context.jobs) as uow:
                row = await hall_service.revoke_permit(
                    uow, viewer=info.context.viewer, permit_id=decode_id(input.permit_id, "ParkingPermit"),
                    reason=input.reason,
                )  # fmt: skip
        except DomainError as exc:
            return _error(exc, [HallStateError, ValidationError, NotFoundError])
        return ParkingPermitSuccess(permit=ParkingPermit.from_model(row))


TYPES: list[Any] = [HallProcedure, HallApplication, Vehicle, ParkingPermit, ParkingQuota]
