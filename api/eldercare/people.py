"""Elders, their health data and ability assessments, the care-tier table, volunteers, teams and pairs."""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from sqlalchemy import delete, func, insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from api.accounts.models import Account
from api.core.clock import age_on, local_today, utc_now
from api.core.crypto import PersonalDataCipher, mask_phone
from api.core.database import UnitOfWork
from api.core.db import is_unique_violation
from api.core.errors import Conflict, NotFound, ValidationFailed
from api.core.viewer import Permission, Viewer
from api.dispatch.models import AvailabilityWindow, Responder, ResponderKind, TimeOff
from api.eldercare import abilities, rules
from api.eldercare.common import (
    DEFAULT_SETTINGS,
    ElderCareSettings,
    NotAnElder,
    NoVolunteerAvailable,
    VolunteerFull,
    clean_text,
    elder_in,
    for_update,
    policy_of,
    require_health_consent,
    require_manage,
    resident_in,
)
from api.eldercare.models import (
    AbilityAssessment,
    CarePair,
    CareTierRule,
    CareTierVersion,
    ElderProfile,
    LivingSituation,
    TimeAccount,
    Volunteer,
    VolunteerTeam,
    VolunteerTeamMember,
)
from api.registry.models import Household, PersonalDataAccess, Resident
from api.registry.validation import normalise_phone

MAX_CONTACTS = 5
MAX_CONDITIONS = 30
MAX_FLAGS = 10
MAX_TIER_ROWS = 20
MAX_WINDOWS = 21


# -- elders ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ContactDraft:
    name: str
    relation: str
    phone: str


@dataclass(frozen=True, slots=True)
class ElderDraft:
    resident_id: int
    living_situation: LivingSituation
    care_flags: tuple[str, ...] = ()
    preferred_volunteer_gender: str | None = None
    emergency_contacts: tuple[ContactDraft, ...] = ()


async def save_elder(
    uow: UnitOfWork,
    *,
    viewer: Viewer,
    cipher: PersonalDataCipher,
    draft: ElderDraft,
    settings: ElderCareSettings = DEFAULT_SETTINGS,
    today: date | None = None,
) -> ElderProfile:
    """Register an elder, or update their profile. Raises NotFound, Forbidden, NotAnElder, ValidationFailed."""
    resident = await resident_in(uow.session, viewer, draft.resident_id)
    require_manage(viewer, resident.community_id)
    today = today or local_today()
    if age_on(resident.birth_date, today) < settings.min_age:
        raise NotAnElder(f"Elder care is for residents aged {settings.min_age} or more.", field="residentId")
    if draft.preferred_volunteer_gender not in (None, "male", "female"):
        raise ValidationFailed("Prefer male, female or nobody in particular.", field="preferredVolunteerGender")
    if len(draft.care_flags) > MAX_FLAGS:
        raise ValidationFailed(f"At most {MAX_FLAGS} care flags.", field="careFlags")
    flags = sorted({clean_text(f, field="careFlags", limit=40, what="flag", required=True) for f in draft.care_flags})
    if len(draft.emergency_contacts) > MAX_CONTACTS:
        raise ValidationFailed(f"At most {MAX_CONTACTS} emergency contacts.", field="emergencyContacts")
    contacts: list[dict[str, str]] = []
    for c in draft.emergency_contacts:
        phone = normalise_phone(c.phone)
        contacts.append(
            {
                "name": clean_text(c.name, field="emergencyContacts", limit=50, what="contact's name", required=True),
                "relation": clean_text(c.relation, field="emergencyContacts", limit=20, what="relation"),
                "phone": phone,
            }
        )
    elder = await uow.session.scalar(
        for_update(uow.session, select(ElderProfile).where(ElderProfile.resident_id == resident.id))
    )
    if elder is None:
        elder = ElderProfile(community_id=resident.community_id, resident_id=resident.id)
        uow.session.add(elder)
    elder.living_situation = draft.living_situation.value
    elder.care_flags = flags
    elder.preferred_volunteer_gender = draft.preferred_volunteer_gender
    elder.emergency_contacts_encrypted = cipher.encrypt(json.dumps(contacts, ensure_ascii=False)) if contacts else None
    elder.emergency_contacts_masked = [
        {"name": c["name"], "relation": c["relation"], "phone": mask_phone(c["phone"])} for c in contacts
    ]
    elder.active = True
    elder.updated_at = utc_now()
    try:
        async with uow.session.begin_nested():
            await uow.session.flush()
    except IntegrityError as exc:
        if is_unique_violation(exc):
            raise Conflict("This resident was registered at the same moment; try again.", field="residentId") from exc
        raise
    return elder


