"""Venue photos: staff upload them (multipart), GPS is stripped, residents of the community see them."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import ExifTags, Image
from sqlalchemy import func, select

from api.core.viewer import Role
from api.venues.models import VenuePhoto
from tests.conftest import make_settings
from tests.factories import make_estate, make_login
from tests.tickets.test_photos import File, files_under, gif, jpeg_with_gps
from tests.venues.conftest import Hall, gid

MAX_BYTES = 300_000


@pytest.fixture
def media(tmp_path: Path) -> Path:
    return tmp_path / "media"


@pytest.fixture
def settings(pg_url, media):
    return make_settings(pg_url, media_dir=str(media), photo_max_bytes=MAX_BYTES)


ADD = """
mutation Add($input: AddVenuePhotosInput!) {
  addVenuePhotos(input: $input) {
    __typename
    ... on AddVenuePhotosSuccess {
      venue { id photos { id } }
      photos { id contentType width height url }
    }
    ... on PhotoError { message field code index }
    ... on UserError { message field code }
  }
}
"""

VENUE_PHOTOS = """
query Venue($id: ID!) { node(id: $id) { ... on Venue { photos { id url width height } } } }
"""


async def post_photos(client: httpx.AsyncClient, venue_id: str, files: list[File], *, token: str) -> dict[str, Any]:
    """A multipart request per the GraphQL multipart request spec; returns the whole response body."""
    variables = {"input": {"venueId": venue_id, "photos": [None] * len(files)}}
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


async def photo_count(services) -> int:
    async with services.db.read_session() as session:
        return int(await session.scalar(select(func.count()).select_from(VenuePhoto)) or 0)


async def test_staff_upload_is_stored_upright_without_gps(client, services, hall: Hall, media):
    # given
    venue_id = gid("Venue", hall.children_room.id)
    # when
    body = await post_photos(
        client, venue_id, [("IMG_0001.jpg", jpeg_with_gps(), "image/jpeg")], token=hall.staff.token
    )
    # then
    assert "errors" not in body
    result = body["data"]["addVenuePhotos"]
    assert result["__typename"] == "AddVenuePhotosSuccess"
    [photo] = result["photos"]
    assert (photo["contentType"], photo["width"], photo["height"]) == ("image/jpeg", 32, 64)
    assert photo["url"] == f"/media/venue-photos/{photo['id']}"
    assert result["venue"] == {"id": venue_id, "photos": [{"id": photo["id"]}]}
    async with services.db.read_session() as session:
        [row] = (await session.scalars(select(VenuePhoto))).all()
    assert (row.community_id, row.venue_id) == (hall.cid, hall.children_room.id)
    assert row.storage_key.startswith(f"venues/{hall.cid}/{hall.children_room.id}/")
    [path] = files_under(media)
    assert path == media / row.storage_key
    stored = path.read_bytes()
    assert row.size_bytes == len(stored)
    image = Image.open(io.BytesIO(stored))
    assert image.size == (32, 64)
    assert ExifTags.Base.GPSInfo not in image.getexif()
    assert dict(image.getexif()) == {}
    for secret in (b"LeakyPhone", b"Zhang San", b"secret-xmp", b"Exif"):
        assert secret not in stored


async def test_a_resident_sees_and_fetches_the_photo_and_another_community_gets_404(
    client, services, gql, hall: Hall, media
):
    # given
    venue_id = gid("Venue", hall.children_room.id)
    body = await post_photos(client, venue_id, [("a.jpg", jpeg_with_gps(), "image/jpeg")], token=hall.staff.token)
    [photo] = body["data"]["addVenuePhotos"]["photos"]
    [path] = files_under(media)
    elsewhere = await make_estate(services, households=1, members=1)
    other_staff = await make_login(services, role=Role.STAFF, community=elsewhere.community)
    # when
    listed = await gql(VENUE_PHOTOS, {"id": venue_id}, token=hall.parent.token)
    resident = await client.get(photo["url"], headers={"Authorization": f"Bearer {hall.parent.token}"})
    outsider = await client.get(photo["url"], headers={"Authorization": f"Bearer {other_staff.token}"})
    anonymous = await client.get(photo["url"])
    # then
    assert listed["node"]["photos"] == [{"id": photo["id"], "url": photo["url"], "width": 32, "height": 64}]
    assert resident.status_code == 200
    assert resident.content == path.read_bytes()
    assert resident.headers["content-type"] == "image/jpeg"
    assert resident.headers["cache-control"] == "private, max-age=3600"
    assert resident.headers["x-content-type-options"] == "nosniff"
    assert resident.headers["vary"] == "Authorization"
    assert (outsider.status_code, outsider.text) == (404, "Not found.")
    assert anonymous.status_code == 401


async def test_a_resident_may_not_upload_and_nothing_is_written(client, services, hall: Hall, media):
    # when
    body = await post_photos(
        client, gid("Venue", hall.children_room.id), [("a.jpg", jpeg_with_gps(), "image/jpeg")], token=hall.parent.token
    )
    # then
    assert body["data"] is None
    assert [e["extensions"]["code"] for e in body["errors"]] == ["FORBIDDEN"]
    assert await photo_count(services) == 0
    assert files_under(media) == []


async def test_a_bad_image_is_a_typed_error_and_nothing_is_written(client, services, hall: Hall, media):
    # when: a GIF declared as a JPEG, next to a good photo
    body = await post_photos(
        client,
        gid("Venue", hall.children_room.id),
        [("ok.jpg", jpeg_with_gps(), "image/jpeg"), ("x.jpg", gif(), "image/jpeg")],
        token=hall.staff.token,
    )
    # then
    assert "errors" not in body
    result = body["data"]["addVenuePhotos"]
    assert result["__typename"] == "PhotoError"
    assert (result["code"], result["field"], result["index"]) == ("UNSUPPORTED_IMAGE_TYPE", "photos", 1)
    assert await photo_count(services) == 0
    assert files_under(media) == []


async def test_no_venue_may_pass_the_photo_limit(client, services, hall: Hall, media, settings):
    # given: the venue is one photo short of the limit
    venue_id = gid("Venue", hall.children_room.id)
    small = ("s.jpg", jpeg_with_gps(), "image/jpeg")
    first = await post_photos(client, venue_id, [small] * (settings.photo_max_count - 1), token=hall.staff.token)
    assert first["data"]["addVenuePhotos"]["__typename"] == "AddVenuePhotosSuccess"
    # when
    body = await post_photos(client, venue_id, [small, small], token=hall.staff.token)
    # then
    result = body["data"]["addVenuePhotos"]
    assert (result["__typename"], result["code"]) == ("PhotoError", "TOO_MANY_PHOTOS")
    assert result["message"] == f"A venue may have at most {settings.photo_max_count} photos (1 more allowed now)."
    assert await photo_count(services) == settings.photo_max_count - 1
    assert len(files_under(media)) == settings.photo_max_count - 1
