"""Abuse reports that hide a listing pending review, and contact through the platform without phone numbers."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from api.core.viewer import Role
from api.listings.models import ListingReport
from api.settings import Settings
from tests.conftest import make_settings
from tests.factories import make_login
from tests.listings.conftest import Board, crowd, gid, inbox_titles, post, published, reload
from tests.tickets.conftest import viewer_of

REPORT = """
mutation Report($input: ReportListingInput!) {
  reportListing(input: $input) {
    __typename ... on ReportListingSuccess { hiddenNow } ... on UserError { message field code }
  }
}
"""
REVIEW = """
mutation Review($input: ReviewReportedListingInput!) {
  reviewReportedListing(input: $input) {
    __typename ... on ListingSuccess { listing { status hidden reportCount } } ... on UserError { field code }
  }
}
"""
QUEUE = """
query Q($c: ID!) { listingModerationQueue(communityId: $c) { totalCount edges { node { title status hidden reportCount } } } }
"""
SEND = """
mutation Send($input: SendListingMessageInput!) {
  sendListingMessage(input: $input) {
    __typename
    ... on ListingMessageSuccess { listingMessage { id body sentByYou } conversation { id youAreThePoster } }
    ... on MessageLimitReachedError { limit }
    ... on UserError { message field code }
  }
}
"""
REPLY = """
mutation Reply($input: ReplyToListingConversationInput!) {
  replyToListingConversation(input: $input) {
    __typename ... on ListingMessageSuccess { listingMessage { body sentByYou } } ... on UserError { code }
  }
}
"""
CONVERSATIONS = """
{ listingConversations { totalCount edges { node { id youAreThePoster listing { title }
  messages { totalCount edges { node { body sentByYou } } } } } } }