# -- health data ----------------------------------------------------------------------------------------


async def record_conditions(
    uow: UnitOfWork, *, viewer: Viewer, cipher: PersonalDataCipher, elder_id: int, conditions: Sequence[str]
) -> ElderProfile:
    """Store the conditions that change care (health data, encrypted).

    Raises NotFound, Forbidden, HealthConsentRequired, ValidationFailed.
    """
    elder = await elder_in(uow.session, viewer, elder_id, lock=True)
    require_manage(viewer, elder.community_id)
    await require_health_consent(uow.session, elder.resident_id)
    if len(conditions) > MAX_CONDITIONS:
        raise ValidationFailed(f"At most {MAX_CONDITIONS} conditions.", field="conditions")
    clean = [clean_text(c, field="conditions", limit=100, what="condition", required=True) for c in conditions]
    elder.conditions_encrypted = cipher.encrypt(json.dumps(clean, ensure_ascii=False)) if clean else None
    elder.updated_at = utc_now()
    return elder


@dataclass(frozen=True, slots=True)
class AssessmentDetails:
    """The health data of one assessment, decrypted."""

    assessment: AbilityAssessment
    scores: dict[str, int]
    area_totals: dict[str, int]
    diagnosed_dementia: bool
    diagnosed_mental_disorder: bool
    risk_events: list[dict[str, str]]
    raised_by: list[str]


@dataclass(frozen=True, slots=True)
class HealthRecord:
    elder: ElderProfile
    conditions: list[str]
    assessments: list[AssessmentDetails] = field(default_factory=list)


async def read_health(
    uow: UnitOfWork,
    *,
    viewer: Viewer,
    cipher: PersonalDataCipher,
    elder_id: int,
    purpose: str,
    request_id: str | None = None,
) -> HealthRecord:
    """Decrypt an elder's health data for a holder of VIEW_HEALTH_DATA; every read is written to the access log.

    Raises NotFound, Forbidden, HealthConsentRequired, ValidationFailed.
    """
    elder = await elder_in(uow.session, viewer, elder_id)
    viewer.require(Permission.VIEW_HEALTH_DATA, elder.community_id)
    if len(purpose.strip()) < 2:
        raise ValidationFailed("Say why you need the health data (purpose).", field="purpose")
    await require_health_consent(uow.session, elder.resident_id)
    conditions: list[str] = json.loads(cipher.decrypt(elder.conditions_encrypted)) if elder.conditions_encrypted else []
    rows = (
        await uow.session.scalars(
            select(AbilityAssessment)
            .where(AbilityAssessment.elder_id == elder.id)
            .order_by(AbilityAssessment.assessed_on.desc(), AbilityAssessment.id.desc())
            .limit(20)
        )
    ).all()
    details = []
    for row in rows:
        data: dict[str, Any] = json.loads(cipher.decrypt(row.details_encrypted))
        details.append(
            AssessmentDetails(
                assessment=row,
                scores=data["scores"],
                area_totals=data["area_totals"],
                diagnosed_dementia=data["diagnosed_dementia"],
                diagnosed_mental_disorder=data["diagnosed_mental_disorder"],
                risk_events=data["risk_events"],
                raised_by=data["raised_by"],
            )
        )
    now = utc_now()
    await uow.session.execute(
        insert(PersonalDataAccess),
        [
            {
                "community_id": elder.community_id,
                "actor_account_id": viewer.account_id,
                "subject_resident_id": elder.resident_id,
                "field": field_name,
                "purpose": purpose.strip()[:200],
                "request_id": request_id,
                "accessed_at": now,
            }
            for field_name in ("health_conditions", "health_assessments")
        ],
    )
    return HealthRecord(elder=elder, conditions=conditions, assessments=details)


