"""Search: only published, unexpired, unhidden listings of the viewer's community, filtered, newest first."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import update

from api.core.clock import utc_now
from api.listings import service as listings
from api.listings.models import Listing
from tests.graphql.test_statement_count import counting
from tests.listings.conftest import Board, expire_in, gid, post, published, rental, sale

SEARCH = """
query Search($c: ID!, $f: ListingFilterInput, $first: Int, $after: String) {
  listings(communityId: $c, filter: $f, first: $first, after: $after) {
    totalCount searchMode scanLimit
    pageInfo { hasNextPage endCursor }
    edges { node { title kind priceCents } }
  }
}
"""


async def titles(gql, board: Board, token: str | None = None, **variables: object) -> dict[str, object]:
    data = await gql(SEARCH, {"c": board.community_gid, **variables}, token=token or board.neighbour.token)
    result: dict[str, object] = data["listings"]
    result["titles"] = [e["node"]["title"] for e in data["listings"]["edges"]]
    return result


async def test_residents_see_only_published_unexpired_unhidden_listings_newest_first(gql, services, board: Board):
    # given
    await published(services, board, title="二手冰箱")
    await published(services, board, title="儿童自行车")
    await post(services, board, title="待审核的沙发")  # pending
    await post(services, board, title="草稿", submit=False)
    expired = await published(services, board, title="过期的书桌")
    await expire_in(services, expired.id, -timedelta(minutes=1))
    hidden = await published(services, board, title="被举报的广告")
    async with services.db.unit_of_work() as uow:
        await uow.session.execute(update(Listing).where(Listing.id == hidden.id).values(hidden_at=utc_now()))
    # when
    result = await titles(gql, board)
    # then
    assert result["titles"] == ["儿童自行车", "二手冰箱"]
    assert (result["totalCount"], result["searchMode"], result["scanLimit"]) == (2, "ALL", None)
    # and another community's resident sees none of them
    other = await titles(gql, board, token=board.outsider.token)
    assert (other["titles"], other["totalCount"]) == ([], 0)


async def test_keyword_kind_price_area_and_compound_filters(gql, services, board: Board):
    # given
    await published(
        services, board, title="明珠花苑两室一厅出租", details=rental(area_m2=68, monthly_rent_cents=150_000)
    )
    await published(services, board, title="南区一室出租", details=rental(area_m2=35, monthly_rent_cents=90_000))
    await published(services, board, title="九成新婴儿车", description="明珠花苑自提", details=sale(20_000))
    await published(services, board, title="旧书若干", details=sale(0))
    compound = gid("Compound", board.estate.compound.id)
    cases: list[tuple[dict[str, object], list[str], str]] = [
        ({"keyword": "明珠花苑"}, ["九成新婴儿车", "明珠花苑两室一厅出租"], "TRIGRAM"),  # title or description
        ({"keyword": "出租"}, ["南区一室出租", "明珠花苑两室一厅出租"], "BOUNDED_SCAN"),
        ({"keyword": "车"}, ["九成新婴儿车"], "BOUNDED_SCAN"),
        ({"kinds": ["RENTAL"]}, ["南区一室出租", "明珠花苑两室一厅出租"], "ALL"),
        ({"kinds": ["SALE"], "maxPriceCents": 0}, ["旧书若干"], "ALL"),
        ({"minPriceCents": 90_000, "maxPriceCents": 100_000}, ["南区一室出租"], "ALL"),
        ({"minAreaM2": 50}, ["明珠花苑两室一厅出租"], "ALL"),
        ({"kinds": ["RENTAL"], "maxAreaM2": 40, "keyword": "一室"}, ["南区一室出租"], "BOUNDED_SCAN"),
        ({"compoundId": compound, "kinds": ["SALE"]}, ["旧书若干", "九成新婴儿车"], "ALL"),
        ({"keyword": "100%"}, [], "TRIGRAM"),  # wildcards are literal
    ]
    for given, expected, mode in cases:
        result = await titles(gql, board, f=given)
        assert (result["titles"], result["searchMode"]) == (expected, mode), given
        assert result["totalCount"] == len(expected)
        assert result["scanLimit"] == (5000 if mode == "BOUNDED_SCAN" else None)


async def test_pages_follow_newest_first_with_a_total(gql, services, board: Board):
    for i in range(5):
        await published(services, board, title=f"物品{i}")
    first = await titles(gql, board, first=2)
    assert (first["titles"], first["totalCount"]) == (["物品4", "物品3"], 5)
    cursor = first["pageInfo"]["endCursor"]  # type: ignore[index]
    second = await titles(gql, board, first=2, after=cursor)
    assert second["titles"] == ["物品2", "物品1"]
    third = await titles(gql, board, first=2, after=second["pageInfo"]["endCursor"])  # type: ignore[index]
    assert (third["titles"], third["pageInfo"]["hasNextPage"]) == (["物品0"], False)  # type: ignore[index]


async def test_bad_ranges_are_refused(gql_raw, board: Board):
    body = await gql_raw(
        SEARCH, {"c": board.community_gid, "f": {"minPriceCents": 10, "maxPriceCents": 5}}, token=board.neighbour.token
    )
    assert body["errors"][0]["extensions"] == {"code": "BAD_USER_INPUT", "field": "maxPriceCents"}


FEED = """
query F($c: ID!, $first: Int) {
  listings(communityId: $c, first: $first) {
    totalCount
    edges { node { title price compound { name } photos { url } details { __typename ... on SaleDetails { condition } } } }
  }
}
"""


async def test_a_page_costs_the_same_statements_for_5_or_50_listings(gql, services, board: Board):
    for i in range(50):
        await published(services, board, title=f"物品{i}")
    counts = []
    for first in (5, 50):
        with counting(services) as statements:
            data = await gql(FEED, {"c": board.community_gid, "first": first}, token=board.neighbour.token)
        assert len(data["listings"]["edges"]) == first
        counts.append(len([s for s in statements if s.lstrip().upper().startswith("SELECT")]))
    assert counts[0] == counts[1]


async def test_the_count_stops_past_its_limit(gql, services, board: Board):
    for i in range(4):
        await published(services, board, title=f"物品{i}")
    search = listings.search_listings(
        board.neighbour_viewer, community_id=board.cid, filter=listings.ListingFilter(), dialect="postgresql"
    )
    async with services.db.read_session() as session:
        assert await listings.count_capped(session, search.statement, limit=2) == 3  # "more than 2"
        assert await listings.count_capped(session, search.statement) == 4
    data = await gql(
        "query S($c: ID!) { listings(communityId: $c) { totalCount totalCountIsExact } }",
        {"c": board.community_gid},
        token=board.neighbour.token,
    )
    assert data["listings"] == {"totalCount": 4, "totalCountIsExact": True}


async def test_latin_keywords_ignore_case(gql, services, board: Board):
    await published(services, board, title="二手iPhone手机", details=sale(150_000))
    await published(services, board, title="旧手机壳")
    for keyword, mode in (("IPHONE", "TRIGRAM"), ("ip", "BOUNDED_SCAN"), ("手机", "BOUNDED_SCAN")):
        result = await titles(gql, board, f={"keyword": keyword})
        expected = ["旧手机壳", "二手iPhone手机"] if keyword == "手机" else ["二手iPhone手机"]
        assert (result["titles"], result["searchMode"]) == (expected, mode), keyword