"""
NODE = "query N($id: ID!) { node(id: $id) { id } }"


@pytest.fixture
def settings(pg_url: str) -> Settings:
    return make_settings(pg_url, listings_report_threshold=3, listings_messages_per_day=3)


async def report(gql, listing_gid: str, token: str, reason: str = "FRAUD") -> dict[str, object]:
    data = await gql(REPORT, {"input": {"listingId": listing_gid, "reason": reason}}, token=token)
    result: dict[str, object] = data["reportListing"]
    return result


async def test_three_distinct_reports_hide_a_listing_until_staff_review_it(gql, services, board: Board, runner):
    # given: a published listing and three neighbours
    row = await published(services, board, title="高价收购旧手机")
    lid = gid("Listing", row.id)
    people = await crowd(services, board.estate.community, 3)
    # when: two report it, and one of them twice
    assert await report(gql, lid, people[0].token) == {"__typename": "ReportListingSuccess", "hiddenNow": False}
    assert await report(gql, lid, people[1].token, "SPAM") == {"__typename": "ReportListingSuccess", "hiddenNow": False}
    again = await report(gql, lid, people[1].token)
    assert (again["__typename"], again["code"]) == ("AlreadyReportedError", "ALREADY_REPORTED")
    # then: still shown
    assert (await reload(services, row.id)).hidden_at is None
    # when: a third person reports it
    assert await report(gql, lid, people[2].token) == {"__typename": "ReportListingSuccess", "hiddenNow": True}
    # then: hidden from residents, in the moderators' queue, and the poster is told
    assert (await gql(NODE, {"id": lid}, token=people[0].token))["node"] is None
    queue = await gql(QUEUE, {"c": board.community_gid}, token=board.staff.token)
    assert queue["listingModerationQueue"]["edges"] == [
        {"node": {"title": "高价收购旧手机", "status": "PUBLISHED", "hidden": True, "reportCount": 3}}
    ]
    await runner.drain()
    assert await inbox_titles(services, board.poster.account.id) == [
        "信息已发布：高价收购旧手机",
        "信息因举报暂时隐藏：高价收购旧手机",
    ]
    # when: staff review it and keep it
    kept = await gql(REVIEW, {"input": {"listingId": lid, "keep": True}}, token=board.staff.token)
    # then: shown again, counting from zero
    assert kept["reviewReportedListing"] == {
        "__typename": "ListingSuccess",
        "listing": {"status": "PUBLISHED", "hidden": False, "reportCount": 0},
    }
    assert (await gql(NODE, {"id": lid}, token=people[0].token))["node"] == {"id": lid}
    async with services.db.read_session() as session:
        resolved = (await session.scalars(select(ListingReport.resolved_at))).all()
    assert len(resolved) == 3
    assert all(r is not None for r in resolved)
    # and reviewing a listing that is not hidden is refused
    twice = await gql(REVIEW, {"input": {"listingId": lid, "keep": True}}, token=board.staff.token)
    assert twice["reviewReportedListing"]["code"] == "WRONG_LISTING_STATUS"


async def test_a_staff_report_hides_at_once_and_removal_needs_a_note(gql, services, board: Board, runner):
    row = await published(services, board, title="违规广告")
    lid = gid("Listing", row.id)
    assert await report(gql, lid, board.staff.token, "PROHIBITED") == {
        "__typename": "ReportListingSuccess",
        "hiddenNow": True,
    }
    no_note = await gql(REVIEW, {"input": {"listingId": lid, "keep": False}}, token=board.staff.token)
    assert no_note["reviewReportedListing"] == {"__typename": "ValidationError", "field": "note", "code": "INVALID"}
    removed = await gql(
        REVIEW, {"input": {"listingId": lid, "keep": False, "note": "不允许发布商业广告"}}, token=board.staff.token
    )
    assert removed["reviewReportedListing"]["listing"]["status"] == "REMOVED"
    await runner.drain()
    assert (await inbox_titles(services, board.poster.account.id))[-1] == "信息已下架：违规广告"


async def test_reports_of_own_unpublished_or_unknown_listings_are_refused(gql, services, board: Board):
    row = await published(services, board)
    own = await report(gql, gid("Listing", row.id), board.poster.token)
    assert (own["__typename"], own["code"]) == ("OwnListingError", "OWN_LISTING")
    pending = await post(services, board, title="待审核")
    for token in (board.neighbour.token, board.outsider.token):
        refused = await report(gql, gid("Listing", pending.id), token)
        assert refused["__typename"] == "NotFoundError"
    outside = await report(gql, gid("Listing", row.id), board.outsider.token)
    assert outside["__typename"] == "NotFoundError"


async def test_contact_through_the_platform_reaches_the_inbox_without_phone_numbers(
    gql, services, board: Board, runner
):
    # given
    row = await published(services, board, title="两室一厅出租")
    lid = gid("Listing", row.id)
    # when: a neighbour asks
    sent = await gql(SEND, {"input": {"listingId": lid, "body": "请问可以周末看房吗？"}}, token=board.neighbour.token)
    # then
    result = sent["sendListingMessage"]
    assert result["__typename"] == "ListingMessageSuccess"
    assert result["listingMessage"]["sentByYou"] is True
    assert result["conversation"]["youAreThePoster"] is False
    await runner.drain()
    assert (await inbox_titles(services, board.poster.account.id))[-1] == "有人咨询：两室一厅出租"
    # when: the poster answers in the conversation
    answer = await gql(
        REPLY, {"input": {"conversationId": result["conversation"]["id"], "body": "周六上午可以"}},
        token=board.poster.token,
    )  # fmt: skip
    assert answer["replyToListingConversation"] == {
        "__typename": "ListingMessageSuccess",
        "listingMessage": {"body": "周六上午可以", "sentByYou": True},
    }
    await runner.drain()
    assert await inbox_titles(services, board.neighbour.account.id) == ["发布者回复：两室一厅出租"]
    # then: both see the conversation; nothing in it carries a phone number
    for login, poster in ((board.poster, True), (board.neighbour, False)):
        data = await gql(CONVERSATIONS, token=login.token)
        [edge] = data["listingConversations"]["edges"]
        assert edge["node"]["youAreThePoster"] is poster
        assert [m["node"]["body"] for m in edge["node"]["messages"]["edges"]] == [
            "请问可以周末看房吗？",
            "周六上午可以",
        ]
        text = str(data)
        assert board.poster.phone not in text
        assert board.neighbour.phone not in text
    # and a third person cannot see or write in it
    stranger = await gql(
        REPLY, {"input": {"conversationId": result["conversation"]["id"], "body": "我也想看"}}, token=board.staff.token
    )
    assert stranger["replyToListingConversation"]["__typename"] == "NotFoundError"
    assert (await gql(CONVERSATIONS, token=board.staff.token))["listingConversations"]["totalCount"] == 0


async def test_messages_are_limited_per_sender_listing_and_day(gql, services, board: Board):
    row = await published(services, board)
    lid = gid("Listing", row.id)
    limit = services.settings.listings_messages_per_day
    for i in range(limit):
        ok = await gql(SEND, {"input": {"listingId": lid, "body": f"第{i}条"}}, token=board.neighbour.token)
        assert ok["sendListingMessage"]["__typename"] == "ListingMessageSuccess"
    over = await gql(SEND, {"input": {"listingId": lid, "body": "还在吗"}}, token=board.neighbour.token)
    assert (over["sendListingMessage"]["__typename"], over["sendListingMessage"]["limit"]) == (
        "MessageLimitReachedError",
        limit,
    )
    # another listing is counted apart
    other = await published(services, board, title="另一件")
    fine = await gql(
        SEND, {"input": {"listingId": gid("Listing", other.id), "body": "你好"}}, token=board.neighbour.token
    )
    assert fine["sendListingMessage"]["__typename"] == "ListingMessageSuccess"


async def test_messages_to_own_hidden_or_foreign_listings_are_refused(gql, services, board: Board):
    row = await published(services, board)
    lid = gid("Listing", row.id)
    own = await gql(SEND, {"input": {"listingId": lid, "body": "hi"}}, token=board.poster.token)
    assert own["sendListingMessage"]["code"] == "OWN_LISTING"
    foreign = await gql(SEND, {"input": {"listingId": lid, "body": "hi"}}, token=board.outsider.token)
    assert foreign["sendListingMessage"]["__typename"] == "NotFoundError"
    empty = await gql(SEND, {"input": {"listingId": lid, "body": "  "}}, token=board.neighbour.token)
    assert (empty["sendListingMessage"]["__typename"], empty["sendListingMessage"]["field"]) == (
        "ValidationError",
        "body",
    )
    draft = await post(services, board, submit=False)
    unpublished = await gql(
        SEND, {"input": {"listingId": gid("Listing", draft.id), "body": "hi"}}, token=board.neighbour.token
    )
    assert unpublished["sendListingMessage"]["__typename"] == "NotFoundError"
    # a volunteer without a resident record in the community may not post, but may ask
    volunteer = await make_login(services, role=Role.VOLUNTEER, community=board.estate.community)
    assert (await viewer_of(services, volunteer)).resident_id is None
    asked = await gql(SEND, {"input": {"listingId": lid, "body": "hi"}}, token=volunteer.token)
    assert asked["sendListingMessage"]["__typename"] == "ListingMessageSuccess"