async def record_assessment(
    uow: UnitOfWork,
    *,
    viewer: Viewer,
    cipher: PersonalDataCipher,
    elder_id: int,
    data: abilities.AssessmentInput,
    assessed_on: date,
    reason: str = "scheduled",
    today: date | None = None,
) -> AbilityAssessment:
    """Record a GB/T 42195 assessment; the elder's level and next due date follow it.

    Raises NotFound, Forbidden, HealthConsentRequired, ScoreOutOfRange, ValidationFailed.
    """
    elder = await elder_in(uow.session, viewer, elder_id, lock=True)
    require_manage(viewer, elder.community_id)
    today = today or local_today()
    if assessed_on > today:
        raise ValidationFailed("An assessment cannot be dated in the future.", field="assessedOn")
    if reason not in ("initial", "scheduled", "change"):
        raise ValidationFailed("The reason is initial, scheduled or change.", field="reason")
    outcome = abilities.assess(data, assessed_on=assessed_on)
    await require_health_consent(uow.session, elder.resident_id)
    details = {
        "scores": dict(abilities.validate_scores(data.scores)),
        "area_totals": outcome.area_totals,
        "diagnosed_dementia": data.diagnosed_dementia,
        "diagnosed_mental_disorder": data.diagnosed_mental_disorder,
        "risk_events": [{"kind": e.kind.value, "occurred_on": e.occurred_on.isoformat()} for e in data.risk_events],
        "raised_by": list(outcome.raised_by),
    }
    row = AbilityAssessment(
        community_id=elder.community_id,
        elder_id=elder.id,
        assessed_on=assessed_on,
        reason=reason,
        assessor_account_id=viewer.account_id,
        total_score=outcome.total,
        preliminary_level=int(outcome.preliminary_level),
        final_level=int(outcome.final_level),
        details_encrypted=cipher.encrypt(json.dumps(details, ensure_ascii=False)),
        next_due_on=abilities.reassessment_due(assessed_on),
    )
    uow.session.add(row)
    if elder.last_assessed_on is None or assessed_on >= elder.last_assessed_on:
        elder.current_level = row.final_level
        elder.last_assessed_on = assessed_on
        elder.reassessment_due_on = row.next_due_on
    elder.updated_at = utc_now()
    await uow.session.flush()
    return row


async def mark_changed(uow: UnitOfWork, *, viewer: Viewer, elder_id: int, today: date | None = None) -> ElderProfile:
    """The elder's condition changed: a reassessment is due now. Raises NotFound, Forbidden."""
    elder = await elder_in(uow.session, viewer, elder_id, lock=True)
    require_manage(viewer, elder.community_id)
    elder.reassessment_due_on = today or local_today()
    elder.updated_at = utc_now()
    return elder


# -- care tiers -----------------------------------------------------------------------------------------


async def tier_table(
    session: AsyncSession, *, community_id: int, version: int | None = None
) -> tuple[CareTierVersion | None, list[CareTierRule]]:
    """A version of the community's tier table (the latest by default); none saved yet gives (None, [])."""
    stmt = select(CareTierVersion).where(CareTierVersion.community_id == community_id)
    stmt = stmt.where(CareTierVersion.version == version) if version is not None else stmt
    row = await session.scalar(stmt.order_by(CareTierVersion.version.desc()).limit(1))
    if row is None:
        return None, []
    rules_ = (
        await session.scalars(
            select(CareTierRule).where(CareTierRule.version_id == row.id).order_by(CareTierRule.position)
        )
    ).all()
    return row, list(rules_)


