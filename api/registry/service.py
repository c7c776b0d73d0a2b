"""Registry writes: households, residents, tags and consent, validated before anything is written."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError

from api.core.clock import age_on, local_today, utc_now
from api.core.crypto import PersonalDataCipher, mask_national_id, mask_phone
from api.core.database import UnitOfWork
from api.core.db import is_unique_violation
from api.core.errors import Conflict, NotFound, ValidationFailed
from api.core.viewer import Permission, Viewer
from api.registry import repository
from api.registry.models import (
    Building,
    ConsentPurpose,
    ConsentRecord,
    Household,
    HouseholdMove,
    Resident,
    ResidentTag,
    ResidentTagLink,
)
from api.registry.validation import InvalidBirthDate, normalise_phone, parse_national_id, validate_birth_date

GUARDIAN_REQUIRED_BELOW_AGE = 14
ADULT_AGE = 18


class DuplicateNationalId(Conflict):
    code = "DUPLICATE_NATIONAL_ID"


class DuplicateHousehold(Conflict):
    code = "DUPLICATE_HOUSEHOLD"


class WrongCommunity(ValidationFailed):
    """Two objects that must belong to one community do not."""

    code = "WRONG_COMMUNITY"


class GuardianRequired(ValidationFailed):
    code = "GUARDIAN_REQUIRED"


@dataclass(frozen=True, slots=True)
class ResidentDraft:
    household_id: int
    name: str
    national_id: str
    birth_date: date | None = None
    gender: str | None = None
    phone: str | None = None
    tags: tuple[ResidentTag, ...] = ()
    guardian_id: int | None = None
    relation_to_head: str | None = None


@dataclass(frozen=True, slots=True)
class ResidentChanges:
    """Fields to change; None leaves a field as it is."""

    name: str | None = None
    phone: str | None = None
    tags: tuple[ResidentTag, ...] | None = None
    guardian_id: int | None = None
    relation_to_head: str | None = None
    household_id: int | None = None


def _clean_name(name: str, *, field: str = "name") -> str:
    cleaned = " ".join(name.split())
    if not 1 <= len(cleaned) <= 50:
        raise ValidationFailed("A name has 1 to 50 characters.", field=field)
    return cleaned


def _clean_room(room: str) -> str:
    cleaned = room.strip()
    if not 1 <= len(cleaned) <= 20:
        raise ValidationFailed("A room has 1 to 20 characters.", field="room")
    return cleaned


async def _building_for(uow: UnitOfWork, viewer: Viewer, building_id: int) -> Building:
    building = await repository.get_one(
        uow.session, Building, building_id, viewer.communities_where(Permission.MANAGE_REGISTRY)
    )
    if building is None:
        raise NotFound("No such building.", field="buildingId")
    return building


async def _household_for(uow: UnitOfWork, viewer: Viewer, household_id: int) -> Household:
    household = await repository.get_one(
        uow.session, Household, household_id, viewer.communities_where(Permission.MANAGE_REGISTRY)
    )
    if household is None:
        raise NotFound("No such household.", field="householdId")
    return household


async def _resident_for(uow: UnitOfWork, viewer: Viewer, resident_id: int, *, field: str = "residentId") -> Resident:
    resident = await repository.get_one(
        uow.session, Resident, resident_id, viewer.communities_where(Permission.MANAGE_REGISTRY)
    )
    if resident is None:
        raise NotFound("No such resident.", field=field)
    return resident


def _require_manage(viewer: Viewer) -> None:
    viewer.require_authenticated()
    if not viewer.communities_where(Permission.MANAGE_REGISTRY):
        viewer.require(Permission.MANAGE_REGISTRY, -1)  # raises Forbidden


async def _flush_unique(uow: UnitOfWork, error: Conflict) -> None:
    """Flush inside a savepoint; a unique violation (a concurrent twin) becomes `error`."""
    try:
        async with uow.session.begin_nested():
            await uow.session.flush()
    except IntegrityError as exc:
        if is_unique_violation(exc):
            raise error from None
        raise


async def create_household(uow: UnitOfWork, *, viewer: Viewer, building_id: int, unit: int, room: str) -> Household:
    """Add a household to a building. Raises Forbidden, NotFound, ValidationFailed, DuplicateHousehold."""
    _require_manage(viewer)
    building = await _building_for(uow, viewer, building_id)
    _check_unit(building, unit)
    household = Household(
        community_id=building.community_id, building_id=building.id, unit=unit, room=_clean_room(room)
    )
    uow.session.add(household)
    await _flush_unique(uow, DuplicateHousehold("That building, unit and room already has a household.", field="room"))
    return household


def _check_unit(building: Building, unit: int) -> None:
    if not 1 <= unit <= building.units:
        raise ValidationFailed(f"Building {building.name} has units 1 to {building.units}.", field="unit")


async def move_household(
    uow: UnitOfWork, *, viewer: Viewer, household_id: int, building_id: int, unit: int, room: str
) -> Household:
    """Move a household to another address in its community, keeping the history.

    Raises Forbidden, NotFound, WrongCommunity, ValidationFailed, DuplicateHousehold.
    """
    _require_manage(viewer)
    household = await _household_for(uow, viewer, household_id)
    building = await _building_for(uow, viewer, building_id)
    if building.community_id != household.community_id:
        raise WrongCommunity("A household can only move within its own community.", field="buildingId")
    _check_unit(building, unit)
    room = _clean_room(room)
    uow.session.add(
        HouseholdMove(
            community_id=household.community_id,
            household_id=household.id,
            from_building_id=household.building_id,
            from_unit=household.unit,
            from_room=household.room,
            to_building_id=building.id,
            to_unit=unit,
            to_room=room,
            moved_by_account_id=viewer.account_id,
        )
    )
    household.building_id, household.unit, household.room = building.id, unit, room
    await _flush_unique(uow, DuplicateHousehold("That building, unit and room already has a household.", field="room"))
    return household


async def _check_guardian(
    uow: UnitOfWork, viewer: Viewer, *, guardian_id: int | None, birth_date: date, community_id: int, today: date
) -> int | None:
    if guardian_id is None:
        if age_on(birth_date, today) >= GUARDIAN_REQUIRED_BELOW_AGE:
            return None
        raise GuardianRequired(
            f"Children under {GUARDIAN_REQUIRED_BELOW_AGE} are registered with a guardian.", field="guardianId"
        )
    # A guardian given for anyone, not only a child, must be a visible adult of the same community.
    guardian = await _resident_for(uow, viewer, guardian_id, field="guardianId")
    if guardian.community_id != community_id:
        raise WrongCommunity("The guardian must live in the same community.", field="guardianId")
    if age_on(guardian.birth_date, today) < ADULT_AGE:
        raise ValidationFailed("A guardian must be an adult.", field="guardianId")
    return guardian.id


async def _set_tags(uow: UnitOfWork, resident: Resident, tags: Iterable[ResidentTag]) -> None:
    await uow.session.execute(delete(ResidentTagLink).where(ResidentTagLink.resident_id == resident.id))
    uow.session.add_all(
        ResidentTagLink(community_id=resident.community_id, resident_id=resident.id, tag=tag.value)
        for tag in sorted(set(tags))
    )


def _set_phone(resident: Resident, cipher: PersonalDataCipher, phone: str | None) -> None:
    if not phone:
        resident.phone_encrypted = resident.phone_hash = resident.phone_masked = None
        return
    normalised = normalise_phone(phone)
    resident.phone_encrypted = cipher.encrypt(normalised)
    resident.phone_hash = cipher.lookup_hash(normalised)
    resident.phone_masked = mask_phone(normalised)


async def register_resident(
    uow: UnitOfWork, *, viewer: Viewer, cipher: PersonalDataCipher, draft: ResidentDraft, today: date | None = None
) -> Resident:
    """Register a resident in a household.

    Raises Forbidden, NotFound, InvalidNationalId, InvalidBirthDate, InvalidPhone,
    DuplicateNationalId, GuardianRequired, WrongCommunity, ValidationFailed.
    """
    _require_manage(viewer)
    today = today or local_today()
    name = _clean_name(draft.name)
    national_id = parse_national_id(draft.national_id, today=today)
    if draft.birth_date is not None:
        validate_birth_date(draft.birth_date, today=today)
        if draft.birth_date != national_id.birth_date:
            raise InvalidBirthDate("The birth date differs from the one in the ID number.", field="birthDate")
    if draft.gender is not None and draft.gender != national_id.gender:
        raise ValidationFailed("The gender differs from the one in the ID number.", field="gender")
    household = await _household_for(uow, viewer, draft.household_id)
    id_hash = cipher.lookup_hash(national_id.value)
    taken = await uow.session.scalar(
        select(Resident.id).where(Resident.community_id == household.community_id, Resident.national_id_hash == id_hash)
    )
    duplicate = DuplicateNationalId("A resident with this ID number is registered here.", field="nationalId")
    if taken is not None:
        raise duplicate
    guardian_id = await _check_guardian(
        uow,
        viewer,
        guardian_id=draft.guardian_id,
        birth_date=national_id.birth_date,
        community_id=household.community_id,
        today=today,
    )
    resident = Resident(
        community_id=household.community_id,
        household_id=household.id,
        name=name,
        gender=national_id.gender,
        birth_date=national_id.birth_date,
        national_id_encrypted=cipher.encrypt(national_id.value),
        national_id_hash=id_hash,
        national_id_masked=mask_national_id(national_id.value),
        relation_to_head=draft.relation_to_head,
        guardian_id=guardian_id,
    )
    _set_phone(resident, cipher, draft.phone)
    uow.session.add(resident)
    await _flush_unique(uow, duplicate)
    await _set_tags(uow, resident, draft.tags)
    await uow.session.flush()
    return resident


async def update_resident(
    uow: UnitOfWork,
    *,
    viewer: Viewer,
    cipher: PersonalDataCipher,
    resident_id: int,
    changes: ResidentChanges,
    today: date | None = None,
) -> Resident:
    """Change a resident's details. Raises Forbidden, NotFound, InvalidPhone, WrongCommunity, ValidationFailed."""
    _require_manage(viewer)
    today = today or local_today()
    resident = await _resident_for(uow, viewer, resident_id)
    if changes.name is not None:
        resident.name = _clean_name(changes.name)
    if changes.phone is not None:
        _set_phone(resident, cipher, changes.phone)
    if changes.relation_to_head is not None:
        resident.relation_to_head = changes.relation_to_head.strip() or None
    if changes.household_id is not None:
        household = await _household_for(uow, viewer, changes.household_id)
        if household.community_id != resident.community_id:
            raise WrongCommunity("A resident can only move to a household of their community.", field="householdId")
        resident.household_id = household.id
    if changes.guardian_id is not None:
        if changes.guardian_id == resident.id:
            raise ValidationFailed("A resident cannot be their own guardian.", field="guardianId")
        resident.guardian_id = await _check_guardian(
            uow,
            viewer,
            guardian_id=changes.guardian_id,
            birth_date=resident.birth_date,
            community_id=resident.community_id,
            today=today,
        )
    if changes.tags is not None:
        await _set_tags(uow, resident, changes.tags)
    resident.updated_at = utc_now()
    await uow.session.flush()
    return resident


