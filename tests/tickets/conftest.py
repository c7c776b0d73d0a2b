from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest

from api.core.viewer import Role
from api.dispatch.models import Responder
from api.graphql.context import Services
from api.tickets.service import ensure_categories
from tests.factories import Estate, Login, make_estate, make_login
from tests.jobs import JobRunner


@pytest.fixture
async def runner(settings, services, jobs) -> AsyncIterator[JobRunner]:
    r = JobRunner(settings, jobs)
    yield r
    await r.close()


@dataclass
class Desk:
    """A community with categories, a staff member, a resident reporter and two responders."""

    estate: Estate
    staff: Login
    reporter: Login
    plumber: Login
    plumber_responder: Responder
    electrician: Login
    electrician_responder: Responder


async def make_responder(
    services: Services, login: Login, community_id: int, *, skills: list[str], kind: str = "staff", **extra
) -> Responder:
    async with services.db.unit_of_work() as uow:
        r = Responder(
            community_id=community_id,
            account_id=login.account.id,
            kind=kind,
            display_name=login.account.display_name,
            skills=skills,
            **extra,
        )
        uow.session.add(r)
    return r


async def make_desk(services: Services) -> Desk:
    estate = await make_estate(services, households=4, members=1)
    cid = estate.community.id
    async with services.db.unit_of_work() as uow:
        await ensure_categories(uow, community_ids=[cid])
    staff = await make_login(services, role=Role.STAFF, community=estate.community)
    reporter = await make_login(services, role=Role.RESIDENT, community=estate.community, resident=estate.residents[0])
    plumber = await make_login(services, role=Role.STAFF, community=estate.community)
    electrician = await make_login(services, role=Role.STAFF, community=estate.community)
    plumber_r = await make_responder(services, plumber, cid, skills=["plumbing"], max_open=5)
    electrician_r = await make_responder(
        services, electrician, cid, skills=["electrical", "municipal"], max_open=5,
        home_building_id=estate.buildings[0].id,
    )  # fmt: skip
    return Desk(estate, staff, reporter, plumber, plumber_r, electrician, electrician_r)


@pytest.fixture
async def desk(services) -> Desk:
    return await make_desk(services)
