"""Images uploaded by people: checked as real images, stripped of metadata, stored by key.

Shared by ticket photos (api/tickets/photos.py) and venue photos (api/venues/service.py).
Every upload is decoded with Pillow and accepted only when the decoded format is JPEG, PNG or
WebP (never by file name or declared type). It is rotated upright from its EXIF orientation and
re-encoded from the pixels alone, so no EXIF (GPS included), XMP, ICC profile or comment survives.
`store_unless_rolled_back` writes files before their rows and removes them again when the
transaction does not commit.
"""

from __future__ import annotations

import asyncio
import io
import logging
import os
import re
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from PIL import Image, ImageCms, ImageOps, UnidentifiedImageError
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import SessionTransaction

from api.core.errors import ValidationFailed

log = logging.getLogger(__name__)

JPEG_QUALITY = 85
# decoded format -> (content type, file extension)
ACCEPTED_FORMATS: dict[str, tuple[str, str]] = {
    "JPEG": ("image/jpeg", "jpg"),
    "PNG": ("image/png", "png"),
    "WEBP": ("image/webp", "webp"),
}
CONTENT_TYPES = tuple(content_type for content_type, _ in ACCEPTED_FORMATS.values())


# -- errors -----------------------------------------------------------------------------------


class PhotoRejected(ValidationFailed):
    """A photo was refused; `index` is the 0-based position of the upload at fault, if one is."""

    code = "PHOTO_REJECTED"

    def __init__(self, message: str, *, field: str | None = "photos", index: int | None = None) -> None:
        super().__init__(message, field=field)
        self.index = index


class PhotoTooLarge(PhotoRejected):
    code = "PHOTO_TOO_LARGE"

    @classmethod
    def over_bytes(cls, max_bytes: int, *, index: int | None = None) -> PhotoTooLarge:
        size = f"{max_bytes / 1_000_000:g} MB" if max_bytes >= 1_000_000 else f"{max_bytes / 1000:g} KB"
        return cls(f"A photo may be at most {size}.", index=index)


class NotAnImage(PhotoRejected):
    code = "NOT_AN_IMAGE"


class UnsupportedImageType(PhotoRejected):
    code = "UNSUPPORTED_IMAGE_TYPE"


class TooManyPhotos(PhotoRejected):
    code = "TOO_MANY_PHOTOS"


# -- storage ----------------------------------------------------------------------------------


class PhotoStore(Protocol):
    """Where photo bytes live, by key. Blocking calls: run them off the event loop."""

    def save(self, key: str, data: bytes) -> None: ...

    def open(self, key: str) -> bytes:
        """The bytes stored under `key`. Raises FileNotFoundError."""
        ...

    def delete(self, key: str) -> None:
        """Remove the bytes under `key`; a missing key is not an error."""
        ...


KEY_PATTERN = re.compile(r"[a-z0-9_-]+(/[a-z0-9_-]+)*\.(jpg|png|webp)")


