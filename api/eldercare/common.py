"""Elder-care errors, the configurable policy, and small helpers shared by the services."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TypeVar

from sqlalchemy import Select, select
from sqlalchemy.ext.asyncio import AsyncSession

from api.core.clock import utc_now
from api.core.database import UnitOfWork
from api.core.errors import Conflict, NotFound, ValidationFailed
from api.core.viewer import Permission, Viewer
from api.eldercare.abilities import ScoreOutOfRange
from api.eldercare.models import ElderCarePolicy, ElderProfile
from api.registry.models import ConsentPurpose, ConsentRecord, Resident

if TYPE_CHECKING:
    from api.settings import Settings

T = TypeVar("T")

__all__ = ["ScoreOutOfRange"]

VISIT_KIND = "visit"  # the dispatch kind
OVERLAP_CONSTRAINT = "ex_elder_visit_no_double_booking"
ONE_PRIMARY_INDEX = "uq_elder_care_pair_one_primary"


@dataclass(frozen=True, slots=True)
class ElderCareSettings:
    """The configurable rules (LINLI_ELDERCARE_* settings)."""

    min_age: int = 60
    offer_hours: int = 24
    grace_hours: int = 24

    @classmethod
    def from_settings(cls, settings: Settings) -> ElderCareSettings:
        return cls(
            min_age=settings.eldercare_min_age,
            offer_hours=settings.eldercare_offer_hours,
            grace_hours=settings.eldercare_grace_hours,
        )


DEFAULT_SETTINGS = ElderCareSettings()


# -- errors ---------------------------------------------------------------------------------------------


class NotAnElder(ValidationFailed):
    code = "NOT_AN_ELDER"


class HealthConsentRequired(Conflict):
    """Health data is stored and shown only with the elder's separate health-data consent."""

    code = "HEALTH_CONSENT_REQUIRED"


class VolunteerDoubleBooked(Conflict):
    code = "VOLUNTEER_DOUBLE_BOOKED"


class VolunteerFull(Conflict):
    code = "VOLUNTEER_FULL"


class NoVolunteerAvailable(Conflict):
    code = "NO_VOLUNTEER_AVAILABLE"


class VisitNotOpen(Conflict):
    code = "VISIT_NOT_OPEN"


class VisitNotCheckedIn(Conflict):
    code = "VISIT_NOT_CHECKED_IN"


class AlreadyCheckedIn(Conflict):
    code = "ALREADY_CHECKED_IN"


class VisitOfferNotOpen(Conflict):
    code = "OFFER_NOT_OPEN"


class InsufficientHours(Conflict):
    code = "INSUFFICIENT_HOURS"


class NotARelative(Conflict):
    code = "NOT_A_RELATIVE"


# -- helpers --------------------------------------------------------------------------------------------


def postgres(session: AsyncSession) -> bool:
    return session.get_bind().dialect.name == "postgresql"


def for_update(session: AsyncSession, stmt: Select[T]) -> Select[T]:
    """SELECT … FOR UPDATE on PostgreSQL; SQLite writers already hold the database's write lock."""
    return stmt.with_for_update() if postgres(session) else stmt


def rowcount(result: Any) -> int:
    return int(getattr(result, "rowcount", 0) or 0)


def constraint_of(exc: Exception) -> str:
    """The violated constraint's name (PostgreSQL) or the database's message (SQLite)."""
    orig = getattr(exc, "orig", None)
    for candidate in (orig, getattr(orig, "__cause__", None)):
        name = getattr(candidate, "constraint_name", None)
        if name:
            return str(name)
    return str(orig)


def sqlstate(exc: Exception) -> str | None:
    orig = getattr(exc, "orig", None)
    for candidate in (orig, getattr(orig, "__cause__", None)):
        state = getattr(candidate, "sqlstate", None)
        if state:
            return str(state)
    return None