def to_rows(rules_: Sequence[CareTierRule]) -> list[rules.TierRow]:
    return [
        rules.TierRow(
            name=r.name, min_level=r.min_level, max_level=r.max_level, visits_per_month=r.visits_per_month,
            visit_types=tuple(r.visit_types), lives_alone=r.lives_alone, required_flags=tuple(r.required_flags),
        )
        for r in rules_
    ]  # fmt: skip


async def _new_version(
    uow: UnitOfWork, community_id: int, rows: Sequence[rules.TierRow], note: str, account_id: int | None
) -> tuple[CareTierVersion, list[CareTierRule]]:
    latest = await uow.session.scalar(
        select(func.max(CareTierVersion.version)).where(CareTierVersion.community_id == community_id)
    )
    version = CareTierVersion(
        community_id=community_id, version=int(latest or 0) + 1, note=note, created_by_account_id=account_id
    )
    try:
        async with uow.session.begin_nested():
            uow.session.add(version)
            await uow.session.flush()
    except IntegrityError as exc:
        if is_unique_violation(exc):
            raise Conflict("The tier table was changed at the same moment; try again.", field="rows") from exc
        raise
    made = [
        CareTierRule(
            version_id=version.id, position=i, name=r.name, min_level=r.min_level, max_level=r.max_level,
            lives_alone=r.lives_alone, required_flags=list(r.required_flags), visits_per_month=r.visits_per_month,
            visit_types=list(r.visit_types),
        )
        for i, r in enumerate(rows)
    ]  # fmt: skip
    uow.session.add_all(made)
    await uow.session.flush()
    return version, made


def validate_tiers(rows: Sequence[rules.TierRow]) -> None:
    """Raises ValidationFailed for an empty or malformed table."""
    if not 1 <= len(rows) <= MAX_TIER_ROWS:
        raise ValidationFailed(f"A tier table has 1 to {MAX_TIER_ROWS} rows.", field="rows")
    for i, r in enumerate(rows):
        where = f"rows.{i}"
        if not r.name.strip() or len(r.name) > 50:
            raise ValidationFailed("Name each tier (at most 50 characters).", field=f"{where}.name")
        if not 0 <= r.min_level <= r.max_level <= 4:
            raise ValidationFailed("Levels run from 0 to 4, the lower bound first.", field=f"{where}.minLevel")
        if not 0 <= r.visits_per_month <= 31:
            raise ValidationFailed("0 to 31 visits a month.", field=f"{where}.visitsPerMonth")
        if r.visits_per_month and not r.visit_types:
            raise ValidationFailed("Say which types of visit the tier gets.", field=f"{where}.visitTypes")
        unknown = [t for t in r.visit_types if t not in rules.CHECKLISTS]
        if unknown:
            raise ValidationFailed(f"Unknown visit type {unknown[0]}.", field=f"{where}.visitTypes")
    # Every elder must fall into some row: level 0..4, alone or not, without flags.
    for level in range(5):
        for alone in (False, True):
            if rules.match_tier(rows, rules.ElderFacts(level, alone)) is None:
                raise ValidationFailed(
                    f"No row matches a level-{level} elder {'living alone' if alone else 'living with others'} "
                    "without flags; add a catch-all row.",
                    field="rows",
                )


async def set_tier_table(
    uow: UnitOfWork, *, viewer: Viewer, community_id: int, rows: Sequence[rules.TierRow], note: str = ""
) -> tuple[CareTierVersion, list[CareTierRule]]:
    """Save a new version of the tier table; visits already planned keep the version they came from.

    Raises Forbidden, ValidationFailed, Conflict.
    """
    require_manage(viewer, community_id)
    validate_tiers(rows)
    return await _new_version(
        uow, community_id, rows, clean_text(note, field="note", limit=200, what="note"), viewer.account_id
    )


async def ensure_tier_table(uow: UnitOfWork, *, community_id: int) -> tuple[CareTierVersion, list[CareTierRule]]:
    """The latest tier table, saving the defaults as version 1 when the community has none."""
    version, rows = await tier_table(uow.session, community_id=community_id)
    if version is not None:
        return version, rows
    try:
        return await _new_version(uow, community_id, rules.DEFAULT_TIERS, "默认分层", None)
    except Conflict:
        # Another planning run saved the defaults at the same moment: use theirs.
        version, rows = await tier_table(uow.session, community_id=community_id)
        if version is None:
            raise
        return version, rows


