"""Ticket photos: multipart uploads (graphql-multipart-request-spec), image checks, EXIF removal, serving."""

from __future__ import annotations

import io
import json
import struct
import zlib
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import ExifTags, Image, PngImagePlugin
from sqlalchemy import func, select
from strawberry.relay import GlobalID

from api.core.viewer import Role
from api.tickets import photos as photos_service
from api.tickets.models import Ticket, TicketEvent, TicketPhoto
from tests.conftest import make_settings
from tests.factories import make_estate, make_login
from tests.tickets.test_flow import category_id, gid

MAX_BYTES = 300_000


@pytest.fixture
def media(tmp_path: Path) -> Path:
    return tmp_path / "media"


@pytest.fixture
def settings(pg_url, media):
    return make_settings(pg_url, media_dir=str(media), photo_max_bytes=MAX_BYTES)


# -- images made in memory ------------------------------------------------------------------------

RED, BLUE = (220, 20, 20), (20, 20, 220)


def jpeg_with_gps() -> bytes:
    """64×32, red left half and blue right half, stored sideways: orientation 6 means turn 90° clockwise."""
    image = Image.new("RGB", (64, 32), RED)
    image.paste(Image.new("RGB", (32, 32), BLUE), (32, 0))
    exif = Image.Exif()
    exif[ExifTags.Base.Orientation] = 6
    exif[ExifTags.Base.Make] = "LeakyPhone"
    gps = exif.get_ifd(ExifTags.IFD.GPSInfo)
    gps[ExifTags.GPS.GPSLatitudeRef] = "N"
    gps[ExifTags.GPS.GPSLatitude] = (38.0, 2.0, 30.0)
    gps[ExifTags.GPS.GPSLongitudeRef] = "E"
    gps[ExifTags.GPS.GPSLongitude] = (114.0, 30.0, 5.0)
    out = io.BytesIO()
    image.save(out, "JPEG", exif=exif, comment=b"home of Zhang San", xmp=b"<x:xmpmeta>secret-xmp</x:xmpmeta>")
    data = out.getvalue()
    assert Image.open(io.BytesIO(data)).getexif().get_ifd(ExifTags.IFD.GPSInfo)  # the input does carry GPS
    return data


def png_with_text(size: tuple[int, int] = (20, 10)) -> bytes:
    info = PngImagePlugin.PngInfo()
    info.add_text("Comment", "home of Zhang San")
    out = io.BytesIO()
    Image.new("RGBA", size, (10, 200, 10, 128)).save(out, "PNG", pnginfo=info)
    return out.getvalue()


def gif() -> bytes:
    out = io.BytesIO()
    Image.new("P", (8, 8)).save(out, "GIF")
    return out.getvalue()


