"""iCalendar feeds (RFC 5545), written with the `icalendar` library.

Times are written in UTC (``DTSTART:20261205T010000Z``), which every calendar app shows in its
own zone. A venue's feed is public and carries title, time and place only (room bookings show
as "已预约", without who booked). A resident's own feed adds who takes part and the check-in code.
UIDs are stable, so a calendar app updates an event (e.g. to CANCELLED) instead of duplicating it.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from icalendar import Calendar, Event

from api.venues.models import RoomBooking, SignUp, SignUpStatus, Venue, VenueActivity

PRODID = "-//Linli 邻里//Venues and activities//ZH"
UID_DOMAIN = "linli"
TIMEZONE_HINT = "Asia/Shanghai"


def _calendar(name: str) -> Calendar:
    cal = Calendar()
    cal.add("prodid", PRODID)
    cal.add("version", "2.0")
    cal.add("calscale", "GREGORIAN")
    cal.add("method", "PUBLISH")
    cal.add("x-wr-calname", name)
    cal.add("x-wr-timezone", TIMEZONE_HINT)
    return cal


def _event(*, uid: str, start: datetime, end: datetime, summary: str, location: str, now: datetime) -> Event:
    event = Event()
    event.add("uid", f"{uid}@{UID_DOMAIN}")
    event.add("dtstamp", now)
    event.add("dtstart", start)
    event.add("dtend", end)
    event.add("summary", summary)
    if location:
        event.add("location", location)
    return event


def _place(venue: Venue) -> str:
    return f"{venue.name}（{venue.location}）" if venue.location else venue.name


def venue_feed(
    venue: Venue, activities: Sequence[VenueActivity], bookings: Sequence[RoomBooking], *, now: datetime
) -> bytes:
    """A venue's public calendar: its activities (called-off ones as CANCELLED) and booked times."""
    cal = _calendar(venue.name)
    for a in activities:
        event = _event(
            uid=f"venue-activity-{a.id}", start=a.starts_at, end=a.ends_at, summary=a.title, location=_place(venue),
            now=now,
        )  # fmt: skip
        event.add("status", "CANCELLED" if a.cancelled_at is not None else "CONFIRMED")
        event.add("transp", "OPAQUE")
        cal.add_component(event)
    for b in bookings:
        event = _event(
            uid=f"venue-booking-{b.id}", start=b.starts_at, end=b.ends_at, summary="已预约", location=_place(venue),
            now=now,
        )  # fmt: skip
        event.add("status", "CONFIRMED")
        event.add("transp", "OPAQUE")
        cal.add_component(event)
    return bytes(cal.to_ical())


_SIGN_UP_WORDS = {
    SignUpStatus.CONFIRMED.value: ("CONFIRMED", ""),
    SignUpStatus.ATTENDED.value: ("CONFIRMED", ""),
    SignUpStatus.OFFERED.value: ("TENTATIVE", "候补到位，请确认："),
    SignUpStatus.WAITLISTED.value: ("TENTATIVE", "候补："),
}


def personal_feed(
    label: str,
    sign_ups: Sequence[tuple[SignUp, VenueActivity, Venue, str]],
    bookings: Sequence[tuple[RoomBooking, Venue]],
    *,
    now: datetime,
) -> bytes:
    """A resident's calendar: the activities they (or their children) signed up for, and their room bookings."""
    cal = _calendar(label)
    for s, a, venue, participant in sign_ups:
        status, prefix = _SIGN_UP_WORDS.get(s.status, ("TENTATIVE", ""))
        if a.cancelled_at is not None:
            status = "CANCELLED"
        event = _event(
            uid=f"venue-sign-up-{s.id}", start=a.starts_at, end=a.ends_at, summary=f"{prefix}{a.title}（{participant}）",
            location=_place(venue), now=now,
        )  # fmt: skip
        event.add("status", status)
        if s.status == SignUpStatus.CONFIRMED.value:
            event.add("description", f"签到码 {s.check_in_code}")
        cal.add_component(event)
    for b, venue in bookings:
        event = _event(
            uid=f"venue-booking-{b.id}", start=b.starts_at, end=b.ends_at,
            summary=f"预约{venue.name}" + (f"：{b.purpose}" if b.purpose else ""), location=_place(venue), now=now,
        )  # fmt: skip
        event.add("status", "CONFIRMED" if b.status == "confirmed" else "TENTATIVE")
        cal.add_component(event)
    return bytes(cal.to_ical())
