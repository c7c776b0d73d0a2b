"""Notices: audiences as unions, delivery once per account, read receipts, unread first, scheduling, withdrawal."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import func, select, text

from api.core.clock import utc_now
from api.core.database import Database
from api.core.viewer import Role
from api.notices import service as notices
from api.notices.models import Notice, NoticeDelivery, NoticeStatus
from api.notifications.models import Notification
from tests.conftest import TABLES, make_settings
from tests.factories import make_estate, make_login
from tests.graphql.test_statement_count import counting
from tests.notices.conftest import Board
from tests.venues.conftest import crowd, db_id, gid
from worker.actors import notices as notices_actors

CREATE = """
mutation Create($input: CreateNoticeInput!) {
  createNotice(input: $input) {
    __typename ... on NoticeSuccess { notice { id status } } ... on UserError { code field }
  }
}
"""
PUBLISH = """
mutation Publish($input: PublishNoticeInput!) {
  publishNotice(input: $input) {
    __typename ... on NoticeSuccess { notice { id status publishAt publishedAt } } ... on UserError { code }
  }
}
"""
UPDATE = """
mutation Update($input: UpdateNoticeInput!) {
  updateNotice(input: $input) { __typename ... on NoticeSuccess { notice { title } } ... on UserError { code } }
}
"""
WITHDRAW = """
mutation Withdraw($input: WithdrawNoticeInput!) {
  withdrawNotice(input: $input) { __typename ... on NoticeSuccess { notice { status } } ... on UserError { code } }
}
"""
READ = """
mutation Read($input: MarkNoticeReadInput!) {
  markNoticeRead(input: $input) { __typename ... on NoticeSuccess { notice { readAt } } ... on UserError { code } }
}
"""
MINE = """
query Mine($first: Int, $after: String, $unreadOnly: Boolean) {
  myNotices(first: $first, after: $after, unreadOnly: $unreadOnly) {
    totalCount pageInfo { hasNextPage endCursor }
    edges { node { id title readAt audience { wholeCommunity } receipts { read } } }
  }
}
"""
STAFF_LIST = """
query List($communityId: ID!) {
  communityNotices(communityId: $communityId, first: 50) {
    totalCount
    edges { node { title status audience { wholeCommunity tags buildingIds compoundIds } receipts { delivered read unread } } }
  }
}
"""
UNREAD = "{ unreadNoticeCount }"


async def create(gql, board: Board, title: str, **audience: Any) -> str:
    data = await gql(
        CREATE,
        {
            "input": {
                "communityId": gid("Community", board.cid),
                "title": title,
                "body": f"{title}的内容",
                "audience": audience,
            }
        },
        token=board.staff.token,
    )
    assert data["createNotice"]["__typename"] == "NoticeSuccess", data
    return str(data["createNotice"]["notice"]["id"])


async def publish(gql, board: Board, notice_id: str, **extra: Any) -> dict[str, Any]:
    data = await gql(PUBLISH, {"input": {"noticeId": notice_id, **extra}}, token=board.staff.token)
    return dict(data["publishNotice"])


async def recipients(services, notice_id: str) -> set[int]:
    async with services.db.read_session() as session:
        rows = await session.scalars(
            select(NoticeDelivery.account_id).where(NoticeDelivery.notice_id == db_id(notice_id))
        )
        return set(rows.all())


async def test_an_audience_is_the_union_of_its_parts_and_each_account_gets_it_once(services, gql, jobs, runner, board):
    # given: a notice for compound B, building A1 and everyone living alone
    notice = await create(
        gql, board, "停水通知", compoundIds=[gid("Compound", board.compound_b.id)], buildingIds=[gid("Building", board.a1.id)],
        tags=["LIVES_ALONE"],
    )  # fmt: skip
    # when: it is published and the worker delivers it (and the job is delivered twice)
    published = await publish(gql, board, notice)
    assert published["notice"]["status"] == "PUBLISHED"
    assert jobs.actor_names == ["notices.deliver"]
    await runner.drain()
    await notices_actors.handle_deliver(db_id(notice))
    # then: A1, B1 and the one living alone in A2 have it, once; A2's other resident does not
    expected = {board.in_a1.login.account.id, board.in_b1.login.account.id, board.in_a2_alone.login.account.id}
    assert await recipients(services, notice) == expected
    async with services.db.read_session() as session:
        inbox = (await session.execute(select(Notification.recipient_account_id, Notification.title))).all()
    assert sorted(inbox) == sorted((a, "社区公告：停水通知") for a in expected)


async def test_residents_list_their_notices_unread_first_and_staff_see_read_receipts(services, gql, runner, board):
    # given: three notices to the whole community, published in order
    ids = []
    for title in ("一号公告", "二号公告", "三号公告"):
        ids.append(await create(gql, board, title, wholeCommunity=True))
        await publish(gql, board, ids[-1])
    await runner.drain()
    token = board.in_a1.login.token
    # when: the resident reads the newest one
    read = (await gql(READ, {"input": {"noticeId": ids[2]}}, token=token))["markNoticeRead"]
    assert read["notice"]["readAt"] is not None
    # then: unread first (newest first), then the read one, paged two at a time
    page1 = (await gql(MINE, {"first": 2}, token=token))["myNotices"]
    assert [e["node"]["title"] for e in page1["edges"]] == ["二号公告", "一号公告"]
    assert page1["totalCount"] == 3
    assert page1["pageInfo"]["hasNextPage"] is True
    page2 = (await gql(MINE, {"first": 2, "after": page1["pageInfo"]["endCursor"]}, token=token))["myNotices"]
    assert [e["node"]["title"] for e in page2["edges"]] == ["三号公告"]
    assert page2["edges"][0]["node"]["readAt"] is not None
    assert page2["pageInfo"]["hasNextPage"] is False
    # residents do not see the audience or anyone's receipts
    assert page1["edges"][0]["node"]["audience"] is None
    assert page1["edges"][0]["node"]["receipts"] is None
    assert (await gql(UNREAD, token=token))["unreadNoticeCount"] == 2
    unread = (await gql(MINE, {"unreadOnly": True}, token=token))["myNotices"]
    assert unread["totalCount"] == 2
    # the inbox item is marked read with it
    async with services.db.read_session() as session:
        inbox_read = await session.scalar(
            select(Notification.read_at).where(
                Notification.recipient_account_id == board.in_a1.login.account.id,
                Notification.event_key == f"notice:{db_id(ids[2])}",
            )
        )
    assert inbox_read is not None
    # staff see 4 deliveries (every resident with a login), 1 read
    listed = await gql(STAFF_LIST, {"communityId": gid("Community", board.cid)}, token=board.staff.token)
    receipts = {e["node"]["title"]: e["node"]["receipts"] for e in listed["communityNotices"]["edges"]}
    assert receipts["三号公告"] == {"delivered": 4, "read": 1, "unread": 3}
    assert receipts["一号公告"] == {"delivered": 4, "read": 0, "unread": 4}


async def test_a_scheduled_notice_is_published_by_the_worker_at_its_time(services, gql, jobs, runner, board):
    # given: a notice scheduled an hour ahead
    notice = await create(gql, board, "端午活动", wholeCommunity=True)
    at = utc_now() + timedelta(hours=1)
    scheduled = await publish(gql, board, notice, publishAt=at.isoformat())
    assert scheduled["notice"]["status"] == "SCHEDULED"
    assert jobs.sent == []
    # when: the periodic job runs before and after the time (and twice after)
    async with services.db.unit_of_work(services.jobs) as uow:
        assert await notices.publish_due(uow, now=at - timedelta(minutes=1)) == []
    for _ in range(2):
        async with services.db.unit_of_work(services.jobs) as uow:
            await notices.publish_due(uow, now=at + timedelta(seconds=1))
    await runner.drain()
    # then: published once, delivered to all four accounts
    assert jobs.actor_names == ["notices.deliver"]
    assert len(await recipients(services, notice)) == 4


async def test_withdrawn_notices_disappear_for_residents(services, gql, runner, board):
    notice = await create(gql, board, "错误通知", wholeCommunity=True)
    await publish(gql, board, notice)
    await runner.drain()
    token = board.in_b1.login.token
    assert (await gql(MINE, token=token))["myNotices"]["totalCount"] == 1
    withdrawn = (await gql(WITHDRAW, {"input": {"noticeId": notice}}, token=board.staff.token))["withdrawNotice"]
    assert withdrawn == {"__typename": "NoticeSuccess", "notice": {"status": "WITHDRAWN"}}
    assert (await gql(MINE, token=token))["myNotices"]["totalCount"] == 0
    node = await gql("query N($id: ID!) { node(id: $id) { id } }", {"id": notice}, token=token)
    assert node == {"node": None}
    late_read = (await gql(READ, {"input": {"noticeId": notice}}, token=token))["markNoticeRead"]
    assert late_read == {"__typename": "NotFoundError", "code": "NOT_FOUND"}


async def test_every_refusal_is_typed(services, gql, gql_raw, board):
    staff = board.staff.token
    cid = gid("Community", board.cid)
    # an empty audience
    empty = (await gql(CREATE, {"input": {"communityId": cid, "title": "无对象", "body": "x", "audience": {}}},
                       token=staff))["createNotice"]  # fmt: skip
    assert empty == {"__typename": "EmptyAudienceError", "code": "EMPTY_AUDIENCE", "field": "audience"}
    # a building of another community
    other = await make_estate(services, households=1, members=0)
    foreign = (await gql(CREATE, {"input": {"communityId": cid, "title": "别处", "body": "x",
                                            "audience": {"buildingIds": [gid("Building", other.buildings[0].id)]}}},
                         token=staff))["createNotice"]  # fmt: skip
    assert foreign == {"__typename": "NotFoundError", "code": "NOT_FOUND", "field": "buildingIds"}
    # a published notice cannot be edited or published again; a draft cannot be withdrawn
    notice = await create(gql, board, "已发布", wholeCommunity=True)
    draft = await create(gql, board, "草稿", wholeCommunity=True)
    await publish(gql, board, notice)
    edit = (await gql(UPDATE, {"input": {"noticeId": notice, "title": "改"}}, token=staff))["updateNotice"]
    again = await publish(gql, board, notice)
    pull_draft = (await gql(WITHDRAW, {"input": {"noticeId": draft}}, token=staff))["withdrawNotice"]
    assert edit == {"__typename": "NoticeNotEditableError", "code": "NOTICE_NOT_EDITABLE"}
    assert again == {"__typename": "NoticeNotEditableError", "code": "NOTICE_NOT_EDITABLE"}
    assert pull_draft == {"__typename": "NoticeNotPublishedError", "code": "NOTICE_NOT_PUBLISHED"}
    # a draft can be edited
    edited = (await gql(UPDATE, {"input": {"noticeId": draft, "title": "草稿二"}}, token=staff))["updateNotice"]
    assert edited == {"__typename": "NoticeSuccess", "notice": {"title": "草稿二"}}
    # residents cannot publish; another community's staff cannot see or touch the notice
    refused = await gql_raw(CREATE, {"input": {"communityId": cid, "title": "x", "body": "x",
                                               "audience": {"wholeCommunity": True}}}, token=board.in_a1.login.token)  # fmt: skip
    assert refused["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    outsider = await make_login(services, role=Role.STAFF, community=other.community)
    hidden = (await gql(WITHDRAW, {"input": {"noticeId": notice}}, token=outsider.token))["withdrawNotice"]
    assert hidden == {"__typename": "NotFoundError", "code": "NOT_FOUND"}
    # a resident cannot read a draft meant for nobody yet
    unseen = (await gql(READ, {"input": {"noticeId": draft}}, token=board.in_a1.login.token))["markNoticeRead"]
    assert unseen == {"__typename": "NotFoundError", "code": "NOT_FOUND"}


# -- races on PostgreSQL ------------------------------------------------------------------------------

POOL = 20


@pytest.fixture
def settings(pg_url):
    return make_settings(pg_url, db_pool_size=POOL)


@pytest.fixture
async def db(settings) -> AsyncIterator[Database]:
    database = Database(settings.database_url, pool_size=settings.db_pool_size)
    try:
        yield database
    finally:
        async with database.engine.begin() as conn:
            await conn.execute(text(f"TRUNCATE {TABLES} RESTART IDENTITY CASCADE"))
        await database.dispose()


@pytest.mark.timeout(120)
async def test_concurrent_deliveries_and_schedulers_reach_each_of_300_accounts_exactly_once(services, jobs, board):
    # given: 300 more residents and a notice scheduled for a moment ago
    await crowd(services, board.estate.community, 300)
    async with services.db.unit_of_work() as uow:
        notice = await notices.create_notice(
            uow, viewer=board.staff_viewer,
            draft=notices.NoticeDraft(board.cid, "全体居民通知", "内容", notices.Audience(whole_community=True)),
        )  # fmt: skip
        await notices.publish_notice(
            uow, viewer=board.staff_viewer, notice_id=notice.id, at=utc_now() + timedelta(seconds=1)
        )
    gate = asyncio.Semaphore(POOL)

    async def scheduler() -> list[int]:
        async with gate, services.db.unit_of_work(services.jobs) as uow:
            return await notices.publish_due(uow, now=utc_now() + timedelta(minutes=1))

    async def deliver() -> int:
        async with gate, services.db.unit_of_work(services.jobs) as uow:
            return await notices.deliver(uow, notice_id=notice.id)

    # when: 10 schedulers race, then 20 deliveries of the same job race
    published = await asyncio.gather(*(scheduler() for _ in range(10)))
    added = await asyncio.gather(*(deliver() for _ in range(20)))
    # then: published by one scheduler, one job; 304 accounts, each once, in the inbox once
    assert sorted(len(p) for p in published) == [0] * 9 + [1]
    assert jobs.actor_names == ["notices.deliver"]
    assert sum(added) == 304
    async with services.db.read_session() as session:
        deliveries = await session.scalar(select(func.count()).select_from(NoticeDelivery))
        inbox = await session.scalar(select(func.count()).select_from(Notification))
        status = await session.scalar(select(Notice.status).where(Notice.id == notice.id))
    assert (deliveries, inbox, status) == (304, 304, NoticeStatus.PUBLISHED.value)


async def test_a_page_of_notices_costs_the_same_statements_for_3_or_30(services, gql, runner, board):
    token = board.in_a1.login.token
    counts = []
    for start, upto in ((0, 3), (3, 30)):
        for i in range(start, upto):
            await publish(gql, board, await create(gql, board, f"公告{i}", wholeCommunity=True))
        await runner.drain()
        with counting(services) as statements:
            data = await gql(MINE, {"first": 50}, token=token)
        assert data["myNotices"]["totalCount"] == upto
        counts.append(len(statements))
    assert counts[0] == counts[1]
