"""Oversight in SQL: the registry's ageing survey extended with elder care per building and unit.

Per building and unit: elders by ability level and tier, visit coverage this period, overdue
visits; and each volunteer's load.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy import Integer, Interval, and_, case, func, literal, select
from sqlalchemy.ext.asyncio import AsyncSession

from api.core.clock import CHINA_TZ
from api.core.viewer import Permission, Viewer
from api.eldercare import rules
from api.eldercare.common import DEFAULT_SETTINGS, ElderCareSettings
from api.eldercare.models import (
    CarePair,
    CareTierRule,
    ElderProfile,
    TimeAccount,
    Visit,
    VisitState,
    Volunteer,
)
from api.registry import survey as registry_survey
from api.registry.models import Building, Compound, Household, Resident


@dataclass(frozen=True, slots=True)
class CareRow:
    compound_name: str | None
    building_id: int | None
    building_name: str | None
    unit: int | None
    elders: int
    by_level: list[int]  # elders at levels 0..4
    unassessed: int
    reassessment_overdue: int
    elders_due: int  # elders with at least one visit due by now this period
    elders_visited_on_time: int  # … all of whose due visits were checked in by the end plus the grace period
    visits_due: int
    visits_done_on_time: int
    visits_overdue: int  # past due and not done (missed included)
    by_tier: dict[str, int] = field(default_factory=dict)

    @property
    def coverage(self) -> float:
        return self.elders_visited_on_time / self.elders_due if self.elders_due else 1.0


@dataclass(frozen=True, slots=True)
class VolunteerLoad:
    volunteer_id: int
    name: str
    max_elders: int
    elders: int
    visits_booked: int
    visits_done: int
    balance_minutes: int


@dataclass(frozen=True, slots=True)
class Oversight:
    period: str
    survey: registry_survey.AgeingSurvey
    total: CareRow
    buildings: list[CareRow]
    units: list[CareRow]
    volunteers: list[VolunteerLoad]


def period_bounds(period: str) -> tuple[datetime, datetime]:
    first, after = rules.parse_period(period)
    return (
        datetime.combine(first, time(0, 0), CHINA_TZ).astimezone(UTC),
        datetime.combine(after, time(0, 0), CHINA_TZ).astimezone(UTC),
    )


async def oversight(
    session: AsyncSession,
    *,
    viewer: Viewer,
    community_id: int,
    period: str,
    now: datetime,
    today: date,
    settings: ElderCareSettings = DEFAULT_SETTINGS,
) -> Oversight:
    """The community's elder-care picture for a month. Raises Forbidden, ValueError (bad period)."""
    viewer.require(Permission.VIEW_SURVEY, community_id)
    start, end = period_bounds(period)
    grace = timedelta(hours=settings.grace_hours)
    survey = await registry_survey.ageing_survey(session, community_id=community_id, today=today)

    def total(cond: Any) -> Any:
        return func.coalesce(func.sum(case((cond, 1), else_=0)), 0).cast(Integer)

    if session.get_bind().dialect.name == "postgresql":
        deadline: Any = Visit.ends_at + literal(grace, Interval())
    else:  # SQLite stores UTC as text; datetime() adds the hours
        deadline = func.datetime(Visit.ends_at, f"+{settings.grace_hours} hours")
    on_time = and_(Visit.checked_in_at.is_not(None), Visit.checked_in_at <= deadline)
    per_elder = (
        select(
            Visit.resident_id.label("resident_id"),
            func.count().label("due"),
            total(on_time).label("on_time"),
            total(Visit.state.not_in((VisitState.DONE.value, VisitState.CHECKED_IN.value))).label("overdue"),
        )
        .where(
            Visit.community_id == community_id,
            Visit.starts_at >= start,
            Visit.starts_at < end,
            Visit.ends_at <= now,
            Visit.state != VisitState.CANCELLED.value,
        )
        .group_by(Visit.resident_id)
        .subquery("per_elder")
    )
    due = func.coalesce(per_elder.c.due, 0)
    measures = [
        func.count(ElderProfile.id).label("elders"),
        *(total(ElderProfile.current_level == level).label(f"level_{level}") for level in range(5)),
        total(ElderProfile.current_level.is_(None)).label("unassessed"),
        total(ElderProfile.reassessment_due_on < today).label("reassessment_overdue"),
        total(due > 0).label("elders_due"),
        total(and_(due > 0, per_elder.c.on_time == due)).label("elders_on_time"),
        func.coalesce(func.sum(per_elder.c.due), 0).cast(Integer).label("visits_due"),
        func.coalesce(func.sum(per_elder.c.on_time), 0).cast(Integer).label("visits_on_time"),
        func.coalesce(func.sum(per_elder.c.overdue), 0).cast(Integer).label("visits_overdue"),
    ]
    base = (
        select()
        .select_from(ElderProfile)
        .join(Resident, Resident.id == ElderProfile.resident_id)
        .join(Household, Household.id == Resident.household_id)
        .join(Building, Building.id == Household.building_id)
        .join(Compound, Compound.id == Building.compound_id)
        .outerjoin(per_elder, per_elder.c.resident_id == ElderProfile.resident_id)
        .where(ElderProfile.community_id == community_id, ElderProfile.active.is_(True))
    )
    building_keys = (
        Compound.name.label("compound_name"),
        Building.id.label("building_id"),
        Building.name.label("building_name"),
    )
    unit_key = Household.unit.label("unit")
    tier_name = func.coalesce(CareTierRule.name, "").label("tier")
    tier_base = (
        select(Building.id.label("building_id"), unit_key, tier_name, func.count(ElderProfile.id))
        .select_from(ElderProfile)
        .join(Resident, Resident.id == ElderProfile.resident_id)
        .join(Household, Household.id == Resident.household_id)
        .join(Building, Building.id == Household.building_id)
        .outerjoin(CareTierRule, CareTierRule.id == ElderProfile.current_tier_rule_id)
        .where(ElderProfile.community_id == community_id, ElderProfile.active.is_(True))
        .group_by(Building.id, Household.unit, tier_name)
    )
    tiers: dict[tuple[int, int], dict[str, int]] = {}
    for building_id, unit, tier, n in (await session.execute(tier_base)).all():
        tiers.setdefault((int(building_id), int(unit)), {})[str(tier) or "未分层"] = int(n)

    def tiers_for(building_id: int | None, unit: int | None) -> dict[str, int]:
        out: dict[str, int] = {}
        for (b, u), counts in tiers.items():
            if (building_id is None or b == building_id) and (unit is None or u == unit):
                for name, n in counts.items():
                    out[name] = out.get(name, 0) + n
        return dict(sorted(out.items()))

    async def rows(*keys: Any) -> list[CareRow]:
        stmt = base.add_columns(*keys, *measures)
        if keys:
            stmt = stmt.group_by(*keys).order_by(*keys)
        out = []
        for r in (await session.execute(stmt)).mappings().all():
            out.append(
                CareRow(
                    compound_name=r.get("compound_name"), building_id=r.get("building_id"),
                    building_name=r.get("building_name"), unit=r.get("unit"), elders=int(r["elders"]),
                    by_level=[int(r[f"level_{level}"]) for level in range(5)], unassessed=int(r["unassessed"]),
                    reassessment_overdue=int(r["reassessment_overdue"]), elders_due=int(r["elders_due"]),
                    elders_visited_on_time=int(r["elders_on_time"]), visits_due=int(r["visits_due"]),
                    visits_done_on_time=int(r["visits_on_time"]), visits_overdue=int(r["visits_overdue"]),
                    by_tier=tiers_for(r.get("building_id"), r.get("unit")),
                )
            )  # fmt: skip
        return out

    totals = await rows()
    buildings = await rows(*building_keys)
    units = await rows(*building_keys, unit_key)
    volunteers = await volunteer_load(session, community_id=community_id, start=start, end=end)
    return Oversight(period, survey, totals[0], buildings, units, volunteers)


