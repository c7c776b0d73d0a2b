"""Ticket and venue photos over HTTP: served only to viewers who may see them; upload bodies bounded."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send
from strawberry.relay import GlobalID

from api.accounts.service import viewer_for_token
from api.core.errors import NotFound
from api.graphql.context import Services
from api.graphql.view import bearer_token
from api.settings import Settings
from api.tickets import service as tickets_service
from api.tickets.models import TicketPhoto
from api.venues.models import VenuePhoto

log = logging.getLogger(__name__)

PHOTO_TYPE = "TicketPhoto"
PHOTO_HEADERS = {
    "Cache-Control": "private, max-age=3600",
    "X-Content-Type-Options": "nosniff",
    # The response depends on who asks: a browser shared by two accounts must not reuse it.
    "Vary": "Authorization",
}


def _photo_id(raw: str, type_name: str = PHOTO_TYPE) -> int | None:
    try:
        gid = GlobalID.from_id(raw)
    except ValueError:  # not base64, not UTF-8, or no "Type:id"
        return None
    node_id = gid.node_id
    if gid.type_name != type_name or not (node_id.isascii() and node_id.isdigit() and len(node_id) <= 18):
        return None  # 18 digits always fit a BIGINT
    return int(node_id)


def _not_found() -> Response:
    return Response("Not found.", status_code=404, media_type="text/plain", headers={"Vary": "Authorization"})


def photo_endpoint(services: Services) -> Callable[[Request], Awaitable[Response]]:
    """GET /media/photos/{photo_id}: the photo's bytes for a viewer who may see its ticket."""

    async def photo(request: Request) -> Response:
        token = bearer_token(request)
        if token is None:
            return Response(
                "Log in first.", status_code=401, media_type="text/plain", headers={"WWW-Authenticate": "Bearer"}
            )
        photo_id = _photo_id(request.path_params["photo_id"])
        async with services.db.read_session() as session:
            viewer = await viewer_for_token(session, token)
            if viewer is None:
                return Response(
                    "Log in again.", status_code=401, media_type="text/plain", headers={"WWW-Authenticate": "Bearer"}
                )
            row = await session.get(TicketPhoto, photo_id) if photo_id is not None else None
            if row is None:
                return _not_found()
            try:
                await tickets_service.get_visible(session, viewer, row.ticket_id)
            except NotFound:
                return _not_found()  # not 403: whether the photo exists is not for them to learn
            key, content_type = row.storage_key, row.content_type
        try:
            data = await asyncio.to_thread(services.photos.open, key)
        except FileNotFoundError:
            log.warning("photo %s has a row but no file (%s)", photo_id, key)
            return _not_found()
        return Response(data, media_type=content_type, headers=PHOTO_HEADERS)

    return photo


def venue_photo_endpoint(services: Services) -> Callable[[Request], Awaitable[Response]]:
    """GET /media/venue-photos/{photo_id}: the photo's bytes for anyone who can see the venue's community."""

    async def photo(request: Request) -> Response:
        token = bearer_token(request)
        if token is None:
            return Response(
                "Log in first.", status_code=401, media_type="text/plain", headers={"WWW-Authenticate": "Bearer"}
            )
        photo_id = _photo_id(request.path_params["photo_id"], "VenuePhoto")
        async with services.db.read_session() as session:
            viewer = await viewer_for_token(session, token)
            if viewer is None:
                return Response(
                    "Log in again.", status_code=401, media_type="text/plain", headers={"WWW-Authenticate": "Bearer"}
                )
            row = await session.get(VenuePhoto, photo_id) if photo_id is not None else None
            if row is None or row.community_id not in viewer.community_ids:
                return _not_found()  # not 403: whether the photo exists is not for them to learn
            key, content_type = row.storage_key, row.content_type
        try:
            data = await asyncio.to_thread(services.photos.open, key)
        except FileNotFoundError:
            log.warning("venue photo %s has a row but no file (%s)", photo_id, key)
            return _not_found()
        return Response(data, media_type=content_type, headers=PHOTO_HEADERS)

    return photo


def upload_body_limit(settings: Settings) -> int:
    """The largest request body: a full set of photos and 1 MB for the rest of the request."""
    return settings.photo_max_count * settings.photo_max_bytes + 1_000_000


class BodyLimit:
    """Refuse request bodies over `max_bytes` by their Content-Length, before anything is read.

    Multipart bodies (uploads) must declare their length (browsers and HTTP clients do); without
    it they are refused, since starlette would otherwise spool any amount to disk.
    """

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            headers = Headers(scope=scope)
            length = headers.get("content-length")
            if length is not None and not (length.isascii() and length.isdigit() and int(length) <= self.max_bytes):
                mb = self.max_bytes // 1_000_000
                await PlainTextResponse(f"The request is larger than {mb} MB.", status_code=413)(scope, receive, send)
                return
            if length is None and headers.get("content-type", "").lower().startswith("multipart/"):
                await PlainTextResponse("Send uploads with a Content-Length.", status_code=411)(scope, receive, send)
                return
        await self.app(scope, receive, send)