# -- volunteers -----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class WindowDraft:
    weekday: int
    start_minute: int
    end_minute: int


@dataclass(frozen=True, slots=True)
class VolunteerDraft:
    resident_id: int
    skills: tuple[str, ...] = ()
    max_elders: int = 3
    availability: tuple[WindowDraft, ...] = ()
    team_ids: tuple[int, ...] = ()


async def register_volunteer(uow: UnitOfWork, *, viewer: Viewer, draft: VolunteerDraft) -> Volunteer:
    """Register a resident with a login as a volunteer (a dispatch responder), or update them.

    Raises NotFound, Forbidden, ValidationFailed.
    """
    resident = await resident_in(uow.session, viewer, draft.resident_id)
    cid = resident.community_id
    require_manage(viewer, cid)
    unknown = sorted(set(draft.skills) - rules.VOLUNTEER_SKILLS)
    if unknown:
        raise ValidationFailed(f"Unknown skill {unknown[0]}.", field="skills")
    if not 1 <= draft.max_elders <= 50:
        raise ValidationFailed("A volunteer looks after 1 to 50 elders.", field="maxElders")
    if len(draft.availability) > MAX_WINDOWS:
        raise ValidationFailed(f"At most {MAX_WINDOWS} availability windows.", field="availability")
    for w in draft.availability:
        if not (0 <= w.weekday <= 6 and 0 <= w.start_minute < w.end_minute <= 1440):
            raise ValidationFailed("Give windows as a weekday 0–6 and a time span in the day.", field="availability")
    account_id = await uow.session.scalar(
        select(Account.id)
        .where(Account.resident_id == resident.id, Account.is_active.is_(True))
        .order_by(Account.id)
        .limit(1)
    )
    if account_id is None:
        raise ValidationFailed(
            "The volunteer needs a login first (to receive and answer visit offers).", field="residentId"
        )
    teams = []
    if draft.team_ids:
        teams = list(
            (
                await uow.session.scalars(
                    select(VolunteerTeam.id).where(
                        VolunteerTeam.id.in_(draft.team_ids), VolunteerTeam.community_id == cid
                    )
                )
            ).all()
        )
        if len(teams) != len(set(draft.team_ids)):
            raise NotFound("No such team.", field="teamIds")
    building_id = compound_id = None
    if resident.household_id is not None:
        household = await uow.session.get(Household, resident.household_id)
        if household is not None:
            from api.registry.models import Building

            building = await uow.session.get(Building, household.building_id)
            building_id, compound_id = household.building_id, building.compound_id if building else None
    responder = await uow.session.scalar(
        select(Responder).where(
            Responder.community_id == cid,
            Responder.account_id == account_id,
            Responder.kind == ResponderKind.VOLUNTEER.value,
        )
    )
    if responder is None:
        responder = Responder(community_id=cid, account_id=account_id, kind=ResponderKind.VOLUNTEER.value)
        uow.session.add(responder)
    responder.display_name = resident.name
    responder.skills = sorted(set(draft.skills))
    # Open work counts every offered or booked visit: about a month's visits for each elder looked after.
    responder.max_open = draft.max_elders * 8
    responder.home_building_id, responder.home_compound_id = building_id, compound_id
    responder.active = True
    await uow.session.flush()
    volunteer = await uow.session.scalar(select(Volunteer).where(Volunteer.responder_id == responder.id))
    if volunteer is None:
        volunteer = Volunteer(community_id=cid, resident_id=resident.id, responder_id=responder.id)
        uow.session.add(volunteer)
    volunteer.max_elders = draft.max_elders
    volunteer.active = True
    try:
        async with uow.session.begin_nested():
            await uow.session.flush()
    except IntegrityError as exc:
        raise Conflict("This resident is already a volunteer.", field="residentId") from exc
    await uow.session.execute(delete(AvailabilityWindow).where(AvailabilityWindow.responder_id == responder.id))
    uow.session.add_all(
        AvailabilityWindow(responder_id=responder.id, weekday=w.weekday, start_minute=w.start_minute,
                           end_minute=w.end_minute)
        for w in draft.availability
    )  # fmt: skip
    await uow.session.execute(delete(VolunteerTeamMember).where(VolunteerTeamMember.volunteer_id == volunteer.id))
    uow.session.add_all(VolunteerTeamMember(team_id=t, volunteer_id=volunteer.id) for t in teams)
    if await uow.session.scalar(select(TimeAccount.id).where(TimeAccount.volunteer_id == volunteer.id)) is None:
        uow.session.add(TimeAccount(community_id=cid, kind="volunteer", volunteer_id=volunteer.id, balance_minutes=0))
    await uow.session.flush()
    return volunteer


