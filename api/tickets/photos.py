"""Photos on tickets: checked as real images, stripped of metadata, stored on disk.

Every upload is decoded with Pillow and accepted only when the decoded format is JPEG, PNG or
WebP (never by file name or declared type). It is rotated upright from its EXIF orientation and
re-encoded from the pixels alone, so no EXIF (GPS included), XMP, ICC profile or comment survives.

Files and rows: `add_photos` writes the files before the rows and removes them again when the
transaction does not commit (an error inside it, or a rollback of the unit of work after it).
What this cannot cover is a crash of the process between writing the files and the end of the
transaction: the files then stay on disk with no row. No orphan sweep exists yet; one would list
`tickets/` under the media directory and delete files older than a day that no `ticket_photo` row
names.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from sqlalchemy import func, select

from api.core.clock import utc_now
from api.core.database import UnitOfWork
from api.core.errors import Forbidden, ValidationFailed
from api.core.images import (
    ACCEPTED_FORMATS,
    CONTENT_TYPES,
    JPEG_QUALITY,
    KEY_PATTERN,
    LocalPhotoStore,
    NotAnImage,
    PhotoLimits,
    PhotoRejected,
    PhotoStore,
    PhotoTooLarge,
    PreparedPhoto,
    TooManyPhotos,
    UnsupportedImageType,
    check_count,
    ensure_prepared,
    prepare_photo,
    prepare_photos,
    remove_quietly,
    store_unless_rolled_back,
)
from api.core.viewer import Viewer
from api.tickets import service as tickets_service
from api.tickets.models import Ticket, TicketPhoto

# The image checks, the store and the errors live in api.core.images; they are re-exported here.
__all__ = [
    "ACCEPTED_FORMATS",
    "CONTENT_TYPES",
    "JPEG_QUALITY",
    "KEY_PATTERN",
    "LocalPhotoStore",
    "NotAnImage",
    "PhotoLimits",
    "PhotoRejected",
    "PhotoStore",
    "PhotoTooLarge",
    "PreparedPhoto",
    "TooManyPhotos",
    "UnsupportedImageType",
    "add_photos",
    "check_count",
    "photo_key",
    "prepare_photo",
    "prepare_photos",
]


def photo_key(community_id: int, ticket_id: int, extension: str) -> str:
    return f"tickets/{community_id}/{ticket_id}/{uuid.uuid4().hex}.{extension}"


# -- the service ------------------------------------------------------------------------------------


async def add_photos(
    uow: UnitOfWork,
    *,
    viewer: Viewer,
    store: PhotoStore,
    ticket_id: int,
    photos: Sequence[bytes | PreparedPhoto],
    note: str | None = None,
    limits: PhotoLimits | None = None,
) -> list[TicketPhoto]:
    """Attach photos to a ticket the viewer reported, is assigned to, or manages as staff.

    Raw bytes are prepared here; callers with a database transaction open should pass photos
    from `prepare_photos` instead, so decoding never holds a connection. The files are written
    first, then the rows and a "photos" event; if the transaction rolls back the files are removed.

    Raises Unauthenticated, NotFound, Forbidden, ValidationFailed, TooManyPhotos, PhotoTooLarge,
    NotAnImage, UnsupportedImageType.
    """
    limits = limits or PhotoLimits()
    viewer.require_authenticated()
    if not photos:
        raise ValidationFailed("Attach at least one photo.", field="photos")
    check_count(len(photos), limits)
    ticket = await tickets_service.get_visible(uow.session, viewer, ticket_id, lock=True)
    who = await tickets_service.viewpoint(uow.session, viewer, ticket)
    if not who.any:
        raise Forbidden("Only the reporter, the assignee or staff can add photos.")
    clean_note = (note or "").strip() or None
    if clean_note is not None and len(clean_note) > tickets_service.MAX_NOTE:
        raise ValidationFailed(f"At most {tickets_service.MAX_NOTE} characters.", field="note")
    existing = await uow.session.scalar(
        select(func.count()).select_from(TicketPhoto).where(TicketPhoto.ticket_id == ticket.id)
    )
    check_count(len(photos), limits, existing=existing or 0)
    prepared = await ensure_prepared(photos, limits)
    return await _store_and_record(uow, viewer=viewer, store=store, ticket=ticket, photos=prepared, note=clean_note)


async def _store_and_record(
    uow: UnitOfWork,
    *,
    viewer: Viewer,
    store: PhotoStore,
    ticket: Ticket,
    photos: list[PreparedPhoto],
    note: str | None,
) -> list[TicketPhoto]:
    written = await store_unless_rolled_back(
        uow.session, store, photos, lambda photo: photo_key(ticket.community_id, ticket.id, photo.extension)
    )
    try:
        now = utc_now()
        ticket.updated_at = now
        recorded = await tickets_service._record(
            uow, ticket, kind="photos", viewer=viewer, note=note or f"Added {len(photos)} photo(s)."
        )
        rows = [
            TicketPhoto(
                community_id=ticket.community_id,
                ticket_id=ticket.id,
                event_id=recorded.id,
                storage_key=key,
                content_type=photo.content_type,
                size_bytes=len(photo.content),
                width=photo.width,
                height=photo.height,
                created_at=now,
            )
            for key, photo in zip(written, photos, strict=True)
        ]
        uow.session.add_all(rows)
        await uow.session.flush()
    except BaseException:
        remove_quietly(store, written)  # synchronous: it must run even when the task is cancelled
        raise
    return rows
