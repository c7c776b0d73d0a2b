"""Visits: planning from the tier table, requests, campaigns, dispatch to volunteers, check-in and check-out.

Every visit goes through the shared dispatch engine (kind "visit"). The first offer is made here,
ranked by dispatch's matching with the paired volunteer first and judged at the visit's own time: a
volunteer on time off then, or already booked for an overlapping visit, is passed over for the next
ranked candidate (stand-in cover). Declined and expired offers move on through dispatch as for tickets.

Booking (a volunteer accepts, or staff assign one) is one conditional UPDATE that the exclusion
constraint ``ex_elder_visit_no_double_booking`` backs on PostgreSQL (see api/eldercare/models.py).
"""

from __future__ import annotations

import heapq
import uuid
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, exists, func, insert, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm.attributes import set_committed_value

from api.accounts import service as accounts_service
from api.core.clock import CHINA_TZ, utc_now
from api.core.database import UnitOfWork
from api.core.errors import NotFound, ValidationFailed
from api.core.viewer import Role, Viewer
from api.dispatch import jobs as dispatch_jobs
from api.dispatch import service as dispatch_service
from api.dispatch.matching import Candidate, Need, Reason, rank
from api.dispatch.models import (
    ACTIVE_STATES,
    Assignment,
    AssignmentState,
    AvailabilityWindow,
    DispatchMode,
    DispatchRequest,
    RequestState,
    Responder,
    TimeOff,
)
from api.eldercare import jobs, rules
from api.eldercare.common import (
    DEFAULT_SETTINGS,
    OVERLAP_CONSTRAINT,
    VISIT_KIND,
    AlreadyCheckedIn,
    ElderCareSettings,
    NotARelative,
    VisitNotCheckedIn,
    VisitNotOpen,
    VisitOfferNotOpen,
    VolunteerDoubleBooked,
    aware,
    clean_text,
    constraint_of,
    for_update,
    require_manage,
    resident_in,
    rowcount,
    sqlstate,
)
from api.eldercare.models import (
    BOOKED_VISIT_STATES,
    ElderProfile,
    FindingSeverity,
    HolidayCampaign,
    Visit,
    VisitFinding,
    VisitSource,
    VisitState,
    VisitType,
    Volunteer,
)
from api.eldercare.people import ensure_tier_table, primary_responders
from api.eldercare.timebank import credit_visit
from api.notifications import service as notifications
from api.notifications.models import Notification
from api.registry.models import Building, Household, Resident, ResidentTag, ResidentTagLink

MAX_FINDINGS = 20
MAX_NOTE = 500
MAX_REPORT = 4000
REQUESTABLE_TYPES = frozenset(
    {
        VisitType.HOSPITAL_ESCORT.value,
        VisitType.HAIRCUT.value,
        VisitType.COMPANIONSHIP.value,
        VisitType.ELECTRICAL_CHECK.value,
        VisitType.SAFETY_CHECK.value,
        VisitType.MEAL_DELIVERY.value,
    }
)
MAX_VISIT = timedelta(hours=12)
MAX_AHEAD = timedelta(days=120)
STAFF_ROLES = (Role.STAFF, Role.COMMUNITY_ADMIN)
SHORTLIST = 8  # candidates ranked per visit when planning in bulk


def local_text(value: datetime) -> str:
    return f"{value.astimezone(CHINA_TZ):%m-%d %H:%M}"


# -- dispatch -------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Place:
    building_id: int
    compound_id: int


async def _places(session: AsyncSession, household_ids: Sequence[int]) -> dict[int, _Place]:
    if not household_ids:
        return {}
    rows = await session.execute(
        select(Household.id, Household.building_id, Building.compound_id)
        .join(Building, Building.id == Household.building_id)
        .where(Household.id.in_(list(set(household_ids))))
    )
    return {int(h): _Place(int(b), int(c)) for h, b, c in rows.all()}


@dataclass(frozen=True, slots=True)
class _Responder:
    id: int
    skills: frozenset[str]
    max_open: int
    building_id: int | None
    compound_id: int | None