async def volunteer_in(session: AsyncSession, viewer: Viewer, volunteer_id: int, *, lock: bool = False) -> Volunteer:
    stmt = select(Volunteer).where(Volunteer.id == volunteer_id, Volunteer.community_id.in_(viewer.community_ids))
    row = await session.scalar(for_update(session, stmt) if lock else stmt)
    if row is None:
        raise NotFound("No such volunteer.", field="volunteerId")
    return row


async def is_self(session: AsyncSession, viewer: Viewer, volunteer: Volunteer) -> bool:
    if viewer.account_id is None:
        return False
    responder = await session.get(Responder, volunteer.responder_id)
    return responder is not None and responder.account_id == viewer.account_id


async def add_time_off(
    uow: UnitOfWork, *, viewer: Viewer, volunteer_id: int, starts_at: datetime, ends_at: datetime, reason: str = ""
) -> TimeOff:
    """The volunteer is away: visits then go to a stand-in. The volunteer or staff. Raises NotFound, Forbidden, ValidationFailed."""
    viewer.require_authenticated()
    volunteer = await volunteer_in(uow.session, viewer, volunteer_id)
    if not await is_self(uow.session, viewer, volunteer):
        require_manage(viewer, volunteer.community_id)
    if starts_at.tzinfo is None or ends_at.tzinfo is None:
        raise ValidationFailed("Give the times with a time zone.", field="startsAt")
    if ends_at <= starts_at:
        raise ValidationFailed("Time off ends after it starts.", field="endsAt")
    row = TimeOff(
        responder_id=volunteer.responder_id,
        starts_at=starts_at,
        ends_at=ends_at,
        reason=clean_text(reason, field="reason", limit=200, what="reason") or None,
    )
    uow.session.add(row)
    await uow.session.flush()
    return row


async def create_team(uow: UnitOfWork, *, viewer: Viewer, community_id: int, name: str) -> VolunteerTeam:
    """A volunteer team (e.g. 爱心敲门). Raises Forbidden, ValidationFailed, Conflict."""
    require_manage(viewer, community_id)
    team = VolunteerTeam(
        community_id=community_id, name=clean_text(name, field="name", limit=100, what="team's name", required=True)
    )
    try:
        async with uow.session.begin_nested():
            uow.session.add(team)
            await uow.session.flush()
    except IntegrityError as exc:
        raise Conflict("The community already has a team of that name.", field="name") from exc
    return team


# -- pairs ----------------------------------------------------------------------------------------------


async def _place_of(session: AsyncSession, household_ids: Sequence[int]) -> dict[int, tuple[int, int, int]]:
    """Household id → (building id, unit, compound id)."""
    from api.registry.models import Building

    if not household_ids:
        return {}
    rows = await session.execute(
        select(Household.id, Household.building_id, Household.unit, Building.compound_id)
        .join(Building, Building.id == Household.building_id)
        .where(Household.id.in_(list(household_ids)))
    )
    return {int(h): (int(b), int(u), int(c)) for h, b, u, c in rows.all()}


