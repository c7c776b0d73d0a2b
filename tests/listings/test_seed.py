"""The demo board: seeded once per demo community, visible through search."""

from __future__ import annotations

from sqlalchemy import func, select

from api.core.viewer import Role
from api.listings.models import Listing
from api.listings.seed import DEMO, seed_demo
from tests.factories import make_estate, make_login
from tests.listings.conftest import gid

SEARCH = "query S($c: ID!) { listings(communityId: $c) { totalCount edges { node { kind details { __typename } } } } }"


async def test_the_demo_board_is_seeded_once_and_searchable(services, gql):
    estate = await make_estate(services, households=1, members=1, code="mingzhu")
    resident = await make_login(services, role=Role.RESIDENT, community=estate.community, resident=estate.residents[0])
    await seed_demo(services.db)
    await seed_demo(services.db)
    async with services.db.read_session() as session:
        assert await session.scalar(select(func.count()).select_from(Listing)) == len(DEMO)
    data = await gql(SEARCH, {"c": gid("Community", estate.community.id)}, token=resident.token)
    assert data["listings"]["totalCount"] == 7
    assert {e["node"]["kind"] for e in data["listings"]["edges"]} == {"RENTAL", "SALE", "JOB", "RENTAL_WANTED", "NEED"}
