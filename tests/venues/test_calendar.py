"""iCalendar feeds read back with the `icalendar` library; "this week"; use figures; the demo seed."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from icalendar import Calendar
from sqlalchemy import func, select, update

from api.core.clock import utc_now
from api.venues import service as venues
from api.venues.models import ActivitySeries, SignUp, Venue, VenueActivity, VenueOpeningHours
from api.venues.seed import seed_venues_demo
from tests.factories import make_estate
from tests.venues.conftest import Hall, at, gid, make_activity, next_weekday, sign_up_as

RESET = "mutation { resetCalendarToken { token path } }"
THIS_WEEK = """
query Week($cid: ID!, $day: Date) {
  thisWeek(communityId: $cid, weekOf: $day) { title startsAt capacity placesLeft waitlistLength venue { name } }
}
"""
FIGURES = """
query Figures($cid: ID!, $from: DateTime!, $to: DateTime!) {
  venueFigures(communityId: $cid, from: $from, to: $to) {
    activities { venue { name } activityKind activities capacity placesTaken attended noShows waitlisted fillRate
                 attendanceRate }
    roomBookings { venue { name } confirmed pending }
  }
}
"""


def events(body: bytes) -> list[Any]:
    return list(Calendar.from_ical(body).walk("VEVENT"))


async def test_a_venue_feed_is_public_and_shows_title_time_and_place_only(services, client, hall: Hall):
    # given: two activities, one called off, and a booked slot
    paper = await make_activity(services, hall)
    clay = await make_activity(services, hall, title="陶艺", starts_at=paper.starts_at + timedelta(hours=5),
                               ends_at=paper.ends_at + timedelta(hours=5))  # fmt: skip
    await sign_up_as(services, hall.staff_viewer, paper.id, hall.kids[0].id)
    async with services.db.unit_of_work(services.jobs) as uow:
        await venues.cancel_activity(uow, viewer=hall.staff_viewer, activity_id=clay.id, reason="停电")
    # when: anyone fetches it, without logging in
    response = await client.get(f"/calendar/venues/{hall.children_room.id}.ics")
    missing = await client.get("/calendar/venues/999999.ics")
    # then
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/calendar; charset=utf-8"
    cal = Calendar.from_ical(response.content)
    assert str(cal["version"]) == "2.0"
    assert str(cal["x-wr-calname"]) == "儿童活动室"
    found = {str(e["uid"]): e for e in events(response.content)}
    assert set(found) == {f"venue-activity-{paper.id}@linli", f"venue-activity-{clay.id}@linli"}
    first = found[f"venue-activity-{paper.id}@linli"]
    assert (str(first["summary"]), str(first["location"]), str(first["status"])) == (
        "剪纸",
        "儿童活动室（四楼）",
        "CONFIRMED",
    )
    assert first.decoded("dtstart") == paper.starts_at
    assert first.decoded("dtend") == paper.ends_at
    assert str(found[f"venue-activity-{clay.id}@linli"]["status"]) == "CANCELLED"
    assert b"\xe5\xb0\x8f\xe6\x98\x8e" not in response.content  # no participant's name (小明)
    assert b"DESCRIPTION" not in response.content
    assert missing.status_code == 404


async def test_a_residents_own_feed_opens_with_their_calendar_token(services, client, gql, hall: Hall):
    # given: the parent's two children, one seated and one waiting, and a room booking
    activity = await make_activity(services, hall, capacity=1)
    parent = await _viewer(services, hall)
    [seated] = await sign_up_as(services, parent, activity.id, hall.kids[0].id)
    [waiting] = await sign_up_as(services, parent, activity.id, hall.kids[1].id)
    day = next_weekday(1, weeks=1)
    async with services.db.unit_of_work() as uow:
        room = await venues.book_room(uow, viewer=parent, venue_id=hall.meeting_room.id, starts_at=at(day, 9),
                                      ends_at=at(day, 10), purpose="家长会")  # fmt: skip
    token = (await gql(RESET, token=hall.parent.token))["resetCalendarToken"]
    # when
    response = await client.get(token["path"])
    newer = (await gql(RESET, token=hall.parent.token))["resetCalendarToken"]
    stale = await client.get(token["path"])
    neighbour = await client.get("/calendar/me.ics", params={"token": "not-a-token"})
    # then
    assert response.status_code == 200
    found = {str(e["uid"]): e for e in events(response.content)}
    assert set(found) == {f"venue-sign-up-{seated.id}@linli", f"venue-sign-up-{waiting.id}@linli",
                          f"venue-booking-{room.id}@linli"}  # fmt: skip
    mine = found[f"venue-sign-up-{seated.id}@linli"]
    assert str(mine["summary"]) == "剪纸（小明）"
    assert str(mine["status"]) == "CONFIRMED"
    assert str(mine["description"]) == f"签到码 {seated.check_in_code}"
    assert str(found[f"venue-sign-up-{waiting.id}@linli"]["summary"]) == "候补：剪纸（小红）"
    assert str(found[f"venue-sign-up-{waiting.id}@linli"]["status"]) == "TENTATIVE"
    assert str(found[f"venue-booking-{room.id}@linli"]["summary"]) == "预约会议室：家长会"
    assert newer["token"] != token["token"]
    assert (stale.status_code, neighbour.status_code) == (404, 404)


async def _viewer(services, hall: Hall):
    from tests.tickets.conftest import viewer_of

    return await viewer_of(services, hall.parent)


async def test_this_week_lists_what_is_on_with_places_left(services, gql, hall: Hall):
    # given: this coming Saturday's activity (next week's too) and one seat taken
    saturday = next_weekday(5)
    paper = await make_activity(services, hall, starts_at=at(saturday, 9), ends_at=at(saturday, 10, 30))
    await make_activity(services, hall, title="下周剪纸", starts_at=at(saturday + timedelta(weeks=1), 9),
                        ends_at=at(saturday + timedelta(weeks=1), 10, 30))  # fmt: skip
    await sign_up_as(services, hall.staff_viewer, paper.id, hall.kids[0].id)
    # when
    data = await gql(THIS_WEEK, {"cid": hall.community_gid, "day": saturday.isoformat()}, token=hall.parent.token)
    outsider = await gql(
        THIS_WEEK, {"cid": gid("Community", 999999), "day": saturday.isoformat()}, token=hall.parent.token
    )
    # then
    assert [(a["title"], a["capacity"], a["placesLeft"], a["waitlistLength"], a["venue"]["name"])
            for a in data["thisWeek"]] == [("剪纸", 12, 11, 0, "儿童活动室")]  # fmt: skip
    assert outsider["thisWeek"] == []


async def test_use_figures_per_venue_and_kind_are_computed_in_sql(services, gql, gql_raw, hall: Hall):
    # given: an activity that is over: 2 places of 2 taken, one attended, one no-show, one waited
    now = utc_now().replace(second=0, microsecond=0)
    start = now - timedelta(days=1)
    past = await make_activity(services, hall, capacity=2, starts_at=start, ends_at=start + timedelta(hours=1),
                               now=start - timedelta(days=1), signup_opens_at=start - timedelta(days=1))  # fmt: skip
    a, b = await sign_up_as(services, hall.staff_viewer, past.id, hall.kids[0].id, hall.kids[1].id,
                            now=start - timedelta(hours=2))  # fmt: skip
    await sign_up_as(services, hall.staff_viewer, past.id, hall.neighbour_kid.id, now=start - timedelta(hours=2))
    async with services.db.unit_of_work() as uow:
        await venues.check_in(uow, viewer=hall.staff_viewer, activity_id=past.id, code=a.check_in_code,
                              now=start + timedelta(minutes=5))  # fmt: skip
    async with services.db.unit_of_work() as uow:
        await venues.close_attendance(uow, activity_id=past.id, now=now)
    # when
    variables = {"cid": hall.community_gid, "from": (now - timedelta(days=7)).isoformat(), "to": now.isoformat()}
    data = await gql(FIGURES, variables, token=hall.staff.token)
    forbidden = await gql_raw(FIGURES, variables, token=hall.parent.token)
    # then
    assert data["venueFigures"]["activities"] == [
        {"venue": {"name": "儿童活动室"}, "activityKind": "CRAFT", "activities": 1, "capacity": 2, "placesTaken": 2,
         "attended": 1, "noShows": 1, "waitlisted": 1, "fillRate": 1.0, "attendanceRate": 0.5}
    ]  # fmt: skip
    assert data["venueFigures"]["roomBookings"] == []
    assert forbidden["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    assert b.status == "confirmed"


async def test_the_demo_seed_opens_zhihuichengs_fourth_floor(services):
    # given
    estate = await make_estate(services, households=1, members=1, code="zhihuicheng")
    # when
    first = await seed_venues_demo(services.db)
    again = await seed_venues_demo(services.db)
    # then: four rooms open Monday to Saturday 9:00–17:00, three Saturday crafts for ages 6–12 with 12 places
    assert first[0] == 4
    assert again == (0, 0)
    async with services.db.read_session() as session:
        rooms = (await session.scalars(select(Venue).where(Venue.community_id == estate.community.id))).all()
        hours = (await session.execute(
            select(VenueOpeningHours.weekday, VenueOpeningHours.opens_minute, VenueOpeningHours.closes_minute)
        )).all()  # fmt: skip
        series = (await session.scalars(select(ActivitySeries.title).order_by(ActivitySeries.id))).all()
        sessions = (await session.scalars(select(VenueActivity))).all()
        signups = await session.scalar(select(func.count()).select_from(SignUp))
    assert sorted(r.kind for r in rooms) == ["children", "library", "meeting", "sports"]
    assert sorted(set(hours)) == [(day, 540, 1020) for day in range(6)]
    assert len(hours) == 24
    assert list(series) == ["剪纸", "刮画", "陶艺"]
    assert len(sessions) == first[1] >= 3 * 12
    assert {(venues.local(s.starts_at).weekday(), s.min_age, s.max_age, s.capacity) for s in sessions} == {
        (5, 6, 12, 12)
    }
    assert signups == 0


async def test_a_cancelled_series_session_becomes_an_exception(services, hall: Hall):
    # given
    first = next_weekday(5)
    async with services.db.unit_of_work() as uow:
        series, made = await venues.create_series(
            uow, viewer=hall.staff_viewer,
            draft=venues.SeriesDraft(venue_id=hall.children_room.id, title="刮画", weekday=5, start_minute=630,
                                     duration_minutes=90, starts_on=first, until=first + timedelta(weeks=2),
                                     capacity=12),
        )  # fmt: skip
    # when
    async with services.db.unit_of_work(services.jobs) as uow:
        await venues.cancel_activity(uow, viewer=hall.staff_viewer, activity_id=made[1].id)
    # then
    async with services.db.read_session() as session:
        row = await session.get(ActivitySeries, series.id)
    assert row is not None
    assert row.exceptions == [(first + timedelta(weeks=1)).isoformat()]
    assert len(made) == 3


async def test_reminder_scan_skips_activities_already_reminded(services, hall: Hall):
    activity = await make_activity(services, hall)
    async with services.db.unit_of_work() as uow:
        await uow.session.execute(update(VenueActivity).values(reminded_at=utc_now()))
    async with services.db.unit_of_work(services.jobs) as uow:
        outcome = await venues.scan(uow, now=activity.starts_at - timedelta(hours=2))
    assert outcome.reminders == []