async def active_pair_counts(session: AsyncSession, volunteer_ids: Sequence[int]) -> dict[int, int]:
    rows = await session.execute(
        select(CarePair.volunteer_id, func.count())
        .where(CarePair.volunteer_id.in_(list(volunteer_ids)), CarePair.ended_at.is_(None))
        .group_by(CarePair.volunteer_id)
    )
    counts = dict.fromkeys(volunteer_ids, 0)
    counts.update({int(v): int(n) for v, n in rows.all()})
    return counts


async def ranked_volunteers(
    session: AsyncSession, *, elder: ElderProfile, today: date
) -> tuple[list[rules.RankedVolunteer], list[tuple[int, str]]]:
    """The community's active volunteers ranked for this elder (rules.rank_volunteers)."""
    resident = await session.get(Resident, elder.resident_id)
    assert resident is not None
    rows = (
        await session.execute(
            select(Volunteer, Resident, Responder)
            .join(Resident, Resident.id == Volunteer.resident_id)
            .join(Responder, Responder.id == Volunteer.responder_id)
            .where(Volunteer.community_id == elder.community_id, Volunteer.active.is_(True), Responder.active.is_(True))
        )
    ).all()
    places = await _place_of(
        session, [h for h in [resident.household_id, *(r.household_id for _, r, _ in rows)] if h is not None]
    )
    loads = await active_pair_counts(session, [v.id for v, _, _ in rows])
    policy = await policy_of(session, elder.community_id)
    tier_types: set[str] = set()
    if elder.current_tier_rule_id is not None:
        tier = await session.get(CareTierRule, elder.current_tier_rule_id)
        tier_types = set(tier.visit_types) if tier else set()
    skills_wanted = frozenset(s for s in (rules.SKILL_OF_TYPE.get(t) for t in tier_types) if s) | {"companionship"}
    home = places.get(resident.household_id or -1)
    needs = rules.ElderNeeds(
        resident_id=resident.id,
        building_id=home[0] if home else None,
        unit=home[1] if home else None,
        compound_id=home[2] if home else None,
        preferred_gender=elder.preferred_volunteer_gender,
        skills_wanted=frozenset(skills_wanted),
        younger_elder_ages=(policy.younger_elder_min_age, policy.younger_elder_max_age),
    )
    candidates = []
    for volunteer, person, responder in rows:
        place = places.get(person.household_id or -1)
        candidates.append(
            rules.VolunteerCandidate(
                volunteer_id=volunteer.id, resident_id=person.id, gender=person.gender,
                age=age_on(person.birth_date, today), skills=frozenset(responder.skills or ()),
                active_pairs=loads.get(volunteer.id, 0), max_elders=volunteer.max_elders,
                building_id=place[0] if place else None, unit=place[1] if place else None,
                compound_id=place[2] if place else None,
            )
        )  # fmt: skip
    return rules.rank_volunteers(needs, candidates)


