"""Visit planning on the production worker: a real `linli worker` on Redis and PostgreSQL plans a month
of visits and dispatches each once, however often planning is asked for and even when one of its
processes are killed outright in the middle of writing the plan.

The test talks to the worker only through the database, Redis and the GraphQL API; the API side
publishes its jobs through a Dramatiq sender over a Redis broker in the worker's namespace.
"""

from __future__ import annotations

import os
import signal
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
import redis
from sqlalchemy import func, select, text, update

from api.core.broker import DramatiqJobSender, build_broker
from api.core.clock import local_today, utc_now
from api.core.crypto import mask_national_id
from api.dispatch.models import Assignment, DispatchRequest, Responder
from api.eldercare.models import ElderProfile, Visit
from api.graphql.context import Services
from api.notifications.models import Notification
from api.registry.models import Household, Resident, ResidentTag, ResidentTagLink
from api.settings import Settings
from tests.conftest import make_settings
from tests.e2e.test_tickets_worker import (  # noqa: F401  (start_worker is a fixture)
    StartWorker,
    eventually,
    ready,
    start_worker,
    stop,
    unsent_outbox,
)
from tests.eldercare.conftest import Care, add_volunteer, gid, make_care, next_month
from tests.factories import born_years_ago, national_id

pytestmark = pytest.mark.e2e

ELDERS = 400  # living alone: 2 visits each next month under the default tiers
QUEUES = ("eldercare", "dispatch", "events", "notifications")
PLAN = """
mutation P($input: PlanVisitsInput!) {
  planVisits(input: $input) { __typename ... on PlanVisitsSuccess { period } ... on UserError { code } }
}
"""

Gql = Callable[..., Awaitable[dict[str, Any]]]


@pytest.fixture
def settings(pg_url: str, redis_url: str, redis_namespace: str) -> Settings:
    return make_settings(pg_url, redis_url=redis_url, redis_namespace=redis_namespace)


@pytest.fixture
def jobs(settings: Settings) -> DramatiqJobSender:
    """What api/app.build_services wires in production: a Dramatiq sender over the Redis broker."""
    return DramatiqJobSender(build_broker(settings))


async def add_elders(services: Services, care: Care, n: int) -> None:
    """`n` elders of 80 living alone, one per household in the care community's two buildings (bulk)."""
    born = born_years_ago(local_today(), 80)
    async with services.db.unit_of_work() as uow:
        homes = [
            Household(community_id=care.cid, building_id=care.buildings[i % 2].id, unit=1 + i % 3, room=f"{900 + i}")
            for i in range(n)
        ]
        uow.session.add_all(homes)
        await uow.session.flush()
        people = []
        for i, home in enumerate(homes):
            nid = national_id(born, seq=10_000 + i)
            people.append(
                Resident(community_id=care.cid, household_id=home.id, name=f"老人{i:03d}", gender="female",
                         birth_date=born, national_id_encrypted=services.cipher.encrypt(nid),
                         national_id_hash=services.cipher.lookup_hash(nid), national_id_masked=mask_national_id(nid))
            )  # fmt: skip
        uow.session.add_all(people)
        await uow.session.flush()
        uow.session.add_all(
            ResidentTagLink(community_id=care.cid, resident_id=p.id, tag=ResidentTag.LIVES_ALONE.value) for p in people
        )
        uow.session.add_all(
            ElderProfile(community_id=care.cid, resident_id=p.id, living_situation="alone") for p in people
        )


async def counts(services: Services, period: str) -> dict[str, int]:
    """The month's visits, their dispatch requests, offers and offer notices (the scheduler plans this month too)."""
    month = select(Visit.id).where(Visit.plan_period == period)
    async with services.db.read_session() as session:

        async def n(stmt: Any) -> int:
            return int(await session.scalar(stmt) or 0)

        return {
            "visits": await n(select(func.count()).select_from(month.subquery())),
            "requests": await n(
                select(func.count()).where(DispatchRequest.kind == "visit", DispatchRequest.subject_id.in_(month))
            ),
            "offers": await n(select(func.count()).where(Assignment.kind == "visit", Assignment.subject_id.in_(month))),
            "told": await n(
                select(func.count()).where(
                    Notification.event_key.like("visit-offer:%"), Notification.subject_id.in_(month)
                )
            ),
        }


