"""iCalendar feed routes: /calendar/venues/{id}.ics (public) and /calendar/me.ics?token=… (personal).

Calendar apps poll a URL and cannot send a bearer header, so the personal feed is opened by a
per-account calendar token (GraphQL `resetCalendarToken`) in the query string; only its SHA-256
is stored, and a new one retires the old. Unknown venues and tokens get a plain 404.
"""

from __future__ import annotations

from datetime import timedelta

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from api.core.clock import utc_now
from api.graphql.context import Services
from api.venues import ical
from api.venues import service as venues_service

MEDIA_TYPE = "text/calendar; charset=utf-8"
PAST = timedelta(days=30)
AHEAD = timedelta(days=180)


def _calendar_response(body: bytes, filename: str) -> Response:
    return Response(
        body,
        media_type=MEDIA_TYPE,
        headers={"Cache-Control": "private, max-age=300", "Content-Disposition": f'inline; filename="{filename}"'},
    )


def calendar_routes(services: Services) -> list[Route]:
    async def venue_calendar(request: Request) -> Response:
        venue_id = int(request.path_params["venue_id"])
        now = utc_now()
        async with services.db.read_session() as session:
            found = await venues_service.venue_feed_rows(
                session, venue_id=venue_id, since=now - PAST, until=now + AHEAD
            )
        if found is None:
            return PlainTextResponse("No such venue.", status_code=404)
        venue, activities, bookings = found
        return _calendar_response(ical.venue_feed(venue, activities, bookings, now=now), f"venue-{venue.id}.ics")

    async def my_calendar(request: Request) -> Response:
        token = request.query_params.get("token", "")
        now = utc_now()
        async with services.db.read_session() as session:
            owner = await venues_service.calendar_owner(session, token=token)
            if owner is None:
                return PlainTextResponse("No such calendar.", status_code=404)
            sign_ups = await venues_service.feed_sign_ups(session, owner=owner, since=now - PAST)
            bookings = await venues_service.feed_room_bookings(session, owner=owner, since=now - PAST)
        return _calendar_response(ical.personal_feed("我的社区活动", sign_ups, bookings, now=now), "me.ics")

    return [
        Route("/venues/{venue_id:int}.ics", venue_calendar, methods=["GET"]),
        Route("/me.ics", my_calendar, methods=["GET"]),
    ]
