"""Registry mutations: one input each, a union of success and typed user errors as result."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

import strawberry
from strawberry import relay

from api.core.errors import DomainError
from api.graphql.context import Info
from api.graphql.errors import (
    ConflictError,
    DuplicateHouseholdError,
    DuplicateNationalIdError,
    GuardianRequiredError,
    InvalidBirthDateError,
    InvalidNationalIdError,
    InvalidPhoneError,
    NotFoundError,
    ValidationError,
    WrongCommunityError,
    to_user_error,
)
from api.graphql.pagination import decode_id
from api.graphql.registry.types import ConsentRecord, Household, Resident
from api.registry import service
from api.registry.models import ConsentPurpose, ResidentTag
from api.registry.models import Resident as ResidentModel

MAX_TAGS = 10


def _tags(tags: list[ResidentTag] | None) -> tuple[ResidentTag, ...] | None:
    if tags is None:
        return None
    if len(tags) > MAX_TAGS:
        raise DomainError(f"At most {MAX_TAGS} tags.", field="tags")
    return tuple(tags)


# -- households -----------------------------------------------------------------------------


@strawberry.input(description="A new household at an address.")
class CreateHouseholdInput:
    building_id: relay.GlobalID = strawberry.field(description="The building.")
    unit: int = strawberry.field(description="Unit number (单元), from 1.")
    room: str = strawberry.field(description="Room number, e.g. 502 (1 to 20 characters).")


@strawberry.type(description="The household was created.")
class CreateHouseholdSuccess:
    household: Household = strawberry.field(description="The new household.")


CreateHouseholdResult = Annotated[
    CreateHouseholdSuccess | NotFoundError | ValidationError | DuplicateHouseholdError,
    strawberry.union("CreateHouseholdResult", description="The household, or why it could not be created."),
]


@strawberry.input(description="Move a household to another address in its community.")
class MoveHouseholdInput:
    household_id: relay.GlobalID = strawberry.field(description="The household.")
    building_id: relay.GlobalID = strawberry.field(description="The new building.")
    unit: int = strawberry.field(description="The new unit number.")
    room: str = strawberry.field(description="The new room number.")


@strawberry.type(description="The household moved.")
class MoveHouseholdSuccess:
    household: Household = strawberry.field(description="The household at its new address.")


MoveHouseholdResult = Annotated[
    MoveHouseholdSuccess | NotFoundError | ValidationError | DuplicateHouseholdError | WrongCommunityError,
    strawberry.union("MoveHouseholdResult", description="The moved household, or why it could not move."),
]


# -- residents ------------------------------------------------------------------------------


@strawberry.input(description="A person to register in a household.")
class RegisterResidentInput:
    household_id: relay.GlobalID = strawberry.field(description="The household.")
    name: str = strawberry.field(description="Full name (1 to 50 characters).")
    national_id: str = strawberry.field(description="18-character national ID number (GB 11643).")
    birth_date: dt.date | None = strawberry.field(
        default=None, description="Date of birth; taken from the ID number when left out, and must match it."
    )
    phone: str | None = strawberry.field(default=None, description="Mainland China mobile number.")
    tags: list[ResidentTag] | None = strawberry.field(default=None, description="Circumstances (at most 10).")
    guardian_id: relay.GlobalID | None = strawberry.field(
        default=None, description="Guardian, an adult resident; required under 14."
    )
    relation_to_head: str | None = strawberry.field(default=None, description="Relation to the head of household.")


@strawberry.type(description="The resident was registered.")
class RegisterResidentSuccess:
    resident: Resident = strawberry.field(description="The new resident.")


ResidentErrors = (
    NotFoundError
    | ValidationError
    | InvalidNationalIdError
    | InvalidBirthDateError
    | InvalidPhoneError
    | DuplicateNationalIdError
    | GuardianRequiredError
    | WrongCommunityError
)

RegisterResidentResult = Annotated[
    RegisterResidentSuccess | ResidentErrors,
    strawberry.union("RegisterResidentResult", description="The resident, or why they could not be registered."),
]


@strawberry.input(description="Changes to a resident; fields left out stay as they are.")
class UpdateResidentInput:
    resident_id: relay.GlobalID = strawberry.field(description="The resident.")
    name: str | None = strawberry.field(default=None, description="New full name.")
    phone: str | None = strawberry.field(default=None, description="New mobile number; an empty string removes it.")
    tags: list[ResidentTag] | None = strawberry.field(
        default=None, description="The complete new set of tags (at most 10)."
    )
    guardian_id: relay.GlobalID | None = strawberry.field(default=None, description="New guardian.")
    household_id: relay.GlobalID | None = strawberry.field(
        default=None, description="Register the resident in another household of the community."
    )
    relation_to_head: str | None = strawberry.field(default=None, description="New relation to the head.")


@strawberry.type(description="The resident was updated.")
class UpdateResidentSuccess:
    resident: Resident = strawberry.field(description="The resident as now recorded.")


UpdateResidentResult = Annotated[
    UpdateResidentSuccess | ResidentErrors,
    strawberry.union("UpdateResidentResult", description="The resident, or why the change was refused."),
]


@strawberry.input(description="A consent decision given by a resident, or by a child's guardian.")
class RecordConsentInput:
    resident_id: relay.GlobalID = strawberry.field(description="Whose data the consent is about.")
    purpose: ConsentPurpose = strawberry.field(description="What it covers.")
    granted: bool = strawberry.field(description="True to give consent, false to refuse or withdraw.")
    given_by_id: relay.GlobalID | None = strawberry.field(
        default=None, description="Who gave it, when not the resident (their guardian)."
    )
    note: str | None = strawberry.field(default=None, description="How it was given (e.g. signed form).")


@strawberry.type(description="The consent decision was recorded.")
class RecordConsentSuccess:
    consent: ConsentRecord = strawberry.field(description="The record.")
    resident: Resident = strawberry.field(description="The resident.")


RecordConsentResult = Annotated[
    RecordConsentSuccess | NotFoundError | ValidationError | GuardianRequiredError | ConflictError,
    strawberry.union("RecordConsentResult", description="The consent record, or why it was refused."),
]


@strawberry.type
class RegistryMutation:
    @strawberry.mutation(description="Add a household to a building (staff).")
    async def create_household(
        self,
        info: Info,
        input: Annotated[CreateHouseholdInput, strawberry.argument(description="The mutation's input.")],
    ) -> CreateHouseholdResult:
        try:
            async with info.context.db.unit_of_work(info.context.jobs) as uow:
                household = await service.create_household(
                    uow,
                    viewer=info.context.viewer,
                    building_id=decode_id(input.building_id, "Building"),
                    unit=input.unit,
                    room=input.room,
                )
        except DomainError as exc:
            return to_user_error(exc, [NotFoundError, ValidationError, DuplicateHouseholdError])
        return CreateHouseholdSuccess(household=Household.from_model(household))

    @strawberry.mutation(description="Move a household to another address in its community (staff).")
    async def move_household(
        self, info: Info, input: Annotated[MoveHouseholdInput, strawberry.argument(description="The mutation's input.")]
    ) -> MoveHouseholdResult:
        try:
            async with info.context.db.unit_of_work(info.context.jobs) as uow:
                household = await service.move_household(
                    uow,
                    viewer=info.context.viewer,
                    household_id=decode_id(input.household_id, "Household"),
                    building_id=decode_id(input.building_id, "Building"),
                    unit=input.unit,
                    room=input.room,
                )
        except DomainError as exc:
            return to_user_error(exc, [NotFoundError, ValidationError, DuplicateHouseholdError, WrongCommunityError])
        return MoveHouseholdSuccess(household=Household.from_model(household))

    @strawberry.mutation(description="Register a resident in a household (staff).")
    async def register_resident(
        self,
        info: Info,
        input: Annotated[RegisterResidentInput, strawberry.argument(description="The mutation's input.")],
    ) -> RegisterResidentResult:
        try:
            draft = service.ResidentDraft(
                household_id=decode_id(input.household_id, "Household"),
                name=input.name,
                national_id=input.national_id,
                birth_date=input.birth_date,
                phone=input.phone,
                tags=_tags(input.tags) or (),
                guardian_id=decode_id(input.guardian_id, "Resident") if input.guardian_id else None,
                relation_to_head=input.relation_to_head,
            )
            async with info.context.db.unit_of_work(info.context.jobs) as uow:
                resident = await service.register_resident(
                    uow, viewer=info.context.viewer, cipher=info.context.cipher, draft=draft, today=info.context.today
                )
        except DomainError as exc:
            return to_user_error(exc, RESIDENT_ERROR_TYPES)
        return RegisterResidentSuccess(resident=Resident.from_model(resident))

    @strawberry.mutation(description="Change a resident's details (staff).")
    async def update_resident(
        self,
        info: Info,
        input: Annotated[UpdateResidentInput, strawberry.argument(description="The mutation's input.")],
    ) -> UpdateResidentResult:
        try:
            changes = service.ResidentChanges(
                name=input.name,
                phone=input.phone,
                tags=_tags(input.tags),
                guardian_id=decode_id(input.guardian_id, "Resident") if input.guardian_id else None,
                household_id=decode_id(input.household_id, "Household") if input.household_id else None,
                relation_to_head=input.relation_to_head,
            )
            async with info.context.db.unit_of_work(info.context.jobs) as uow:
                resident = await service.update_resident(
                    uow,
                    viewer=info.context.viewer,
                    cipher=info.context.cipher,
                    resident_id=decode_id(input.resident_id, "Resident"),
                    changes=changes,
                    today=info.context.today,
                )
        except DomainError as exc:
            return to_user_error(exc, RESIDENT_ERROR_TYPES)
        return UpdateResidentSuccess(resident=Resident.from_model(resident))

    @strawberry.mutation(description="Record a consent decision for a resident (staff).")
    async def record_consent(
        self, info: Info, input: Annotated[RecordConsentInput, strawberry.argument(description="The mutation's input.")]
    ) -> RecordConsentResult:
        try:
            async with info.context.db.unit_of_work(info.context.jobs) as uow:
                record = await service.record_consent(
                    uow,
                    viewer=info.context.viewer,
                    resident_id=decode_id(input.resident_id, "Resident"),
                    purpose=input.purpose,
                    granted=input.granted,
                    given_by_resident_id=decode_id(input.given_by_id, "Resident") if input.given_by_id else None,
                    note=input.note,
                    today=info.context.today,
                )
                resident = await uow.session.get(ResidentModel, record.resident_id)
                assert resident is not None
        except DomainError as exc:
            return to_user_error(exc, [NotFoundError, ValidationError, GuardianRequiredError, ConflictError])
        return RecordConsentSuccess(consent=ConsentRecord.from_model(record), resident=Resident.from_model(resident))


RESIDENT_ERROR_TYPES = [
    NotFoundError,
    ValidationError,
    InvalidNationalIdError,
    InvalidBirthDateError,
    InvalidPhoneError,
    DuplicateNationalIdError,
    GuardianRequiredError,
    WrongCommunityError,
]
