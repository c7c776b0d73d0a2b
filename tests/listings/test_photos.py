"""Listing photos: the poster uploads them to an unpublished listing; whoever sees the listing fetches them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.routing import Route

from api.graphql.listings.media import ROUTE, listing_photo_endpoint
from tests.conftest import make_settings
from tests.listings.conftest import Board, gid, post, published
from tests.tickets.test_photos import files_under, gif, jpeg_with_gps

ADD = """
mutation Add($input: AddListingPhotosInput!) {
  addListingPhotos(input: $input) {
    __typename
    ... on AddListingPhotosSuccess { listing { id photos { id } } photos { id contentType width height url } }
    ... on PhotoError { code index }
    ... on ListingStatusError { status }
    ... on UserError { message field code }
  }
}
"""


@pytest.fixture
def media(tmp_path: Path) -> Path:
    return tmp_path / "media"


@pytest.fixture
def settings(pg_url, media):
    return make_settings(pg_url, media_dir=str(media), photo_max_bytes=300_000)


async def upload(client: httpx.AsyncClient, listing_id: str, files: list[Any], *, token: str) -> dict[str, Any]:
    variables = {"input": {"listingId": listing_id, "photos": [None] * len(files)}}
    response = await client.post(
        "/graphql",
        data={
            "operations": json.dumps({"query": ADD, "variables": variables}),
            "map": json.dumps({str(i): [f"variables.input.photos.{i}"] for i in range(len(files))}),
        },
        files=[(str(i), f) for i, f in enumerate(files)],
        headers={"Authorization": f"Bearer {token}"},
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def test_the_poster_adds_photos_and_the_community_sees_them_once_published(
    client, services, gql, board: Board, media
):
    # given: a draft
    row = await post(services, board, submit=False)
    lid = gid("Listing", row.id)
    # when
    body = await upload(client, lid, [("IMG_1.jpg", jpeg_with_gps(), "image/jpeg")], token=board.poster.token)
    # then: stored upright and without metadata
    result = body["data"]["addListingPhotos"]
    assert result["__typename"] == "AddListingPhotosSuccess"
    [photo] = result["photos"]
    assert (photo["contentType"], photo["width"], photo["height"]) == ("image/jpeg", 32, 64)
    assert photo["url"] == f"/media/listing-photos/{photo['id']}"
    [path] = files_under(media)
    assert b"LeakyPhone" not in path.read_bytes()
    # the route serves the poster now, the neighbour only once the listing is published
    app = Starlette(routes=[Route(ROUTE, listing_photo_endpoint(services), methods=["GET"])])
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://linli.test") as media_client:

        async def fetch(token: str) -> int:
            response = await media_client.get(photo["url"], headers={"Authorization": f"Bearer {token}"})
            return response.status_code

        assert (await fetch(board.poster.token), await fetch(board.neighbour.token)) == (200, 404)
        async with services.db.unit_of_work(services.jobs) as uow:
            from api.listings import service as listings

            await listings.submit_listing(uow, viewer=board.poster_viewer, listing_id=row.id)
            await listings.moderate_listing(uow, viewer=board.staff_viewer, listing_id=row.id, approve=True)
        assert (await fetch(board.neighbour.token), await fetch(board.outsider.token)) == (200, 404)
        assert (await media_client.get(photo["url"])).status_code == 401


async def test_photos_are_refused_on_a_published_listing_and_for_bad_files(client, services, board: Board, media):
    shown = await published(services, board)
    late = await upload(
        client, gid("Listing", shown.id), [("a.jpg", jpeg_with_gps(), "image/jpeg")], token=board.poster.token
    )
    assert (late["data"]["addListingPhotos"]["__typename"], late["data"]["addListingPhotos"]["status"]) == (
        "ListingStatusError",
        "PUBLISHED",
    )
    draft = await post(services, board, submit=False)
    bad = await upload(
        client, gid("Listing", draft.id), [("ok.jpg", jpeg_with_gps(), "image/jpeg"), ("x.jpg", gif(), "image/jpeg")],
        token=board.poster.token,
    )  # fmt: skip
    result = bad["data"]["addListingPhotos"]
    assert (result["__typename"], result["code"], result["index"]) == ("PhotoError", "UNSUPPORTED_IMAGE_TYPE", 1)
    someone_else = await upload(
        client, gid("Listing", shown.id), [("a.jpg", jpeg_with_gps(), "image/jpeg")], token=board.neighbour.token
    )
    assert [e["extensions"]["code"] for e in someone_else["errors"]] == ["FORBIDDEN"]
    assert files_under(media) == []