class LocalPhotoStore:
    """Photos as files under one directory; keys are relative paths such as tickets/1/2/<uuid>.jpg."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root).resolve()

    def path_of(self, key: str) -> Path:
        """The file for `key`. Raises ValueError for a key that could leave the root."""
        if not KEY_PATTERN.fullmatch(key):
            raise ValueError(f"invalid photo key {key!r}")
        path = (self.root / key).resolve()
        if not path.is_relative_to(self.root):
            raise ValueError(f"invalid photo key {key!r}")
        return path

    def save(self, key: str, data: bytes) -> None:
        """Write atomically (temporary file, fsync, rename), so a reader never sees half a photo."""
        path = self.path_of(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".upload-")
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def open(self, key: str) -> bytes:
        return self.path_of(key).read_bytes()

    def delete(self, key: str) -> None:
        self.path_of(key).unlink(missing_ok=True)


# -- checking and cleaning ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PhotoLimits:
    max_bytes: int = 8_000_000
    max_pixels: int = 40_000_000
    max_count: int = 6


@dataclass(frozen=True, slots=True)
class PreparedPhoto:
    """A photo ready to store: re-encoded, upright, without metadata."""

    content: bytes
    content_type: str
    width: int
    height: int

    @property
    def extension(self) -> str:
        return next(ext for ctype, ext in ACCEPTED_FORMATS.values() if ctype == self.content_type)


_SRGB = ImageCms.createProfile("sRGB")


def _to_srgb(image: Image.Image) -> Image.Image:
    """Convert pixels from an embedded ICC profile to sRGB, so dropping the profile keeps the colours."""
    icc = image.info.get("icc_profile")
    if not icc or image.mode not in ("RGB", "RGBA", "CMYK"):
        return image
    try:
        source = ImageCms.ImageCmsProfile(io.BytesIO(icc))
        converted = ImageCms.profileToProfile(
            image, source, _SRGB, outputMode="RGBA" if image.mode == "RGBA" else "RGB"
        )
    except (ImageCms.PyCMSError, OSError, ValueError):
        return image  # an unusable profile: keep the pixels as they are
    return converted if converted is not None else image


def _pixels_only(image: Image.Image, fmt: str) -> Image.Image:
    """The image in a mode the output format stores, with every piece of metadata dropped."""
    has_alpha = image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info)
    if fmt == "JPEG":
        mode = "L" if image.mode in ("L", "1") else "RGB"
    elif has_alpha:
        mode = "RGBA"
    else:
        mode = "L" if image.mode in ("L", "1") else "RGB"
    clean = image.convert(mode) if image.mode != mode else image  # the caller owns `image`: no copy
    clean.info = {}  # exif, xmp, icc_profile, comment, text chunks, dpi: none is written back
    return clean


def prepare_photo(data: bytes, *, max_bytes: int, max_pixels: int, index: int | None = None) -> PreparedPhoto:
    """Check that `data` is a JPEG, PNG or WebP image and re-encode it upright without metadata.

    Blocking and CPU-bound: call it in a thread. Raises PhotoTooLarge, NotAnImage,
    UnsupportedImageType.
    """
    if len(data) > max_bytes:
        raise PhotoTooLarge.over_bytes(max_bytes, index=index)
    if not data:
        raise NotAnImage("The file is empty.", index=index)
    too_many_pixels = PhotoTooLarge(f"A photo may have at most {max_pixels:,} pixels.", index=index)
    try:
        # Pillow raises DecompressionBombError past twice its MAX_IMAGE_PIXELS and warns past it
        # (an error where warnings are errors); our own, lower limit is checked from the header.
        with Image.open(io.BytesIO(data)) as probe:
            fmt = probe.format or ""
            if fmt not in ACCEPTED_FORMATS:
                raise UnsupportedImageType(
                    f"Send a JPEG, PNG or WebP photo (this is {fmt or 'an unknown format'}).", index=index
                )
            width, height = probe.size
            if width < 1 or height < 1:
                raise NotAnImage("The image has no pixels.", index=index)
            if width * height > max_pixels:
                raise too_many_pixels
            probe.verify()
        # verify() leaves the image unusable: decode again. A BytesIO holds no OS resource to close,
        # and the pixels must outlive this block (no `with`, which may release them on exit).
        image = Image.open(io.BytesIO(data))
        image.load()
        ImageOps.exif_transpose(image, in_place=True)  # in place: one full-size copy fewer
        prepared = _pixels_only(_to_srgb(image), fmt)
    except PhotoRejected:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise too_many_pixels from exc
    except UnidentifiedImageError as exc:
        raise NotAnImage("The file is not an image.", index=index) from exc
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise NotAnImage("The image is damaged or incomplete.", index=index) from exc
    out = io.BytesIO()
    if fmt == "JPEG":
        prepared.save(out, "JPEG", quality=JPEG_QUALITY)
    elif fmt == "PNG":
        prepared.save(out, "PNG", optimize=False)
    else:
        prepared.save(out, "WEBP", quality=JPEG_QUALITY)
    content_type, _ = ACCEPTED_FORMATS[fmt]
    return PreparedPhoto(out.getvalue(), content_type, prepared.width, prepared.height)


# -- files that must not outlive a rolled-back transaction ------------------------------------------


def remove_quietly(store: PhotoStore, keys: Sequence[str]) -> None:
    for key in keys:
        try:
            store.delete(key)
        except (OSError, ValueError):
            log.warning("could not remove photo file %s; it is an orphan now", key, exc_info=True)


def remove_unless_committed(session: AsyncSession, store: PhotoStore, keys: list[str]) -> None:
    """Delete `keys` when the session's outermost transaction ends without a commit."""
    state = {"committed": False, "done": False}

    def on_commit(_session: object) -> None:
        state["committed"] = True

    def on_end(_session: object, transaction: SessionTransaction) -> None:
        if state["done"] or transaction.parent is not None:
            return  # a savepoint, or the work is over
        state["done"] = True
        if not state["committed"]:
            remove_quietly(store, keys)

    event.listen(session.sync_session, "after_commit", on_commit)
    event.listen(session.sync_session, "after_transaction_end", on_end)


def check_count(count: int, limits: PhotoLimits, *, existing: int = 0, owner: str = "ticket") -> None:
    """Raise TooManyPhotos when `count` new photos would pass the per-`owner` limit."""
    if existing + count > limits.max_count:
        left = max(limits.max_count - existing, 0)
        raise TooManyPhotos(f"A {owner} may have at most {limits.max_count} photos ({left} more allowed now).")


async def prepare_photos(photos: Sequence[bytes], *, limits: PhotoLimits, owner: str = "ticket") -> list[PreparedPhoto]:
    """Prepare uploads off the event loop; run it before opening a unit of work (decoding is slow)."""
    check_count(len(photos), limits, owner=owner)
    return [
        await asyncio.to_thread(prepare_photo, data, max_bytes=limits.max_bytes, max_pixels=limits.max_pixels, index=i)
        for i, data in enumerate(photos)
    ]


async def ensure_prepared(photos: Sequence[bytes | PreparedPhoto], limits: PhotoLimits) -> list[PreparedPhoto]:
    """`photos` with raw bytes prepared (off the event loop); already prepared ones kept as they are."""
    return [
        p
        if isinstance(p, PreparedPhoto)
        else await asyncio.to_thread(
            prepare_photo, p, max_bytes=limits.max_bytes, max_pixels=limits.max_pixels, index=i
        )
        for i, p in enumerate(photos)
    ]


async def store_unless_rolled_back(
    session: AsyncSession, store: PhotoStore, photos: Sequence[PreparedPhoto], key_for: Callable[[PreparedPhoto], str]
) -> list[str]:
    """Write each photo under `key_for(photo)` and return the keys, in order.

    The files are removed when the session's transaction ends without a commit; if writing fails
    part way, the files already written are removed before the error propagates.
    """
    written: list[str] = []
    remove_unless_committed(session, store, written)
    try:
        for photo in photos:
            key = key_for(photo)
            await asyncio.to_thread(store.save, key, photo.content)
            written.append(key)
    except BaseException:
        remove_quietly(store, written)  # synchronous: it must run even when the task is cancelled
        raise
    return written
