from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
from sqlalchemy import select, text
from strawberry.relay import GlobalID

from api.accounts.service import viewer_for_token
from api.core.viewer import Role, Viewer
from api.dispatch.models import Responder
from api.graphql.context import Services
from api.tickets import service as tickets_service
from api.tickets.models import Ticket, TicketCategory
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


# -- helpers shared by the ticket and dispatch tests (added; the fixtures above are unchanged) ----

DEFAULT_ANSWERS: dict[str, dict[str, object]] = {
    "leak": {"where": "厨房"},
    "electrical": {"smell_gas": False},
    "gas": {"smell_gas": False},
    "lift": {"people_trapped": False},
    "appliance": {"appliance": "电饭锅"},
}
COUNTED = {
    "tickets": "ticket",
    "events": "ticket_event",
    "outbox": "outbox_message",
    "requests": "dispatch_request",
    "assignments": "assignment",
    "notifications": "notification",
}


def gid(type_name: str, id_: int) -> str:
    return str(GlobalID(type_name, str(id_)))


async def viewer_of(services: Services, login: Login) -> Viewer:
    """The Viewer a login's bearer token resolves to."""
    async with services.db.read_session() as session:
        viewer = await viewer_for_token(session, login.token)
    assert viewer is not None
    return viewer


async def category_of(services: Services, community_id: int, code: str) -> TicketCategory:
    async with services.db.read_session() as session:
        category = await session.scalar(
            select(TicketCategory).where(TicketCategory.community_id == community_id, TicketCategory.code == code)
        )
    assert category is not None
    return category


async def new_ticket(
    services: Services, desk: Desk, code: str = "leak", *, login: Login | None = None, household: int = 0, **draft
) -> Ticket:
    """Submit through the service as the desk's reporter (or `login`); returns the ticket row.

    Home categories default to the household's building, unit and room; others to a map point.
    `now=` is passed to submit; any other keyword goes to TicketDraft.
    """
    category = await category_of(services, desk.estate.community.id, code)
    h = desk.estate.households[household]
    if "place" not in draft:
        draft["place"] = (
            tickets_service.Place(building_id=h.building_id, unit=h.unit, room=h.room)
            if category.area == "home"
            else tickets_service.Place(latitude=38.04, longitude=114.51)
        )
    draft.setdefault("description", f"{category.name}，请尽快处理")
    draft.setdefault("answers", dict(DEFAULT_ANSWERS.get(code, {})))
    now = draft.pop("now", None)
    viewer = await viewer_of(services, login or desk.reporter)
    async with services.db.unit_of_work(services.jobs) as uow:
        return await tickets_service.submit(
            uow, viewer=viewer, draft=tickets_service.TicketDraft(category_id=category.id, **draft), now=now
        )


async def table_counts(services: Services) -> dict[str, int]:
    """Rows in the tables a ticket write touches (to show that a refused request wrote nothing)."""
    async with services.db.read_session() as session:
        return {
            name: int(await session.scalar(text(f"SELECT count(*) FROM {table}")) or 0)
            for name, table in COUNTED.items()
        }
