"""Ticket photos: the type, upload limits, and the addTicketPhotos mutation (multipart uploads)."""

from __future__ import annotations

import datetime as dt
import inspect
from collections.abc import Iterable, Sequence
from typing import Annotated, Any, Self

import strawberry
from sqlalchemy import select
from strawberry import relay
from strawberry.file_uploads import Upload

from api.core.errors import DomainError, ValidationFailed
from api.core.viewer import Viewer
from api.graphql.context import Info
from api.graphql.errors import NotFoundError, UserError, ValidationError, to_user_error
from api.graphql.pagination import decode_id
from api.graphql.tickets.types import Ticket
from api.settings import Settings
from api.tickets import photos as photos_service
from api.tickets import service as tickets_service
from api.tickets.models import Ticket as TicketModel
from api.tickets.models import TicketPhoto as TicketPhotoModel

MEDIA_PREFIX = "/media/photos/"


@strawberry.type(description="A photo was refused: too large, not an image, an unsupported type, or too many.")
class PhotoError(UserError):
    index: int | None = strawberry.field(description="The 0-based position of the upload at fault, if one is.")

    @classmethod
    def from_error(cls, exc: photos_service.PhotoRejected) -> Self:
        return cls(message=exc.message, field=exc.field, code=exc.code, index=exc.index)


@strawberry.type(description="A photo attached to a ticket; metadata (EXIF, GPS, XMP) was removed on upload.")
class TicketPhoto(relay.Node):
    db_id: relay.NodeID[int]
    content_type: str = strawberry.field(description="image/jpeg, image/png or image/webp.")
    width: int = strawberry.field(description="Width in pixels, upright.")
    height: int = strawberry.field(description="Height in pixels, upright.")
    created_at: dt.datetime = strawberry.field(description="When it was added.")

    @classmethod
    def from_model(cls, m: TicketPhotoModel) -> Self:
        return cls(db_id=m.id, content_type=m.content_type, width=m.width, height=m.height, created_at=m.created_at)

    @classmethod
    async def resolve_nodes(cls, *, info: Info, node_ids: Iterable[str], required: bool = False) -> list[Any]:
        ids = [int(i) if i.isascii() and i.isdigit() and len(i) <= 18 else -1 for i in node_ids]
        visible = tickets_service.visible_tickets(info.context.viewer).with_only_columns(TicketModel.id)
        async with info.context.db.read_session() as session:
            rows = (
                await session.scalars(
                    select(TicketPhotoModel).where(
                        TicketPhotoModel.id.in_(ids), TicketPhotoModel.ticket_id.in_(visible)
                    )
                )
            ).all()
        by_id = {r.id: r for r in rows}
        return [cls.from_model(by_id[i]) if i in by_id else None for i in ids]

    @strawberry.field(description="Where to GET the bytes, sending the same bearer token (relative to the API).")
    def url(self) -> str:
        return f"{MEDIA_PREFIX}{relay.GlobalID('TicketPhoto', str(self.db_id))}"


@strawberry.type(description="What a photo upload may be, for checking files before sending them.")
class PhotoUploadLimits:
    max_bytes: int = strawberry.field(description="Largest file accepted, in bytes.")
    max_pixels: int = strawberry.field(description="Most pixels (width × height) accepted.")
    max_per_ticket: int = strawberry.field(description="Most photos one ticket may have.")
    content_types: list[str] = strawberry.field(description="Accepted image types (checked by decoding the image).")


def photo_limits(settings: Settings) -> photos_service.PhotoLimits:
    return photos_service.PhotoLimits(
        max_bytes=settings.photo_max_bytes, max_pixels=settings.photo_max_pixels, max_count=settings.photo_max_count
    )


async def _maybe_await(value: Any) -> Any:
    return await value if inspect.isawaitable(value) else value


