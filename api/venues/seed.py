"""Demo venues: 智汇城社区's fourth floor, open Monday to Saturday, and its Saturday children's crafts."""

from __future__ import annotations

from dataclasses import replace
from datetime import date, datetime, timedelta

from sqlalchemy import select

from api.accounts import service as accounts_service
from api.core.clock import local_today, utc_now
from api.core.database import Database, UnitOfWork
from api.core.viewer import Role
from api.registry.models import Community
from api.venues.models import (
    ActivityKind,
    ActivitySeries,
    Venue,
    VenueActivity,
    VenueKind,
    VenueOpeningHours,
)
from api.venues.service import SeriesDraft, occurrences

COMMUNITY_CODE = "zhihuicheng"
FLOOR = "党群服务中心四楼"
OPEN_DAYS = range(6)  # Monday to Saturday
OPENS, CLOSES = 9 * 60, 17 * 60
SERIES_WEEKS = 12
SATURDAY = 5

VENUES = (
    # kind, name, capacity, bookable, needs approval, rules
    (VenueKind.CHILDREN, "儿童活动室", 30, False, False, "滑梯和玩具请在家长陪同下使用；12岁以下儿童须有家长陪同。"),
    (VenueKind.LIBRARY, "图书室", 24, False, False, "馆藏图书一千余册，请保持安静，爱护图书。"),
    (VenueKind.SPORTS, "文体活动室", 30, True, True, "以老年居民活动为主；团体使用请提前预约，经社区审核。"),
    (
        VenueKind.MEETING,
        "会议室（自习室）",
        20,
        True,
        False,
        "会议与假期自习使用；每人每周可预约两次，每次不超过三小时。",
    ),
)
CRAFTS = (
    # title, start minute, description
    ("剪纸", 9 * 60, "学剪窗花和生肖，材料社区提供。"),
    ("刮画", 10 * 60 + 30, "用竹笔在刮画纸上作画，材料社区提供。"),
    ("陶艺", 14 * 60, "捏泥、拉坯和上釉，请穿便于弄脏的衣服。"),
)


async def seed_venues_demo(db: Database, *, today: date | None = None) -> tuple[int, int]:
    """The four rooms and the three Saturday series for ages 6–12 (12 places). Returns (venues, activities).

    Run again, it adds nothing: a community that has venues already is left alone.
    """
    async with db.unit_of_work() as uow:
        community = await uow.session.scalar(select(Community).where(Community.code == COMMUNITY_CODE))
        if community is None:
            return 0, 0
        if await uow.session.scalar(select(Venue.id).where(Venue.community_id == community.id).limit(1)):
            return 0, 0
        return await _seed(uow, community.id, today or local_today())


async def _seed(uow: UnitOfWork, community_id: int, today: date) -> tuple[int, int]:
    staff = await accounts_service.accounts_with_roles(uow.session, community_id=community_id, roles={Role.STAFF})
    organiser = staff[0] if staff else None
    venues: dict[VenueKind, Venue] = {}
    for kind, name, capacity, bookable, approval, rules in VENUES:
        venue = Venue(
            community_id=community_id, kind=kind.value, name=name, location=FLOOR, capacity=capacity, rules=rules,
            bookable=bookable, min_notice_hours=2, max_booking_minutes=180, weekly_quota=2, needs_approval=approval,
            active=True,
        )  # fmt: skip
        uow.session.add(venue)
        venues[kind] = venue
    await uow.session.flush()
    uow.session.add_all(
        VenueOpeningHours(venue_id=v.id, weekday=day, opens_minute=OPENS, closes_minute=CLOSES)
        for v in venues.values()
        for day in OPEN_DAYS
    )
    room = venues[VenueKind.CHILDREN]
    now = utc_now()
    made = 0
    for title, start_minute, description in CRAFTS:
        draft = SeriesDraft(
            venue_id=room.id, title=title, weekday=SATURDAY, start_minute=start_minute, duration_minutes=90,
            starts_on=today, until=today + timedelta(weeks=SERIES_WEEKS), capacity=12, kind=ActivityKind.CRAFT,
            description=description, min_age=6, max_age=12,
        )  # fmt: skip
        series = ActivitySeries(
            community_id=community_id, venue_id=room.id, title=title, kind=ActivityKind.CRAFT.value,
            weekday=SATURDAY, start_minute=start_minute, duration_minutes=90, starts_on=draft.starts_on,
            until_date=draft.until, exceptions=[], organiser_account_id=organiser,
        )  # fmt: skip
        uow.session.add(series)
        await uow.session.flush()
        for start in (s for s in occurrences(replace(draft)) if s > now):
            uow.session.add(_session(draft, series, community_id, start, organiser, now))
            made += 1
    await uow.session.flush()
    return len(venues), made


def _session(
    draft: SeriesDraft, series: ActivitySeries, community_id: int, start: datetime, organiser: int | None, now: datetime
) -> VenueActivity:
    return VenueActivity(
        community_id=community_id, venue_id=draft.venue_id, series_id=series.id, kind=series.kind, title=draft.title,
        description=draft.description, starts_at=start, ends_at=start + timedelta(minutes=draft.duration_minutes),
        capacity=draft.capacity, min_age=draft.min_age, max_age=draft.max_age,
        signup_opens_at=min(max(now, start - timedelta(days=draft.signup_opens_days_before)), start - timedelta(minutes=1)),
        signup_closes_at=start, price_cents=0, organiser_account_id=organiser, waitlist_seq=0,
    )  # fmt: skip
