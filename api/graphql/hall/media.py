"""Attachments of service-hall applications over HTTP: only the applicant and the hall's staff get them.

Mounted by the app as GET /media/hall-attachments/{attachment_id} (the id is the global id that
`HallAttachment.id` gives out); the bearer token is sent as for GraphQL.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from sqlalchemy import select
from starlette.requests import Request
from starlette.responses import Response
from strawberry.relay import GlobalID

from api.accounts.service import viewer_for_token
from api.graphql.context import Services
from api.graphql.view import bearer_token
from api.hall import service as hall_service
from api.hall.models import HallApplication, HallAttachment

log = logging.getLogger(__name__)

PATH = "/media/hall-attachments/"
TYPE_NAME = "HallAttachment"
HEADERS = {"Cache-Control": "private, max-age=3600", "X-Content-Type-Options": "nosniff", "Vary": "Authorization"}


def _attachment_id(raw: str) -> int | None:
    try:
        gid = GlobalID.from_id(raw)
    except ValueError:
        return None
    node_id = gid.node_id
    if gid.type_name != TYPE_NAME or not (node_id.isascii() and node_id.isdigit() and len(node_id) <= 18):
        return None
    return int(node_id)


def _not_found() -> Response:
    return Response("Not found.", status_code=404, media_type="text/plain", headers={"Vary": "Authorization"})


def hall_attachment_endpoint(services: Services) -> Callable[[Request], Awaitable[Response]]:
    """GET /media/hall-attachments/{attachment_id}: the file for its applicant or the hall's staff."""

    async def attachment(request: Request) -> Response:
        token = bearer_token(request)
        unauthorised = Response(
            "Log in first.", status_code=401, media_type="text/plain", headers={"WWW-Authenticate": "Bearer"}
        )
        if token is None:
            return unauthorised
        attachment_id = _attachment_id(request.path_params["attachment_id"])
        async with services.db.read_session() as session:
            viewer = await viewer_for_token(session, token)
            if viewer is None:
                return unauthorised
            row = await session.get(HallAttachment, attachment_id) if attachment_id is not None else None
            if row is None:
                return _not_found()
            visible = hall_service.visible_applications(viewer).with_only_columns(HallApplication.id)
            seen = await session.scalar(select(HallApplication.id).where(
                HallApplication.id == row.application_id, HallApplication.id.in_(visible)))  # fmt: skip
            if seen is None:
                return _not_found()  # not 403: whether it exists is not for them to learn
            key, content_type = row.storage_key, row.content_type
        try:
            data = await asyncio.to_thread(services.photos.open, key)
        except FileNotFoundError:
            log.warning("hall attachment %s has a row but no file (%s)", attachment_id, key)
            return _not_found()
        return Response(data, media_type=content_type, headers=HEADERS)

    return attachment
