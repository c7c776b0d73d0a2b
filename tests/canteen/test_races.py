"""Races on PostgreSQL: a meal's capacity, one reservation per resident, and the cut-off hold under load.

Each request runs in its own transaction; asyncio.gather starts them all at once and a semaphore
keeps them to the pool's 20 connections, so 20 transactions race in PostgreSQL at any moment. The
database decides: the counter's conditional UPDATE under ``CHECK (reserved <= capacity)``, the
partial unique index of active reservations, and the conditional close.
"""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import func, select, text, update
from sqlalchemy.exc import IntegrityError

from api.canteen import service as canteen
from api.canteen.models import CanteenCountSheet, CanteenMeal, CanteenReservation
from api.core.clock import utc_now
from api.core.database import Database
from api.core.errors import DomainError
from api.core.viewer import Viewer
from api.graphql.context import Services
from tests.canteen.conftest import Kitchen, gid, make_kitchen
from tests.conftest import TABLES, make_settings
from tests.venues.conftest import crowd

pytestmark = pytest.mark.timeout(120)

POOL = 20
RESERVE = """
mutation Reserve($input: ReserveMealInput!) {
  reserveMeal(input: $input) { __typename ... on UserError { code } }
}
"""


@pytest.fixture
def settings(pg_url):
    return make_settings(pg_url, db_pool_size=POOL)


@pytest.fixture
async def db(settings) -> AsyncIterator[Database]:
    """The test database with a pool big enough for real concurrency (replaces the shared fixture here)."""
    database = Database(settings.database_url, pool_size=settings.db_pool_size)
    try:
        yield database
    finally:
        async with database.engine.begin() as conn:
            await conn.execute(text(f"TRUNCATE {TABLES} RESTART IDENTITY CASCADE"))
        await database.dispose()


async def attempt(services: Services, gate: asyncio.Semaphore, viewer: Viewer, meal_id: int, **kwargs: Any) -> str:
    """One reservation in its own transaction: "ok" or the refusal's code."""
    async with gate:
        try:
            async with services.db.unit_of_work() as uow:
                await canteen.reserve(uow, viewer=viewer, meal_id=meal_id, **kwargs)
        except DomainError as exc:
            return exc.code
    return "ok"


async def cancel(services: Services, gate: asyncio.Semaphore, viewer: Viewer, reservation_id: int) -> str:
    async with gate:
        try:
            async with services.db.unit_of_work() as uow:
                await canteen.cancel_reservation(uow, viewer=viewer, reservation_id=reservation_id)
        except DomainError as exc:
            return exc.code
    return "cancelled"


async def state(services: Services, meal_id: int) -> tuple[int, int, list[CanteenReservation]]:
    async with services.db.read_session() as session:
        meal = await session.get(CanteenMeal, meal_id)
        assert meal is not None
        rows = list(
            (
                await session.scalars(
                    select(CanteenReservation)
                    .where(CanteenReservation.meal_id == meal_id)
                    .order_by(CanteenReservation.id)
                )
            ).all()
        )
    return meal.reserved, meal.capacity, rows


async def test_200_concurrent_reservations_for_37_portions_leave_exactly_37(services, gql_raw):
    # given: 200 residents, a lunch of 37 portions
    kitchen = await make_kitchen(services, capacity=37)
    people = await crowd(services, kitchen.estate.community, 200, age=70)
    gate = asyncio.Semaphore(POOL)

    async def one(token: str) -> dict[str, Any]:
        async with gate:
            body: dict[str, Any] = await gql_raw(
                RESERVE, {"input": {"mealId": gid("Meal", kitchen.lunch.id)}}, token=token
            )
        return body

    # when: all at once, through the API
    results = await asyncio.gather(*(one(p.token) for p in people))
    # then: exactly 37 got a portion, 163 were told the meal is full; the counter agrees with the rows
    outcome = Counter(r["data"]["reserveMeal"]["__typename"] for r in results)
    assert outcome == Counter({"MealReservationSuccess": 37, "MealFullError": 163})
    reserved, capacity, rows = await state(services, kitchen.lunch.id)
    active = [r for r in rows if r.status == "active"]
    assert (reserved, capacity, len(active), len(rows)) == (37, 37, 37, 37)
    assert len({r.resident_id for r in active}) == 37
    assert {r.price_fen for r in active} == {800}  # all 70: the 60+ price


async def test_50_concurrent_reservations_for_one_resident_leave_one(services):
    # given
    kitchen = await make_kitchen(services)
    viewer = kitchen.staff_viewer
    gate = asyncio.Semaphore(POOL)
    # when: the desk and the family all press the button at once
    codes = await asyncio.gather(
        *(attempt(services, gate, viewer, kitchen.lunch.id, resident_id=kitchen.grandma.id) for _ in range(50))
    )
    # then
    assert Counter(codes) == Counter({"ok": 1, "ALREADY_RESERVED": 49})
    reserved, _, rows = await state(services, kitchen.lunch.id)
    assert (reserved, len(rows)) == (1, 1)