async def volunteer_load(
    session: AsyncSession, *, community_id: int, start: datetime, end: datetime
) -> list[VolunteerLoad]:
    """Each volunteer's elders (active pairs), visits booked and done this period, and time-bank balance."""
    pairs = (
        select(CarePair.volunteer_id, func.count().label("n"))
        .where(CarePair.community_id == community_id, CarePair.ended_at.is_(None))
        .group_by(CarePair.volunteer_id)
        .subquery("pairs")
    )
    visits = (
        select(
            Visit.volunteer_id,
            func.count().label("booked"),
            func.coalesce(func.sum(case((Visit.state == VisitState.DONE.value, 1), else_=0)), 0).label("done"),
        )
        .where(
            Visit.community_id == community_id,
            Visit.volunteer_id.is_not(None),
            Visit.starts_at >= start,
            Visit.starts_at < end,
            Visit.state.in_((VisitState.ASSIGNED.value, VisitState.CHECKED_IN.value, VisitState.DONE.value)),
        )
        .group_by(Visit.volunteer_id)
        .subquery("visits")
    )
    stmt = (
        select(
            Volunteer.id, Resident.name, Volunteer.max_elders, func.coalesce(pairs.c.n, 0),
            func.coalesce(visits.c.booked, 0), func.coalesce(visits.c.done, 0),
            func.coalesce(TimeAccount.balance_minutes, 0),
        )
        .join(Resident, Resident.id == Volunteer.resident_id)
        .outerjoin(pairs, pairs.c.volunteer_id == Volunteer.id)
        .outerjoin(visits, visits.c.volunteer_id == Volunteer.id)
        .outerjoin(TimeAccount, TimeAccount.volunteer_id == Volunteer.id)
        .where(Volunteer.community_id == community_id, Volunteer.active.is_(True))
        .order_by(Volunteer.id)
    )  # fmt: skip
    return [
        VolunteerLoad(int(v), str(n), int(m), int(e), int(b), int(d), int(bal))
        for v, n, m, e, b, d, bal in (await session.execute(stmt)).all()
    ]