async def planning_in_flight(services: Services) -> bool:
    """Another session has an open transaction that has written to the plan's tables."""
    async with services.db.read_session() as session:
        found = await session.scalar(
            text(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                "AND pid <> pg_backend_pid() AND backend_xid IS NOT NULL "
                "AND query ~ '(elder_visit|elder_profile|dispatch_request|assignment|care_tier|notification)'"
            )
        )
    return bool(found)


def held(client: redis.Redis, namespace: str) -> int:
    """Messages waiting in, or held from, the work queues (not the delayed offer expiries)."""
    return sum(int(client.hlen(f"{namespace}:{q}.msgs")) for q in QUEUES)


@pytest.mark.timeout(300)
async def test_planning_twice_with_the_workers_killed_mid_plan_plans_and_dispatches_each_visit_once(
    services: Services,
    gql: Gql,
    start_worker: StartWorker,  # noqa: F811
    redis_client: redis.Redis,
    redis_namespace: str,
) -> None:
    # given: a running 2-process worker, 150 more elders living alone and two more volunteers
    worker = start_worker(processes=2, threads=2)
    care = await make_care(services)
    await add_elders(services, care, ELDERS)
    for resident in (care.young, care.daughter_resident):
        await add_volunteer(services, care.staff_viewer, resident, care.community, ("companionship",), max_elders=50)
    async with services.db.unit_of_work() as uow:  # every volunteer takes many offers
        await uow.session.execute(update(Responder).values(max_open=5000))
    await ready(worker, processes=2)
    expected = 2 * (ELDERS + 2)  # and grandma and uncle, who live alone too
    period = next_month()

    # when: staff ask for the month to be planned, twice, at once
    for _ in range(2):
        asked = await gql(PLAN, {"input": {"communityId": gid("Community", care.cid), "period": period}},
                          token=care.staff.token)  # fmt: skip
        assert asked["planVisits"] == {"__typename": "PlanVisitsSuccess", "period": period}
    started = utc_now()

    # and: the Dramatiq worker processes are killed outright while the plan is being written
    async def writing() -> bool:
        return await planning_in_flight(services)

    await eventually(writing, within=120, what="a worker is writing the plan", every=0.02)
    victims = worker.dramatiq_workers()
    assert len(victims) == 2
    killed_at = utc_now()
    for victim in victims:
        os.kill(victim, signal.SIGKILL)
    at_kill = await counts(services, period)

    # then: the supervisor restarts Dramatiq, and every visit is planned, dispatched, offered and told once
    await ready(worker, processes=2, restarts=1)

    async def all_told() -> bool:
        return (await counts(services, period))["told"] >= expected

    await eventually(all_told, within=150, what=f"{expected} offers told", every=0.5)

    async def settled() -> bool:
        return held(redis_client, redis_namespace) == 0 and await unsent_outbox(services.db) == 0

    await eventually(settled, within=60, what="the work queues and the outbox are empty")
    final = await counts(services, period)
    assert final == {"visits": expected, "requests": expected, "offers": expected, "told": expected}
    async with services.db.read_session() as session:
        per_elder = Counter((await session.scalars(select(Visit.resident_id).where(Visit.plan_period == period))).all())
        month = select(Visit.id).where(Visit.plan_period == period)
        states = Counter((await session.scalars(select(Visit.state).where(Visit.plan_period == period))).all())
        per_request = Counter(
            (
                await session.scalars(
                    select(Assignment.subject_id).where(Assignment.kind == "visit", Assignment.subject_id.in_(month))
                )
            ).all()
        )
    assert set(per_elder.values()) == {2}
    assert states == Counter({"offered": expected})
    assert set(per_request.values()) == {1}
    print(
        f"\n{expected} visits; KILL -9 of both worker processes mid-plan ({at_kill['visits']} visits committed then), "
        f"{(killed_at - started).total_seconds():.1f}s into the run; all told "
        f"{(utc_now() - started).total_seconds():.1f}s after the first request"
    )

    # when: planning is asked for once more, after the run
    await gql(PLAN, {"input": {"communityId": gid("Community", care.cid), "period": period}}, token=care.staff.token)

    async def quiet() -> bool:
        return held(redis_client, redis_namespace) == 0 and await unsent_outbox(services.db) == 0

    await eventually(quiet, within=60, what="the third plan ran")
    # then: nothing new
    assert await counts(services, period) == final
    assert await stop(worker) == 0