@dataclass
class _Pool:
    """A community's responders as dispatch sees them, loaded once for a batch of visits.

    Availability and time off are judged at each visit's own time; loads grow as offers are made,
    so one batch never offers a responder more than their limit.
    """

    plain: list[_Responder]
    by_id: dict[int, _Responder]
    in_building: dict[int, list[_Responder]]
    in_compound: dict[int, list[_Responder]]
    accounts: dict[int, int]  # responder → account
    windows: dict[int, list[tuple[int, int, int]]]
    time_off: dict[int, list[tuple[datetime, datetime]]]
    booked: dict[int, list[tuple[datetime, datetime]]]
    loads: dict[int, int]

    @classmethod
    async def load(cls, session: AsyncSession, community_id: int, since: datetime) -> _Pool:
        responders = list(
            (
                await session.scalars(
                    select(Responder).where(Responder.community_id == community_id, Responder.active.is_(True))
                )
            ).all()
        )
        ids = [r.id for r in responders] or [-1]
        windows: dict[int, list[tuple[int, int, int]]] = defaultdict(list)
        for w in (
            await session.scalars(select(AvailabilityWindow).where(AvailabilityWindow.responder_id.in_(ids)))
        ).all():
            windows[w.responder_id].append((w.weekday, w.start_minute, w.end_minute))
        time_off: dict[int, list[tuple[datetime, datetime]]] = defaultdict(list)
        for t in (
            await session.scalars(select(TimeOff).where(TimeOff.responder_id.in_(ids), TimeOff.ends_at > since))
        ).all():
            time_off[t.responder_id].append((t.starts_at, t.ends_at))
        booked: dict[int, list[tuple[datetime, datetime]]] = defaultdict(list)
        for rid, start, end in (
            await session.execute(
                select(Visit.responder_id, Visit.starts_at, Visit.ends_at).where(
                    Visit.community_id == community_id,
                    Visit.responder_id.is_not(None),
                    Visit.state.in_(BOOKED_VISIT_STATES),
                    Visit.ends_at > since,
                )
            )
        ).all():
            booked[int(rid or 0)].append((start, end))
        loads = dict.fromkeys((r.id for r in responders), 0)
        for rid, n in (
            await session.execute(
                select(Assignment.responder_id, func.count())
                .where(Assignment.responder_id.in_(ids), Assignment.state.in_(ACTIVE_STATES))
                .group_by(Assignment.responder_id)
            )
        ).all():
            loads[int(rid)] = int(n)
        plain = [
            _Responder(r.id, frozenset(r.skills or ()), r.max_open, r.home_building_id, r.home_compound_id)
            for r in responders
        ]
        in_building: dict[int, list[_Responder]] = defaultdict(list)
        in_compound: dict[int, list[_Responder]] = defaultdict(list)
        for p in plain:
            if p.building_id is not None:
                in_building[p.building_id].append(p)
            if p.compound_id is not None:
                in_compound[p.compound_id].append(p)
        accounts = {r.id: r.account_id for r in responders}
        return cls(
            plain, {p.id: p for p in plain}, dict(in_building), dict(in_compound), accounts, dict(windows),
            dict(time_off), dict(booked), loads,
        )  # fmt: skip

    def shortlist(
        self, need: Need, start: datetime, end: datetime, size: int = SHORTLIST
    ) -> tuple[list[Candidate], frozenset[int]]:
        """The candidates worth ranking for a visit, judged at its time, and who is booked then.

        Ranking every responder of a large community for every visit costs more than the rest of
        planning. Dispatch ranks by the preferred responder, then availability, then place (same
        building, compound, community), then load; so the eligible are looked at place by place and
        the search stops at the first place that has someone available, since nobody further away
        can rank above them. The best few go to `rank`, which decides and explains the choice.
        """
        local = start.astimezone(CHINA_TZ)
        minute, weekday = local.hour * 60 + local.minute, local.weekday()
        busy: set[int] = set()
        seen: set[int] = set()
        keyed: list[tuple[tuple[int, int, int, int, int], _Responder]] = []

        def consider(group: Iterable[_Responder], place: int) -> bool:
            """Key the eligible of a group; True when one of them is available."""
            found = False
            for r in group:
                rid = r.id
                if rid in seen or (need.skill is not None and need.skill not in r.skills):
                    continue
                seen.add(rid)
                if rid in self.booked and any(s < end and e > start for s, e in self.booked[rid]):
                    busy.add(rid)
                    continue
                load = self.loads.get(rid, 0)
                if load >= r.max_open:
                    continue
                if rid in self.time_off and any(s < end and e > start for s, e in self.time_off[rid]):
                    continue
                spans = self.windows.get(rid)
                available = not spans or any(d == weekday and a <= minute < b for d, a, b in spans)
                found = found or available
                preferred = int(rid == need.preferred_responder_id)
                keyed.append(((preferred, int(available), place, -(load * 1000 // max(r.max_open, 1)), -rid), r))
            return found

        preferred = self.by_id.get(need.preferred_responder_id or -1)
        if preferred is not None:
            consider([preferred], self._place(preferred, need))  # when eligible, they rank first
        if not keyed:
            for place, group in (
                (3, self.in_building.get(need.building_id or -1, [])),
                (2, self.in_compound.get(need.compound_id or -1, [])),
                (1, self.plain),
            ):
                if consider(group, place):
                    break
        best = heapq.nlargest(size, keyed, key=lambda kr: kr[0])
        candidates = [
            Candidate(
                responder_id=r.id, skills=r.skills, open_load=self.loads.get(r.id, 0), max_open=r.max_open,
                home_building_id=r.building_id, home_compound_id=r.compound_id, available_now=bool(key[1]),
            )
            for key, r in best
        ]  # fmt: skip
        return candidates, frozenset(busy)

    @staticmethod
    def _place(r: _Responder, need: Need) -> int:
        if need.building_id is not None and r.building_id == need.building_id:
            return 3
        if need.compound_id is not None and r.compound_id == need.compound_id:
            return 2
        return 1


async def dispatch_visits(
    uow: UnitOfWork,
    visits: Sequence[Visit],
    *,
    settings: ElderCareSettings = DEFAULT_SETTINGS,
    now: datetime | None = None,
) -> None:
    """Open a dispatch request for each new visit and make its first offer, in a few statements per batch.

    The offer goes to the best candidate at the visit's own time by dispatch's ranking with the paired
    volunteer first: someone on time off then, or booked for an overlapping visit, is passed over for
    the next (stand-in cover). A visit nobody fits is left to the dispatch.assign job, which ranks
    again and escalates to staff. Declines and expiries then move on through dispatch as for tickets.
    """
    if not visits:
        return
    now = now or utc_now()
    ttl = settings.offer_hours * 3600
    places = await _places(uow.session, [v.household_id for v in visits])
    pairs = await primary_responders(uow.session, [v.resident_id for v in visits])
    by_community: dict[int, list[Visit]] = defaultdict(list)
    for v in visits:
        by_community[v.community_id].append(v)
    for community_id, batch in by_community.items():
        pool = await _Pool.load(uow.session, community_id, min(v.starts_at for v in batch))
        rows: list[dict[str, Any]] = []
        needs: list[Need] = []
        for v in batch:
            place = places.get(v.household_id)
            paired = pairs.get(v.resident_id)
            needs.append(
                Need(
                    skill=rules.SKILL_OF_TYPE.get(v.visit_type),
                    building_id=place.building_id if place else None,
                    compound_id=place.compound_id if place else None,
                    preferred_responder_id=paired[1] if paired else None,
                    preferred_first=True,
                )
            )
            rows.append(
                {
                    "community_id": community_id, "kind": VISIT_KIND, "subject_id": v.id,
                    "skill": rules.SKILL_OF_TYPE.get(v.visit_type),
                    "building_id": place.building_id if place else None,
                    "compound_id": place.compound_id if place else None, "mode": DispatchMode.OFFER.value,
                    "state": RequestState.OPEN.value, "preferred_responder_id": paired[1] if paired else None,
                    "preferred_first": True,
                    "offer_ttl_seconds": ttl, "attempts": 0, "created_at": now, "updated_at": now,
                }
            )  # fmt: skip
        request_of: dict[int, int] = {}
        for chunk in range(0, len(rows), 500):
            made = await uow.session.execute(
                insert(DispatchRequest).returning(DispatchRequest.id, DispatchRequest.subject_id),
                rows[chunk : chunk + 500],
            )
            request_of.update({int(subject): int(rid) for rid, subject in made.all()})
        offers: list[dict[str, Any]] = []
        for v, need in zip(batch, needs, strict=True):
            candidates, busy = pool.shortlist(need, v.starts_at, v.ends_at)
            ranked, _rejected = rank(replace(need, excluded=busy), candidates)
            if not ranked:
                uow.enqueue(dispatch_jobs.assign(request_of[v.id]))  # dispatch escalates if still nobody fits
                continue
            best = ranked[0]
            pool.loads[best.responder_id] = pool.loads.get(best.responder_id, 0) + 1
            head = Reason("rank", "ranked first at the visit's time")
            offers.append(
                {
                    "community_id": community_id, "request_id": request_of[v.id], "kind": VISIT_KIND,
                    "subject_id": v.id, "responder_id": best.responder_id, "state": AssignmentState.OFFERED.value,
                    "mode": "auto", "score": best.score,
                    "reasons": [head.as_dict(), *(r.as_dict() for r in best.reasons[:7])],
                    "offered_at": now, "expires_at": now + timedelta(seconds=ttl),
                }
            )  # fmt: skip
        offered_subjects: list[int] = []
        new_offers: list[tuple[int, int, int]] = []  # (assignment, visit, responder)
        for chunk in range(0, len(offers), 500):
            inserted = await uow.session.execute(
                insert(Assignment).returning(Assignment.id, Assignment.subject_id, Assignment.responder_id),
                offers[chunk : chunk + 500],
            )
            for r in inserted.all():
                assignment_id, subject_id = int(r[0]), int(r[1])
                uow.enqueue(dispatch_jobs.expire_offer(assignment_id, delay_ms=ttl * 1000))
                offered_subjects.append(subject_id)
                new_offers.append((assignment_id, subject_id, int(r[2])))
        # The volunteers hear of their offers here, in this transaction: a month's plan would otherwise
        # queue one visit.assignment_changed job per visit (later offers, made by dispatch, come that way).
        await _tell_offers(uow, pool, {v.id: v for v in batch}, new_offers, now)
        for chunk in range(0, len(offered_subjects), 1000):
            ids = offered_subjects[chunk : chunk + 1000]
            await uow.session.execute(
                update(DispatchRequest)
                .where(DispatchRequest.kind == VISIT_KIND, DispatchRequest.subject_id.in_(ids))
                .values(attempts=1)
            )
            await uow.session.execute(
                update(Visit)
                .where(Visit.id.in_(ids), Visit.state == VisitState.PLANNED.value)
                .values(state=VisitState.OFFERED.value)
            )
        offered_set = set(offered_subjects)
        for v in batch:  # the rows changed under the session's objects; no reload needed
            if v.id in offered_set:
                set_committed_value(v, "state", VisitState.OFFERED.value)


async def _tell_offers(
    uow: UnitOfWork, pool: _Pool, visits: dict[int, Visit], made: list[tuple[int, int, int]], now: datetime
) -> None:
    """One inbox notice per offer (keyed by the assignment, as the event handler keys it)."""
    if not made:
        return
    names = dict(
        (
            await uow.session.execute(
                select(Resident.id, Resident.name).where(Resident.id.in_({visits[v].resident_id for _a, v, _r in made}))
            )
        ).all()
    )
    rows = [
        {
            "community_id": visits[v].community_id, "recipient_account_id": pool.accounts[r],
            "event_key": f"visit-offer:{a}", "subject_kind": "visit", "subject_id": v,
            "title": f"上门服务邀请：{local_text(visits[v].starts_at)}",
            "body": f"{names.get(visits[v].resident_id, '')} · {visits[v].visit_type}", "created_at": now,
        }
        for a, v, r in made
        if r in pool.accounts
    ]  # fmt: skip
    dialect = uow.session.get_bind().dialect.name
    upsert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    for chunk in range(0, len(rows), 500):
        await uow.session.execute(
            upsert(Notification)
            .values(rows[chunk : chunk + 500])
            .on_conflict_do_nothing(index_elements=["recipient_account_id", "event_key"])
        )


async def _insert_visits(uow: UnitOfWork, rows: list[dict[str, Any]], conflict: list[str]) -> list[Visit]:
    """INSERT … ON CONFLICT DO NOTHING RETURNING: only the visits that did not exist yet come back."""
    if not rows:
        return []
    dialect = uow.session.get_bind().dialect.name
    upsert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    stmt = upsert(Visit).values(rows).on_conflict_do_nothing(index_elements=conflict).returning(Visit.id)
    ids = [int(i) for i in (await uow.session.execute(stmt)).scalars().all()]
    if not ids:
        return []
    return list((await uow.session.scalars(select(Visit).where(Visit.id.in_(ids)).order_by(Visit.id))).all())


# -- planning -------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PlanOutcome:
    period: str
    tier_version: int
    elders: int
    created: int


async def plan_period(
    uow: UnitOfWork,
    *,
    community_id: int,
    period: str,
    settings: ElderCareSettings = DEFAULT_SETTINGS,
    now: datetime | None = None,
) -> PlanOutcome:
    """Plan every active elder's visits for a month from the tier table, and dispatch the new ones.

    Idempotent: visits are unique by (elder, period, sequence), so planning again creates nothing.
    Raises ValidationFailed for a malformed period.
    """
    now = now or utc_now()
    try:
        _first, after = rules.parse_period(period)
    except ValueError as exc:
        raise ValidationFailed(str(exc), field="period") from exc
    if after <= now.astimezone(CHINA_TZ).date():
        raise ValidationFailed("That month is over.", field="period")
    version, tier_rows = await ensure_tier_table(uow, community_id=community_id)
    table = [
        rules.TierRow(r.name, r.min_level, r.max_level, r.visits_per_month, tuple(r.visit_types), r.lives_alone,
                      tuple(r.required_flags))
        for r in tier_rows
    ]  # fmt: skip
    elders = (
        await uow.session.execute(
            select(ElderProfile, Resident.household_id)
            .join(Resident, Resident.id == ElderProfile.resident_id)
            .where(
                ElderProfile.community_id == community_id,
                ElderProfile.active.is_(True),
                Resident.household_id.is_not(None),
            )
            .order_by(ElderProfile.id)
        )
    ).all()
    tags: dict[int, set[str]] = {}
    if elders:
        for rid, tag in (
            await uow.session.execute(
                select(ResidentTagLink.resident_id, ResidentTagLink.tag).where(
                    ResidentTagLink.community_id == community_id
                )
            )
        ).all():
            tags.setdefault(int(rid), set()).add(str(tag))
    rows: list[dict[str, Any]] = []
    tier_of: dict[int, int] = {}
    for elder, household_id in elders:
        flags = set(elder.care_flags or ()) | tags.get(elder.resident_id, set())
        lives_alone = elder.living_situation == "alone" or ResidentTag.LIVES_ALONE.value in flags
        facts = rules.ElderFacts(level=elder.current_level or 0, lives_alone=lives_alone, flags=frozenset(flags))
        index = rules.match_tier(table, facts)
        if index is None:
            continue
        tier, rule_row = table[index], tier_rows[index]
        tier_of[elder.id] = rule_row.id
        for seq, (start, _end) in enumerate(
            rules.visit_slots(period, tier.visits_per_month, spread_key=elder.id, minutes=60, not_before=now)
        ):
            visit_type = tier.visit_types[seq % len(tier.visit_types)]
            length = timedelta(minutes=rules.MINUTES_OF_TYPE.get(visit_type, 60))
            rows.append(
                {
                    "community_id": community_id, "resident_id": elder.resident_id, "household_id": household_id,
                    "visit_type": visit_type, "source": VisitSource.PLAN.value, "plan_period": period,
                    "plan_seq": seq, "tier_version_id": version.id, "tier_rule_id": rule_row.id,
                    "starts_at": start, "ends_at": start + length, "state": VisitState.PLANNED.value,
                    "checklist": {}, "note": "", "report": "", "created_at": now, "updated_at": now,
                }
            )  # fmt: skip
    # The elder's current tier, for oversight; one UPDATE per tier rule.
    by_rule: dict[int, list[int]] = {}
    for elder_id, rule_id in tier_of.items():
        by_rule.setdefault(rule_id, []).append(elder_id)
    for rule_id, ids in by_rule.items():
        await uow.session.execute(
            update(ElderProfile).where(ElderProfile.id.in_(ids)).values(current_tier_rule_id=rule_id)
        )
    created: list[Visit] = []
    for chunk in range(0, len(rows), 500):
        created += await _insert_visits(uow, rows[chunk : chunk + 500], ["resident_id", "plan_period", "plan_seq"])
    await dispatch_visits(uow, created, settings=settings, now=now)
    return PlanOutcome(period=period, tier_version=version.version, elders=len(elders), created=len(created))


async def communities_with_elders(session: AsyncSession) -> list[int]:
    rows = await session.scalars(select(ElderProfile.community_id).where(ElderProfile.active.is_(True)).distinct())
    return sorted(int(r) for r in rows.all())


async def request_planning(uow: UnitOfWork, *, viewer: Viewer, community_id: int, period: str) -> str:
    """Staff ask for a month to be planned now (the scheduler also does it). Raises Forbidden, ValidationFailed."""
    require_manage(viewer, community_id)
    try:
        rules.parse_period(period)
    except ValueError as exc:
        raise ValidationFailed(str(exc), field="period") from exc
    uow.enqueue(jobs.plan_community(community_id, period))
    return period


# -- requests -------------------------------------------------------------------------------------------


async def request_visit(
    uow: UnitOfWork,
    *,
    community_id: int,
    resident_id: int,
    visit_type: str,
    starts_at: datetime,
    ends_at: datetime,
    source_key: str,
    note: str = "",
) -> int:
    """Create (once per `source_key`) and dispatch a visit to a resident's home; returns the visit id.

    Called by the elder-care API for requests and by other domains' workers (e.g. canteen meal
    deliveries). Idempotent: a repeated `source_key` returns the existing visit and creates nothing.
    Raises NotFound, ValidationFailed.
    """
    existing = await uow.session.scalar(select(Visit.id).where(Visit.source_key == source_key))
    if existing is not None:
        return int(existing)
    if visit_type not in rules.CHECKLISTS:
        raise ValidationFailed(f"Unknown visit type {visit_type}.", field="visitType")
    start, end = aware(starts_at, "startsAt"), aware(ends_at, "endsAt")
    if end <= start or end - start > MAX_VISIT:
        raise ValidationFailed("A visit ends after it starts, within 12 hours.", field="endsAt")
    if not source_key or len(source_key) > 120:
        raise ValidationFailed("A source key of 1 to 120 characters.", field="sourceKey")
    resident = await uow.session.get(Resident, resident_id)
    if resident is None or resident.community_id != community_id:
        raise NotFound("No such resident in this community.", field="residentId")
    if resident.household_id is None:
        raise ValidationFailed("The resident has no registered home to visit.", field="residentId")
    now = utc_now()
    created = await _insert_visits(
        uow,
        [
            {
                "community_id": community_id, "resident_id": resident.id, "household_id": resident.household_id,
                "visit_type": visit_type, "source": VisitSource.REQUEST.value, "source_key": source_key,
                "starts_at": start, "ends_at": end, "state": VisitState.PLANNED.value, "checklist": {},
                "note": note.strip()[:MAX_NOTE], "report": "", "created_at": now, "updated_at": now,
            }
        ],
        ["source_key"],
    )  # fmt: skip
    if not created:  # someone else inserted it at the same moment
        existing = await uow.session.scalar(select(Visit.id).where(Visit.source_key == source_key))
        assert existing is not None
        return int(existing)
    await dispatch_visits(uow, created, now=now)
    return created[0].id


async def _is_relative(session: AsyncSession, viewer: Viewer, resident: Resident) -> bool:
    """The viewer is the resident, their guardian, or lives in the same household."""
    if viewer.resident_id is None:
        return False
    if viewer.resident_id in (resident.id, resident.guardian_id):
        return True
    me = await session.get(Resident, viewer.resident_id)
    return me is not None and me.household_id is not None and me.household_id == resident.household_id


async def ask_for_visit(
    uow: UnitOfWork,
    *,
    viewer: Viewer,
    resident_id: int,
    visit_type: str,
    starts_at: datetime,
    ends_at: datetime,
    note: str = "",
    now: datetime | None = None,
) -> Visit:
    """An elder, a relative (guardian or household member) or staff ask for a visit on a date.

    Raises Unauthenticated, NotFound, NotARelative, ValidationFailed.
    """
    viewer.require_authenticated()
    now = now or utc_now()
    resident = await resident_in(uow.session, viewer, resident_id)
    staff = bool(viewer.roles_in(resident.community_id) & set(STAFF_ROLES))
    if not staff and not await _is_relative(uow.session, viewer, resident):
        raise NotARelative("Only the elder, a family member or staff can ask for this visit.", field="residentId")
    if visit_type not in REQUESTABLE_TYPES:
        raise ValidationFailed("That type of visit cannot be asked for.", field="visitType")
    start = aware(starts_at, "startsAt")
    if start < now or start > now + MAX_AHEAD:
        raise ValidationFailed("Ask for a time from now to 120 days ahead.", field="startsAt")
    visit_id = await request_visit(
        uow, community_id=resident.community_id, resident_id=resident.id, visit_type=visit_type,
        starts_at=starts_at, ends_at=ends_at, source_key=f"ask:{uuid.uuid4().hex}",
        note=clean_text(note, field="note", limit=MAX_NOTE, what="note"),
    )  # fmt: skip
    visit = await uow.session.get(Visit, visit_id)
    assert visit is not None
    visit.requested_by_account_id = viewer.account_id
    return visit


# -- campaigns ------------------------------------------------------------------------------------------


async def create_campaign(
    uow: UnitOfWork,
    *,
    viewer: Viewer,
    community_id: int,
    name: str,
    tags: Sequence[ResidentTag],
    starts_at: datetime,
    ends_at: datetime,
    min_age: int | None = None,
    note: str = "",
) -> HolidayCampaign:
    """A holiday campaign; the worker then makes one delivery per targeted household. Raises Forbidden, ValidationFailed."""
    require_manage(viewer, community_id)
    if not tags and min_age is None:
        raise ValidationFailed("Target residents by tags, an age, or both.", field="tags")
    start, end = aware(starts_at, "startsAt"), aware(ends_at, "endsAt")
    if end <= start or end - start > timedelta(days=31):
        raise ValidationFailed("The campaign ends after it starts, within 31 days.", field="endsAt")
    if min_age is not None and not 0 <= min_age <= 120:
        raise ValidationFailed("An age from 0 to 120.", field="minAge")
    campaign = HolidayCampaign(
        community_id=community_id,
        name=clean_text(name, field="name", limit=100, what="campaign's name", required=True),
        tags=sorted({t.value for t in tags}),
        min_age=min_age,
        starts_at=start,
        ends_at=end,
        note=clean_text(note, field="note", limit=MAX_NOTE, what="note"),
        created_by_account_id=viewer.account_id,
    )
    uow.session.add(campaign)
    await uow.session.flush()
    uow.enqueue(jobs.generate_campaign(campaign.id))
    return campaign


async def generate_campaign(uow: UnitOfWork, *, campaign_id: int, now: datetime | None = None) -> int:
    """Make and dispatch one delivery per targeted household; returns how many were new.

    Idempotent: deliveries are unique by (campaign, household).
    """
    from api.core.clock import years_before

    now = now or utc_now()
    campaign = await uow.session.get(HolidayCampaign, campaign_id)
    if campaign is None:
        return 0
    conds: list[Any] = [Resident.community_id == campaign.community_id, Resident.household_id.is_not(None)]
    if campaign.tags:
        conds.append(exists().where(ResidentTagLink.resident_id == Resident.id, ResidentTagLink.tag.in_(campaign.tags)))
    if campaign.min_age is not None:
        conds.append(
            Resident.birth_date <= years_before(campaign.starts_at.astimezone(CHINA_TZ).date(), campaign.min_age)
        )
    targets = (
        await uow.session.execute(
            select(Resident.household_id, func.min(Resident.id)).where(*conds).group_by(Resident.household_id)
        )
    ).all()
    span = campaign.ends_at - campaign.starts_at
    slots = max(int(span.total_seconds() // 1800) - 1, 1)
    rows = []
    for i, (household_id, resident_id) in enumerate(sorted(targets)):
        start = campaign.starts_at + timedelta(minutes=30 * (i % slots))
        rows.append(
            {
                "community_id": campaign.community_id, "resident_id": int(resident_id or 0),
                "household_id": int(household_id or 0), "visit_type": VisitType.HOLIDAY_DELIVERY.value,
                "source": VisitSource.CAMPAIGN.value, "campaign_id": campaign.id, "starts_at": start,
                "ends_at": start + timedelta(minutes=30), "state": VisitState.PLANNED.value, "checklist": {},
                "note": campaign.name[:MAX_NOTE], "report": "", "created_at": now, "updated_at": now,
            }
        )  # fmt: skip
    created: list[Visit] = []
    for chunk in range(0, len(rows), 500):
        created += await _insert_visits(uow, rows[chunk : chunk + 500], ["campaign_id", "household_id"])
    await dispatch_visits(uow, created, now=now)
    campaign.generated_at = campaign.generated_at or now
    return len(created)


# -- booking, offers, check-in and check-out ------------------------------------------------------------


async def visit_in(session: AsyncSession, viewer: Viewer, visit_id: int) -> Visit:
    visit = await session.scalar(
        select(Visit).where(Visit.id == visit_id, Visit.community_id.in_(viewer.community_ids))
    )
    if visit is None:
        raise NotFound("No such visit.", field="visitId")
    return visit


async def book(uow: UnitOfWork, *, visit: Visit, responder_id: int) -> None:
    """Book the responder for the visit, unless they are booked for an overlapping one.

    One conditional UPDATE (… WHERE the visit is still open and NOT EXISTS an overlapping booking);
    on PostgreSQL the exclusion constraint refuses the loser of a race. Raises VolunteerDoubleBooked, VisitNotOpen.
    """
    volunteer_id = await uow.session.scalar(select(Volunteer.id).where(Volunteer.responder_id == responder_id))
    other = Visit.__table__.alias("other")
    overlap = exists().where(
        other.c.responder_id == responder_id,
        other.c.state.in_(BOOKED_VISIT_STATES),
        other.c.id != visit.id,
        other.c.starts_at < visit.ends_at,
        other.c.ends_at > visit.starts_at,
    )
    now = utc_now()
    stmt = (
        update(Visit)
        .where(
            Visit.id == visit.id,
            Visit.state.in_((VisitState.PLANNED.value, VisitState.OFFERED.value, VisitState.ASSIGNED.value)),
            ~overlap,
        )
        .values(state=VisitState.ASSIGNED.value, responder_id=responder_id, volunteer_id=volunteer_id, updated_at=now)
    )
    try:
        async with uow.session.begin_nested():
            won = await uow.session.execute(stmt)
    except IntegrityError as exc:
        if sqlstate(exc) == "23P01" or constraint_of(exc) == OVERLAP_CONSTRAINT:
            raise VolunteerDoubleBooked(
                "This volunteer is already booked for another visit at that time.", field="visitId"
            ) from exc
        raise
    if not rowcount(won):
        await uow.session.refresh(visit)
        if visit.state not in (VisitState.PLANNED.value, VisitState.OFFERED.value, VisitState.ASSIGNED.value):
            raise VisitNotOpen("This visit is no longer open.", field="visitId")
        raise VolunteerDoubleBooked("This volunteer is already booked for another visit at that time.", field="visitId")
    await uow.session.refresh(visit)


async def assign_visit(uow: UnitOfWork, *, viewer: Viewer, visit_id: int, volunteer_id: int) -> Visit:
    """Staff book a volunteer for a visit directly. Raises NotFound, Forbidden, VolunteerDoubleBooked, VisitNotOpen."""
    visit = await visit_in(uow.session, viewer, visit_id)
    require_manage(viewer, visit.community_id)
    volunteer = await uow.session.scalar(
        select(Volunteer).where(Volunteer.id == volunteer_id, Volunteer.community_id == visit.community_id)
    )
    if volunteer is None or not volunteer.active:
        raise NotFound("No such active volunteer in this community.", field="volunteerId")
    await book(uow, visit=visit, responder_id=volunteer.responder_id)
    await dispatch_service.assign_directly(
        uow, kind=VISIT_KIND, subject_id=visit.id, responder_id=volunteer.responder_id, reason="booked by staff"
    )
    return visit


async def answer_offer(uow: UnitOfWork, *, viewer: Viewer, visit_id: int, accept: bool, note: str = "") -> Visit:
    """The volunteer accepts (and is booked) or declines the visit offered to them.

    Raises NotFound, VisitOfferNotOpen, VolunteerDoubleBooked.
    """
    viewer.require_authenticated()
    visit = await visit_in(uow.session, viewer, visit_id)
    offer = await uow.session.scalar(
        select(Assignment)
        .join(Responder, Responder.id == Assignment.responder_id)
        .where(
            Assignment.kind == VISIT_KIND,
            Assignment.subject_id == visit.id,
            Assignment.state == AssignmentState.OFFERED.value,
            Responder.account_id == viewer.account_id,
        )
    )
    if offer is None:
        raise VisitOfferNotOpen("There is no open offer of this visit to you.", field="visitId")
    try:
        await dispatch_service.answer_offer(uow, viewer=viewer, assignment_id=offer.id, accept=accept, note=note)
    except dispatch_service.OfferNotOpen as exc:
        raise VisitOfferNotOpen(exc.message, field="visitId") from exc
    if accept:
        await book(uow, visit=visit, responder_id=offer.responder_id)
    elif visit.state == VisitState.OFFERED.value:
        visit.state = VisitState.PLANNED.value
        visit.updated_at = utc_now()
    return visit


async def _may_work_on(session: AsyncSession, viewer: Viewer, visit: Visit) -> bool:
    """The booked volunteer, or staff of the community."""
    if viewer.roles_in(visit.community_id) & set(STAFF_ROLES):
        return True
    if visit.responder_id is None or viewer.account_id is None:
        return False
    responder = await session.get(Responder, visit.responder_id)
    return responder is not None and responder.account_id == viewer.account_id


async def check_in(uow: UnitOfWork, *, viewer: Viewer, visit_id: int, now: datetime | None = None) -> Visit:
    """The booked volunteer arrives. Raises NotFound, AlreadyCheckedIn, VisitNotOpen."""
    viewer.require_authenticated()
    now = now or utc_now()
    visit = await visit_in(uow.session, viewer, visit_id)
    if not await _may_work_on(uow.session, viewer, visit):
        raise NotFound("No such visit booked for you.", field="visitId")
    won = await uow.session.execute(
        update(Visit)
        .where(Visit.id == visit.id, Visit.state == VisitState.ASSIGNED.value)
        .values(state=VisitState.CHECKED_IN.value, checked_in_at=now, updated_at=now)
    )
    await uow.session.refresh(visit)
    if not rowcount(won):
        if visit.state == VisitState.CHECKED_IN.value:
            raise AlreadyCheckedIn("This visit was checked in already.", field="visitId")
        raise VisitNotOpen("Only a booked visit can be checked in.", field="visitId")
    return visit


@dataclass(frozen=True, slots=True)
class FindingDraft:
    item_code: str
    severity: FindingSeverity
    note: str = ""
    hazard_kind: str | None = None


def _check_checklist(visit_type: str, answers: dict[str, str]) -> dict[str, str]:
    items = [code for code, _label in rules.CHECKLISTS.get(visit_type, ())]
    unknown = sorted(set(answers) - set(items))
    if unknown:
        raise ValidationFailed(f"{unknown[0]} is not on the {visit_type} checklist.", field=f"checklist.{unknown[0]}")
    for code in items:
        value = answers.get(code)
        if value is None:
            raise ValidationFailed(f"Answer the checklist item {code}.", field=f"checklist.{code}")
        if value not in rules.CHECK_ANSWERS:
            raise ValidationFailed("Answer ok, problem or not_applicable.", field=f"checklist.{code}")
    return {code: answers[code] for code in items}


async def check_out(
    uow: UnitOfWork,
    *,
    viewer: Viewer,
    visit_id: int,
    checklist: dict[str, str],
    findings: Sequence[FindingDraft] = (),
    report: str = "",
    now: datetime | None = None,
) -> tuple[Visit, list[VisitFinding]]:
    """The volunteer leaves: the checklist, findings and report are recorded, hours credited.

    A hazard finding sends a job that opens a repair ticket. Raises NotFound, VisitNotCheckedIn,
    VisitNotOpen, ValidationFailed.
    """
    viewer.require_authenticated()
    now = now or utc_now()
    visit = await uow.session.scalar(
        for_update(
            uow.session,
            select(Visit).where(Visit.id == visit_id, Visit.community_id.in_(viewer.community_ids)),
        )
    )
    if visit is None or not await _may_work_on(uow.session, viewer, visit):
        raise NotFound("No such visit booked for you.", field="visitId")
    if visit.state in (VisitState.PLANNED.value, VisitState.OFFERED.value, VisitState.ASSIGNED.value):
        raise VisitNotCheckedIn("Check in before checking out.", field="visitId")
    if visit.state != VisitState.CHECKED_IN.value:
        raise VisitNotOpen("This visit is over already.", field="visitId")
    answers = _check_checklist(visit.visit_type, checklist)
    if len(findings) > MAX_FINDINGS:
        raise ValidationFailed(f"At most {MAX_FINDINGS} findings.", field="findings")
    rows = []
    for i, f in enumerate(findings):
        kind = f.hazard_kind or rules.HAZARD_KIND_OF_ITEM.get(f.item_code, "other")
        if kind not in rules.HAZARD_KINDS:
            raise ValidationFailed(f"Unknown hazard kind {kind}.", field=f"findings.{i}.hazardKind")
        rows.append(
            VisitFinding(
                community_id=visit.community_id, visit_id=visit.id,
                item_code=clean_text(f.item_code, field=f"findings.{i}.itemCode", limit=40, what="item", required=True),
                hazard_kind=kind, severity=f.severity.value,
                note=clean_text(f.note, field=f"findings.{i}.note", limit=1000, what="note"),
                recorded_by_account_id=viewer.account_id, created_at=now,
            )
        )  # fmt: skip
    visit.checklist = answers
    visit.report = clean_text(report, field="report", limit=MAX_REPORT, what="report")
    visit.checked_out_at = now
    visit.state = VisitState.DONE.value
    visit.updated_at = now
    uow.session.add_all(rows)
    await uow.session.flush()
    for row in rows:
        if row.severity == FindingSeverity.HAZARD.value:
            uow.enqueue(jobs.hazard_found(row.id))
    await dispatch_service.finish(uow, kind=VISIT_KIND, subject_id=visit.id, completed=True)
    await credit_visit(uow, visit=visit)
    return visit, rows


async def cancel_visit(uow: UnitOfWork, *, viewer: Viewer, visit_id: int, reason: str) -> Visit:
    """Staff, or whoever asked for it, call a visit off before check-in. Raises NotFound, Forbidden, VisitNotOpen."""
    viewer.require_authenticated()
    visit = await visit_in(uow.session, viewer, visit_id)
    if visit.requested_by_account_id is None or visit.requested_by_account_id != viewer.account_id:
        require_manage(viewer, visit.community_id)
    now = utc_now()
    won = await uow.session.execute(
        update(Visit)
        .where(
            Visit.id == visit.id,
            Visit.state.in_((VisitState.PLANNED.value, VisitState.OFFERED.value, VisitState.ASSIGNED.value)),
        )
        .values(
            state=VisitState.CANCELLED.value,
            cancelled_at=now,
            cancel_reason=clean_text(reason, field="reason", limit=200, what="reason") or None,
            updated_at=now,
        )
    )
    if not rowcount(won):
        raise VisitNotOpen("Only a visit that has not begun can be cancelled.", field="visitId")
    await dispatch_service.finish(uow, kind=VISIT_KIND, subject_id=visit.id, completed=False)
    await uow.session.refresh(visit)
    return visit


# -- following dispatch, and the scan -------------------------------------------------------------------


async def tell_staff(uow: UnitOfWork, visit: Visit, *, event_key: str, title: str, body: str) -> int:
    staff = await accounts_service.accounts_with_roles(
        uow.session, community_id=visit.community_id, roles={Role.STAFF, Role.COMMUNITY_ADMIN}
    )
    return await notifications.notify(
        uow,
        recipients=staff,
        message=notifications.Message(
            community_id=visit.community_id, event_key=event_key, subject_kind="visit", subject_id=visit.id,
            title=title, body=body,
        ),
    )  # fmt: skip


async def on_assignment_changed(uow: UnitOfWork, *, request_id: int, event: str, assignment_id: int | None) -> None:
    """Keep the visit in step with dispatch. Idempotent: every change is conditional on the visit's state."""
    request = await uow.session.get(DispatchRequest, request_id)
    if request is None or request.kind != VISIT_KIND:
        return
    visit = await uow.session.get(Visit, request.subject_id)
    if visit is None:
        return
    assignment = await uow.session.get(Assignment, assignment_id) if assignment_id is not None else None
    now = utc_now()
    if event == "offered" and assignment is not None and assignment.state == AssignmentState.OFFERED.value:
        await uow.session.execute(
            update(Visit)
            .where(Visit.id == visit.id, Visit.state == VisitState.PLANNED.value)
            .values(state=VisitState.OFFERED.value, updated_at=now)
        )
        responder = await uow.session.get(Responder, assignment.responder_id)
        if responder is not None:
            resident = await uow.session.get(Resident, visit.resident_id)
            await notifications.notify(
                uow,
                recipients=[responder.account_id],
                message=notifications.Message(
                    community_id=visit.community_id, event_key=f"visit-offer:{assignment.id}", subject_kind="visit",
                    subject_id=visit.id, title=f"上门服务邀请：{local_text(visit.starts_at)}",
                    body=f"{resident.name if resident else ''} · {visit.visit_type}",
                ),
            )  # fmt: skip
    elif (
        event in ("accepted", "reassigned")
        and assignment is not None
        and assignment.state == AssignmentState.ACCEPTED.value
    ):
        if visit.responder_id == assignment.responder_id and visit.state in BOOKED_VISIT_STATES:
            return
        try:
            await book(uow, visit=visit, responder_id=assignment.responder_id)
        except (VolunteerDoubleBooked, VisitNotOpen):
            await tell_staff(
                uow, visit, event_key=f"visit-clash:{assignment.id}", title="上门服务时间冲突，请重新安排",
                body=f"{local_text(visit.starts_at)} 的上门服务无法安排给该志愿者。",
            )  # fmt: skip
    elif event in ("declined", "expired"):
        await uow.session.execute(
            update(Visit)
            .where(Visit.id == visit.id, Visit.state == VisitState.OFFERED.value)
            .values(state=VisitState.PLANNED.value, updated_at=now)
        )
    elif event == "escalated":
        await tell_staff(
            uow, visit, event_key=f"visit-unassigned:{visit.id}:{request.attempts}",
            title="上门服务无人可派，请人工安排", body=f"{local_text(visit.starts_at)} 的上门服务没有可派的志愿者。",
        )  # fmt: skip


@dataclass(frozen=True, slots=True)
class ScanOutcome:
    missed: list[int]
    overdue: list[int]


SCAN_BATCH = 500


async def scan(
    uow: UnitOfWork, *, settings: ElderCareSettings = DEFAULT_SETTINGS, now: datetime | None = None
) -> ScanOutcome:
    """Escalate missed and overdue visits to staff.

    A visit nobody checked in to by its end plus the grace period becomes missed; one checked in
    but never checked out is flagged overdue.

    Idempotent: each change is a conditional UPDATE and each notice is keyed by the visit.
    """
    now = now or utc_now()
    cutoff = now - timedelta(hours=settings.grace_hours)
    missed_ids = [
        int(i)
        for i in (
            await uow.session.scalars(
                select(Visit.id)
                .where(
                    Visit.state.in_((VisitState.PLANNED.value, VisitState.OFFERED.value, VisitState.ASSIGNED.value)),
                    Visit.ends_at <= cutoff,
                )
                .order_by(Visit.id)
                .limit(SCAN_BATCH)
            )
        ).all()
    ]
    missed: list[int] = []
    for visit_id in missed_ids:
        won = await uow.session.execute(
            update(Visit)
            .where(
                Visit.id == visit_id,
                Visit.state.in_((VisitState.PLANNED.value, VisitState.OFFERED.value, VisitState.ASSIGNED.value)),
            )
            .values(state=VisitState.MISSED.value, escalated_at=now, updated_at=now)
        )
        if not rowcount(won):
            continue
        visit = await uow.session.get(Visit, visit_id)
        assert visit is not None
        await uow.session.refresh(visit)
        await dispatch_service.finish(uow, kind=VISIT_KIND, subject_id=visit.id, completed=False)
        resident = await uow.session.get(Resident, visit.resident_id)
        await tell_staff(
            uow, visit, event_key=f"visit-missed:{visit.id}", title=f"上门服务未完成：{resident.name if resident else ''}",
            body=f"{local_text(visit.starts_at)} 的{visit.visit_type}无人签到，请跟进老人情况。",
        )  # fmt: skip
        missed.append(visit.id)
    overdue_rows = (
        await uow.session.scalars(
            select(Visit)
            .where(Visit.state == VisitState.CHECKED_IN.value, Visit.ends_at <= cutoff, Visit.escalated_at.is_(None))
            .order_by(Visit.id)
            .limit(SCAN_BATCH)
        )
    ).all()
    overdue: list[int] = []
    for visit in overdue_rows:
        won = await uow.session.execute(
            update(Visit).where(Visit.id == visit.id, Visit.escalated_at.is_(None)).values(escalated_at=now)
        )
        if not rowcount(won):
            continue
        await tell_staff(
            uow, visit, event_key=f"visit-overdue:{visit.id}", title="上门服务未签退",
            body=f"{local_text(visit.starts_at)} 的上门服务已签到但未签退，请确认志愿者和老人安全。",
        )  # fmt: skip
        overdue.append(visit.id)
    return ScanOutcome(missed, overdue)


# -- reads ----------------------------------------------------------------------------------------------


def visible_visits(viewer: Viewer) -> Any:
    """Visits that exist for the viewer: all of the communities they manage, and those booked or offered to them."""
    from api.core.viewer import Permission

    managed = list(viewer.communities_where(Permission.MANAGE_ELDER_CARE))
    mine = (
        select(Assignment.subject_id)
        .join(Responder, Responder.id == Assignment.responder_id)
        .where(Assignment.kind == VISIT_KIND, Responder.account_id == (viewer.account_id or -1))
    )
    own_home = select(Resident.household_id).where(Resident.id == (viewer.resident_id or -1))
    return select(Visit).where(
        Visit.community_id.in_(viewer.community_ids),
        or_(
            Visit.community_id.in_(managed),
            Visit.id.in_(mine),
            Visit.household_id.in_(own_home),
            Visit.requested_by_account_id == (viewer.account_id or -1),
        ),
    )


async def my_offers(session: AsyncSession, *, viewer: Viewer) -> list[tuple[Visit, Assignment]]:
    """Visits offered to the viewer and not yet answered, soonest first."""
    if viewer.account_id is None:
        return []
    rows = await session.execute(
        select(Visit, Assignment)
        .join(Assignment, and_(Assignment.kind == VISIT_KIND, Assignment.subject_id == Visit.id))
        .join(Responder, Responder.id == Assignment.responder_id)
        .where(Responder.account_id == viewer.account_id, Assignment.state.in_(ACTIVE_STATES))
        .order_by(Visit.starts_at)
        .limit(200)
    )
    return [(v, a) for v, a in rows.all()]


async def findings_of(session: AsyncSession, visit_ids: Sequence[int]) -> dict[int, list[VisitFinding]]:
    rows = (
        await session.scalars(
            select(VisitFinding).where(VisitFinding.visit_id.in_(list(visit_ids))).order_by(VisitFinding.id)
        )
    ).all()
    out: dict[int, list[VisitFinding]] = {v: [] for v in visit_ids}
    for r in rows:
        out[r.visit_id].append(r)
    return out
