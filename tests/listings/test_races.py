"""Races on PostgreSQL: reports, the message limit and moderation hold under concurrent requests.

Every request goes through the ASGI app at once, in one event loop, over a pool of up to 40
connections, so up to 40 transactions really run side by side in PostgreSQL.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy import func, select, text

from api.core.database import Database
from api.listings.models import Listing, ListingConversation, ListingMessage, ListingReport
from tests.conftest import TABLES, make_settings
from tests.listings.conftest import Board, crowd, gid, post, published

pytestmark = pytest.mark.timeout(120)

REPORTERS = 100
THRESHOLD = 100
MESSAGE_LIMIT = 5

REPORT = """
mutation R($input: ReportListingInput!) {
  reportListing(input: $input) { __typename ... on ReportListingSuccess { hiddenNow } ... on UserError { code } }
}
"""
SEND = """
mutation S($input: SendListingMessageInput!) {
  sendListingMessage(input: $input) { __typename ... on UserError { code } }
}
"""
MODERATE = """
mutation M($input: ModerateListingInput!) {
  moderateListing(input: $input) { __typename ... on ListingSuccess { listing { status } } ... on UserError { code } }
}
"""


@pytest.fixture
def settings(pg_url):
    return make_settings(
        pg_url, db_pool_size=20, listings_report_threshold=THRESHOLD, listings_messages_per_day=MESSAGE_LIMIT
    )


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


async def scalar(services, stmt: Any) -> Any:
    async with services.db.read_session() as session:
        return await session.scalar(stmt)


async def test_120_concurrent_reports_count_each_reporter_once_and_hide_exactly_once(
    services, gql_raw, board: Board, jobs
):
    # given: a published listing, 100 residents, 20 of whom will report twice at the same moment
    row = await published(services, board, title="可疑广告")
    people = await crowd(services, board.estate.community, REPORTERS)
    reporters = people + people[:20]
    jobs.sent.clear()
    # when: all at once
    results = await asyncio.gather(
        *(
            gql_raw(REPORT, {"input": {"listingId": gid("Listing", row.id), "reason": "FRAUD"}}, token=p.token)
            for p in reporters
        )
    )
    # then: one report per person, counted once each; exactly one of them hid the listing
    kinds = outcome(results, "reportListing")
    assert kinds["ReportListingSuccess"] == REPORTERS
    # a duplicate either meets the unique index, or (once the listing is hidden) no longer finds it
    assert kinds["AlreadyReportedError"] + kinds["NotFoundError"] == 20
    assert sum(1 for r in results if r["data"]["reportListing"].get("hiddenNow")) == 1
    assert await scalar(services, select(func.count()).select_from(ListingReport)) == REPORTERS
    assert await scalar(services, select(Listing.report_count).where(Listing.id == row.id)) == REPORTERS
    assert await scalar(services, select(Listing.hidden_reason).where(Listing.id == row.id)) == "reports"
    assert jobs.actor_names == ["listings.notify_poster"]
    assert jobs.sent[0].job.kwargs["event"] == "hidden"


async def test_60_concurrent_messages_from_one_sender_keep_the_daily_limit(services, gql_raw, board: Board):
    # given
    row = await published(services, board)
    # when: one neighbour sends 60 messages at once
    results = await asyncio.gather(
        *(
            gql_raw(
                SEND, {"input": {"listingId": gid("Listing", row.id), "body": f"消息{i}"}}, token=board.neighbour.token
            )
            for i in range(60)
        )
    )
    # then: exactly the limit got through, in one conversation
    assert outcome(results, "sendListingMessage") == Counter(
        {"ListingMessageSuccess": MESSAGE_LIMIT, "MessageLimitReachedError": 60 - MESSAGE_LIMIT}
    )
    assert await scalar(services, select(func.count()).select_from(ListingMessage)) == MESSAGE_LIMIT
    assert await scalar(services, select(func.count()).select_from(ListingConversation)) == 1


async def test_80_first_messages_from_40_people_make_one_conversation_each(services, gql_raw, board: Board):
    row = await published(services, board)
    people = await crowd(services, board.estate.community, 40)
    results = await asyncio.gather(
        *(
            gql_raw(SEND, {"input": {"listingId": gid("Listing", row.id), "body": "你好"}}, token=p.token)
            for p in people + people
        )
    )
    assert outcome(results, "sendListingMessage") == Counter({"ListingMessageSuccess": 80})
    assert await scalar(services, select(func.count()).select_from(ListingConversation)) == 40
    assert await scalar(services, select(func.count()).select_from(ListingMessage)) == 80


async def test_40_concurrent_decisions_on_one_pending_listing_make_exactly_one(services, gql_raw, board: Board, jobs):
    # given: a pending listing
    row = await post(services, board)
    jobs.sent.clear()
    # when: staff approve and reject it 20 times each, all at once
    results = await asyncio.gather(
        *(
            gql_raw(
                MODERATE,
                {"input": {"listingId": gid("Listing", row.id), "approve": i % 2 == 0, "reason": "不符合规定"}},
                token=board.staff.token,
            )
            for i in range(40)
        )
    )
    # then: one decision; everyone else finds it decided
    assert outcome(results, "moderateListing") == Counter({"ListingSuccess": 1, "ListingStatusError": 39})
    [winner] = [
        r["data"]["moderateListing"]["listing"]["status"] for r in results if "listing" in r["data"]["moderateListing"]
    ]
    assert await scalar(services, select(Listing.status).where(Listing.id == row.id)) == winner.lower()
    assert jobs.actor_names == ["listings.notify_poster"]
