"""The embedded default: the canteen and notices work on SQLite too (one writer at a time takes the place of the races)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import func, select

from api.app import build_services
from api.canteen import service as canteen
from api.canteen.models import CanteenCountSheet, CanteenMeal
from api.core.database import Database
from api.core.jobs import RecordingJobSender
from api.core.migrations import upgrade
from api.graphql.context import Services
from api.notices import service as notices
from api.notices.models import NoticeDelivery
from tests.canteen.conftest import make_kitchen, move_cutoff, reserve_as, resident_viewer
from tests.conftest import make_settings


@pytest.fixture
async def lite(tmp_path: Path) -> AsyncIterator[Services]:
    url = f"sqlite+aiosqlite:///{tmp_path / 'canteen.db'}"
    await asyncio.to_thread(upgrade, url)  # Alembic runs its own event loop
    services = build_services(make_settings(url), jobs=RecordingJobSender())
    services.db = Database(url)
    try:
        yield services
    finally:
        await services.db.dispose()


async def test_reservations_cut_off_and_notices_on_sqlite(lite: Services) -> None:
    # given: a lunch of 2 portions
    kitchen = await make_kitchen(lite, capacity=2)
    staff = kitchen.staff_viewer
    # when: three reserve, one twice; one cancels and another takes the portion
    grandma = await reserve_as(lite, staff, kitchen.lunch.id, resident_id=kitchen.grandma.id, delivery=True)
    await reserve_as(lite, staff, kitchen.lunch.id, resident_id=kitchen.grandpa.id)
    with pytest.raises(canteen.MealFull):
        await reserve_as(lite, staff, kitchen.lunch.id, resident_id=kitchen.poor.id)
    with pytest.raises(canteen.AlreadyReserved):
        await reserve_as(lite, staff, kitchen.lunch.id, resident_id=kitchen.grandpa.id)
    adult = resident_viewer(kitchen.adult, kitchen.adult_login)
    async with lite.db.unit_of_work() as uow:
        await canteen.cancel_reservation(uow, viewer=adult, reservation_id=grandma.id)
    await reserve_as(lite, staff, kitchen.lunch.id, resident_id=kitchen.poor.id)
    # and the cut-off passes and the scan closes the meal
    await move_cutoff(lite, kitchen.lunch.id)
    async with lite.db.unit_of_work(lite.jobs) as uow:
        assert await canteen.scan(uow) == [kitchen.lunch.id]
    async with lite.db.unit_of_work(lite.jobs) as uow:
        sheet = await canteen.close_meal(uow, meal_id=kitchen.lunch.id)
    # then
    assert sheet is not None
    assert (sheet.portions, sheet.pickup, sheet.delivery, sheet.takings_fen) == (2, 2, 0, 800 + 600)
    async with lite.db.read_session() as session:
        meal = await session.get(CanteenMeal, kitchen.lunch.id)
        assert meal is not None
        assert (meal.reserved, meal.closed_at is not None) == (2, True)
        assert await session.scalar(select(func.count()).select_from(CanteenCountSheet)) == 1
    # notices: a community-wide notice reaches each of the three residents who log in, once
    async with lite.db.unit_of_work(lite.jobs) as uow:
        notice = await notices.create_notice(
            uow, viewer=staff,
            draft=notices.NoticeDraft(kitchen.cid, "停水通知", "明日停水", notices.Audience(whole_community=True)),
        )  # fmt: skip
        await notices.publish_notice(uow, viewer=staff, notice_id=notice.id)
    for _ in range(2):
        async with lite.db.unit_of_work() as uow:
            await notices.deliver(uow, notice_id=notice.id)
    async with lite.db.read_session() as session:
        assert await session.scalar(select(func.count()).select_from(NoticeDelivery)) == 3
