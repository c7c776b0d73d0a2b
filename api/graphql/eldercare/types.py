"""Elder-care types: elders, assessments, tiers, volunteers, pairs, visits, campaigns, the time bank, oversight."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from typing import Any, Self

import strawberry
from sqlalchemy import case, func, select
from strawberry import relay
from strawberry.dataloader import DataLoader

from api.core.clock import age_on
from api.core.viewer import Permission
from api.dispatch.models import AvailabilityWindow, Responder
from api.eldercare import abilities, models, rules
from api.eldercare import oversight as oversight_service
from api.eldercare import people as people_service
from api.eldercare import service as visits_service
from api.eldercare import timebank as timebank_service
from api.eldercare.common import health_consents
from api.graphql.context import Info
from api.graphql.loaders import request_loader as _loader
from api.graphql.registry.survey import AgeingSurvey
from api.registry.models import Building, Household
from api.registry.models import Resident as ResidentModel

LivingSituationEnum = strawberry.enum(
    models.LivingSituation, name="LivingSituation", description="Who the elder lives with."
)
VisitTypeEnum = strawberry.enum(
    models.VisitType,
    name="VisitType",
    description="safety_check (gas, electricity, fire exits, doors, medicines), electrical_check, companionship, "
    "hospital_escort, haircut, holiday_delivery, meal_delivery.",
)
VisitStateEnum = strawberry.enum(
    models.VisitState,
    name="VisitState",
    description="planned (looking for a volunteer), offered, assigned (booked), checked_in, done, missed, cancelled.",
)
FindingSeverityEnum = strawberry.enum(
    models.FindingSeverity,
    name="FindingSeverity",
    description="info, concern, or hazard (opens a repair ticket, or alerts staff when no category fits).",
)
RiskEventKindEnum = strawberry.enum(
    abilities.RiskEventKind, name="RiskEventKind", description="A care-risk event: fall, choking, self_harm, wandering."
)


def _int(raw: str) -> int:
    try:
        return int(raw)
    except ValueError:
        return -1


def managed(info: Info) -> frozenset[int]:
    return info.context.viewer.communities_where(Permission.MANAGE_ELDER_CARE)


def _homes_loader(info: Info) -> DataLoader[int, tuple[str, str]]:
    """Resident id → (name, address "楼 单元 室"); only asked for through an object the viewer may see."""

    async def load(ids: list[int]) -> list[tuple[str, str]]:
        async with info.context.db.read_session() as session:
            rows = await session.execute(
                select(ResidentModel.id, ResidentModel.name, Building.name, Household.unit, Household.room)
                .outerjoin(Household, Household.id == ResidentModel.household_id)
                .outerjoin(Building, Building.id == Household.building_id)
                .where(ResidentModel.id.in_(ids))
            )
            found = {int(r): (str(n), f"{b}{u}单元{room}" if b is not None else "") for r, n, b, u, room in rows.all()}
        return [found.get(i, ("", "")) for i in ids]

    return _loader(info, "eldercare.homes", load)


def _people_loader(info: Info) -> DataLoader[int, ResidentModel | None]:
    async def load(ids: list[int]) -> list[ResidentModel | None]:
        async with info.context.db.read_session() as session:
            rows = (await session.scalars(select(ResidentModel).where(ResidentModel.id.in_(ids)))).all()
        by_id = {r.id: r for r in rows}
        return [by_id.get(i) for i in ids]

    return _loader(info, "eldercare.people", load)


def volunteers_loader(info: Info) -> DataLoader[int, models.Volunteer | None]:
    async def load(ids: list[int]) -> list[models.Volunteer | None]:
        async with info.context.db.read_session() as session:
            rows = (
                await session.scalars(
                    select(models.Volunteer).where(
                        models.Volunteer.id.in_(ids),
                        models.Volunteer.community_id.in_(info.context.viewer.community_ids),
                    )
                )
            ).all()
        by_id = {r.id: r for r in rows}
        return [by_id.get(i) for i in ids]

    return _loader(info, "eldercare.volunteers", load)


def _responders_loader(info: Info) -> DataLoader[int, Responder | None]:
    async def load(ids: list[int]) -> list[Responder | None]:
        async with info.context.db.read_session() as session:
            rows = (await session.scalars(select(Responder).where(Responder.id.in_(ids)))).all()
        by_id = {r.id: r for r in rows}
        return [by_id.get(i) for i in ids]

    return _loader(info, "eldercare.responders", load)


def _tier_rules_loader(info: Info) -> DataLoader[int, models.CareTierRule | None]:
    async def load(ids: list[int]) -> list[models.CareTierRule | None]:
        async with info.context.db.read_session() as session:
            rows = (await session.scalars(select(models.CareTierRule).where(models.CareTierRule.id.in_(ids)))).all()
        by_id = {r.id: r for r in rows}
        return [by_id.get(i) for i in ids]

    return _loader(info, "eldercare.tier_rules", load)


def _assessments_loader(info: Info) -> DataLoader[int, list[models.AbilityAssessment]]:
    async def load(ids: list[int]) -> list[list[models.AbilityAssessment]]:
        async with info.context.db.read_session() as session:
            rows = (
                await session.scalars(
                    select(models.AbilityAssessment)
                    .where(models.AbilityAssessment.elder_id.in_(ids))
                    .order_by(models.AbilityAssessment.assessed_on.desc(), models.AbilityAssessment.id.desc())
                )
            ).all()
        out: dict[int, list[models.AbilityAssessment]] = {i: [] for i in ids}
        for r in rows:
            out[r.elder_id].append(r)
        return [out[i] for i in ids]

    return _loader(info, "eldercare.assessments", load)


def _pairs_loader(info: Info) -> DataLoader[int, list[models.CarePair]]:
    async def load(ids: list[int]) -> list[list[models.CarePair]]:
        async with info.context.db.read_session() as session:
            found = await people_service.pairs_of(session, ids)
        return [found.get(i, []) for i in ids]

    return _loader(info, "eldercare.pairs", load)


def _consent_loader(info: Info) -> DataLoader[int, bool]:
    async def load(ids: list[int]) -> list[bool]:
        async with info.context.db.read_session() as session:
            found = await health_consents(session, ids)
        return [found[i] for i in ids]

    return _loader(info, "eldercare.consent", load)


def _findings_loader(info: Info) -> DataLoader[int, list[models.VisitFinding]]:
    async def load(ids: list[int]) -> list[list[models.VisitFinding]]:
        async with info.context.db.read_session() as session:
            found = await visits_service.findings_of(session, ids)
        return [found.get(i, []) for i in ids]

    return _loader(info, "eldercare.findings", load)


def _volunteer_facts_loader(info: Info) -> DataLoader[int, tuple[int, int, list[str]]]:
    """Volunteer id → (active pairs, time-bank minutes, team names)."""

    async def load(ids: list[int]) -> list[tuple[int, int, list[str]]]:
        async with info.context.db.read_session() as session:
            pairs = await people_service.active_pair_counts(session, ids)
            balances = await timebank_service.balance_of(session, ids)
            teams: dict[int, list[str]] = {i: [] for i in ids}
            rows = await session.execute(
                select(models.VolunteerTeamMember.volunteer_id, models.VolunteerTeam.name)
                .join(models.VolunteerTeam, models.VolunteerTeam.id == models.VolunteerTeamMember.team_id)
                .where(models.VolunteerTeamMember.volunteer_id.in_(ids))
                .order_by(models.VolunteerTeam.name)
            )
            for v, name in rows.all():
                teams[int(v)].append(str(name))
        return [(pairs.get(i, 0), balances.get(i, 0), teams[i]) for i in ids]

    return _loader(info, "eldercare.volunteer_facts", load)


def _windows_loader(info: Info) -> DataLoader[int, list[AvailabilityWindow]]:
    async def load(ids: list[int]) -> list[list[AvailabilityWindow]]:
        async with info.context.db.read_session() as session:
            rows = (
                await session.scalars(
                    select(AvailabilityWindow)
                    .where(AvailabilityWindow.responder_id.in_(ids))
                    .order_by(AvailabilityWindow.weekday, AvailabilityWindow.start_minute)
                )
            ).all()
        out: dict[int, list[AvailabilityWindow]] = {i: [] for i in ids}
        for r in rows:
            out[r.responder_id].append(r)
        return [out[i] for i in ids]

    return _loader(info, "eldercare.windows", load)


def _clock(minute: int) -> str:
    return f"{minute // 60:02d}:{minute % 60:02d}"


# -- elders ---------------------------------------------------------------------------------------------


@strawberry.type(description="An emergency contact; the phone is masked.")
class EmergencyContact:
    name: str = strawberry.field(description="The contact's name.")
    relation: str = strawberry.field(description="How they are related, e.g. 女儿.")
    phone_masked: str = strawberry.field(description="Their phone, masked (138****1234).")


@strawberry.type(
    description="One GB/T 42195-2022 ability assessment: the scores' total and the levels (no item scores)."
)
class Assessment:
    assessed_on: dt.date = strawberry.field(description="The day of the assessment.")
    reason: str = strawberry.field(description="initial, scheduled or change.")
    total_score: int = strawberry.field(description="Total of the 26 item scores, 0 to 90 (90 is intact).")
    preliminary_level: int = strawberry.field(description="The level from the total alone, 0 to 4.")
    final_level: int = strawberry.field(description="The level after the change rules (coma, diagnoses, risk events).")
    level_name: str = strawberry.field(description="The final level's name, e.g. 能力轻度受损.")
    next_due_on: dt.date = strawberry.field(description="When the next scheduled reassessment is due.")

    @classmethod
    def from_model(cls, m: models.AbilityAssessment) -> Self:
        return cls(
            assessed_on=m.assessed_on, reason=m.reason, total_score=m.total_score,
            preliminary_level=m.preliminary_level, final_level=m.final_level,
            level_name=abilities.LEVEL_NAMES[abilities.Level(m.final_level)], next_due_on=m.next_due_on,
        )  # fmt: skip


@strawberry.type(description="A volunteer ↔ elder pair (结对), current or past.")
class CarePair(relay.Node):
    db_id: relay.NodeID[int]
    role: str = strawberry.field(description="primary (the volunteer who looks after the elder) or backup.")
    started_at: dt.datetime = strawberry.field(description="When the pair began.")
    ended_at: dt.datetime | None = strawberry.field(description="When it ended; null while it lasts.")
    end_reason: str | None = strawberry.field(description="Why it ended.")
    reasons: list[str] = strawberry.field(description="Why this volunteer was chosen (same unit, skills, load…).")
    volunteer_id: strawberry.Private[int]
    elder_id: strawberry.Private[int]

    @classmethod
    def from_model(cls, m: models.CarePair) -> Self:
        return cls(
            db_id=m.id, role=m.role, started_at=m.started_at, ended_at=m.ended_at, end_reason=m.end_reason,
            reasons=[r["detail"] for r in m.reasons or []], volunteer_id=m.volunteer_id, elder_id=m.elder_id,
        )  # fmt: skip

    @classmethod
    async def resolve_nodes(cls, *, info: Info, node_ids: Iterable[str], required: bool = False) -> list[Any]:
        ids = [_int(i) for i in node_ids]
        async with info.context.db.read_session() as session:
            rows = (
                await session.scalars(
                    select(models.CarePair).where(
                        models.CarePair.id.in_(ids), models.CarePair.community_id.in_(managed(info))
                    )
                )
            ).all()
        by_id = {r.id: r for r in rows}
        return [cls.from_model(by_id[i]) if i in by_id else None for i in ids]

    @strawberry.field(description="The volunteer.")
    async def volunteer(self, info: Info) -> Volunteer | None:
        row = await volunteers_loader(info).load(self.volunteer_id)
        return Volunteer.from_model(row) if row else None


@strawberry.type(description="An elder the community looks after (a resident at or above the elder age).")
class Elder(relay.Node):
    db_id: relay.NodeID[int]
    living_situation: models.LivingSituation = strawberry.field(description="Who the elder lives with.")
    care_flags: list[str] = strawberry.field(description="Care flags that change the tier, e.g. fall_risk.")
    preferred_volunteer_gender: str | None = strawberry.field(description="male or female, if the elder prefers one.")
    emergency_contacts: list[EmergencyContact] = strawberry.field(description="Emergency contacts, phones masked.")
    level: int | None = strawberry.field(description="Ability level 0–4 from the latest assessment; null if none yet.")
    last_assessed_on: dt.date | None = strawberry.field(description="Day of the latest assessment.")
    reassessment_due_on: dt.date | None = strawberry.field(
        description="When a reassessment is due (6 months on, or at once after a change)."
    )
    active: bool = strawberry.field(description="Whether the community still looks after them.")
    row: strawberry.Private[models.ElderProfile]

    @classmethod
    def from_model(cls, m: models.ElderProfile) -> Self:
        return cls(
            db_id=m.id, living_situation=models.LivingSituation(m.living_situation), care_flags=list(m.care_flags),
            preferred_volunteer_gender=m.preferred_volunteer_gender,
            emergency_contacts=[
                EmergencyContact(name=c["name"], relation=c["relation"], phone_masked=c["phone"])
                for c in m.emergency_contacts_masked or []
            ],
            level=m.current_level, last_assessed_on=m.last_assessed_on, reassessment_due_on=m.reassessment_due_on,
            active=m.active, row=m,
        )  # fmt: skip

    @classmethod
    async def resolve_nodes(cls, *, info: Info, node_ids: Iterable[str], required: bool = False) -> list[Any]:
        ids = [_int(i) for i in node_ids]
        async with info.context.db.read_session() as session:
            rows = (
                await session.scalars(
                    select(models.ElderProfile).where(
                        models.ElderProfile.id.in_(ids), models.ElderProfile.community_id.in_(managed(info))
                    )
                )
            ).all()
        by_id = {r.id: r for r in rows}
        return [cls.from_model(by_id[i]) if i in by_id else None for i in ids]

    @strawberry.field(description="The elder's name.")
    async def name(self, info: Info) -> str:
        return (await _homes_loader(info).load(self.row.resident_id))[0]

    @strawberry.field(description="Where they live: building, unit and room.")
    async def address(self, info: Info) -> str:
        return (await _homes_loader(info).load(self.row.resident_id))[1]

    @strawberry.field(description="Age in whole years today.")
    async def age(self, info: Info) -> int:
        person = await _people_loader(info).load(self.row.resident_id)
        return age_on(person.birth_date, info.context.today) if person else 0

    @strawberry.field(description="The resident record's global id (type Resident).")
    def resident_id(self) -> relay.GlobalID:
        return relay.GlobalID("Resident", str(self.row.resident_id))

    @strawberry.field(description="The level's name, e.g. 能力完好; null before the first assessment.")
    def level_name(self) -> str | None:
        return abilities.LEVEL_NAMES[abilities.Level(self.level)] if self.level is not None else None

    @strawberry.field(description="True when the reassessment is overdue.")
    def reassessment_overdue(self, info: Info) -> bool:
        due = self.reassessment_due_on
        return due is not None and due < info.context.today

    @strawberry.field(description="The care tier the latest planning put the elder in.")
    async def tier(self, info: Info) -> str | None:
        if self.row.current_tier_rule_id is None:
            return None
        rule = await _tier_rules_loader(info).load(self.row.current_tier_rule_id)
        return rule.name if rule else None

    @strawberry.field(description="Whether the latest health-data consent decision is a yes (health data needs it).")
    async def has_health_consent(self, info: Info) -> bool:
        return await _consent_loader(info).load(self.row.resident_id)

    @strawberry.field(description="Every assessment, newest first (levels and totals; item scores are health data).")
    async def assessments(self, info: Info) -> list[Assessment]:
        return [Assessment.from_model(a) for a in await _assessments_loader(info).load(self.db_id)]

    @strawberry.field(description="Every pair with a volunteer, newest first (the continuity history).")
    async def pairs(self, info: Info) -> list[CarePair]:
        return [CarePair.from_model(p) for p in await _pairs_loader(info).load(self.db_id)]

    @strawberry.field(description="The current primary pair, if any.")
    async def current_pair(self, info: Info) -> CarePair | None:
        for p in await _pairs_loader(info).load(self.db_id):
            if p.ended_at is None and p.role == "primary":
                return CarePair.from_model(p)
        return None


@strawberry.type(description="One item score of an assessment (health data).")
class ItemScore:
    code: str = strawberry.field(description="The item code, e.g. eating.")
    name: str = strawberry.field(description="The item's name, e.g. 进食.")
    area: str = strawberry.field(description="self_care, motor, mental or perception_social.")
    score: int = strawberry.field(description="The score given.")
    max_score: int = strawberry.field(description="The item's highest score.")


@strawberry.type(description="An assessment with its health data: item scores, diagnoses, risk events.")
class AssessmentDetail:
    assessment: Assessment = strawberry.field(description="The assessment.")
    items: list[ItemScore] = strawberry.field(description="The 26 item scores.")
    diagnosed_dementia: bool = strawberry.field(description="Diagnosed dementia (raises the level by one).")
    diagnosed_mental_disorder: bool = strawberry.field(description="Another diagnosed mental or behavioural disorder.")
    risk_events: list[str] = strawberry.field(description="Care-risk events given, as kind@date.")
    raised_by: list[str] = strawberry.field(
        description="Rules that raised the level: coma, dementia, mental_disorder, risk_events."
    )

    @classmethod
    def from_details(cls, d: people_service.AssessmentDetails) -> Self:
        return cls(
            assessment=Assessment.from_model(d.assessment),
            items=[
                ItemScore(code=i.code, name=i.name, area=i.area.value, score=d.scores.get(i.code, 0),
                          max_score=i.max_score)
                for i in abilities.ITEMS
            ],
            diagnosed_dementia=d.diagnosed_dementia, diagnosed_mental_disorder=d.diagnosed_mental_disorder,
            risk_events=[f"{e['kind']}@{e['occurred_on']}" for e in d.risk_events], raised_by=list(d.raised_by),
        )  # fmt: skip


@strawberry.type(description="An elder's health data; reading it was written to the access log.")
class ElderHealth:
    elder: Elder = strawberry.field(description="The elder.")
    conditions: list[str] = strawberry.field(description="Conditions that change care.")
    assessments: list[AssessmentDetail] = strawberry.field(description="Assessments with item scores, newest first.")


# -- tiers ----------------------------------------------------------------------------------------------


@strawberry.type(description="A row of the care-tier table; the first matching row decides an elder's visits.")
class CareTierRow:
    name: str = strawberry.field(description="Tier name, e.g. 重点关护.")
    min_level: int = strawberry.field(description="Lowest ability level the row matches (0–4).")
    max_level: int = strawberry.field(description="Highest ability level the row matches (0–4).")
    lives_alone: bool | None = strawberry.field(
        description="Matches only elders living alone (true), not (false), or either (null)."
    )
    required_flags: list[str] = strawberry.field(description="Flags (tags or care flags) the elder must all have.")
    visits_per_month: int = strawberry.field(description="Visits planned per month.")
    visit_types: list[str] = strawberry.field(description="Visit types, used in turn.")

    @classmethod
    def from_row(cls, r: rules.TierRow) -> Self:
        return cls(
            name=r.name, min_level=r.min_level, max_level=r.max_level, lives_alone=r.lives_alone,
            required_flags=list(r.required_flags), visits_per_month=r.visits_per_month, visit_types=list(r.visit_types),
        )  # fmt: skip


@strawberry.type(description="A version of a community's care-tier table (分层管理).")
class CareTierTable:
    version: int = strawberry.field(description="Version number; 0 means the defaults, not yet saved.")
    note: str = strawberry.field(description="What changed.")
    created_at: dt.datetime | None = strawberry.field(description="When this version was saved.")
    rows: list[CareTierRow] = strawberry.field(description="The rows, in matching order.")

    @classmethod
    def from_models(cls, version: models.CareTierVersion | None, rows: list[models.CareTierRule]) -> Self:
        if version is None:
            return cls(version=0, note="默认分层", created_at=None,
                       rows=[CareTierRow.from_row(r) for r in rules.DEFAULT_TIERS])  # fmt: skip
        return cls(
            version=version.version, note=version.note, created_at=version.created_at,
            rows=[CareTierRow.from_row(r) for r in people_service.to_rows(rows)],
        )  # fmt: skip


# -- volunteers -----------------------------------------------------------------------------------------


@strawberry.type(description="A weekly availability window (China time).")
class AvailabilityWindowType:
    weekday: int = strawberry.field(description="0 Monday … 6 Sunday.")
    starts: str = strawberry.field(description="HH:MM.")
    ends: str = strawberry.field(description="HH:MM.")


@strawberry.type(description="A volunteer team, e.g. 爱心敲门.")
class VolunteerTeam(relay.Node):
    db_id: relay.NodeID[int]
    name: str = strawberry.field(description="The team's name.")

    @classmethod
    async def resolve_nodes(cls, *, info: Info, node_ids: Iterable[str], required: bool = False) -> list[Any]:
        ids = [_int(i) for i in node_ids]
        async with info.context.db.read_session() as session:
            rows = (
                await session.scalars(
                    select(models.VolunteerTeam).where(
                        models.VolunteerTeam.id.in_(ids),
                        models.VolunteerTeam.community_id.in_(info.context.viewer.community_ids),
                    )
                )
            ).all()
        by_id = {r.id: r for r in rows}
        return [cls(db_id=i, name=by_id[i].name) if i in by_id else None for i in ids]


@strawberry.type(description="A volunteer of the elder-care team: skills, availability, load and hours.")
class Volunteer(relay.Node):
    db_id: relay.NodeID[int]
    max_elders: int = strawberry.field(description="Most elders they look after at once.")
    active: bool = strawberry.field(description="Whether they take work.")
    row: strawberry.Private[models.Volunteer]

    @classmethod
    def from_model(cls, m: models.Volunteer) -> Self:
        return cls(db_id=m.id, max_elders=m.max_elders, active=m.active, row=m)

    @classmethod
    async def resolve_nodes(cls, *, info: Info, node_ids: Iterable[str], required: bool = False) -> list[Any]:
        rows = await volunteers_loader(info).load_many([_int(i) for i in node_ids])
        return [cls.from_model(r) if r else None for r in rows]

    @strawberry.field(description="The volunteer's name.")
    async def name(self, info: Info) -> str:
        return (await _homes_loader(info).load(self.row.resident_id))[0]

    @strawberry.field(description="Age in whole years today.")
    async def age(self, info: Info) -> int:
        person = await _people_loader(info).load(self.row.resident_id)
        return age_on(person.birth_date, info.context.today) if person else 0

    @strawberry.field(
        description="True when their age is in the community's 低龄 range (younger elders helping older ones)."
    )
    async def younger_elder(self, info: Info) -> bool:
        person = await _people_loader(info).load(self.row.resident_id)
        if person is None:
            return False
        async with info.context.db.read_session() as session:
            from api.eldercare.common import policy_of

            policy = await policy_of(session, self.row.community_id)
        age = age_on(person.birth_date, info.context.today)
        return policy.younger_elder_min_age <= age <= policy.younger_elder_max_age

    @strawberry.field(description="Skills: haircut, electrical, escort, companionship.")
    async def skills(self, info: Info) -> list[str]:
        responder = await _responders_loader(info).load(self.row.responder_id)
        return list(responder.skills or []) if responder else []

    @strawberry.field(description="Weekly availability; none means any time.")
    async def availability(self, info: Info) -> list[AvailabilityWindowType]:
        return [
            AvailabilityWindowType(weekday=w.weekday, starts=_clock(w.start_minute), ends=_clock(w.end_minute))
            for w in await _windows_loader(info).load(self.row.responder_id)
        ]

    @strawberry.field(description="Elders they look after now (active pairs).")
    async def elders(self, info: Info) -> int:
        return (await _volunteer_facts_loader(info).load(self.db_id))[0]

    @strawberry.field(description="Time-bank balance in minutes.")
    async def balance_minutes(self, info: Info) -> int:
        return (await _volunteer_facts_loader(info).load(self.db_id))[1]

    @strawberry.field(description="Teams they belong to.")
    async def teams(self, info: Info) -> list[str]:
        return (await _volunteer_facts_loader(info).load(self.db_id))[2]


# -- visits ---------------------------------------------------------------------------------------------


@strawberry.type(description="A checklist item of a visit and its answer.")
class ChecklistItem:
    code: str = strawberry.field(description="Item code, e.g. gas.")
    label: str = strawberry.field(description="What to check.")
    answer: str | None = strawberry.field(description="ok, problem or not_applicable; null until checked out.")


@strawberry.type(description="Something found on a visit.")
class VisitFinding:
    item_code: str = strawberry.field(description="The checklist item (or other).")
    hazard_kind: str = strawberry.field(description="gas, electrical, water, fire, door, medicine or other.")
    severity: models.FindingSeverity = strawberry.field(description="info, concern or hazard.")
    note: str = strawberry.field(description="What was found.")
    ticket_id: relay.GlobalID | None = strawberry.field(description="The repair ticket opened for it (type Ticket).")
    staff_alerted: bool = strawberry.field(description="Staff were alerted instead (no ticket category fits).")

    @classmethod
    def from_model(cls, m: models.VisitFinding) -> Self:
        return cls(
            item_code=m.item_code, hazard_kind=m.hazard_kind, severity=models.FindingSeverity(m.severity), note=m.note,
            ticket_id=relay.GlobalID("Ticket", str(m.ticket_id)) if m.ticket_id else None,
            staff_alerted=m.staff_alerted_at is not None,
        )  # fmt: skip


@strawberry.type(description="A home visit: planned, asked for or part of a campaign, dispatched to a volunteer.")
class Visit(relay.Node):
    db_id: relay.NodeID[int]
    visit_type: models.VisitType = strawberry.field(description="What the visit is for.")
    source: str = strawberry.field(description="plan, request or campaign.")
    state: models.VisitState = strawberry.field(description="Where the visit stands.")
    starts_at: dt.datetime = strawberry.field(description="Planned start.")
    ends_at: dt.datetime = strawberry.field(description="Planned end.")
    plan_period: str | None = strawberry.field(description="The month it was planned for (YYYY-MM).")
    checked_in_at: dt.datetime | None = strawberry.field(description="When the volunteer arrived.")
    checked_out_at: dt.datetime | None = strawberry.field(description="When the volunteer left.")
    note: str = strawberry.field(description="Note from whoever asked for it.")
    report: str = strawberry.field(description="The volunteer's report.")
    escalated_at: dt.datetime | None = strawberry.field(description="When staff were alerted (missed or overdue).")
    cancel_reason: str | None = strawberry.field(description="Why it was cancelled.")
    row: strawberry.Private[models.Visit]

    @classmethod
    def from_model(cls, m: models.Visit) -> Self:
        return cls(
            db_id=m.id, visit_type=models.VisitType(m.visit_type), source=m.source, state=models.VisitState(m.state),
            starts_at=m.starts_at, ends_at=m.ends_at, plan_period=m.plan_period, checked_in_at=m.checked_in_at,
            checked_out_at=m.checked_out_at, note=m.note, report=m.report, escalated_at=m.escalated_at,
            cancel_reason=m.cancel_reason, row=m,
        )  # fmt: skip

    @classmethod
    async def resolve_nodes(cls, *, info: Info, node_ids: Iterable[str], required: bool = False) -> list[Any]:
        ids = [_int(i) for i in node_ids]
        async with info.context.db.read_session() as session:
            rows = (
                await session.scalars(
                    visits_service.visible_visits(info.context.viewer).where(models.Visit.id.in_(ids))
                )
            ).all()
        by_id = {r.id: r for r in rows}
        return [cls.from_model(by_id[i]) if i in by_id else None for i in ids]

    @strawberry.field(description="Who is visited.")
    async def elder_name(self, info: Info) -> str:
        return (await _homes_loader(info).load(self.row.resident_id))[0]

    @strawberry.field(description="Where: building, unit and room.")
    async def address(self, info: Info) -> str:
        return (await _homes_loader(info).load(self.row.resident_id))[1]

    @strawberry.field(description="The booked volunteer, if any.")
    async def volunteer(self, info: Info) -> Volunteer | None:
        if self.row.volunteer_id is None:
            return None
        row = await volunteers_loader(info).load(self.row.volunteer_id)
        return Volunteer.from_model(row) if row else None

    @strawberry.field(description="The tier (and table version) a planned visit came from.")
    async def tier(self, info: Info) -> str | None:
        if self.row.tier_rule_id is None:
            return None
        rule = await _tier_rules_loader(info).load(self.row.tier_rule_id)
        return rule.name if rule else None

    @strawberry.field(description="The checklist of this visit's type, with answers once checked out.")
    def checklist(self) -> list[ChecklistItem]:
        answers = self.row.checklist or {}
        return [
            ChecklistItem(code=code, label=label, answer=answers.get(code))
            for code, label in rules.CHECKLISTS.get(self.row.visit_type, ())
        ]

    @strawberry.field(description="Findings recorded at check-out.")
    async def findings(self, info: Info) -> list[VisitFinding]:
        return [VisitFinding.from_model(f) for f in await _findings_loader(info).load(self.db_id)]


# -- campaigns, time bank, oversight --------------------------------------------------------------------


@strawberry.type(description="A holiday campaign (节日慰问): a delivery to each targeted household.")
class HolidayCampaign(relay.Node):
    db_id: relay.NodeID[int]
    name: str = strawberry.field(description="e.g. 元宵节送汤圆.")
    tags: list[str] = strawberry.field(description="Residents with any of these tags are targeted.")
    min_age: int | None = strawberry.field(description="Only residents at least this old, if set.")
    starts_at: dt.datetime = strawberry.field(description="Deliveries from.")
    ends_at: dt.datetime = strawberry.field(description="Deliveries until.")
    note: str = strawberry.field(description="What is delivered.")
    generated_at: dt.datetime | None = strawberry.field(description="When the deliveries were made; null until then.")

    @classmethod
    def from_model(cls, m: models.HolidayCampaign) -> Self:
        return cls(
            db_id=m.id, name=m.name, tags=list(m.tags), min_age=m.min_age, starts_at=m.starts_at, ends_at=m.ends_at,
            note=m.note, generated_at=m.generated_at,
        )  # fmt: skip

    @classmethod
    async def resolve_nodes(cls, *, info: Info, node_ids: Iterable[str], required: bool = False) -> list[Any]:
        ids = [_int(i) for i in node_ids]
        async with info.context.db.read_session() as session:
            rows = (
                await session.scalars(
                    select(models.HolidayCampaign).where(
                        models.HolidayCampaign.id.in_(ids), models.HolidayCampaign.community_id.in_(managed(info))
                    )
                )
            ).all()
        by_id = {r.id: r for r in rows}
        return [cls.from_model(by_id[i]) if i in by_id else None for i in ids]

    @strawberry.field(description="Households targeted (one delivery each).")
    async def households(self, info: Info) -> int:
        return (await self._counts(info))[0]

    @strawberry.field(description="Households whose delivery is done.")
    async def delivered(self, info: Info) -> int:
        return (await self._counts(info))[1]

    async def _counts(self, info: Info) -> tuple[int, int]:
        async def load(ids: list[int]) -> list[tuple[int, int]]:
            async with info.context.db.read_session() as session:
                rows = await session.execute(
                    select(
                        models.Visit.campaign_id,
                        func.count(),
                        func.sum(case((models.Visit.state == models.VisitState.DONE.value, 1), else_=0)),
                    )
                    .where(models.Visit.campaign_id.in_(ids))
                    .group_by(models.Visit.campaign_id)
                )
                found = {int(c): (int(n), int(d or 0)) for c, n, d in rows.all()}
            return [found.get(i, (0, 0)) for i in ids]

        result: tuple[int, int] = await _loader(info, "eldercare.campaign_counts", load).load(self.db_id)
        return result


@strawberry.type(description="One entry of a volunteer's time-bank statement.")
class TimeBankEntry:
    at: dt.datetime = strawberry.field(description="When.")
    kind: str = strawberry.field(description="credit (a completed visit) or redeem (care received).")
    minutes: int = strawberry.field(description="Minutes in (positive) or out (negative).")
    balance_after: int = strawberry.field(description="The balance after this entry, in minutes.")
    note: str = strawberry.field(description="The visit type or the note given.")
    visit_id: relay.GlobalID | None = strawberry.field(description="The visit credited (type Visit).")


@strawberry.type(description="A volunteer's time-bank statement (时间银行).")
class TimeBankStatement:
    volunteer: Volunteer = strawberry.field(description="The volunteer.")
    balance_minutes: int = strawberry.field(description="Minutes held now.")
    entries: list[TimeBankEntry] = strawberry.field(description="The latest entries (at most 200), newest first.")


@strawberry.type(description="Elder care in a building, a unit or the whole community, for one month.")
class ElderCareCounts:
    compound_name: str | None = strawberry.field(description="Compound, for building and unit rows.")
    building_name: str | None = strawberry.field(description="Building, for building and unit rows.")
    unit: int | None = strawberry.field(description="Unit number, for unit rows.")
    elders: int = strawberry.field(description="Elders looked after.")
    by_level: list[int] = strawberry.field(description="Elders at ability levels 0, 1, 2, 3 and 4.")
    unassessed: int = strawberry.field(description="Elders without an assessment yet.")
    reassessment_overdue: int = strawberry.field(description="Elders whose reassessment is overdue.")
    by_tier: list[str] = strawberry.field(description="Elders per tier, as name=count.")
    elders_due: int = strawberry.field(description="Elders with at least one visit due by now this month.")
    elders_visited_on_time: int = strawberry.field(description="… whose due visits were all checked in on time.")
    coverage: float = strawberry.field(description="Share of elders visited on time, 0 to 1 (1 when none were due).")
    visits_due: int = strawberry.field(description="Visits due by now this month.")
    visits_done_on_time: int = strawberry.field(description="Visits checked in by their end plus the grace period.")
    visits_overdue: int = strawberry.field(description="Visits past due and not done (missed included).")

    @classmethod
    def from_row(cls, r: oversight_service.CareRow) -> Self:
        return cls(
            compound_name=r.compound_name, building_name=r.building_name, unit=r.unit, elders=r.elders,
            by_level=r.by_level, unassessed=r.unassessed, reassessment_overdue=r.reassessment_overdue,
            by_tier=[f"{k}={v}" for k, v in r.by_tier.items()], elders_due=r.elders_due,
            elders_visited_on_time=r.elders_visited_on_time, coverage=round(r.coverage, 4), visits_due=r.visits_due,
            visits_done_on_time=r.visits_done_on_time, visits_overdue=r.visits_overdue,
        )  # fmt: skip


@strawberry.type(description="One volunteer's load this month.")
class VolunteerLoad:
    volunteer_id: relay.GlobalID = strawberry.field(description="The volunteer (type Volunteer).")
    name: str = strawberry.field(description="The volunteer's name.")
    max_elders: int = strawberry.field(description="Most elders they look after.")
    elders: int = strawberry.field(description="Elders they look after now.")
    visits_booked: int = strawberry.field(description="Visits booked to them this month (done included).")
    visits_done: int = strawberry.field(description="Visits done this month.")
    balance_minutes: int = strawberry.field(description="Time-bank balance in minutes.")


@strawberry.type(
    description="Elder-care oversight of a community: the ageing survey, care per building and unit, volunteer load."
)
class ElderCareOversight:
    period: str = strawberry.field(description="The month, YYYY-MM.")
    survey: AgeingSurvey = strawberry.field(description="The registry's ageing survey (老龄化调查).")
    total: ElderCareCounts = strawberry.field(description="The whole community.")
    buildings: list[ElderCareCounts] = strawberry.field(description="One row per building with elders.")
    units: list[ElderCareCounts] = strawberry.field(description="One row per unit with elders.")
    volunteers: list[VolunteerLoad] = strawberry.field(description="Each active volunteer's load.")

    @classmethod
    def from_oversight(cls, o: oversight_service.Oversight) -> Self:
        return cls(
            period=o.period, survey=AgeingSurvey.from_survey(o.survey), total=ElderCareCounts.from_row(o.total),
            buildings=[ElderCareCounts.from_row(r) for r in o.buildings],
            units=[ElderCareCounts.from_row(r) for r in o.units],
            volunteers=[
                VolunteerLoad(
                    volunteer_id=relay.GlobalID("Volunteer", str(v.volunteer_id)), name=v.name,
                    max_elders=v.max_elders, elders=v.elders, visits_booked=v.visits_booked,
                    visits_done=v.visits_done, balance_minutes=v.balance_minutes,
                )
                for v in o.volunteers
            ],
        )  # fmt: skip


@strawberry.type(description="The community's 低龄 rule: volunteers in this age range count as younger elders.")
class YoungerElderRule:
    min_age: int = strawberry.field(description="Youngest age that counts as 低龄.")
    max_age: int = strawberry.field(description="Oldest age that counts as 低龄.")


NODE_TYPES: list[Any] = [Elder, Volunteer, Visit, CarePair, HolidayCampaign, VolunteerTeam]
