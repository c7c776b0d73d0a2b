"""Notice fixtures: a community of two compounds, residents with logins in different buildings and with tags."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest

from api.core.viewer import Role, Viewer
from api.graphql.context import Services
from api.registry.models import Building, Community, Compound, Resident, ResidentTag
from tests.factories import (
    Estate,
    Login,
    make_building,
    make_compound,
    make_estate,
    make_household,
    make_login,
    make_resident,
)
from tests.jobs import JobRunner
from tests.tickets.conftest import viewer_of


@pytest.fixture
async def runner(settings, services, jobs) -> AsyncIterator[JobRunner]:
    r = JobRunner(settings, jobs)
    yield r
    await r.close()


@dataclass
class Person:
    resident: Resident
    login: Login


@dataclass
class Board:
    """Compound A (buildings A1, A2) and compound B (building B1); staff; people in each building."""

    estate: Estate
    staff: Login
    staff_viewer: Viewer
    compound_a: Compound
    compound_b: Compound
    a1: Building
    a2: Building
    b1: Building
    in_a1: Person
    in_a2: Person
    in_a2_alone: Person  # tagged lives_alone
    in_b1: Person
    no_login: Resident  # in A1, no account: nobody to deliver to

    @property
    def cid(self) -> int:
        return self.estate.community.id


async def person(services: Services, building: Building, name: str, *tags: ResidentTag) -> Person:
    household = await make_household(services.db, building)
    resident = await make_resident(services, household, name=name, tags=tags)
    login = await make_login(
        services, role=Role.RESIDENT, community=await _community(services, building), resident=resident
    )
    return Person(resident, login)


async def _community(services: Services, building: Building) -> Community:
    async with services.db.read_session() as session:
        community = await session.get(Community, building.community_id)
    assert community is not None
    return community


async def make_board(services: Services) -> Board:
    estate = await make_estate(services, households=0, members=0)
    compound_a = estate.compound
    a1, a2 = estate.buildings
    compound_b = await make_compound(services.db, estate.community, name="明珠园")
    b1 = await make_building(services.db, compound_b, name="1号楼")
    staff = await make_login(services, role=Role.STAFF, community=estate.community)
    in_a1 = await person(services, a1, "甲一")
    in_a2 = await person(services, a2, "甲二")
    in_a2_alone = await person(services, a2, "甲二独居", ResidentTag.LIVES_ALONE)
    in_b1 = await person(services, b1, "乙一")
    no_login = await make_resident(services, await make_household(services.db, a1), name="无账号")
    return Board(
        estate, staff, await viewer_of(services, staff), compound_a, compound_b, a1, a2, b1, in_a1, in_a2,
        in_a2_alone, in_b1, no_login,
    )  # fmt: skip


@pytest.fixture
async def board(services) -> Board:
    return await make_board(services)
