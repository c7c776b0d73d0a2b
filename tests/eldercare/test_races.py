"""Races on PostgreSQL: the database keeps a volunteer from double booking, the time bank from going
negative, a volunteer's load within its limit and a request from being made twice.

Every request is sent at once through the ASGI app (or the service) in one event loop over a pool of up
to 40 connections, so up to 40 transactions really run side by side in PostgreSQL.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import insert, select, text, update
from sqlalchemy.exc import IntegrityError

from api.core.clock import utc_now
from api.core.database import Database
from api.eldercare import people, timebank
from api.eldercare import service as visits
from api.eldercare.common import InsufficientHours, NoVolunteerAvailable, VolunteerFull
from api.eldercare.models import CarePair, ElderProfile, TimeAccount, TimeEntry, Visit
from api.registry.models import Resident
from tests.conftest import TABLES, make_settings
from tests.eldercare.conftest import Care, add_volunteer, count, gid, tomorrow_at

pytestmark = pytest.mark.timeout(120)

ASSIGN = """
mutation S($input: AssignVisitInput!) {
  assignVisit(input: $input) { __typename ... on VisitSuccess { visit { id } } ... on UserError { code } }
}
"""


@pytest.fixture
def settings(pg_url):
    return make_settings(pg_url, db_pool_size=20)


@pytest.fixture
async def db(settings) -> AsyncIterator[Database]:
    """The test database with a pool of 20 (+20 overflow) for real concurrency."""
    database = Database(settings.database_url, pool_size=20)
    try:
        yield database
    finally:
        async with database.engine.begin() as conn:
            await conn.execute(text(f"TRUNCATE {TABLES} RESTART IDENTITY CASCADE"))
        await database.dispose()


def outcome(results: list[dict[str, Any]], field: str) -> Counter[str]:
    return Counter(r["data"][field]["__typename"] if r.get("data") else r["errors"][0]["message"] for r in results)


async def many_visits(services, care: Care, n: int) -> list[int]:
    """`n` planned visits tomorrow morning, each starting a minute after the last: every pair overlaps."""
    start = tomorrow_at(9)
    now = utc_now()
    async with services.db.unit_of_work() as uow:
        result = await uow.session.execute(
            insert(Visit).returning(Visit.id),
            [
                {"community_id": care.cid, "resident_id": care.grandma.id, "household_id": care.homes[0].id,
                 "visit_type": "companionship", "source": "request", "source_key": f"race:{i}",
                 "starts_at": start + timedelta(minutes=i % 50), "ends_at": start + timedelta(minutes=60 + i % 50),
                 "state": "planned", "checklist": {}, "note": "", "report": "", "created_at": now, "updated_at": now}
                for i in range(n)
            ],
        )  # fmt: skip
        ids = [int(i) for i in result.scalars().all()]
    async with services.db.unit_of_work() as uow:
        await visits.dispatch_visits(
            uow, list((await uow.session.scalars(select(Visit).where(Visit.id.in_(ids)))).all())
        )
    return ids


async def test_100_concurrent_overlapping_bookings_of_one_volunteer_leave_no_overlap(services, gql_raw, care: Care):
    # given: 100 overlapping visits
    ids = await many_visits(services, care, 100)
    volunteer = gid("Volunteer", care.near.volunteer_id)
    # when: staff book the same volunteer on all of them at once
    results = await asyncio.gather(
        *(gql_raw(ASSIGN, {"input": {"visitId": gid("Visit", i), "volunteerId": volunteer}}, token=care.staff.token)
          for i in ids)
    )  # fmt: skip
    # then: exactly one booking, 99 typed refusals, and no two booked visits overlap
    assert outcome(results, "assignVisit") == Counter({"VisitSuccess": 1, "VolunteerDoubleBookedError": 99})
    async with services.db.read_session() as session:
        booked = (
            await session.scalars(
                select(Visit).where(Visit.responder_id == care.near.responder_id, Visit.state == "assigned")
            )
        ).all()
    assert len(booked) == 1


async def test_the_database_itself_refuses_an_overlapping_booking(services, care: Care):
    ids = await many_visits(services, care, 3)
    async with services.db.unit_of_work() as uow:
        await uow.session.execute(
            update(Visit).where(Visit.id == ids[0]).values(state="assigned", responder_id=care.near.responder_id)
        )
    with pytest.raises(IntegrityError) as refused:
        async with services.db.unit_of_work() as uow:
            await uow.session.execute(
                update(Visit).where(Visit.id == ids[1]).values(state="checked_in", responder_id=care.near.responder_id)
            )
    assert "ex_elder_visit_no_double_booking" in str(refused.value)
    # another volunteer, or a cancelled visit, is fine
    async with services.db.unit_of_work() as uow:
        await uow.session.execute(
            update(Visit).where(Visit.id == ids[1]).values(state="assigned", responder_id=care.far.responder_id)
        )
        await uow.session.execute(
            update(Visit).where(Visit.id == ids[2]).values(state="cancelled", responder_id=care.near.responder_id)
        )


async def test_concurrent_redemptions_never_take_the_balance_below_zero(services, care: Care):
    # given: a volunteer holding 100 minutes
    async with services.db.unit_of_work() as uow:
        pool = await timebank.pool_account(uow, care.cid)
        mine = await uow.session.scalar(select(TimeAccount).where(TimeAccount.volunteer_id == care.near.volunteer_id))
        assert mine is not None
        await uow.session.execute(update(TimeAccount).where(TimeAccount.id == mine.id).values(balance_minutes=100))
        await uow.session.execute(update(TimeAccount).where(TimeAccount.id == pool.id).values(balance_minutes=-100))

    async def redeem() -> str:
        try:
            async with services.db.unit_of_work() as uow:
                await timebank.redeem(uow, viewer=care.staff_viewer, volunteer_id=care.near.volunteer_id, minutes=15)
        except InsufficientHours:
            return "refused"
        return "ok"

    # when: 40 redemptions of 15 minutes at once
    results = Counter(await asyncio.gather(*(redeem() for _ in range(40))))
    # then: 6 go through (90 minutes), the rest are refused; the books balance
    assert results == Counter({"ok": 6, "refused": 34})
    async with services.db.read_session() as session:
        mine_after = await session.scalar(
            select(TimeAccount.balance_minutes).where(TimeAccount.volunteer_id == care.near.volunteer_id)
        )
        pool_after = await session.scalar(select(TimeAccount.balance_minutes).where(TimeAccount.kind == "pool"))
        entries = (await session.scalars(select(TimeEntry.amount_minutes))).all()
    assert (mine_after, pool_after) == (10, -10)
    assert sum(entries) == 0
    assert len(entries) == 12
    # and the database refuses a negative balance written past the service
    with pytest.raises(IntegrityError, match="never_negative"):
        async with services.db.unit_of_work() as uow:
            await uow.session.execute(
                update(TimeAccount).where(TimeAccount.volunteer_id == care.near.volunteer_id).values(balance_minutes=-1)
            )


async def test_concurrent_pairings_never_exceed_a_volunteers_limit(services, care: Care):
    # given: 30 more elders and one volunteer who takes at most 2 (the other two volunteers are inactive)
    async with services.db.unit_of_work() as uow:
        from api.eldercare.models import Volunteer

        await uow.session.execute(update(Volunteer).values(active=False))
    limited = await add_volunteer(
        services, care.staff_viewer, care.young, care.community, ("companionship",), max_elders=2
    )
    async with services.db.unit_of_work() as uow:
        rows = [
            ElderProfile(community_id=care.cid, resident_id=r.id, living_situation="alone")
            for r in (await uow.session.scalars(select(Resident).where(Resident.community_id == care.cid))).all()
            if r.id not in care.elder_ids and r.id != care.young.id
        ]
        uow.session.add_all(rows)
    async with services.db.read_session() as session:
        elder_ids = list((await session.scalars(select(ElderProfile.id))).all())

    async def pair(elder_id: int) -> str:
        try:
            async with services.db.unit_of_work() as uow:
                await people.pair(uow, viewer=care.staff_viewer, elder_id=elder_id)
        except (VolunteerFull, NoVolunteerAvailable):
            return "full"
        return "paired"

    # when: every elder is paired at once, twice over
    results = Counter(await asyncio.gather(*(pair(e) for e in elder_ids * 2)))
    # then: the volunteer has exactly 2 elders, and no elder two primary pairs
    assert results["paired"] >= 2
    assert (
        await count(services, CarePair, CarePair.volunteer_id == limited.volunteer_id, CarePair.ended_at.is_(None)) == 2
    )
    async with services.db.read_session() as session:
        per_elder = Counter((await session.scalars(select(CarePair.elder_id).where(CarePair.ended_at.is_(None)))).all())
    assert max(per_elder.values()) == 1


async def test_concurrent_requests_with_one_source_key_make_one_visit(services, care: Care):
    async def ask() -> int:
        async with services.db.unit_of_work(services.jobs) as uow:
            return await visits.request_visit(
                uow, community_id=care.cid, resident_id=care.uncle.id, visit_type="meal_delivery",
                starts_at=tomorrow_at(11), ends_at=tomorrow_at(12), source_key="canteen:order:7",
            )  # fmt: skip

    ids = await asyncio.gather(*(ask() for _ in range(30)))
    assert len(set(ids)) == 1
    assert await count(services, Visit, Visit.source_key == "canteen:order:7") == 1
