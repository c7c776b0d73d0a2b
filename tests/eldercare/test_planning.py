"""Planning and dispatch through the worker handlers: idempotent by period, the paired volunteer first,
stand-in cover, tier versions kept on the visits."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from api.core.clock import CHINA_TZ
from api.dispatch.models import Assignment, DispatchRequest, TimeOff
from api.eldercare import jobs as eldercare_jobs
from api.eldercare import people, rules
from api.eldercare.models import CareTierVersion, ElderProfile, Visit
from tests.eldercare.conftest import Care, count, next_month
from tests.jobs import JobRunner


async def pair(services, care: Care, resident, volunteer_id: int | None = None):
    async with services.db.unit_of_work(services.jobs) as uow:
        return await people.pair(
            uow, viewer=care.staff_viewer, elder_id=care.elder_ids[resident.id], volunteer_id=volunteer_id
        )


async def plan(services, runner: JobRunner, care: Care, period: str) -> list[str]:
    async with services.db.unit_of_work(services.jobs) as uow:
        uow.enqueue(eldercare_jobs.plan_community(care.cid, period))
    return await runner.drain(skip={"dispatch.expire_offer"})


async def visits_of(services, **where) -> list[Visit]:
    async with services.db.read_session() as session:
        stmt = select(Visit).order_by(Visit.id)
        for k, v in where.items():
            stmt = stmt.where(getattr(Visit, k) == v)
        return list((await session.scalars(stmt)).all())


async def test_planning_a_month_twice_creates_its_visits_once(services, care: Care, runner):
    # given: three elders (two live alone, one of them 孤寡), no assessments yet (level 0)
    period = next_month()
    # when: the month is planned, and planned again
    await plan(services, runner, care, period)
    first = await visits_of(services, plan_period=period)
    await plan(services, runner, care, period)
    again = await visits_of(services, plan_period=period)
    # then: the default tiers give the two elders living alone 2 visits each, grandpa none
    assert [v.id for v in again] == [v.id for v in first]
    by_elder = {r: [v for v in first if v.resident_id == r] for r in (care.grandma.id, care.grandpa.id, care.uncle.id)}
    assert [len(by_elder[r]) for r in (care.grandma.id, care.grandpa.id, care.uncle.id)] == [2, 0, 2]
    assert {v.visit_type for v in by_elder[care.grandma.id]} == {"safety_check", "electrical_check"}
    assert all(v.starts_at.astimezone(CHINA_TZ).strftime("%Y-%m") == period for v in first)
    # each visit records the tier table version it came from, and is dispatched once
    async with services.db.read_session() as session:
        version = await session.scalar(select(CareTierVersion).where(CareTierVersion.community_id == care.cid))
        requests = (await session.scalars(select(DispatchRequest).where(DispatchRequest.kind == "visit"))).all()
        tiers = dict((await session.execute(select(ElderProfile.resident_id, ElderProfile.current_tier_rule_id))).all())
    assert version is not None
    assert version.version == 1
    assert {v.tier_version_id for v in first} == {version.id}
    assert sorted(r.subject_id for r in requests) == sorted(v.id for v in first)
    assert tiers[care.grandpa.id] is not None


async def test_the_paired_volunteer_is_offered_first_and_a_stand_in_covers_time_off(services, care: Care, runner):
    # given: grandma paired with the volunteer from the other building (not the nearest)
    await pair(services, care, care.grandma, care.far.volunteer_id)
    period = next_month()
    # when
    await plan(services, runner, care, period)
    # then: every visit of grandma's is offered to her paired volunteer
    visits = await visits_of(services, resident_id=care.grandma.id)
    async with services.db.read_session() as session:
        offers = (await session.scalars(select(Assignment).where(Assignment.kind == "visit"))).all()
    by_visit = {a.subject_id: a for a in offers}
    safety = [v for v in visits if v.visit_type == "safety_check"]
    assert safety
    assert all(by_visit[v.id].responder_id == care.far.responder_id for v in safety)
    assert all(v.state == "offered" for v in safety)
    assert any(r["code"] == "paired" for r in by_visit[safety[0].id].reasons)
    # and the electrical check needs the skill: it goes to the volunteer who has it
    electrical = [v for v in visits if v.visit_type == "electrical_check"]
    assert all(by_visit[v.id].responder_id == care.near.responder_id for v in electrical)

    # given: the next month, the paired volunteer is away the whole month
    later = rules.next_period(period)
    first, after = rules.parse_period(later)
    async with services.db.unit_of_work() as uow:
        from datetime import UTC, datetime, time

        uow.session.add(TimeOff(responder_id=care.far.responder_id,
                                starts_at=datetime.combine(first, time(0), CHINA_TZ).astimezone(UTC) - timedelta(days=1),
                                ends_at=datetime.combine(after, time(0), CHINA_TZ).astimezone(UTC) + timedelta(days=1)))  # fmt: skip
    # when
    await plan(services, runner, care, later)
    # then: a stand-in is offered grandma's visits
    later_visits = await visits_of(services, resident_id=care.grandma.id, plan_period=later)
    async with services.db.read_session() as session:
        offered_to = set(
            (
                await session.scalars(
                    select(Assignment.responder_id).where(
                        Assignment.kind == "visit", Assignment.subject_id.in_([v.id for v in later_visits])
                    )
                )
            ).all()
        )
    assert offered_to == {care.near.responder_id}
    assert await count(services, Visit) >= 4


async def test_the_scheduler_tick_plans_the_month_a_week_ahead_for_each_community_with_elders(services, care, runner):
    from api.core.clock import local_today
    from worker.actors.eldercare import PLAN_AHEAD_DAYS, handle_plan

    await handle_plan("0")
    [job] = [o.job for o in services.jobs.sent if o.job.actor_name == "eldercare.plan_community"]
    assert job.kwargs == {
        "community_id": care.cid,
        "period": rules.period_of(local_today() + timedelta(days=PLAN_AHEAD_DAYS)),
    }


async def test_a_page_of_elders_costs_the_same_statements_whatever_its_size(services, gql, care: Care):
    from sqlalchemy import event

    from tests.eldercare.conftest import gid

    query = """query E($c: ID!, $n: Int) { elders(communityId: $c, first: $n) { totalCount edges { node {
        name address age level tier hasHealthConsent assessments { finalLevel }
        currentPair { volunteer { name skills elders balanceMinutes } } pairs { role } } } } }"""
    for resident in (care.grandma, care.uncle):
        await pair(services, care, resident)
    statements = []

    def count(*_args) -> None:
        statements.append(1)

    event.listen(services.db.engine.sync_engine, "before_cursor_execute", count)
    try:
        sizes = {}
        for n in (1, 3):
            statements.clear()
            data = await gql(query, {"c": gid("Community", care.cid), "n": n}, token=care.staff.token)
            assert len(data["elders"]["edges"]) == n
            sizes[n] = len(statements)
    finally:
        event.remove(services.db.engine.sync_engine, "before_cursor_execute", count)
    assert sizes[1] == sizes[3], sizes
