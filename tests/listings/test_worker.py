"""Worker flows through the real handlers: moderation notices, the expiry scan (warn, expire), idempotence."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import func, select

from api.listings import service as listings
from api.listings.models import ListingStatus
from api.notifications.models import Notification
from tests.listings.conftest import Board, expire_in, inbox_titles, post, published, reload
from worker.actors import listings as actors


async def test_moderation_decisions_reach_the_posters_inbox_once(services, board: Board, runner, jobs):
    # given: one listing rejected, another approved
    first = await post(services, board, title="旧沙发")
    second = await post(services, board, title="旧衣柜")
    async with services.db.unit_of_work(services.jobs) as uow:
        await listings.moderate_listing(
            uow, viewer=board.staff_viewer, listing_id=first.id, approve=False, reason="照片不清楚"
        )
        await listings.moderate_listing(uow, viewer=board.staff_viewer, listing_id=second.id, approve=True)
    # when: the worker runs the jobs, and a redelivery runs them again
    assert await runner.drain() == ["listings.notify_poster", "listings.notify_poster"]
    for outbound in jobs.sent:
        await actors.handle_notify_poster(**outbound.job.kwargs)
    # then: one notice each, with the reason
    assert await inbox_titles(services, board.poster.account.id) == ["信息未通过审核：旧沙发", "信息已发布：旧衣柜"]
    async with services.db.read_session() as session:
        body = await session.scalar(select(Notification.body).where(Notification.subject_id == first.id))
    assert body == "原因：照片不清楚。修改后可重新提交。"


async def test_the_scan_warns_before_expiry_then_expires_once(services, board: Board, runner):
    # given: one listing expiring in two days, one expired a minute ago, one with weeks left
    soon = await published(services, board, title="快到期")
    due = await published(services, board, title="已到期")
    fresh = await published(services, board, title="还早")
    await expire_in(services, soon.id, timedelta(days=2))
    await expire_in(services, due.id, -timedelta(minutes=1))
    await runner.drain()  # the "published" notices
    # when: the scan runs, twice (a redelivered message, or the next period)
    await actors.handle_scan("p1")
    await actors.handle_scan("p2")
    # then
    assert (await reload(services, due.id)).status == ListingStatus.EXPIRED.value
    assert (await reload(services, soon.id)).status == ListingStatus.PUBLISHED.value
    assert (await reload(services, soon.id)).expiry_warned_at is not None
    assert (await reload(services, fresh.id)).expiry_warned_at is None
    titles = await inbox_titles(services, board.poster.account.id)
    assert titles[3:] == ["信息已到期：已到期", "信息即将到期：快到期"]
    # when: the warned listing's time is up
    await expire_in(services, soon.id, -timedelta(seconds=1))
    await actors.handle_scan("p3")
    # then: it expires and its poster is told; nothing is told twice
    assert (await reload(services, soon.id)).status == ListingStatus.EXPIRED.value
    assert (await inbox_titles(services, board.poster.account.id))[5:] == ["信息已到期：快到期"]
    async with services.db.read_session() as session:
        total = await session.scalar(select(func.count()).select_from(Notification))
    assert total == 6


async def test_a_renewed_listing_is_warned_and_expired_again(services, board: Board, runner):
    row = await published(services, board, title="出租车位")
    await expire_in(services, row.id, -timedelta(minutes=1))
    await actors.handle_scan("p1")
    async with services.db.unit_of_work(services.jobs) as uow:
        renewed = await listings.renew_listing(uow, viewer=board.poster_viewer, listing_id=row.id)
    assert renewed.status == ListingStatus.PUBLISHED.value
    await expire_in(services, row.id, -timedelta(minutes=1))
    await actors.handle_scan("p2")
    assert (await reload(services, row.id)).status == ListingStatus.EXPIRED.value
    assert (await inbox_titles(services, board.poster.account.id)).count("信息已到期：出租车位") == 2


async def test_renewal_goes_back_to_moderation_when_the_policy_says_so(services, board: Board):
    row = await published(services, board, title="求购二手钢琴")
    await expire_in(services, row.id, -timedelta(minutes=1))
    async with services.db.unit_of_work(services.jobs) as uow:
        await listings.scan(uow)
    policy = listings.ListingPolicy(renewal_needs_review=True)
    async with services.db.unit_of_work(services.jobs) as uow:
        renewed = await listings.renew_listing(uow, viewer=board.poster_viewer, listing_id=row.id, policy=policy)
    assert (renewed.status, renewed.expires_at, renewed.revision) == (ListingStatus.PENDING.value, None, 2)


async def test_message_delivery_is_idempotent(services, board: Board, runner, jobs):
    row = await published(services, board)
    async with services.db.unit_of_work(services.jobs) as uow:
        message = await listings.send_message(uow, viewer=board.neighbour_viewer, listing_id=row.id, body="还在吗")
    await runner.drain()
    await actors.handle_deliver_message(message.id)
    titles = await inbox_titles(services, board.poster.account.id)
    assert titles.count("有人咨询：闲置婴儿车") == 1
