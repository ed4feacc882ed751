"""Validation of files a user hands to the studio: exemplar crops and painted label maps.

Every check answers with one sentence the page can show as it is: a file that is too large,
that is not an image, or whose pixel count could exhaust memory when decoded (a
"decompression bomb") is refused before any pixel is decoded.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import io
import threading
import warnings
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np

__all__ = [
    "ALLOWED_FORMATS",
    "UploadError",
    "UploadLimits",
    "UploadStore",
    "UploadedCrop",
    "decode_label",
    "read_image_upload",
]

ALLOWED_FORMATS = ("PNG", "JPEG", "TIFF", "BMP", "WEBP")


class UploadError(ValueError):
    """A file or field sent by the page that cannot be used; the message is shown to the user."""


@dataclass(frozen=True)
class UploadLimits:
    """Bounds on uploaded exemplar crops.

    Attributes
    ----------
    max_bytes
        Largest accepted file.
    max_pixels
        Largest accepted width × height, checked from the header before decoding.
    min_side
        Smallest accepted width or height (a crop of a few pixels is no exemplar).
    """

    max_bytes: int = 8 * 1024 * 1024
    max_pixels: int = 2048 * 2048
    min_side: int = 8


def read_image_upload(data: bytes, name: str, limits: UploadLimits = UploadLimits()) -> np.ndarray:
    """Check and decode an uploaded image to RGB uint8 ``(h, w, 3)``.

    Parameters
    ----------
    data
        The file's bytes.
    name
        The file name, used in messages only.
    limits
        Size, pixel and side bounds.

    Raises
    ------
    UploadError
        When the file is empty, too large, not a readable image of an allowed format, or has
        too many or too few pixels.
    """
    from PIL import Image, UnidentifiedImageError

    if not data:
        raise UploadError(f"{name!r} is empty")
    if len(data) > limits.max_bytes:
        raise UploadError(
            f"{name!r} is {len(data) / 2**20:.1f} MB; uploads are limited to {limits.max_bytes / 2**20:.0f} MB"
        )
    not_image = f"{name!r} is not an image this studio reads ({', '.join(ALLOWED_FORMATS)})"
    too_many = f"{name!r} has too many pixels; uploads are limited to {limits.max_pixels:,} pixels"
    try:
        with warnings.catch_warnings():  # the header check below is stricter than PIL's bomb warning
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            im = Image.open(io.BytesIO(data))
        with im:
            fmt, (w, h) = im.format, im.size
            _check_header(name, fmt, w, h, limits, not_image)
            im.verify()
        with Image.open(io.BytesIO(data)) as im:
            im.load()
            rgb = np.asarray(im.convert("RGB"))
    except UploadError:
        raise
    except Image.DecompressionBombError:
        raise UploadError(too_many) from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError):
        raise UploadError(not_image) from None
    return np.ascontiguousarray(rgb, dtype=np.uint8)


def _check_header(name: str, fmt: str | None, w: int, h: int, limits: UploadLimits, not_image: str) -> None:
    if fmt not in ALLOWED_FORMATS:
        raise UploadError(not_image)
    if w * h > limits.max_pixels:
        raise UploadError(f"{name!r} has {w}×{h} px; uploads are limited to {limits.max_pixels:,} pixels")
    if min(w, h) < limits.min_side:
        raise UploadError(f"{name!r} has {w}×{h} px; a crop needs at least {limits.min_side} px a side")


def decode_label(encoded: str, size: int, class_ids: list[int]) -> np.ndarray:
    """Decode a painted label map sent as base64 of ``size × size`` raw uint8 class ids.

    Raises
    ------
    UploadError
        When the text is not base64, has the wrong length, or holds ids outside ``class_ids``.
    """
    try:
        raw = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError, TypeError):
        raise UploadError("the painted map is not valid base64 data") from None
    if len(raw) != size * size:
        raise UploadError(f"the painted map has {len(raw)} pixels; the model needs {size}×{size}")
    label = np.frombuffer(raw, np.uint8).reshape(size, size).copy()
    unknown = sorted(set(np.unique(label).tolist()) - set(class_ids))
    if unknown:
        raise UploadError(f"the painted map holds class ids {unknown} that the model does not know")
    return label


@dataclass(frozen=True)
class UploadedCrop:
    """An exemplar crop the user uploaded (kept in memory for the session)."""

    id: str
    class_id: int
    name: str
    sha256: str
    pixels: np.ndarray

    def provenance(self) -> str:
        """JSON provenance: the uploaded file's name and content hash."""
        import json

        return json.dumps({"upload": self.name, "sha256": self.sha256})


class UploadStore:
    """The uploaded crops of a studio session, newest kept, oldest dropped past ``capacity``.

    Parameters
    ----------
    capacity
        Most uploads held at once.
    limits
        Bounds every upload is checked against.
    """

    def __init__(self, capacity: int = 64, limits: UploadLimits = UploadLimits()) -> None:
        self.capacity = capacity
        self.limits = limits
        self._items: OrderedDict[str, UploadedCrop] = OrderedDict()
        self._lock = threading.Lock()

    def add(self, data: bytes, name: str, class_id: int) -> UploadedCrop:
        """Validate ``data`` and keep it as an exemplar of ``class_id``; the same file gives the same id."""
        pixels = read_image_upload(data, name, self.limits)
        digest = hashlib.sha256(data).hexdigest()
        item = UploadedCrop(f"upload-{class_id}-{digest[:16]}", class_id, name, digest, pixels)
        with self._lock:
            self._items[item.id] = item
            self._items.move_to_end(item.id)
            while len(self._items) > self.capacity:
                self._items.popitem(last=False)
        return item

    def get(self, upload_id: str) -> UploadedCrop | None:
        """The upload of that id, or ``None`` when unknown or already dropped."""
        with self._lock:
            return self._items.get(upload_id)
