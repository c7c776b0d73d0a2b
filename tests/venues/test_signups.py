"""Sign-ups through GraphQL: guardians and children, every typed refusal, the waitlist, offers, check-in."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select, update

from api.core.clock import utc_now
from api.notifications.models import Notification
from api.venues import service as venues
from api.venues.models import SignUp, SignUpStatus, VenueActivity
from tests.tickets.conftest import viewer_of
from tests.venues.conftest import Hall, at, count, db_id, gid, make_activity, next_weekday, sign_up_as

SIGN_UP = """
mutation SignUp($input: SignUpInput!) {
  signUp(input: $input) {
    __typename
    ... on SignUpSuccess {
      confirmed waitlisted
      signUps { id status seat waitlistPosition waitingAhead participantName checkInCode qrPayload
                activity { id placesLeft placesTaken waitlistLength } }
    }
    ... on SignUpBlockedError { until }
    ... on UserError { message field code }
  }
}
"""
CANCEL = """
mutation Cancel($input: CancelSignUpInput!) {
  cancelSignUp(input: $input) { __typename ... on SignUpChangeSuccess { signUp { status seat } } ... on UserError { code } }
}
"""
ACCEPT = """
mutation Accept($input: AcceptOfferInput!) {
  acceptOffer(input: $input) { __typename ... on SignUpChangeSuccess { signUp { status seat } } ... on UserError { code } }
}
"""
CHECK_IN = """
mutation CheckIn($input: CheckInInput!) {
  checkIn(input: $input) {
    __typename ... on SignUpChangeSuccess { signUp { status checkedInAt participantName } } ... on UserError { code }
  }
}
"""
CANCEL_ACTIVITY = """
mutation CancelActivity($input: CancelActivityInput!) {
  cancelActivity(input: $input) {
    __typename ... on CancelActivitySuccess { signUpsCancelled activity { cancelledAt cancelReason } }
    ... on UserError { code }
  }
}
"""
MY_SIGN_UPS = "{ mySignUps { id status participantName activity { title } } }"


async def sign_up(gql, token: str, activity_id: int, *residents: int) -> dict[str, Any]:
    data = await gql(
        SIGN_UP,
        {
            "input": {
                "activityId": gid("Activity", activity_id),
                "participantIds": [gid("Resident", r) for r in residents],
            }
        },
        token=token,
    )
    result: dict[str, Any] = data["signUp"]
    return result


# -- guardians and children -------------------------------------------------------------------------


async def test_a_parent_signs_up_two_children_in_one_go(services, gql, hall: Hall):
    # given
    activity = await make_activity(services, hall)
    # when
    result = await sign_up(gql, hall.parent.token, activity.id, hall.kids[0].id, hall.kids[1].id)
    # then
    assert result["__typename"] == "SignUpSuccess"
    assert (result["confirmed"], result["waitlisted"]) == (2, 0)
    rows = result["signUps"]
    assert [r["participantName"] for r in rows] == ["小明", "小红"]
    assert [r["status"] for r in rows] == ["CONFIRMED", "CONFIRMED"]
    assert sorted(r["seat"] for r in rows) == sorted({r["seat"] for r in rows})  # two different seats
    assert all(1 <= r["seat"] <= 12 and len(r["checkInCode"]) == 6 for r in rows)
    assert rows[0]["qrPayload"] == f"LINLI-SIGNUP:{db_id(rows[0]['id'])}:{rows[0]['checkInCode']}"
    assert rows[1]["activity"] == {"id": gid("Activity", activity.id), "placesLeft": 10, "placesTaken": 2,
                                   "waitlistLength": 0}  # fmt: skip
    mine = await gql(MY_SIGN_UPS, token=hall.parent.token)
    assert sorted(s["participantName"] for s in mine["mySignUps"]) == ["小明", "小红"]
    assert (await gql(MY_SIGN_UPS, token=hall.neighbour.token))["mySignUps"] == []


async def test_a_child_in_the_same_household_counts_as_in_ones_care(services, gql, hall: Hall):
    # given: grandpa lives with the children but is not their registered guardian
    activity = await make_activity(services, hall)
    async with services.db.unit_of_work() as uow:
        await uow.session.execute(
            update(type(hall.grandpa)).where(type(hall.grandpa).id == hall.kids[0].id).values(guardian_id=None)
        )
    grandpa_login = await _login_for(services, hall, hall.grandpa)
    # when
    result = await sign_up(gql, grandpa_login.token, activity.id, hall.kids[0].id)
    # then
    assert result["__typename"] == "SignUpSuccess"
    assert [r["participantName"] for r in result["signUps"]] == ["小明"]


async def _login_for(services, hall: Hall, resident):
    from api.core.viewer import Role
    from tests.factories import make_login

    return await make_login(services, role=Role.RESIDENT, community=hall.estate.community, resident=resident)


async def test_a_guardian_sees_and_cancels_what_staff_signed_their_child_up_for(services, gql, hall: Hall):
    # given: staff signed 小明 up at the desk
    activity = await make_activity(services, hall)
    [row] = await sign_up_as(services, hall.staff_viewer, activity.id, hall.kids[0].id)
    # when
    mine = await gql(MY_SIGN_UPS, token=hall.parent.token)
    theirs = await gql(MY_SIGN_UPS, token=hall.neighbour.token)
    cancelled = await gql(CANCEL, {"input": {"signUpId": gid("SignUp", row.id)}}, token=hall.parent.token)
    # then
    assert [s["participantName"] for s in mine["mySignUps"]] == ["小明"]
    assert theirs["mySignUps"] == []
    assert cancelled["cancelSignUp"]["signUp"] == {"status": "CANCELLED", "seat": None}


async def test_an_adult_signs_up_themself(services, gql, hall: Hall):
    # given: a talk for adults
    activity = await make_activity(services, hall, title="健康讲座", min_age=18, max_age=None)
    # when
    result = await sign_up(gql, hall.neighbour.token, activity.id, hall.neighbour_resident.id)
    # then
    assert result["__typename"] == "SignUpSuccess"
    assert result["signUps"][0]["status"] == "CONFIRMED"


# -- every refusal is a typed error and writes nothing ------------------------------------------------


@pytest.mark.parametrize(
    ("case", "typename", "code"),
    [
        ("too_young", "TooYoungError", "TOO_YOUNG"),
        ("too_old", "TooOldError", "TOO_OLD"),
        ("not_my_child", "NotGuardianError", "NOT_GUARDIAN"),
        ("not_open_yet", "OutsideSignupWindowError", "OUTSIDE_SIGNUP_WINDOW"),
        ("closed", "OutsideSignupWindowError", "OUTSIDE_SIGNUP_WINDOW"),
        ("cancelled", "ActivityCancelledError", "ACTIVITY_CANCELLED"),
        ("too_many", "ValidationError", "INVALID"),
        ("unknown_activity", "NotFoundError", "NOT_FOUND"),
    ],
)
async def test_refusals_are_typed_and_write_nothing(services, gql, hall: Hall, case, typename, code):
    # given
    now = utc_now()
    overrides: dict[str, Any] = {}
    if case == "not_open_yet":
        overrides = {"signup_opens_at": now + timedelta(days=1)}
    activity = await make_activity(services, hall, **overrides)
    participants = [hall.kids[0].id]
    activity_id = activity.id
    if case == "too_young":
        participants = [hall.kids[0].id, hall.toddler.id]  # one of two too young: neither is signed up
    elif case == "too_old":
        participants = [hall.parent_resident.id]  # 76: the parent signs up themself
    elif case == "not_my_child":
        participants = [hall.kids[0].id, hall.neighbour_kid.id]
    elif case == "closed":
        async with services.db.unit_of_work() as uow:
            await uow.session.execute(
                update(VenueActivity).where(VenueActivity.id == activity.id)
                .values(signup_opens_at=now - timedelta(days=2), signup_closes_at=now - timedelta(minutes=1))
            )  # fmt: skip
    elif case == "cancelled":
        async with services.db.unit_of_work(services.jobs) as uow:
            await venues.cancel_activity(uow, viewer=hall.staff_viewer, activity_id=activity.id)
    elif case == "too_many":
        participants = [hall.kids[0].id] * 11
    elif case == "unknown_activity":
        activity_id = activity.id + 1000
    # when
    result = await sign_up(gql, hall.parent.token, activity_id, *participants)
    # then
    assert (result["__typename"], result["code"]) == (typename, code), result
    assert await count(services, SignUp) == 0


async def test_signing_up_twice_is_refused(services, gql, hall: Hall):
    # given
    activity = await make_activity(services, hall)
    first = await sign_up(gql, hall.parent.token, activity.id, hall.kids[0].id)
    # when: the second adds the sister but repeats the brother
    again = await sign_up(gql, hall.parent.token, activity.id, hall.kids[1].id, hall.kids[0].id)
    # then
    assert first["__typename"] == "SignUpSuccess"
    assert (again["__typename"], again["code"]) == ("AlreadySignedUpError", "ALREADY_SIGNED_UP")
    assert "小明" in again["message"]
    assert await count(services, SignUp) == 1


async def test_three_no_shows_in_90_days_block_sign_ups_for_30_days(services, gql, hall: Hall):
    # given: 小明 missed three Saturdays in the last two months
    now = utc_now().replace(second=0, microsecond=0)
    for weeks_ago in (8, 5, 2):
        start = now - timedelta(weeks=weeks_ago)
        past = await make_activity(
            services, hall, starts_at=start, ends_at=start + timedelta(hours=1), now=start - timedelta(days=1),
            signup_opens_at=start - timedelta(days=1),
        )  # fmt: skip
        await sign_up_as(services, hall.staff_viewer, past.id, hall.kids[0].id, now=start - timedelta(hours=2))
        async with services.db.unit_of_work() as uow:
            assert await venues.close_attendance(uow, activity_id=past.id, now=now) == 1
    activity = await make_activity(services, hall)
    # when
    blocked = await sign_up(gql, hall.parent.token, activity.id, hall.kids[0].id)
    sister = await sign_up(gql, hall.parent.token, activity.id, hall.kids[1].id)
    # then: blocked until 30 days after the last no-show; his sister is not
    assert (blocked["__typename"], blocked["code"]) == ("SignUpBlockedError", "BLOCKED")
    last_end = now - timedelta(weeks=2) + timedelta(hours=1)
    assert abs((_parse(blocked["until"]) - (last_end + timedelta(days=30))).total_seconds()) < 1
    assert sister["__typename"] == "SignUpSuccess"
    # and two no-shows would not have blocked him (configurable limit)
    async with services.db.read_session() as session:
        lenient = venues.VenuePolicy(no_show_limit=4)
        assert await venues.blocked_until(session, resident_ids=[hall.kids[0].id], policy=lenient, now=now) == {}


def _parse(value: str):
    from datetime import datetime

    return datetime.fromisoformat(value)


# -- the waitlist -------------------------------------------------------------------------------------


async def test_when_full_sign_ups_join_the_waitlist_in_order(services, gql, hall: Hall):
    # given: two places, for all ages
    activity = await make_activity(services, hall, capacity=2, min_age=None, max_age=None)
    # when: four children, one after the other
    a = await sign_up(gql, hall.parent.token, activity.id, hall.kids[0].id, hall.kids[1].id)
    b = await sign_up(gql, hall.neighbour.token, activity.id, hall.neighbour_kid.id)
    c = await sign_up(gql, hall.staff.token, activity.id, hall.grandpa.id)  # staff sign up a resident by phone
    # then: "full" is not an error
    assert (a["confirmed"], a["waitlisted"]) == (2, 0)
    assert b["__typename"] == "SignUpSuccess"
    assert [(s["status"], s["waitlistPosition"], s["waitingAhead"]) for s in b["signUps"]] == [("WAITLISTED", 1, 0)]
    assert [(s["status"], s["waitlistPosition"], s["waitingAhead"]) for s in c["signUps"]] == [("WAITLISTED", 2, 1)]
    assert c["signUps"][0]["activity"] == {"id": gid("Activity", activity.id), "placesLeft": 0, "placesTaken": 2,
                                           "waitlistLength": 2}  # fmt: skip


async def test_a_cancellation_offers_the_seat_to_the_next_in_line_who_accepts(services, gql, hall: Hall, runner, jobs):
    # given: full, with the neighbour's boy first in line
    activity = await make_activity(services, hall, capacity=2)
    placed = await sign_up(gql, hall.parent.token, activity.id, hall.kids[0].id, hall.kids[1].id)
    waiting = (await sign_up(gql, hall.neighbour.token, activity.id, hall.neighbour_kid.id))["signUps"][0]
    freed_seat = placed["signUps"][1]["seat"]
    # when: 小红 drops out, and the worker runs
    cancelled = await gql(CANCEL, {"input": {"signUpId": placed["signUps"][1]["id"]}}, token=hall.parent.token)
    ran = await runner.drain()
    # then: the seat is held for the boy, who is told
    assert cancelled["cancelSignUp"] == {
        "__typename": "SignUpChangeSuccess",
        "signUp": {"status": "CANCELLED", "seat": None},
    }
    # (the runner ignores the expiry job's delay: run early, it finds the offer still open and does nothing)
    assert ran == ["venues.offer_next", "venues.expire_offer"]
    offer = await _row(services, db_id(waiting["id"]))
    assert (offer.status, offer.seat) == ("offered", freed_seat)
    assert offer.offer_expires_at is not None
    assert [o.job.actor_name for o in jobs.sent][-1] == "venues.expire_offer"
    titles = await _inbox(services, hall.neighbour.account.id)
    assert titles == ["候补到位：剪纸"]
    # when: he accepts
    accepted = await gql(ACCEPT, {"input": {"signUpId": waiting["id"]}}, token=hall.neighbour.token)
    again = await gql(ACCEPT, {"input": {"signUpId": waiting["id"]}}, token=hall.neighbour.token)
    # then
    assert accepted["acceptOffer"]["signUp"] == {"status": "CONFIRMED", "seat": freed_seat}
    assert again["acceptOffer"] == {"__typename": "SeatOfferNotOpenError", "code": "OFFER_NOT_OPEN"}


async def test_an_offer_that_lapses_moves_on_to_the_next(services, hall: Hall, runner, jobs):
    # given: full, two waiting
    activity = await make_activity(services, hall, capacity=1)
    parent = hall.staff_viewer
    [first] = await sign_up_as(services, parent, activity.id, hall.kids[0].id)
    [second] = await sign_up_as(services, parent, activity.id, hall.kids[1].id)
    [third] = await sign_up_as(services, parent, activity.id, hall.neighbour_kid.id)
    async with services.db.unit_of_work(services.jobs) as uow:
        await venues.cancel_sign_up(uow, viewer=parent, sign_up_id=first.id)
    await runner.drain()
    offered = await _row(services, second.id)
    assert offered.status == "offered"
    assert offered.offer_expires_at is not None
    # when: the expiry job runs on time (it finds the offer still open) …
    async with services.db.unit_of_work(services.jobs) as uow:
        early = await venues.expire_offer(
            uow, sign_up_id=second.id, now=offered.offer_expires_at - timedelta(seconds=1)
        )
    async with services.db.unit_of_work(services.jobs) as uow:
        lapsed = await venues.expire_offer(uow, sign_up_id=second.id, now=offered.offer_expires_at)
    async with services.db.unit_of_work(services.jobs) as uow:
        replay = await venues.expire_offer(uow, sign_up_id=second.id, now=offered.offer_expires_at)
    ran = await runner.drain(skip={"venues.expire_offer"})
    # then: the seat moved to the third child
    assert (early, lapsed, replay) == (False, True, False)
    assert "venues.offer_next" in ran
    assert (await _row(services, second.id)).status == "cancelled"
    assert (await _row(services, second.id)).cancel_reason == "offer_expired"
    moved = await _row(services, third.id)
    assert (moved.status, moved.seat) == ("offered", 1)


async def test_declining_an_offer_moves_it_on(services, hall: Hall, runner):
    # given
    activity = await make_activity(services, hall, capacity=1)
    staff = hall.staff_viewer
    [first] = await sign_up_as(services, staff, activity.id, hall.kids[0].id)
    [second] = await sign_up_as(services, staff, activity.id, hall.kids[1].id)
    [third] = await sign_up_as(services, staff, activity.id, hall.neighbour_kid.id)
    async with services.db.unit_of_work(services.jobs) as uow:
        await venues.cancel_sign_up(uow, viewer=staff, sign_up_id=first.id)
    await runner.drain(skip={"venues.expire_offer"})
    # when: the second declines (cancels the offered sign-up)
    async with services.db.unit_of_work(services.jobs) as uow:
        await venues.cancel_sign_up(uow, viewer=staff, sign_up_id=second.id)
    await runner.drain(skip={"venues.expire_offer"})
    # then
    assert (await _row(services, third.id)).status == "offered"


async def test_cancelling_twice_or_after_the_start_is_refused(services, gql, hall: Hall):
    # given: one sign-up for next Saturday, one for an activity under way
    activity = await make_activity(services, hall)
    [row] = (await sign_up(gql, hall.parent.token, activity.id, hall.kids[0].id))["signUps"]
    now = utc_now().replace(second=0, microsecond=0)
    running = await make_activity(
        services, hall, title="陶艺", starts_at=now - timedelta(minutes=10), ends_at=now + timedelta(hours=1),
        now=now - timedelta(days=1), signup_opens_at=now - timedelta(days=1),
    )  # fmt: skip
    parent = await viewer_of(services, hall.parent)
    [late] = await sign_up_as(services, parent, running.id, hall.kids[1].id, now=now - timedelta(hours=1))
    # when
    first = await gql(CANCEL, {"input": {"signUpId": row["id"]}}, token=hall.parent.token)
    second = await gql(CANCEL, {"input": {"signUpId": row["id"]}}, token=hall.parent.token)
    begun = await gql(CANCEL, {"input": {"signUpId": gid("SignUp", late.id)}}, token=hall.parent.token)
    stranger = await gql(CANCEL, {"input": {"signUpId": gid("SignUp", late.id)}}, token=hall.neighbour.token)
    # then
    assert first["cancelSignUp"]["__typename"] == "SignUpChangeSuccess"
    assert second["cancelSignUp"] == {"__typename": "SignUpNotActiveError", "code": "SIGN_UP_NOT_ACTIVE"}
    assert begun["cancelSignUp"] == {"__typename": "AlreadyStartedError", "code": "ALREADY_STARTED"}
    assert stranger["cancelSignUp"] == {"__typename": "NotFoundError", "code": "NOT_FOUND"}


# -- attendance -------------------------------------------------------------------------------------


async def test_staff_check_in_by_code_or_qr_and_the_rest_become_no_shows(services, gql, gql_raw, hall: Hall):
    # given: an activity that started ten minutes ago
    now = utc_now().replace(second=0, microsecond=0)
    start = now - timedelta(minutes=10)
    activity = await make_activity(
        services, hall, starts_at=start.replace(second=0, microsecond=0), ends_at=(start + timedelta(hours=1)).replace(second=0, microsecond=0),
        now=start - timedelta(days=1), signup_opens_at=start - timedelta(days=1),
    )  # fmt: skip
    a, b = await sign_up_as(
        services, hall.staff_viewer, activity.id, hall.kids[0].id, hall.kids[1].id, now=start - timedelta(hours=1)
    )
    code_input = {"activityId": gid("Activity", activity.id), "code": a.check_in_code.lower()}
    # when
    by_code = await gql(CHECK_IN, {"input": code_input}, token=hall.staff.token)
    twice = await gql(CHECK_IN, {"input": code_input}, token=hall.staff.token)
    wrong = await gql(CHECK_IN, {"input": {**code_input, "code": "ZZZZZZ"}}, token=hall.staff.token)
    by_parent = await gql_raw(CHECK_IN, {"input": code_input}, token=hall.parent.token)
    # then
    assert by_code["checkIn"]["__typename"] == "SignUpChangeSuccess"
    assert by_code["checkIn"]["signUp"]["status"] == "ATTENDED"
    assert twice["checkIn"] == {"__typename": "AlreadyCheckedInError", "code": "ALREADY_CHECKED_IN"}
    assert wrong["checkIn"] == {"__typename": "NotFoundError", "code": "NOT_FOUND"}
    assert by_parent["data"] is None  # residents may not: a GraphQL error, not a payload
    assert by_parent["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    # when: check-in has closed and the scan runs
    later = activity.ends_at + timedelta(hours=3)
    async with services.db.unit_of_work(services.jobs) as uow:
        outcome = await venues.scan(uow, now=later)
    async with services.db.unit_of_work(services.jobs) as uow:  # what the job does, at that time
        no_shows = await venues.close_attendance(uow, activity_id=activity.id, now=later)
    async with services.db.unit_of_work(services.jobs) as uow:
        replay = await venues.close_attendance(uow, activity_id=activity.id, now=later)
    # then
    assert outcome.attendance == [activity.id]
    assert (no_shows, replay) == (1, 0)
    assert [(await _row(services, a.id)).status, (await _row(services, b.id)).status] == ["attended", "no_show"]
    # and a late QR scan still turns a recorded no-show into attended
    async with services.db.unit_of_work(services.jobs) as uow:
        late = await venues.check_in(
            uow, viewer=hall.staff_viewer, activity_id=activity.id, code=venues.qr_payload(b),
            now=activity.ends_at + timedelta(minutes=30),
        )  # fmt: skip
    assert late.status == "attended"


async def test_check_in_is_closed_days_before(services, gql, hall: Hall):
    activity = await make_activity(services, hall)
    [row] = await sign_up_as(services, hall.staff_viewer, activity.id, hall.kids[0].id)
    result = await gql(
        CHECK_IN, {"input": {"activityId": gid("Activity", activity.id), "code": row.check_in_code}},
        token=hall.staff.token,
    )  # fmt: skip
    assert result["checkIn"] == {"__typename": "CheckInClosedError", "code": "CHECK_IN_CLOSED"}


# -- notices ----------------------------------------------------------------------------------------


async def test_reminders_go_out_once_the_day_before(services, hall: Hall, runner):
    # given
    activity = await make_activity(services, hall)
    await sign_up_as(services, hall.staff_viewer, activity.id, hall.kids[0].id, hall.kids[1].id)
    await sign_up_as(services, hall.staff_viewer, activity.id, hall.neighbour_kid.id)
    # when: two days before nothing is due; the day before the scan enqueues the reminders (twice)
    for before in (timedelta(hours=48), timedelta(hours=20), timedelta(hours=19)):
        async with services.db.unit_of_work(services.jobs) as uow:
            await venues.scan(uow, now=activity.starts_at - before)
    ran = await runner.drain()
    # then: the reminder job ran twice, the second time it did nothing
    assert ran.count("venues.send_reminders") == 2
    # Staff made the sign-ups by phone: staff and each child's guardian hear, once per child.
    reminded = Counter(
        n.recipient_account_id
        for n in await _notices(services)
        if n.event_key.endswith(":reminder") and n.title == "明天的活动：剪纸"
    )
    assert reminded == {hall.staff.account.id: 3, hall.parent.account.id: 2, hall.neighbour.account.id: 1}


async def test_the_organiser_calling_it_off_tells_everyone(services, gql, hall: Hall, runner):
    # given: two seated, one waiting
    activity = await make_activity(services, hall, capacity=2)
    await sign_up(gql, hall.parent.token, activity.id, hall.kids[0].id, hall.kids[1].id)
    await sign_up(gql, hall.neighbour.token, activity.id, hall.neighbour_kid.id)
    # when
    result = await gql(
        CANCEL_ACTIVITY, {"input": {"activityId": gid("Activity", activity.id), "reason": "老师生病"}},
        token=hall.staff.token,
    )  # fmt: skip
    again = await gql(CANCEL_ACTIVITY, {"input": {"activityId": gid("Activity", activity.id)}}, token=hall.staff.token)
    await runner.drain()
    await runner.drain()
    # then
    assert result["cancelActivity"]["signUpsCancelled"] == 3
    assert result["cancelActivity"]["activity"]["cancelReason"] == "老师生病"
    assert again["cancelActivity"] == {"__typename": "ActivityCancelledError", "code": "ACTIVITY_CANCELLED"}
    assert await _inbox(services, hall.parent.account.id) == ["活动取消：剪纸", "活动取消：剪纸"]  # one per child
    assert await _inbox(services, hall.neighbour.account.id) == ["活动取消：剪纸"]
    async with services.db.unit_of_work(services.jobs) as uow:
        assert await venues.tell_activity_cancelled(uow, activity_id=activity.id) == 0  # a replay adds nothing


# -- series -----------------------------------------------------------------------------------------

SERIES = """
mutation Series($input: CreateActivitySeriesInput!) {
  createActivitySeries(input: $input) {
    __typename
    ... on ActivitySeriesSuccess { series { weekday startsAtTime exceptions } activities { startsAt endsAt capacity } }
    ... on UserError { field code }
  }
}
"""


async def test_a_weekly_series_skips_its_exceptions(services, gql, hall: Hall):
    # given
    first = next_weekday(5)
    skip = first + timedelta(weeks=2)
    # when: pottery every Saturday 14:00 for five weeks, not on the third
    data = await gql(
        SERIES,
        {"input": {"venueId": gid("Venue", hall.children_room.id), "title": "陶艺", "weekday": 5,
                   "startsAtTime": "14:00", "durationMinutes": 90, "startsOn": first.isoformat(),
                   "until": (first + timedelta(weeks=4)).isoformat(), "capacity": 12, "kind": "CRAFT", "minAge": 6,
                   "maxAge": 12, "exceptions": [skip.isoformat()]}},
        token=hall.staff.token,
    )  # fmt: skip
    bad = await gql(
        SERIES,
        {"input": {"venueId": gid("Venue", hall.children_room.id), "title": "陶艺", "weekday": 5,
                   "startsAtTime": "25:00", "durationMinutes": 90, "startsOn": first.isoformat(),
                   "until": first.isoformat(), "capacity": 12}},
        token=hall.staff.token,
    )  # fmt: skip
    # then
    result = data["createActivitySeries"]
    assert result["series"] == {"weekday": 5, "startsAtTime": "14:00", "exceptions": [skip.isoformat()]}
    starts = [_parse(a["startsAt"]) for a in result["activities"]]
    expected = [at(first + timedelta(weeks=w), 14) for w in (0, 1, 3, 4)]
    assert starts == expected
    assert bad["createActivitySeries"] == {"__typename": "ValidationError", "field": "startsAtTime", "code": "INVALID"}


# -- helpers ----------------------------------------------------------------------------------------


async def _row(services, sign_up_id: int) -> SignUp:
    async with services.db.read_session() as session:
        row: SignUp | None = await session.get(SignUp, sign_up_id)
    assert row is not None
    return row


async def _notices(services) -> list[Notification]:
    async with services.db.read_session() as session:
        return list((await session.scalars(select(Notification).order_by(Notification.id))).all())


async def _inbox(services, account_id: int) -> list[str]:
    async with services.db.read_session() as session:
        rows = await session.scalars(
            select(Notification.title).where(Notification.recipient_account_id == account_id).order_by(Notification.id)
        )
        return list(rows.all())


assert SignUpStatus.OFFERED.value == "offered"