def png_header(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims `width`×`height` pixels (a decompression bomb's shape)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


def small_png() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (4, 4), BLUE).save(out, "PNG")
    return out.getvalue()


# -- multipart requests per the spec --------------------------------------------------------------

SUBMIT = """
mutation Submit($input: SubmitTicketInput!) {
  submitTicket(input: $input) {
    __typename
    ... on SubmitTicketSuccess { ticket { id photos { id contentType width height url } } }
    ... on PhotoError { message field code index }
    ... on UserError { message field code }
  }
}
"""

ADD = """
mutation Add($input: AddTicketPhotosInput!) {
  addTicketPhotos(input: $input) {
    __typename
    ... on AddTicketPhotosSuccess {
      ticket { id photos { id } events(last: 1) { kind note } }
      photos { id contentType width height url createdAt }
    }
    ... on PhotoError { message field code index }
    ... on UserError { message field code }
  }
}
"""

File = tuple[str, bytes, str]  # (file name, bytes, declared content type)


async def multipart(
    client: httpx.AsyncClient,
    query: str,
    variables: dict[str, Any],
    files: list[File],
    *,
    path: str,
    token: str | None,
) -> dict[str, Any]:
    """POST operations, map and one form field per file; `path` is where the files' list sits."""
    operations = json.dumps({"query": query, "variables": variables})
    file_map = json.dumps({str(i): [f"variables.{path}.{i}"] for i in range(len(files))})
    response = await client.post(
        "/graphql",
        data={"operations": operations, "map": file_map},
        files=[(str(i), f) for i, f in enumerate(files)],
        headers={"Authorization": f"Bearer {token}"} if token else {},
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    assert not body.get("errors"), body["errors"]
    data: dict[str, Any] = body["data"]
    return data


async def add_photos(client, ticket_id: str, files: list[File], *, token: str, note: str | None = None):
    variables = {"input": {"ticketId": ticket_id, "photos": [None] * len(files), "note": note}}
    data = await multipart(client, ADD, variables, files, path="input.photos", token=token)
    return data["addTicketPhotos"]


def leak_input(cat: str, household) -> dict[str, Any]:
    return {
        "categoryId": cat,
        "description": "卫生间漏水，楼下天花板湿了",
        "place": {"buildingId": gid("Building", household.building_id), "unit": household.unit, "room": household.room},
        "answers": {"where": "卫生间"},
    }


async def submit(client, services, desk, files: list[File] | None = None) -> dict[str, Any]:
    cat = await category_id(services, desk.estate.community.id, "leak")
    variables = {"input": {**leak_input(cat, desk.estate.households[0]), "photos": [None] * len(files or [])}}
    data = await multipart(client, SUBMIT, variables, files or [], path="input.photos", token=desk.reporter.token)
    result: dict[str, Any] = data["submitTicket"]
    return result


async def new_ticket(gql, services, desk) -> str:
    cat = await category_id(services, desk.estate.community.id, "leak")
    data = await gql(SUBMIT, {"input": leak_input(cat, desk.estate.households[0])}, token=desk.reporter.token)
    return str(data["submitTicket"]["ticket"]["id"])


def files_under(media: Path) -> list[Path]:
    return sorted(p for p in media.rglob("*") if p.is_file()) if media.exists() else []


async def photo_rows(services) -> list[TicketPhoto]:
    async with services.db.read_session() as session:
        return list((await session.scalars(select(TicketPhoto).order_by(TicketPhoto.id))).all())


# -- uploading ------------------------------------------------------------------------------------------


async def test_a_phone_photo_is_stored_upright_without_gps_or_any_metadata(client, services, gql, desk, media):
    # given
    ticket_id = await new_ticket(gql, services, desk)
    # when
    result = await add_photos(
        client, ticket_id, [("IMG_0001.jpg", jpeg_with_gps(), "image/jpeg")], token=desk.reporter.token, note="漏水处"
    )
    # then: the API answers with the upright size
    assert result["__typename"] == "AddTicketPhotosSuccess"
    [photo] = result["photos"]
    assert (photo["contentType"], photo["width"], photo["height"]) == ("image/jpeg", 32, 64)
    assert photo["url"] == f"/media/photos/{photo['id']}"
    assert result["ticket"]["photos"] == [{"id": photo["id"]}]
    assert result["ticket"]["events"] == [{"kind": "photos", "note": "漏水处"}]
    # and the stored file has no metadata left and is turned upright (red on top, blue below)
    [row] = await photo_rows(services)
    [path] = files_under(media)
    assert path == media / row.storage_key
    assert row.storage_key.startswith(f"tickets/{desk.estate.community.id}/{row.ticket_id}/")
    assert row.storage_key.endswith(".jpg")
    stored = path.read_bytes()
    assert row.size_bytes == len(stored)
    image = Image.open(io.BytesIO(stored))
    assert image.format == "JPEG"
    assert image.size == (32, 64)
    assert dict(image.getexif()) == {}
    assert ExifTags.Base.GPSInfo not in image.getexif()
    assert not {"exif", "xmp", "comment", "icc_profile"} & set(image.info)
    for secret in (b"LeakyPhone", b"Zhang San", b"secret-xmp", b"Exif"):
        assert secret not in stored
    rgb = image.convert("RGB")
    top, bottom = rgb.getpixel((16, 8)), rgb.getpixel((16, 56))
    assert isinstance(top, tuple)
    assert isinstance(bottom, tuple)
    assert all(abs(a - b) < 40 for a, b in zip(top, RED, strict=True)), top
    assert all(abs(a - b) < 40 for a, b in zip(bottom, BLUE, strict=True)), bottom


async def test_a_png_stays_a_png_with_its_transparency_and_without_its_text(client, services, gql, desk, media):
    # given
    ticket_id = await new_ticket(gql, services, desk)
    # when: declared as a JPEG, it is judged by what it decodes to
    result = await add_photos(client, ticket_id, [("x.jpg", png_with_text(), "image/jpeg")], token=desk.staff.token)
    # then
    assert result["__typename"] == "AddTicketPhotosSuccess"
    assert [(p["contentType"], p["width"], p["height"]) for p in result["photos"]] == [("image/png", 20, 10)]
    [path] = files_under(media)
    assert path.suffix == ".png"
    image = Image.open(io.BytesIO(path.read_bytes()))
    assert (image.format, image.mode) == ("PNG", "RGBA")
    assert image.getpixel((3, 3)) == (10, 200, 10, 128)
    assert "Comment" not in image.info
    assert b"Zhang San" not in path.read_bytes()


async def test_the_reporter_submits_a_ticket_with_photos_in_one_request(client, services, desk, media):
    # when
    result = await submit(
        client, services, desk, [("a.jpg", jpeg_with_gps(), "image/jpeg"), ("b.png", small_png(), "image/png")]
    )
    # then
    assert result["__typename"] == "SubmitTicketSuccess"
    photos = result["ticket"]["photos"]
    assert [(p["contentType"], p["width"], p["height"]) for p in photos] == [
        ("image/jpeg", 32, 64),
        ("image/png", 4, 4),
    ]
    async with services.db.read_session() as session:
        kinds = (await session.scalars(select(TicketEvent.kind).order_by(TicketEvent.id))).all()
    assert kinds == ["status", "photos"]
    assert len(files_under(media)) == 2


REFUSED = [
    pytest.param(("notes.jpg", b"this is a text file, not a photo\n" * 20, "image/jpeg"), "NOT_AN_IMAGE", id="text"),
    pytest.param(("empty.jpg", b"", "image/jpeg"), "NOT_AN_IMAGE", id="empty"),
    pytest.param(("cut.jpg", jpeg_with_gps()[:300], "image/jpeg"), "NOT_AN_IMAGE", id="truncated"),
    pytest.param(("anim.jpg", gif(), "image/jpeg"), "UNSUPPORTED_IMAGE_TYPE", id="gif"),
    # over 1 MB: starlette spools it to a temporary file, which the resolver must close
    pytest.param(("big.jpg", jpeg_with_gps() + b"\0" * 1_100_000, "image/jpeg"), "PHOTO_TOO_LARGE", id="bytes"),
    # 7000² = 49 Mpx: under Pillow's bomb limit, over ours (40 Mpx)
    pytest.param(("wide.png", png_header(7000, 7000), "image/png"), "PHOTO_TOO_LARGE", id="pixels"),
    # 10000² warns in Pillow (an error here), 30000² raises DecompressionBombError
    pytest.param(("bomb.png", png_header(10_000, 10_000), "image/png"), "PHOTO_TOO_LARGE", id="bomb-warning"),
    pytest.param(("bomb.png", png_header(30_000, 30_000), "image/png"), "PHOTO_TOO_LARGE", id="bomb-error"),
]


@pytest.mark.parametrize(("bad", "code"), REFUSED)
async def test_a_bad_upload_is_refused_with_a_typed_error_and_nothing_is_written(
    client, services, gql, desk, media, bad, code
):
    # given
    ticket_id = await new_ticket(gql, services, desk)
    # when: the bad file comes second, after a good one
    result = await add_photos(client, ticket_id, [("ok.png", small_png(), "image/png"), bad], token=desk.reporter.token)
    # then
    assert result["__typename"] == "PhotoError"
    assert (result["code"], result["field"], result["index"]) == (code, "photos", 1)
    assert await photo_rows(services) == []
    assert files_under(media) == []
    async with services.db.read_session() as session:
        assert await session.scalar(select(func.count()).where(TicketEvent.kind == "photos")) == 0


async def test_a_submission_with_a_bad_photo_creates_no_ticket(client, services, desk, media):
    # when
    result = await submit(client, services, desk, [("a.jpg", b"GIF89a but not really", "image/jpeg")])
    # then
    assert (result["__typename"], result["code"], result["index"]) == ("PhotoError", "NOT_AN_IMAGE", 0)
    async with services.db.read_session() as session:
        assert await session.scalar(select(func.count()).select_from(Ticket)) == 0
    assert files_under(media) == []


async def test_more_than_six_photos_per_ticket_are_refused(client, services, gql, desk, media):
    # given
    ticket_id = await new_ticket(gql, services, desk)
    # when: seven at once, then five, then two more
    seven = await add_photos(client, ticket_id, [("p.png", small_png(), "image/png")] * 7, token=desk.reporter.token)
    five = await add_photos(client, ticket_id, [("p.png", small_png(), "image/png")] * 5, token=desk.reporter.token)
    two = await add_photos(client, ticket_id, [("p.png", small_png(), "image/png")] * 2, token=desk.reporter.token)
    # then
    assert (seven["__typename"], seven["code"], seven["index"]) == ("PhotoError", "TOO_MANY_PHOTOS", None)
    assert five["__typename"] == "AddTicketPhotosSuccess"
    assert (two["__typename"], two["code"]) == ("PhotoError", "TOO_MANY_PHOTOS")
    assert two["message"] == "A ticket may have at most 6 photos (1 more allowed now)."
    assert len(await photo_rows(services)) == 5
    assert len(files_under(media)) == 5


async def test_only_people_who_see_the_ticket_may_add_photos(client, services, gql, desk, media):
    # given: another resident of the same community
    ticket_id = await new_ticket(gql, services, desk)
    neighbour = await make_login(
        services, role=Role.RESIDENT, community=desk.estate.community, resident=desk.estate.residents[1]
    )
    # when
    result = await add_photos(client, ticket_id, [("p.png", small_png(), "image/png")], token=neighbour.token)
    # then
    assert (result["__typename"], result["code"], result["field"]) == ("NotFoundError", "NOT_FOUND", "ticketId")
    assert await photo_rows(services) == []
    assert files_under(media) == []


async def test_an_anonymous_upload_is_refused_and_writes_nothing(client, services, gql, desk, media):
    # given
    ticket_id = await new_ticket(gql, services, desk)
    operations = json.dumps({"query": ADD, "variables": {"input": {"ticketId": ticket_id, "photos": [None]}}})
    # when
    response = await client.post(
        "/graphql",
        data={"operations": operations, "map": json.dumps({"0": ["variables.input.photos.0"]})},
        files=[("0", ("a.png", small_png(), "image/png"))],
    )
    # then
    body = response.json()
    assert body["data"] is None
    assert [e["extensions"]["code"] for e in body["errors"]] == ["UNAUTHENTICATED"]
    assert await photo_rows(services) == []
    assert files_under(media) == []


async def test_a_photo_sent_as_json_instead_of_a_file_part_is_a_validation_error(gql, services, desk):
    # given
    ticket_id = await new_ticket(gql, services, desk)
    # when
    data = await gql(ADD, {"input": {"ticketId": ticket_id, "photos": ["aGVsbG8="]}}, token=desk.reporter.token)
    # then
    assert data["addTicketPhotos"]["__typename"] == "ValidationError"
    assert data["addTicketPhotos"]["field"] == "photos"


async def test_an_oversized_request_body_is_refused_before_it_is_read(client):
    # when
    response = await client.post(
        "/graphql",
        content=b"x",
        headers={"Content-Type": "multipart/form-data; boundary=x", "Content-Length": "99999999"},
    )
    # then
    assert response.status_code == 413


# -- serving -----------------------------------------------------------------------------------------


async def test_the_photo_is_served_to_the_reporter_and_staff_and_is_not_found_for_others(client, services, desk, media):
    # given
    result = await submit(client, services, desk, [("a.jpg", jpeg_with_gps(), "image/jpeg")])
    url = result["ticket"]["photos"][0]["url"]
    [path] = files_under(media)
    neighbour = await make_login(
        services, role=Role.RESIDENT, community=desk.estate.community, resident=desk.estate.residents[1]
    )
    elsewhere = await make_estate(services, households=1, members=1)
    other_staff = await make_login(services, role=Role.STAFF, community=elsewhere.community)

    async def get(token: str | None) -> httpx.Response:
        response: httpx.Response = await client.get(url, headers={"Authorization": f"Bearer {token}"} if token else {})
        return response

    # when
    reporter, staff = await get(desk.reporter.token), await get(desk.staff.token)
    hidden = [await get(neighbour.token), await get(other_staff.token)]
    anonymous, bad_token = await get(None), await get("not-a-token")
    # then
    for response in (reporter, staff):
        assert response.status_code == 200
        assert response.content == path.read_bytes()
        assert response.headers["content-type"] == "image/jpeg"
        assert response.headers["cache-control"] == "private, max-age=3600"
        assert response.headers["x-content-type-options"] == "nosniff"
    assert [r.status_code for r in hidden] == [404, 404]
    assert all(r.content == b"Not found." for r in hidden)
    assert (anonymous.status_code, bad_token.status_code) == (401, 401)


@pytest.mark.parametrize(
    "photo_id",
    [
        pytest.param(str(GlobalID("Ticket", "1")), id="another-type"),
        pytest.param(str(GlobalID("TicketPhoto", "999999")), id="no-such-photo"),
        pytest.param(str(GlobalID("TicketPhoto", "1" * 40)), id="huge-number"),
        pytest.param("%%%", id="garbage"),
    ],
)
async def test_unknown_photo_ids_are_not_found(client, desk, photo_id):
    response = await client.get(f"/media/photos/{photo_id}", headers={"Authorization": f"Bearer {desk.staff.token}"})
    assert response.status_code == 404


async def test_photos_of_a_ticket_seen_only_as_a_possible_duplicate_stay_hidden(client, services, gql, desk):
    # given: the reporter's ticket has a photo; a neighbour asks about duplicates at the same building
    result = await submit(client, services, desk, [("a.png", small_png(), "image/png")])
    neighbour = await make_login(
        services, role=Role.RESIDENT, community=desk.estate.community, resident=desk.estate.residents[1]
    )
    cat = await category_id(services, desk.estate.community.id, "leak")
    query = """
    query Dup($cat: ID!, $place: PlaceInput!) { possibleDuplicates(categoryId: $cat, place: $place) { id photos { id } } }
    """
    place = {"buildingId": gid("Building", desk.estate.households[0].building_id)}
    # when
    data = await gql(query, {"cat": cat, "place": place}, token=neighbour.token)
    node = await gql(
        "query N($id: ID!) { node(id: $id) { id } }", {"id": result["ticket"]["photos"][0]["id"]}, token=neighbour.token
    )
    # then
    assert data["possibleDuplicates"] == [{"id": result["ticket"]["id"], "photos": []}]
    assert node["node"] is None


# -- the service and the store ---------------------------------------------------------------------------


async def test_files_are_removed_when_the_transaction_rolls_back_after_the_photos_were_added(services, desk, media):
    # given
    ticket_id = await _ticket_id_via_service(services, desk)
    viewer = await _viewer(services, desk.reporter.token)
    seen: list[int] = []

    async def add_then_fail() -> None:
        async with services.db.unit_of_work() as uow:
            rows = await photos_service.add_photos(
                uow, viewer=viewer, store=services.photos, ticket_id=ticket_id, photos=[small_png(), png_with_text()]
            )
            seen.extend([len(rows), len(files_under(media))])
            raise RuntimeError("later failure")

    # when: something later in the same unit of work fails
    with pytest.raises(RuntimeError, match="later failure"):
        await add_then_fail()
    # then: the files had been written, and are gone with the rolled-back rows
    assert seen == [2, 2]
    assert files_under(media) == []
    assert await photo_rows(services) == []


async def test_files_written_before_a_failing_save_are_removed(services, desk, media):
    # given: a store that fails on the second file
    ticket_id = await _ticket_id_via_service(services, desk)
    viewer = await _viewer(services, desk.reporter.token)
    store = FailingSecondSave(media)
    # when
    with pytest.raises(OSError, match="disk full"):
        async with services.db.unit_of_work() as uow:
            await photos_service.add_photos(
                uow, viewer=viewer, store=store, ticket_id=ticket_id, photos=[small_png(), small_png()]
            )
    # then
    assert store.saved == 1
    assert files_under(media) == []
    assert await photo_rows(services) == []


async def test_committed_photos_keep_their_files(services, desk, media):
    # given
    ticket_id = await _ticket_id_via_service(services, desk)
    viewer = await _viewer(services, desk.reporter.token)
    # when
    async with services.db.unit_of_work() as uow:
        await photos_service.add_photos(
            uow, viewer=viewer, store=services.photos, ticket_id=ticket_id, photos=[small_png()]
        )
    # then
    [row] = await photo_rows(services)
    assert files_under(media) == [media / row.storage_key]
    assert Image.open(io.BytesIO((media / row.storage_key).read_bytes())).size == (4, 4)


@pytest.mark.parametrize(
    "key",
    ["../escape.jpg", "/etc/passwd.jpg", "tickets/../../escape.jpg", "tickets/1/2/x.exe", "tickets\\1\\x.jpg", ""],
)
def test_the_local_store_refuses_keys_that_leave_its_root(tmp_path, key):
    store = photos_service.LocalPhotoStore(tmp_path)
    with pytest.raises(ValueError, match="invalid photo key"):
        store.save(key, b"x")
    with pytest.raises(ValueError, match="invalid photo key"):
        store.open(key)
    assert list(tmp_path.iterdir()) == []


def test_the_local_store_round_trips_and_deletes(tmp_path):
    store = photos_service.LocalPhotoStore(tmp_path)
    store.save("tickets/1/2/abc.jpg", b"bytes")
    assert store.open("tickets/1/2/abc.jpg") == b"bytes"
    store.delete("tickets/1/2/abc.jpg")
    store.delete("tickets/1/2/abc.jpg")  # a missing file is not an error
    with pytest.raises(FileNotFoundError):
        store.open("tickets/1/2/abc.jpg")


# -- helpers -----------------------------------------------------------------------------------------


class FailingSecondSave(photos_service.LocalPhotoStore):
    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.saved = 0

    def save(self, key: str, data: bytes) -> None:
        if self.saved == 1:
            raise OSError("disk full")
        super().save(key, data)
        self.saved += 1


async def _viewer(services, token: str):
    from api.accounts.service import viewer_for_token

    async with services.db.read_session() as session:
        viewer = await viewer_for_token(session, token)
    assert viewer is not None
    return viewer


async def _ticket_id_via_service(services, desk) -> int:
    from api.tickets import service as tickets_service
    from api.tickets.models import TicketCategory

    viewer = await _viewer(services, desk.reporter.token)
    household = desk.estate.households[0]
    async with services.db.read_session() as session:
        cat = await session.scalar(
            select(TicketCategory.id).where(
                TicketCategory.community_id == desk.estate.community.id, TicketCategory.code == "leak"
            )
        )
    async with services.db.unit_of_work() as uow:
        ticket = await tickets_service.submit(
            uow,
            viewer=viewer,
            draft=tickets_service.TicketDraft(
                category_id=cat,
                description="漏水",
                place=tickets_service.Place(
                    building_id=household.building_id, unit=household.unit, room=household.room
                ),
                answers={"where": "厨房"},
            ),
        )
    return ticket.id