def clean_text(value: str, *, field: str, limit: int, what: str, required: bool = False) -> str:
    cleaned = value.strip()
    if required and not cleaned:
        raise ValidationFailed(f"Please give the {what}.", field=field)
    if len(cleaned) > limit:
        raise ValidationFailed(f"At most {limit} characters.", field=field)
    return cleaned


def aware(value: datetime, field: str) -> datetime:
    if value.tzinfo is None:
        raise ValidationFailed("Give the time with a time zone.", field=field)
    return value.astimezone(UTC)


def require_manage(viewer: Viewer, community_id: int) -> None:
    """Raise Forbidden unless the viewer manages elder care in the community."""
    viewer.require(Permission.MANAGE_ELDER_CARE, community_id)


async def resident_in(
    session: AsyncSession, viewer: Viewer, resident_id: int, *, field: str = "residentId"
) -> Resident:
    resident = await session.get(Resident, resident_id)
    if resident is None or resident.community_id not in viewer.community_ids:
        raise NotFound("No such resident.", field=field)
    return resident


async def elder_in(session: AsyncSession, viewer: Viewer, elder_id: int, *, lock: bool = False) -> ElderProfile:
    stmt = select(ElderProfile).where(ElderProfile.id == elder_id, ElderProfile.community_id.in_(viewer.community_ids))
    elder = await session.scalar(for_update(session, stmt) if lock else stmt)
    if elder is None:
        raise NotFound("No such elder.", field="elderId")
    return elder


async def has_health_consent(session: AsyncSession, resident_id: int) -> bool:
    """The latest health-data consent decision for the resident is a yes."""
    granted = await session.scalar(
        select(ConsentRecord.granted)
        .where(ConsentRecord.resident_id == resident_id, ConsentRecord.purpose == ConsentPurpose.HEALTH_DATA.value)
        .order_by(ConsentRecord.id.desc())
        .limit(1)
    )
    return bool(granted)


async def health_consents(session: AsyncSession, resident_ids: list[int]) -> dict[int, bool]:
    """Whether each resident's latest health-data consent decision is a yes (one statement)."""
    out = dict.fromkeys(resident_ids, False)
    rows = await session.execute(
        select(ConsentRecord.resident_id, ConsentRecord.granted)
        .where(ConsentRecord.resident_id.in_(resident_ids), ConsentRecord.purpose == ConsentPurpose.HEALTH_DATA.value)
        .order_by(ConsentRecord.resident_id, ConsentRecord.id)
    )
    for resident_id, granted in rows.all():
        out[int(resident_id)] = bool(granted)  # the last one per resident wins
    return out


async def require_health_consent(session: AsyncSession, resident_id: int) -> None:
    if not await has_health_consent(session, resident_id):
        raise HealthConsentRequired(
            "Health data needs the elder's (or guardian's) separate consent to health-data processing; record it first.",
            field="elderId",
        )


async def policy_of(session: AsyncSession, community_id: int) -> ElderCarePolicy:
    """The community's policy row, or the defaults (not saved)."""
    row = await session.get(ElderCarePolicy, community_id)
    return row or ElderCarePolicy(community_id=community_id, younger_elder_min_age=60, younger_elder_max_age=75)


async def set_younger_elder_rule(
    uow: UnitOfWork, *, viewer: Viewer, community_id: int, min_age: int, max_age: int
) -> ElderCarePolicy:
    """Set the 低龄 age range of volunteers (community admin or staff). Raises Forbidden, ValidationFailed."""
    require_manage(viewer, community_id)
    if not 40 <= min_age <= max_age <= 100:
        raise ValidationFailed("Give an age range within 40 to 100, the lower bound first.", field="minAge")
    row = await uow.session.get(ElderCarePolicy, community_id)
    if row is None:
        row = ElderCarePolicy(community_id=community_id)
        uow.session.add(row)
    row.younger_elder_min_age, row.younger_elder_max_age = min_age, max_age
    row.updated_at = utc_now()
    await uow.session.flush()
    return row