async def record_consent(
    uow: UnitOfWork,
    *,
    viewer: Viewer,
    resident_id: int,
    purpose: ConsentPurpose,
    granted: bool,
    given_by_resident_id: int | None = None,
    note: str | None = None,
    today: date | None = None,
) -> ConsentRecord:
    """Record a consent decision; under-14s consent through their guardian.

    Raises Forbidden, NotFound, GuardianRequired, ValidationFailed.
    """
    _require_manage(viewer)
    today = today or local_today()
    resident = await _resident_for(uow, viewer, resident_id)
    given_by = given_by_resident_id or resident.id
    if age_on(resident.birth_date, today) < GUARDIAN_REQUIRED_BELOW_AGE:
        if resident.guardian_id is None:
            raise GuardianRequired("Register a guardian before recording a child's consent.", field="residentId")
        if given_by != resident.guardian_id:
            raise GuardianRequired("A child's consent is given by their guardian.", field="givenById")
    elif given_by != resident.id:
        giver = await _resident_for(uow, viewer, given_by, field="givenById")
        if giver.id != resident.guardian_id:
            raise ValidationFailed("Only the resident or their guardian can give consent.", field="givenById")
    record = ConsentRecord(
        community_id=resident.community_id,
        resident_id=resident.id,
        purpose=purpose.value,
        granted=granted,
        given_by_resident_id=given_by,
        recorded_by_account_id=viewer.account_id,
        note=(note or "").strip() or None,
    )
    uow.session.add(record)
    await uow.session.flush()
    return record
