"""Races on PostgreSQL: the database keeps parking quotas, plates and application steps consistent.

Every request is sent at once through the ASGI app in one event loop over a pool of up to 40
connections, so up to 40 transactions really run side by side in PostgreSQL.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select, text

from api.core.clock import utc_now
from api.core.database import Database
from api.hall.models import (
    HallApplication,
    HallApplicationEvent,
    HallProcedureVersion,
    ParkingPermit,
    ParkingQuota,
    Vehicle,
)
from api.registry.models import Household
from tests.conftest import TABLES, make_settings
from tests.hall.conftest import Desk, apply, gid, quota_for

pytestmark = pytest.mark.timeout(120)

APPROVE = """
mutation A($input: MoveHallApplicationInput!) {
  approveHallApplication(input: $input) { __typename ... on UserError { code } }
}
"""
ACCEPT = """
mutation A($input: MoveHallApplicationInput!) {
  acceptHallApplication(input: $input) { __typename ... on UserError { code } }
}
"""


@pytest.fixture
def settings(pg_url, media):
    return make_settings(pg_url, db_pool_size=20, media_dir=str(media))


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


async def at_last_step(
    services, desk: Desk, code: str, details: list[dict[str, Any]], households: list[int]
) -> list[int]:
    """Applications already at their last step, accepted by the desk's staff (bulk inserted)."""
    now = utc_now()
    async with services.db.unit_of_work() as uow:
        version = await uow.session.scalar(
            select(HallProcedureVersion).where(HallProcedureVersion.procedure_id == desk.procedures[code].id)
        )
        assert version is not None
        rows = [
            HallApplication(
                community_id=desk.cid,
                procedure_id=version.procedure_id,
                version_id=version.id,
                applicant_account_id=None,
                applicant_resident_id=None,
                household_id=hid,
                state="in_progress",
                step_index=len(version.steps) - 1,
                assignee_account_id=desk.staff.account.id,
                details=d,
                note="",
                submitted_at=now,
                due_at=now + timedelta(days=3),
                warn_at=now + timedelta(days=2),
                clock_round=1,
                requested_documents=[],
                updated_at=now,
            )
            for d, hid in zip(details, households, strict=True)
        ]
        uow.session.add_all(rows)
        await uow.session.flush()
        return [r.id for r in rows]


async def households(services, desk: Desk, n: int) -> list[int]:
    async with services.db.unit_of_work() as uow:
        rows = [Household(community_id=desk.cid, building_id=desk.estate.buildings[0].id, unit=9, room=f"R{i}")
                for i in range(n)]  # fmt: skip
        uow.session.add_all(rows)
        await uow.session.flush()
        return [h.id for h in rows]


async def test_200_concurrent_permit_approvals_for_a_quota_of_17(services, gql_raw, desk: Desk):
    # given: 200 households with a car each, each with a permit application at its last step; 17 permits
    quota = 17
    await quota_for(services, desk, quota)
    homes = await households(services, desk, 200)
    async with services.db.unit_of_work() as uow:
        cars = [Vehicle(community_id=desk.cid, household_id=h, plate=f"冀B{i:05d}", kind="car", description="")
                for i, h in enumerate(homes)]  # fmt: skip
        uow.session.add_all(cars)
        await uow.session.flush()
        details = [{"vehicle_id": c.id, "plate": c.plate, "compound_id": desk.estate.compound.id} for c in cars]
    apps = await at_last_step(services, desk, "parking-permit", details, homes)
    # when: all approved at once
    results = await asyncio.gather(
        *(gql_raw(APPROVE, {"input": {"applicationId": gid("HallApplication", a)}}, token=desk.staff.token)
          for a in apps)
    )  # fmt: skip
    # then: exactly 17 permits on slots 1..17, the counter agrees, and the rest are typed refusals left open
    assert outcome(results, "approveHallApplication") == Counter(
        {"HallApplicationSuccess": quota, "QuotaFullError": 200 - quota}
    )
    async with services.db.read_session() as session:
        permits = (await session.scalars(select(ParkingPermit).where(ParkingPermit.revoked_at.is_(None)))).all()
        counter = await session.scalar(select(ParkingQuota.issued))
        states = Counter((await session.scalars(select(HallApplication.state))).all())
    assert sorted(p.slot for p in permits) == list(range(1, quota + 1))
    assert len({p.vehicle_id for p in permits}) == quota
    assert counter == quota
    assert states == Counter({"completed": quota, "in_progress": 200 - quota})


async def test_50_concurrent_registrations_of_one_plate_register_it_once(services, gql_raw, desk: Desk):
    # given: 50 households applied for the same plate
    homes = await households(services, desk, 50)
    details = [{"action": "register", "plate": "粤B12345", "kind": "car", "description": ""} for _ in homes]
    apps = await at_last_step(services, desk, "vehicle", details, homes)
    # when
    results = await asyncio.gather(
        *(gql_raw(APPROVE, {"input": {"applicationId": gid("HallApplication", a)}}, token=desk.staff.token)
          for a in apps)
    )  # fmt: skip
    # then
    assert outcome(results, "approveHallApplication") == Counter({"HallApplicationSuccess": 1, "PlateTakenError": 49})
    async with services.db.read_session() as session:
        plates = (await session.scalars(select(Vehicle.plate).where(Vehicle.removed_at.is_(None)))).all()
    assert plates == ["粤B12345"]


async def test_40_concurrent_accepts_of_one_application_record_one_step(services, gql_raw, desk: Desk):
    app = await apply(services, desk, "door-card")
    results = await asyncio.gather(
        *(gql_raw(ACCEPT, {"input": {"applicationId": gid("HallApplication", app.id)}}, token=desk.staff.token)
          for _ in range(40))
    )  # fmt: skip
    assert outcome(results, "acceptHallApplication") == Counter({"HallApplicationSuccess": 1, "HallStateError": 39})
    async with services.db.read_session() as session:
        kinds = (await session.scalars(select(HallApplicationEvent.kind).where(
            HallApplicationEvent.application_id == app.id))).all()  # fmt: skip
    assert sorted(kinds) == ["accepted", "submitted"]
