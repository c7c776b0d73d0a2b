"""Listing photos over HTTP: GET /media/listing-photos/{photo_id}, for viewers who can see the listing."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import Response

from api.accounts.service import viewer_for_token
from api.graphql.context import Services
from api.graphql.view import bearer_token
from api.listings import service as listings_service
from api.listings.models import Listing, ListingPhoto
from api.media import PHOTO_HEADERS, _not_found, _photo_id

log = logging.getLogger(__name__)

ROUTE = "/media/listing-photos/{photo_id}"


def listing_photo_endpoint(services: Services) -> Callable[[Request], Awaitable[Response]]:
    """The photo's bytes for a viewer who can see its listing; 404 otherwise.

    Published listings are seen by their community, others by the poster and moderators; a 404 (not a
    403) does not give away whether the photo exists.
    """

    async def photo(request: Request) -> Response:
        token = bearer_token(request)
        if token is None:
            return Response(
                "Log in first.", status_code=401, media_type="text/plain", headers={"WWW-Authenticate": "Bearer"}
            )
        photo_id = _photo_id(request.path_params["photo_id"], "ListingPhoto")
        async with services.db.read_session() as session:
            viewer = await viewer_for_token(session, token)
            if viewer is None:
                return Response(
                    "Log in again.", status_code=401, media_type="text/plain", headers={"WWW-Authenticate": "Bearer"}
                )
            row = await session.get(ListingPhoto, photo_id) if photo_id is not None else None
            visible = (
                await session.scalar(
                    listings_service.visible_listings(viewer)
                    .with_only_columns(Listing.id)
                    .where(Listing.id == row.listing_id)
                )
                if row is not None
                else None
            )
            if row is None or visible is None:
                return _not_found()
            key, content_type = row.storage_key, row.content_type
        try:
            data = await asyncio.to_thread(services.photos.open, key)
        except FileNotFoundError:
            log.warning("listing photo %s has a row but no file (%s)", photo_id, key)
            return _not_found()
        return Response(data, media_type=content_type, headers=PHOTO_HEADERS)

    return photo