async def read_uploads(uploads: Sequence[Any], limits: photos_service.PhotoLimits, viewer: Viewer) -> list[bytes]:
    """The bytes of multipart uploads, reading at most one byte past the limit of each; closes them.

    Raises Unauthenticated (nothing is read for anonymous requests), TooManyPhotos, PhotoTooLarge,
    ValidationFailed (a value that is not a file part).
    """
    try:
        viewer.require_authenticated()
        photos_service.check_count(len(uploads), limits)
        out: list[bytes] = []
        for index, upload in enumerate(uploads):
            if not (callable(getattr(upload, "read", None)) and callable(getattr(upload, "seek", None))):
                raise ValidationFailed(
                    "Send each photo as a file part of a multipart request (GraphQL multipart request spec).",
                    field="photos",
                )
            await _maybe_await(upload.seek(0))  # one file may be mapped to several variables
            data = await _maybe_await(upload.read(limits.max_bytes + 1))
            if len(data) > limits.max_bytes:
                raise photos_service.PhotoTooLarge.over_bytes(limits.max_bytes, index=index)
            out.append(data)
        return out
    finally:
        await close_uploads(uploads)


async def close_uploads(uploads: Sequence[Any]) -> None:
    """Close upload files (starlette spools parts over 1 MB to temporary files and never closes them)."""
    for upload in uploads:
        close = getattr(upload, "close", None)
        if callable(close):
            await _maybe_await(close())


def photo_result_error(exc: DomainError, allowed: list[type[UserError]]) -> Any:
    """The union member for `exc`: PhotoError for refused photos, else the shared mapping."""
    if isinstance(exc, photos_service.PhotoRejected):
        return PhotoError.from_error(exc)
    return to_user_error(exc, allowed)


# -- the mutation -------------------------------------------------------------------------------------


@strawberry.input(description="Photos for a ticket, sent as a multipart request (GraphQL multipart request spec).")
class AddTicketPhotosInput:
    ticket_id: relay.GlobalID = strawberry.field(description="The ticket.")
    photos: list[Upload] = strawberry.field(description="JPEG, PNG or WebP files (see photoUploadLimits).")
    note: str | None = strawberry.field(default=None, description="A note for the ticket's history.")


@strawberry.type(description="The photos were added.")
class AddTicketPhotosSuccess:
    ticket: Ticket = strawberry.field(description="The ticket.")
    photos: list[TicketPhoto] = strawberry.field(description="The photos just added.")


AddTicketPhotosResult = Annotated[
    AddTicketPhotosSuccess | NotFoundError | ValidationError | PhotoError,
    strawberry.union("AddTicketPhotosResult", description="The photos, or why they were refused."),
]


@strawberry.type
class TicketPhotosQuery:
    @strawberry.field(description="What a ticket photo may be: size, pixels, count and types.")
    def photo_upload_limits(self, info: Info) -> PhotoUploadLimits:
        limits = photo_limits(info.context.services.settings)
        return PhotoUploadLimits(
            max_bytes=limits.max_bytes,
            max_pixels=limits.max_pixels,
            max_per_ticket=limits.max_count,
            content_types=list(photos_service.CONTENT_TYPES),
        )


@strawberry.type
class TicketPhotosMutation:
    @strawberry.mutation(description="Add photos to a ticket (its reporter, its assignee or staff).")
    async def add_ticket_photos(
        self,
        info: Info,
        input: Annotated[AddTicketPhotosInput, strawberry.argument(description="The mutation's input.")],
    ) -> AddTicketPhotosResult:
        services, viewer = info.context.services, info.context.viewer
        limits = photo_limits(services.settings)
        ticket_id = decode_id(input.ticket_id, "Ticket")
        try:
            try:  # a ticket the viewer cannot see costs one query, not the decoding of its photos
                viewer.require_authenticated()
                async with info.context.db.read_session() as session:
                    await tickets_service.get_visible(session, viewer, ticket_id)
            except DomainError:
                await close_uploads(input.photos)
                raise
            # Read and decode before the transaction: decoding is slow and must not hold a connection.
            prepared = await photos_service.prepare_photos(
                await read_uploads(input.photos, limits, viewer), limits=limits
            )
            async with info.context.db.unit_of_work(info.context.jobs) as uow:
                rows = await photos_service.add_photos(
                    uow, viewer=viewer, store=services.photos, ticket_id=ticket_id, photos=prepared, note=input.note,
                    limits=limits,
                )  # fmt: skip
                ticket = await uow.session.get(TicketModel, rows[0].ticket_id)
                assert ticket is not None
        except DomainError as exc:
            return photo_result_error(exc, [NotFoundError, ValidationError])
        return AddTicketPhotosSuccess(
            ticket=Ticket.from_model(ticket), photos=[TicketPhoto.from_model(r) for r in rows]
        )
