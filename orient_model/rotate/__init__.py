"""Produce the rotated bytes of a photo file, in memory, verified, never touching the original.

Three ways to turn a photo upright, by how much of the file they touch:

* ``lossless`` (JPEG, :mod:`.jpeg`): ``jpegtran -perfect`` moves DCT blocks, so there is no
  generation loss; the EXIF Orientation is then reset to 1 and the EXIF thumbnail dropped.
* ``exif`` (JPEG, TIFF): only the Orientation tag changes; every pixel byte stays put.
* ``reencode`` (TIFF in :mod:`.tiff`; PNG, WebP, BMP in :mod:`.pillow`): decode, transform,
  re-save with the same lossless codec, bit depth, palette and metadata. Lossy sources (lossy
  WebP, JPEG-in-TIFF) are never re-compressed.

Whatever the path, :func:`rotate_bytes` checks the result before returning it: it decodes,
has the expected size, and its image data is exactly the transformed original's. Any doubt
raises :class:`RotateError`, whose message goes into the report for the archivist.
"""

from __future__ import annotations

from orient_model import orientation as ori
from orient_model.rotate.common import ORIENTATION_TAG, Method, Rotated, RotateError, open_pillow
from orient_model.rotate.jpeg import rotate_jpeg
from orient_model.rotate.pillow import rotate_pillow
from orient_model.rotate.tiff import rotate_tiff, tiff_orientation

__all__ = ["Method", "Rotated", "RotateError", "rotate_bytes", "sniff_format"]


def rotate_bytes(
    data: bytes, rotation_deg: int, method: Method, *, exif_orientation: int | None = None
) -> Rotated:
    """Rotate a photo file's bytes ``rotation_deg`` degrees clockwise as displayed.

    ``exif_orientation`` is the Orientation the prediction was made against; when given it
    must match the file's, so a tag edited since ingest cannot produce a wrong rotation.
    """
    if rotation_deg not in ori.ROTATIONS:
        raise RotateError(f"rotation must be 0, 90, 180 or 270 degrees, not {rotation_deg!r}")
    if method not in ("lossless", "exif"):
        raise RotateError(f"unknown method {method!r}; use 'lossless' or 'exif'")
    fmt = sniff_format(data)
    if fmt is None:
        raise RotateError("unsupported file format: only JPEG, TIFF, PNG, WebP and BMP can be rotated")
    current = _checked_orientation(_read_orientation(fmt, data), exif_orientation)
    if fmt == "jpeg":
        return rotate_jpeg(data, rotation_deg, method, current)
    if fmt == "tiff":
        return rotate_tiff(data, rotation_deg, method, current)
    return rotate_pillow(data, fmt, rotation_deg, current)


def sniff_format(data: bytes) -> str | None:
    """Format by magic bytes (extensions lie in old archives)."""
    if data[:3] == b"\xff\xd8\xff":
        return "jpeg"
    if data[:4] in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"):
        return "tiff"
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        return "png"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp"
    if data[:2] == b"BM":
        return "bmp"
    return None


def _checked_orientation(stored: int | None, expected: int | None) -> int:
    if expected is not None and not ori.valid_exif_orientation(expected):
        raise RotateError(f"EXIF orientation {expected!r} is not a valid value (1..8)")
    if stored is not None and not ori.valid_exif_orientation(stored):
        raise RotateError(
            f"the file's EXIF Orientation tag holds the invalid value {stored!r}; set it to 1 "
            "(e.g. exiftool -Orientation#=1) and run again"
        )
    current = 1 if stored is None else stored
    if expected is not None and expected != current:
        raise RotateError(
            f"the file's EXIF orientation is {current} but the prediction assumed {expected}; "
            "the file changed since it was read, run again"
        )
    return current


def _read_orientation(fmt: str, data: bytes) -> int | None:
    """The file's Orientation as viewers see it (EXIF, else XMP as Pillow does)."""
    if fmt == "tiff":
        return tiff_orientation(data)
    value = open_pillow(data).getexif().get(ORIENTATION_TAG)
    return None if value is None else int(value)