async def test_concurrent_cancels_and_reservations_never_exceed_the_capacity(services):
    # given: 20 portions, all taken, and 60 more residents waiting to pounce
    kitchen = await make_kitchen(services, capacity=20)
    people = await crowd(services, kitchen.estate.community, 80)
    cid = kitchen.cid
    gate = asyncio.Semaphore(POOL)
    first = await asyncio.gather(*(attempt(services, gate, p.viewer(cid), kitchen.lunch.id) for p in people[:20]))
    assert Counter(first) == Counter({"ok": 20})
    _, _, rows = await state(services, kitchen.lunch.id)
    by_resident = {p.resident_id: p for p in people}
    # when: 12 cancel while 60 others reserve, shuffled, all at once
    operations = [
        *(cancel(services, gate, by_resident[r.resident_id].viewer(cid), r.id) for r in rows[:12]),
        *(attempt(services, gate, p.viewer(cid), kitchen.lunch.id) for p in people[20:]),
    ]
    random.Random(11).shuffle(operations)
    codes = Counter(await asyncio.gather(*operations))
    # then: every cancel went through; newcomers got at most the 12 freed portions (one freed after the last
    # reservation attempt stays free); the counter equals the active rows and never exceeds the capacity
    assert codes["cancelled"] == 12
    assert codes["ok"] + codes["MEAL_FULL"] == 60
    assert 1 <= codes["ok"] <= 12
    reserved, capacity, rows = await state(services, kitchen.lunch.id)
    active = [r for r in rows if r.status == "active"]
    assert reserved == len(active) == 20 - 12 + codes["ok"] <= capacity
    assert len({r.resident_id for r in active}) == len(active)


async def test_closing_at_the_cut_off_counts_every_reservation_that_got_in(services, kitchen: Kitchen):
    # given: 60 residents reserving while the meal's cut-off passes and 5 closers race
    people = await crowd(services, kitchen.estate.community, 60)
    cid = kitchen.cid
    gate = asyncio.Semaphore(POOL)
    async with services.db.unit_of_work() as uow:
        await uow.session.execute(update(CanteenMeal).where(CanteenMeal.id == kitchen.lunch.id).values(capacity=100))

    async def close() -> str:
        async with gate, services.db.unit_of_work(services.jobs) as uow:
            sheet = await canteen.close_meal(uow, meal_id=kitchen.lunch.id, now=utc_now() + timedelta(days=2))
        return "closed" if sheet else "noop"

    operations = [
        *(attempt(services, gate, p.viewer(cid), kitchen.lunch.id) for p in people),
        *(close() for _ in range(5)),
    ]
    random.Random(3).shuffle(operations)
    # when
    codes = Counter(await asyncio.gather(*operations))
    # then: one close won; the sheet counts exactly the reservations that committed, and none came after
    assert codes["closed"] == 1
    assert codes["noop"] == 4
    assert codes["ok"] + codes["AFTER_CUT_OFF"] == 60
    reserved, _, rows = await state(services, kitchen.lunch.id)
    async with services.db.read_session() as session:
        sheet = await session.scalar(select(CanteenCountSheet).where(CanteenCountSheet.meal_id == kitchen.lunch.id))
        sheets = await session.scalar(select(func.count()).select_from(CanteenCountSheet))
    assert sheet is not None
    assert sheets == 1
    assert sheet.portions == reserved == len(rows) == codes["ok"]


async def test_the_database_itself_refuses_more_than_the_capacity_and_a_second_active_reservation(
    services, kitchen: Kitchen
):
    # past the service: the CHECK on the counter
    with pytest.raises(IntegrityError) as over:
        async with services.db.unit_of_work() as uow:
            await uow.session.execute(
                update(CanteenMeal).where(CanteenMeal.id == kitchen.lunch.id).values(reserved=CanteenMeal.capacity + 1)
            )
    assert "ck_canteen_meal_within_capacity" in str(over.value)
    # and the partial unique index
    row = {
        "community_id": kitchen.cid, "meal_id": kitchen.lunch.id, "resident_id": kitchen.grandpa.id,
        "status": "active", "price_fen": 800, "price_rule_name": "60岁以上", "delivery": False,
        "delivery_override": False, "note": "",
    }  # fmt: skip
    async with services.db.unit_of_work() as uow:
        uow.session.add(CanteenReservation(**row))
    with pytest.raises(IntegrityError) as twice:
        async with services.db.unit_of_work() as uow:
            uow.session.add(CanteenReservation(**row))
    assert "uq_canteen_reservation_meal_id_resident_id" in str(twice.value)
    async with services.db.unit_of_work() as uow:
        uow.session.add(CanteenReservation(**{**row, "status": "cancelled"}))
