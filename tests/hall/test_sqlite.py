"""The embedded default: the service hall works on SQLite too (one writer at a time takes the place of the races)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import update

from api.app import build_services
from api.core.clock import utc_now
from api.core.database import Database
from api.core.jobs import RecordingJobSender
from api.core.migrations import upgrade
from api.graphql.context import Services
from api.hall import service as hall
from api.hall.models import HallApplication, VehicleKind
from api.hall.seed import seed_demo
from tests.conftest import make_settings
from tests.hall.conftest import apply, make_desk, move, quota_for, registered_vehicle, through_to_last_step


@pytest.fixture
async def lite(tmp_path: Path) -> AsyncIterator[Services]:
    url = f"sqlite+aiosqlite:///{tmp_path / 'hall.db'}"
    await asyncio.to_thread(upgrade, url)  # Alembic runs its own event loop
    services = build_services(make_settings(url, media_dir=str(tmp_path / "media")), jobs=RecordingJobSender())
    services.db = Database(url)
    try:
        yield services
    finally:
        await services.db.dispose()


async def test_vehicles_permits_the_queue_and_the_scan_on_sqlite(lite: Services) -> None:
    # given
    desk = await make_desk(lite)
    await quota_for(lite, desk, 1)
    car = await registered_vehicle(lite, desk, "冀A54321")
    # when: the same plate again, a permit, a second permit over the quota
    with pytest.raises(hall.PlateTaken):
        await apply(lite, desk, "vehicle", viewer=desk.neighbour_viewer,
                    vehicle=hall.VehicleRequest("register", plate="冀A54321", kind=VehicleKind.CAR))  # fmt: skip
    permit = await apply(lite, desk, "parking-permit",
                         parking=hall.ParkingRequest(vehicle_id=car.id, compound_id=desk.estate.compound.id))  # fmt: skip
    await through_to_last_step(lite, desk, permit.id)
    done = await move(lite, "approve", desk.staff_viewer, permit.id)
    other = await registered_vehicle(lite, desk, "冀A54322")
    with pytest.raises(hall.QuotaFull):
        await apply(lite, desk, "parking-permit",
                    parking=hall.ParkingRequest(vehicle_id=other.id, compound_id=desk.estate.compound.id))  # fmt: skip
    # the queue, a page at a time by due date
    waiting = [await apply(lite, desk, code) for code in ("rental-registration", "door-card", "residence-certificate")]
    stmt = hall.queue_statement(desk.staff_viewer, community_id=desk.cid)
    async with lite.db.read_session() as session:
        first = await hall.queue_page(session, stmt, first=2, after=None)
        last = first.items[-1]
        rest = await hall.queue_page(session, stmt, first=2, after=(last.due_at, last.id))
        total = await hall.count_rows(session, stmt)
    # and the scan: a lapsed application is escalated once
    async with lite.db.unit_of_work() as uow:
        await uow.session.execute(
            update(HallApplication).where(HallApplication.id == waiting[0].id)
            .values(warn_at=utc_now() - timedelta(hours=9), due_at=utc_now() - timedelta(minutes=1))
        )  # fmt: skip
    async with lite.db.unit_of_work() as uow:
        scanned = await hall.scan(uow)
    async with lite.db.unit_of_work() as uow:
        again = await hall.scan(uow)
    # then
    assert done.permit_id is not None
    assert [a.id for a in first.items + rest.items] == [waiting[1].id, waiting[2].id, waiting[0].id]
    assert first.has_next
    assert not rest.has_next
    assert total == 3
    assert scanned.escalated == [waiting[0].id]
    assert again.escalated == []
    assert again.warned == []


async def test_the_demo_is_seeded_once(lite: Services) -> None:
    desk = await make_desk(lite)  # its communities have their procedures already
    await seed_demo(lite.db)
    await seed_demo(lite.db)
    async with lite.db.read_session() as session:
        listed = await hall.list_procedures(session, viewer=desk.resident_viewer, community_id=desk.cid)
        quotas = await hall.quotas(session, viewer=desk.resident_viewer, community_id=desk.cid,
                                   day=utc_now().date())  # fmt: skip
    assert len(listed) == 5
    assert [q.quota for q in quotas] == [120]
