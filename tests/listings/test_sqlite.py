"""The main listing flows on the embedded database (SQLite): LIKE search, reports, messages, the scan."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from api.core.database import Database
from api.core.migrations import upgrade
from api.listings import service as listings
from api.listings.models import Listing, ListingStatus
from tests.conftest import make_settings
from tests.listings.conftest import Board, crowd, expire_in, gid, inbox_titles, published, reload

SEARCH = """
query S($c: ID!, $f: ListingFilterInput) {
  listings(communityId: $c, filter: $f) { totalCount searchMode edges { node { title } } }
}
"""
REPORT = """
mutation R($input: ReportListingInput!) { reportListing(input: $input) { __typename ... on ReportListingSuccess { hiddenNow } } }
"""
SEND = """
mutation S($input: SendListingMessageInput!) { sendListingMessage(input: $input) { __typename ... on UserError { code } } }
"""


@pytest.fixture
def settings(tmp_path: Path):
    url = f"sqlite+aiosqlite:///{tmp_path / 'linli.db'}"
    upgrade(url)
    return make_settings(url, listings_messages_per_day=2)


@pytest.fixture
async def db(settings) -> AsyncIterator[Database]:
    database = Database(settings.database_url)
    try:
        yield database
    finally:
        await database.dispose()


async def test_listing_flows_on_sqlite(gql, services, board: Board, runner):
    # given
    bike = await published(services, board, title="儿童自行车", description="16寸")
    await published(services, board, title="旧冰箱")
    # search: a plain LIKE, title or description
    data = await gql(SEARCH, {"c": board.community_gid, "f": {"keyword": "16寸"}}, token=board.neighbour.token)
    assert data["listings"] == {"totalCount": 1, "searchMode": "LIKE", "edges": [{"node": {"title": "儿童自行车"}}]}
    # reports hide it at the threshold (3)
    people = await crowd(services, board.estate.community, 3)
    hidden = [
        (await gql(REPORT, {"input": {"listingId": gid("Listing", bike.id), "reason": "SPAM"}}, token=p.token))[
            "reportListing"
        ]["hiddenNow"]
        for p in people
    ]
    assert hidden == [False, False, True]
    # messages: the daily limit
    fridge = (await gql(SEARCH, {"c": board.community_gid}, token=board.neighbour.token))["listings"]["totalCount"]
    assert fridge == 1
    rows = await listings_of(services)
    other = next(r for r in rows if r.title == "旧冰箱")
    sent = [
        (
            await gql(
                SEND, {"input": {"listingId": gid("Listing", other.id), "body": "在吗"}}, token=board.neighbour.token
            )
        )["sendListingMessage"]["__typename"]
        for _ in range(3)
    ]
    assert sent == ["ListingMessageSuccess", "ListingMessageSuccess", "MessageLimitReachedError"]
    # the scan expires what is due
    await expire_in(services, other.id, -timedelta(minutes=1))
    async with services.db.unit_of_work(services.jobs) as uow:
        outcome = await listings.scan(uow)
    assert outcome.expired == [other.id]
    assert (await reload(services, other.id)).status == ListingStatus.EXPIRED.value
    await runner.drain()
    titles = await inbox_titles(services, board.poster.account.id)
    assert "信息因举报暂时隐藏：儿童自行车" in titles
    assert "信息已到期：旧冰箱" in titles
    assert titles.count("有人咨询：旧冰箱") == 2


async def listings_of(services) -> list[Listing]:
    async with services.db.read_session() as session:
        return list((await session.scalars(select(Listing))).all())
