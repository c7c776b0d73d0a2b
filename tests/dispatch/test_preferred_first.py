"""A request that puts its preferred responder first keeps doing so on every offer, not only the first."""

from __future__ import annotations

import pytest

from api.core.clock import utc_now
from api.core.viewer import Role
from api.dispatch import service as dispatch
from tests.factories import make_login
from tests.tickets.conftest import Desk, make_desk, make_responder


@pytest.fixture
async def desk(services) -> Desk:
    return await make_desk(services)


@pytest.mark.parametrize(("first", "expected"), [(True, "far"), (False, "neighbour")])
async def test_the_preferred_responder_is_offered_first_only_when_asked(services, desk, first, expected) -> None:
    community = desk.estate.community
    building = desk.estate.buildings[0]
    responders = {}
    for name, home in (("neighbour", building.id), ("far", None)):
        login = await make_login(services, role=Role.CRAFTSPERSON, community=community)
        responders[name] = await make_responder(
            services, login, community.id, skills=["haircut"], kind="craftsperson", home_building_id=home
        )
    need = dispatch.DispatchNeed(
        kind="visit", subject_id=987_654, community_id=community.id, skill="haircut", building_id=building.id,
        preferred_responder_id=responders["far"].id, preferred_first=first,
    )  # fmt: skip
    async with services.db.unit_of_work(services.jobs) as uow:
        request = await dispatch.open_request(uow, need)
    async with services.db.unit_of_work(services.jobs) as uow:
        offer = await dispatch.offer_to_best_candidate(uow, request_id=request.id, now=utc_now())
    assert offer is not None
    assert offer.responder_id == responders[expected].id