async def pair(
    uow: UnitOfWork, *, viewer: Viewer, elder_id: int, volunteer_id: int | None = None, today: date | None = None
) -> CarePair:
    """Pair an elder with a volunteer (the best-ranked one when none is given); a previous primary pair ends.

    Raises NotFound, Forbidden, VolunteerFull, NoVolunteerAvailable, Conflict.
    """
    today = today or local_today()
    elder = await elder_in(uow.session, viewer, elder_id, lock=True)  # serialises pairing of one elder
    require_manage(viewer, elder.community_id)
    ranked, rejected = await ranked_volunteers(uow.session, elder=elder, today=today)
    if volunteer_id is not None:
        chosen = await volunteer_in(uow.session, viewer, volunteer_id)
        if chosen.community_id != elder.community_id:
            raise NotFound("No such volunteer in this community.", field="volunteerId")
        why_not = dict(rejected).get(chosen.id)
        reasons: list[dict[str, str]] = [{"code": "manual", "detail": "chosen by staff"}]
        if why_not and "looks after" not in why_not:
            raise ValidationFailed(f"This volunteer cannot be paired: {why_not}.", field="volunteerId")
        order = [chosen.id]
    else:
        if not ranked:
            raise NoVolunteerAvailable("No volunteer can take this elder now (all full, or none matches).")
        order = [r.volunteer_id for r in ranked]
        reasons = [{"code": c, "detail": d} for c, d in ranked[0].reasons]
    current = await uow.session.scalar(
        select(CarePair).where(CarePair.elder_id == elder.id, CarePair.ended_at.is_(None), CarePair.role == "primary")
    )
    for candidate_id in order:
        if current is not None and current.volunteer_id == candidate_id:
            return current
        # The volunteer's row lock serialises pairings that take their places.
        locked = await uow.session.scalar(
            for_update(uow.session, select(Volunteer).where(Volunteer.id == candidate_id))
        )
        assert locked is not None
        taken = (await active_pair_counts(uow.session, [locked.id]))[locked.id]
        if taken >= locked.max_elders:
            if volunteer_id is not None:
                raise VolunteerFull(
                    f"This volunteer already looks after {taken} elders (their limit).", field="volunteerId"
                )
            continue
        now = utc_now()
        if current is not None:
            current.ended_at, current.end_reason = now, "replaced"
            await uow.session.flush()
        made = CarePair(
            community_id=elder.community_id, elder_id=elder.id, volunteer_id=locked.id, role="primary",
            reasons=reasons if candidate_id == order[0] else [{"code": "next", "detail": "the better ones were full"}],
            started_at=now, created_by_account_id=viewer.account_id,
        )  # fmt: skip
        try:
            async with uow.session.begin_nested():
                uow.session.add(made)
                await uow.session.flush()
        except IntegrityError as exc:
            if is_unique_violation(exc):
                raise Conflict(
                    "The elder was paired at the same moment; look again.", field="elderId"
                ) from exc  # pragma: no cover - the elder's row lock prevents it
            raise
        return made
    raise NoVolunteerAvailable("Every volunteer who could take this elder is full.")


async def end_pair(uow: UnitOfWork, *, viewer: Viewer, pair_id: int, reason: str) -> CarePair:
    """End a pair, keeping it in the history. Raises NotFound, Forbidden, ValidationFailed."""
    row = await uow.session.scalar(
        for_update(
            uow.session,
            select(CarePair).where(CarePair.id == pair_id, CarePair.community_id.in_(viewer.community_ids)),
        )
    )
    if row is None:
        raise NotFound("No such pair.", field="pairId")
    require_manage(viewer, row.community_id)
    if row.ended_at is not None:
        raise ValidationFailed("This pair has ended already.", field="pairId")
    row.ended_at = utc_now()
    row.end_reason = clean_text(reason, field="reason", limit=200, what="reason", required=True)
    return row


async def primary_responders(session: AsyncSession, resident_ids: Sequence[int]) -> dict[int, tuple[int, int]]:
    """Resident id → (volunteer id, responder id) of their active primary pair."""
    if not resident_ids:
        return {}
    rows = await session.execute(
        select(ElderProfile.resident_id, Volunteer.id, Volunteer.responder_id)
        .join(CarePair, CarePair.elder_id == ElderProfile.id)
        .join(Volunteer, Volunteer.id == CarePair.volunteer_id)
        .where(
            ElderProfile.resident_id.in_(list(resident_ids)),
            CarePair.ended_at.is_(None),
            CarePair.role == "primary",
            Volunteer.active.is_(True),
        )
    )
    return {int(r): (int(v), int(p)) for r, v, p in rows.all()}


async def pairs_of(session: AsyncSession, elder_ids: Sequence[int]) -> dict[int, list[CarePair]]:
    """Every pair of each elder, newest first (the continuity history)."""
    rows = (
        await session.scalars(
            select(CarePair)
            .where(CarePair.elder_id.in_(list(elder_ids)))
            .order_by(CarePair.started_at.desc(), CarePair.id.desc())
        )
    ).all()
    out: dict[int, list[CarePair]] = defaultdict(list)
    for r in rows:
        out[r.elder_id].append(r)
    return out
