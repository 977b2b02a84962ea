"""What every format's rotation shares: the result type, the error, metadata and size checks."""

from __future__ import annotations

import io
import re
from dataclasses import dataclass
from typing import Literal

from PIL import Image, UnidentifiedImageError

from orient_model import orientation as ori
from orient_model.errors import OrientError
from orient_model.imageio import our_pixel_cap

Method = Literal["lossless", "exif"]
ORIENTATION_TAG = ori.EXIF_ORIENTATION_TAG
XMP_TAG = 700
_XMP_ORIENTATION = re.compile(rb"(tiff:Orientation\s*=\s*[\"']|<tiff:Orientation>\s*)([0-9])")


@dataclass
class Rotated:
    """New file bytes and how they were made (the report's ``method`` column)."""

    data: bytes
    method: str  # 'lossless' | 'exif' | 'reencode'
    note: str | None = None


class RotateError(OrientError):
    """The file cannot be rotated safely; the message says why and what the user can do."""


def xmp_orientation(xmp: bytes | str) -> int | None:
    raw = xmp.encode() if isinstance(xmp, str) else bytes(xmp)
    match = _XMP_ORIENTATION.search(raw)
    return int(match.group(2)) if match else None


def patch_xmp_orientation(xmp: bytes, value: int) -> bytes:
    """Set tiff:Orientation in an XMP packet without changing its length."""
    return _XMP_ORIENTATION.sub(lambda m: m.group(1) + str(value).encode(), xmp)


def open_pillow(data: bytes) -> Image.Image:
    try:
        with our_pixel_cap(None):  # the size was checked when the photo was read
            return Image.open(io.BytesIO(data))
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise RotateError(f"cannot read image (damaged or unsupported variant): {exc}") from exc


def decode(data: bytes) -> Image.Image:
    img = open_pillow(data)
    try:
        img.load()
    except (OSError, SyntaxError, ValueError) as exc:
        raise RotateError(f"image data is damaged and cannot be decoded: {exc}") from exc
    return img


def swaps_axes(transform: ori.Transpose | None) -> bool:
    return transform in (
        ori.Transpose.ROTATE_90,
        ori.Transpose.ROTATE_270,
        ori.Transpose.TRANSPOSE,
        ori.Transpose.TRANSVERSE,
    )


def expected_size(size: tuple[int, int], transform: ori.Transpose | None) -> tuple[int, int]:
    return (size[1], size[0]) if swaps_axes(transform) else size


def check_mode_and_size(before: Image.Image, after: Image.Image, transform: ori.Transpose | None) -> None:
    if after.mode != before.mode:
        raise RotateError(f"verification failed: colour mode changed from {before.mode} to {after.mode}")
    if after.size != expected_size(before.size, transform):
        raise RotateError(f"verification failed: rotated size {after.size} is wrong for {before.size}")
