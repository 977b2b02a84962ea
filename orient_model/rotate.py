"""Produce the rotated bytes of a photo file, in memory, verified, never touching the original.

Three ways to turn a photo upright, by how much of the file they touch:

* ``lossless`` (JPEG): ``jpegtran -perfect`` moves DCT blocks, so no generation loss; the EXIF
  Orientation is then reset to 1 and the EXIF thumbnail (now wrong) dropped. When the image
  has partial edge blocks, a perfect transform is impossible; rather than trimming edge pixels
  or re-compressing we fall back to ``exif``.
* ``exif`` (JPEG, TIFF): only the Orientation tag changes; every pixel byte stays put.
* ``reencode`` (TIFF, PNG, WebP, BMP): decode, transform, re-save with the same lossless
  codec, bit depth, palette and metadata. Lossy sources (lossy WebP, JPEG-in-TIFF) are never
  re-compressed.

Whatever the path, :func:`rotate_bytes` checks the result before returning it: it decodes,
has the expected size, and its pixels are the transformed original pixels (exactly, or for
JPEG within :data:`JPEG_LOSSLESS_TOLERANCE`). Any doubt raises :class:`RotateError`, whose
message goes into the report for the archivist.
"""

from __future__ import annotations

import io
import re
import shutil
import struct
import subprocess
import tempfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import tifffile
from PIL import Image, ImageOps, UnidentifiedImageError

from orient_model import orientation as ori
from orient_model.errors import OrientError

Method = Literal["lossless", "exif"]

# Largest per-channel difference between the jpegtran-rotated JPEG, decoded, and the decoded
# original transformed in pixel space. The DCT coefficients are identical, but libjpeg-turbo's
# integer IDCT rounds its row and column passes differently and chroma upsampling is not
# symmetric, so decoded values may differ by a few levels. Measured with libjpeg-turbo 2.1:
# at most 3 for YCbCr colour (any subsampling, quality 30..100), 1 for grayscale and CMYK;
# mean difference below 0.15. A wrong transform gives differences near 100.
JPEG_LOSSLESS_TOLERANCE = 4
JPEG_LOSSLESS_MEAN_TOLERANCE = 0.5

ORIENTATION_TAG = 274
_XMP_TAG, _ICC_TAG, _EXIF_IFD_TAG, _GPS_IFD_TAG = 700, 34675, 34665, 34853
_PHOTOSHOP_LAYERS_TAG = 37724
_LOSSY_TIFF_COMPRESSIONS = {6, 7, 34712, 34892, 50001, 50002, 52546}
# Tags tifffile writes itself (structure, or passed as arguments) or that must not be copied.
_TIFF_NOT_COPIED = {
    254,
    256,
    257,
    258,
    259,
    262,
    266,
    270,
    273,
    274,
    277,
    278,
    279,
    282,
    283,
    284,
    296,
    305,
    306,
    317,
    320,
    322,
    323,
    324,
    325,
    330,
    338,
    339,
    340,
    341,
    347,
    530,
    531,
    532,
    _EXIF_IFD_TAG,
    _GPS_IFD_TAG,
    40965,
    _ICC_TAG,
}
_XMP_ORIENTATION = re.compile(rb"(tiff:Orientation\s*=\s*[\"']|<tiff:Orientation>\s*)([0-9])")


@dataclass
class Rotated:
    """New file bytes and how they were made (the report's ``method`` column)."""

    data: bytes
    method: str  # 'lossless' | 'exif' | 'reencode'
    note: str | None = None


class RotateError(OrientError):
    """The file cannot be rotated safely; the message says why and what the user can do."""


def rotate_bytes(
    data: bytes, rotation_cw: int, method: Method, *, exif_orientation: int | None = None
) -> Rotated:
    """Rotate a photo file's bytes ``rotation_cw`` degrees clockwise as displayed.

    ``exif_orientation`` is the Orientation the prediction was made against; when given it
    must match the file's, so a tag edited since ingest cannot produce a wrong rotation.
    """
    if rotation_cw not in ori.CLOCKWISE:
        raise RotateError(f"rotation must be 0, 90, 180 or 270 degrees, not {rotation_cw!r}")
    if method not in ("lossless", "exif"):
        raise RotateError(f"unknown method {method!r}; use 'lossless' or 'exif'")
    fmt = sniff_format(data)
    if fmt is None:
        raise RotateError(
            "unsupported file format: only JPEG, TIFF, PNG, WebP and BMP can be rotated"
        )
    current = _checked_orientation(_read_orientation(fmt, data), exif_orientation)
    if fmt == "jpeg":
        return _rotate_jpeg(data, rotation_cw, method, current)
    if fmt == "tiff":
        return _rotate_tiff(data, rotation_cw, method, current)
    return _rotate_pillow(data, fmt, rotation_cw, current)


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


# --------------------------------------------------------------------------- orientation tags


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
        return _tiff_orientation(data)
    img = _open_pillow(data)
    value = img.getexif().get(ORIENTATION_TAG)
    return None if value is None else int(value)


def _tiff_orientation(data: bytes) -> int | None:
    try:
        with tifffile.TiffFile(io.BytesIO(data)) as tif:
            page = tif.pages.first
            tag = page.tags.get(ORIENTATION_TAG)
            if tag is not None:
                return int(tag.value)
            xmp = page.tags.get(_XMP_TAG)
            return _xmp_orientation(xmp.value) if xmp is not None else None
    except RotateError:
        raise
    except Exception as exc:
        raise RotateError(f"cannot read TIFF (damaged or unsupported): {exc}") from exc


def _xmp_orientation(xmp: bytes | str) -> int | None:
    raw = xmp.encode() if isinstance(xmp, str) else bytes(xmp)
    match = _XMP_ORIENTATION.search(raw)
    return int(match.group(2)) if match else None


def _patch_xmp_orientation(xmp: bytes, value: int) -> bytes:
    """Set tiff:Orientation in an XMP packet without changing its length."""
    return _XMP_ORIENTATION.sub(lambda m: m.group(1) + str(value).encode(), xmp)


def _open_pillow(data: bytes) -> Image.Image:
    try:
        return Image.open(io.BytesIO(data))
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise RotateError(f"cannot read image (damaged or unsupported variant): {exc}") from exc


def _decode(data: bytes) -> Image.Image:
    img = _open_pillow(data)
    try:
        img.load()
    except (OSError, SyntaxError, ValueError) as exc:
        raise RotateError(f"image data is damaged and cannot be decoded: {exc}") from exc
    return img


def _swaps_axes(transform: ori.Transpose | None) -> bool:
    return transform in (
        ori.Transpose.ROTATE_90,
        ori.Transpose.ROTATE_270,
        ori.Transpose.TRANSPOSE,
        ori.Transpose.TRANSVERSE,
    )


def _expected_size(size: tuple[int, int], transform: ori.Transpose | None) -> tuple[int, int]:
    return (size[1], size[0]) if _swaps_axes(transform) else size


# --------------------------------------------------------------------------- TIFF structures


_TYPE_SIZES = {
    1: 1,
    2: 1,
    3: 2,
    4: 4,
    5: 8,
    6: 1,
    7: 1,
    8: 2,
    9: 4,
    10: 8,
    11: 4,
    12: 8,
    13: 4,
    16: 8,
    17: 8,
    18: 8,
}


@dataclass
class _IfdEntry:
    tag: int
    type: int
    count: int
    pos: int  # position of the entry in the buffer
    value_pos: int  # where its value bytes are (inline or at the offset)


class _TiffEditor:
    """Minimal in-place editor of IFD0 in a TIFF structure (a TIFF file or an EXIF blob).

    We never restructure the file: a tag is changed where it lies, and a missing tag is added
    by appending a copy of IFD0 with one more entry, so pixel data never moves.
    """

    def __init__(self, buf: bytearray, base: int = 0) -> None:
        self.buf, self.base = buf, base
        order = bytes(buf[base : base + 2])
        if order not in (b"II", b"MM"):
            raise RotateError("EXIF/TIFF structure has no valid byte-order header")
        self.bo = "<" if order == b"II" else ">"
        self.big = self._u("H", base + 2) == 43
        self.ptr_pos = base + (8 if self.big else 4)

    def _u(self, fmt: str, pos: int) -> int:
        return struct.unpack_from(self.bo + fmt, self.buf, pos)[0]

    @property
    def _off(self) -> str:
        return "Q" if self.big else "I"

    def entries(self) -> tuple[list[_IfdEntry], int]:
        """IFD0 entries and the offset (relative to base) of IFD0."""
        ifd = self._u(self._off, self.ptr_pos)
        pos = self.base + ifd
        count = self._u("Q" if self.big else "H", pos)
        size, head = (20, 8) if self.big else (12, 2)
        out = []
        for i in range(count):
            epos = pos + head + i * size
            tag, typ = self._u("H", epos), self._u("H", epos + 2)
            cnt = self._u(self._off, epos + 4)
            field = epos + (12 if self.big else 8)
            inline = _TYPE_SIZES.get(typ, 1) * cnt <= (8 if self.big else 4)
            value_pos = field if inline else self.base + self._u(self._off, field)
            out.append(_IfdEntry(tag, typ, cnt, epos, value_pos))
        return out, ifd

    def set_orientation(self, value: int) -> None:
        entries, ifd = self.entries()
        for entry in entries:
            if entry.tag == ORIENTATION_TAG:
                fmt = {3: "H", 4: "I"}.get(entry.type)
                if fmt is None:
                    raise RotateError(
                        "the Orientation tag has an unexpected type; fix it with exiftool"
                    )
                struct.pack_into(self.bo + fmt, self.buf, entry.value_pos, value)
                return
        self._append_ifd0_with_orientation(entries, ifd, value)

    def _append_ifd0_with_orientation(self, entries: list[_IfdEntry], ifd: int, value: int) -> None:
        size = 20 if self.big else 12
        raw = [bytes(self.buf[e.pos : e.pos + size]) for e in entries]
        new_entry = struct.pack(self.bo + "HH" + self._off, ORIENTATION_TAG, 3, 1)
        new_entry += struct.pack(self.bo + "H", value).ljust(size - len(new_entry), b"\0")
        tags = [e.tag for e in entries] + [ORIENTATION_TAG]
        pairs = sorted(zip(tags, raw + [new_entry], strict=True), key=lambda t: t[0])
        ordered = [r for _, r in pairs]
        head = self.base + ifd + (8 if self.big else 2)
        next_ptr = bytes(
            self.buf[
                head + len(entries) * size : head + len(entries) * size + (8 if self.big else 4)
            ]
        )
        while (len(self.buf) - self.base) % 2:
            self.buf.append(0)
        new_ifd = len(self.buf) - self.base
        self.buf += struct.pack(self.bo + ("Q" if self.big else "H"), len(ordered))
        self.buf += b"".join(ordered) + next_ptr
        struct.pack_into(self.bo + self._off, self.buf, self.ptr_pos, new_ifd)

    def patch_xmp_orientation(self, value: int) -> None:
        for entry in self.entries()[0]:
            if entry.tag == _XMP_TAG:
                end = entry.value_pos + entry.count
                self.buf[entry.value_pos : end] = _patch_xmp_orientation(
                    bytes(self.buf[entry.value_pos : end]), value
                )


def _exif_blob_upright(exif: bytes) -> bytes:
    """An EXIF blob (optionally ``Exif\\0\\0``-prefixed) with its Orientation reset to 1."""
    buf = bytearray(exif)
    base = 6 if buf.startswith(b"Exif\0\0") else 0
    editor = _TiffEditor(buf, base)
    if any(e.tag == ORIENTATION_TAG for e in editor.entries()[0]):
        editor.set_orientation(1)
    return bytes(buf)


# --------------------------------------------------------------------------- JPEG


def _rotate_jpeg(data: bytes, rotation_cw: int, method: Method, current: int) -> Rotated:
    if method == "exif":
        return _set_jpeg_orientation(
            data, ori.exif_after_rotation(current, rotation_cw), "exif", None
        )
    transform = ori.pixel_transform(current, rotation_cw)
    if transform is None:
        if current == 1:
            return Rotated(data, "lossless", "already upright; file unchanged")
        return _set_jpeg_orientation(data, 1, "lossless", None)
    moved = _jpegtran(data, transform)
    if moved is None:
        note = (
            "image size is not a multiple of the JPEG block size, so a lossless rotation "
            "would trim edge pixels; rotated via the EXIF Orientation tag instead"
        )
        return _set_jpeg_orientation(
            data, ori.exif_after_rotation(current, rotation_cw), "exif", note
        )
    result = _jpeg_metadata_upright(moved + _jpeg_trailer(data), _swaps_axes(transform))
    _verify_jpeg_lossless(data, result, transform)
    return Rotated(result, "lossless", None)


def _jpegtran(data: bytes, transform: ori.Transpose | None) -> bytes | None:
    """Run jpegtran; ``None`` when the transform cannot be perfect."""
    exe = shutil.which("jpegtran")
    if exe is None:
        raise RotateError(
            "jpegtran is not installed (Debian/Ubuntu: apt install libjpeg-turbo-progs)"
        )
    # jpegtran writes baseline Huffman unless told; keep the original's coding mode.
    coding = {0xC2: ["-progressive"], 0xC9: ["-arithmetic"], 0xCA: ["-arithmetic", "-progressive"]}
    cmd = [
        exe,
        "-perfect",
        "-copy",
        "all",
        *coding.get(_jpeg_sof(data), []),
        *ori.JPEGTRAN_ARGS[transform],
    ]
    proc = subprocess.run(cmd, input=data, capture_output=True, timeout=600, check=False)
    message = proc.stderr.decode("utf-8", "replace").strip()
    if proc.returncode != 0 and "not perfect" in message:
        return None
    if proc.returncode != 0 or not proc.stdout:
        raise RotateError(
            f"JPEG data is damaged or unsupported (jpegtran: {message or proc.returncode})"
        )
    return proc.stdout


def _jpeg_segments(data: bytes) -> tuple[bytes, int]:
    """(everything but APPn/COM segments up to the first scan, offset of the first SOS)."""
    out, pos = bytearray(data[:2]), 2
    while pos + 4 <= len(data):
        if data[pos] != 0xFF:
            raise RotateError("JPEG marker structure is damaged")
        marker = data[pos + 1]
        if marker == 0xFF:
            pos += 1
            continue
        if marker == 0xDA:
            return bytes(out), pos
        length = 2 + int.from_bytes(data[pos + 2 : pos + 4], "big")
        if not (0xE0 <= marker <= 0xEF or marker == 0xFE):
            out += data[pos : pos + length]
        pos += length
    raise RotateError("JPEG has no image data (no scan found); the file is truncated or damaged")


def _jpeg_sof(data: bytes) -> int:
    """The frame marker (0xC0 baseline, 0xC2 progressive, ...) that says how scans are coded."""
    head = _jpeg_segments(data)[0]
    pos = 2
    while pos + 4 <= len(head):
        marker = head[pos + 1]
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            return marker
        pos += 2 + int.from_bytes(head[pos + 2 : pos + 4], "big")
    raise RotateError("JPEG has no frame header; the file is damaged")


def _jpeg_image_payload(data: bytes) -> bytes:
    """Tables, frame header, scans and trailing bytes: what an EXIF edit must not change."""
    head, sos = _jpeg_segments(data)
    return head + data[sos:]


def _jpeg_end(data: bytes) -> int:
    """Offset just after the EOI marker that ends the image (later bytes are trailing data)."""
    pos = _jpeg_segments(data)[1]
    while True:
        pos = data.find(b"\xff", pos)
        if pos < 0 or pos + 1 >= len(data):
            return len(data)  # truncated: no EOI; jpegtran will have complained
        marker = data[pos + 1]
        if marker == 0xD9:
            return pos + 2
        if marker in (0x00, 0xFF) or 0xD0 <= marker <= 0xD7:
            pos += 1 if marker == 0xFF else 2
            continue
        pos += 2 + int.from_bytes(data[pos + 2 : pos + 4], "big")


def _jpeg_trailer(data: bytes) -> bytes:
    return data[_jpeg_end(data) :]


def _exiv2_edit(
    data: bytes, exif: dict[str, str], xmp: dict[str, str], drop_thumbnail: bool
) -> bytes:
    import pyexiv2  # local: a C++ extension only the JPEG path needs

    try:
        with pyexiv2.ImageData(data) as img:
            if exif:
                img.modify_exif(exif)
            if xmp:
                img.modify_xmp(xmp)
            if drop_thumbnail:
                img.clear_thumbnail()
            return img.get_bytes()
    except Exception as exc:
        raise RotateError(
            f"cannot update the JPEG's metadata (exiv2: {exc}); try the exif method"
        ) from exc


def _exiv2_read(data: bytes) -> tuple[dict[str, str], dict[str, str]]:
    import pyexiv2

    try:
        with pyexiv2.ImageData(data) as img:
            return img.read_exif(encoding="iso-8859-1"), img.read_xmp(encoding="iso-8859-1")
    except Exception as exc:
        raise RotateError(f"cannot read the JPEG's metadata (exiv2: {exc})") from exc


def _set_jpeg_orientation(data: bytes, value: int, method: str, note: str | None) -> Rotated:
    exif, xmp = _exiv2_read(data)
    if value == 1 and "Exif.Image.Orientation" not in exif and "Xmp.tiff.Orientation" not in xmp:
        return Rotated(data, method, note or "already upright; file unchanged")
    xmp_change = {"Xmp.tiff.Orientation": str(value)} if "Xmp.tiff.Orientation" in xmp else {}
    result = _exiv2_edit(data, {"Exif.Image.Orientation": str(value)}, xmp_change, False)
    _verify_exif_jpeg(data, result, value)
    return Rotated(result, method, note)


def _jpeg_metadata_upright(data: bytes, swapped: bool) -> bytes:
    """After jpegtran: Orientation 1, thumbnail gone, EXIF pixel dimensions swapped if needed."""
    exif, xmp = _exiv2_read(data)
    if not exif and "Xmp.tiff.Orientation" not in xmp:
        return data
    changes = {"Exif.Image.Orientation": "1"} if exif else {}
    width, height = exif.get("Exif.Photo.PixelXDimension"), exif.get("Exif.Photo.PixelYDimension")
    if swapped and width and height:
        changes["Exif.Photo.PixelXDimension"], changes["Exif.Photo.PixelYDimension"] = height, width
    xres, yres = exif.get("Exif.Image.XResolution"), exif.get("Exif.Image.YResolution")
    if swapped and xres and yres and xres != yres:
        changes["Exif.Image.XResolution"], changes["Exif.Image.YResolution"] = yres, xres
    xmp_change = {"Xmp.tiff.Orientation": "1"} if "Xmp.tiff.Orientation" in xmp else {}
    drop = "Exif.Thumbnail.JPEGInterchangeFormat" in exif or "Exif.Thumbnail.Compression" in exif
    return _exiv2_edit(data, changes, xmp_change, drop)


def _check_mode_and_size(before: Image.Image, after: Image.Image, transform: ori.Transpose | None) -> None:
    if after.mode != before.mode:
        raise RotateError(
            f"verification failed: colour mode changed from {before.mode} to {after.mode}"
        )
    if after.size != _expected_size(before.size, transform):
        raise RotateError(
            f"verification failed: rotated size {after.size} is wrong for {before.size}"
        )


def _verify_jpeg_lossless(original: bytes, result: bytes, transform: ori.Transpose | None) -> None:
    before, after = _decode(original), _decode(result)
    _check_mode_and_size(before, after, transform)
    expected, actual = ori.apply_array(np.asarray(before), transform), np.asarray(after)
    diff = np.abs(expected.astype(np.int16) - actual.astype(np.int16))
    if diff.max(initial=0) > JPEG_LOSSLESS_TOLERANCE or diff.mean() > JPEG_LOSSLESS_MEAN_TOLERANCE:
        raise RotateError(
            f"verification failed: rotated pixels differ by up to {diff.max()} levels"
        )
    if after.getexif().get(ORIENTATION_TAG, 1) != 1:
        raise RotateError("verification failed: EXIF Orientation is not 1 after rotation")
    if _jpeg_trailer(result) != _jpeg_trailer(original):
        raise RotateError("verification failed: data after the JPEG end marker was not kept")


def _verify_exif_jpeg(original: bytes, result: bytes, value: int) -> None:
    if _jpeg_image_payload(result) != _jpeg_image_payload(original):
        raise RotateError(
            "verification failed: JPEG image data changed during a metadata-only edit"
        )
    _decode(result)
    if _open_pillow(result).getexif().get(ORIENTATION_TAG, 1) != value:
        raise RotateError(f"verification failed: EXIF Orientation did not read back as {value}")


# --------------------------------------------------------------------------- TIFF


def _rotate_tiff(data: bytes, rotation_cw: int, method: Method, current: int) -> Rotated:
    if method == "exif":
        return _set_tiff_orientation(data, ori.exif_after_rotation(current, rotation_cw), None)
    transform = ori.pixel_transform(current, rotation_cw)
    if transform is None and current == 1:
        return Rotated(data, "reencode", "already upright; file unchanged")
    reason = _tiff_reencode_blocker(data)
    if reason is not None:
        note = f"{reason}; rotated via the EXIF Orientation tag instead"
        return _set_tiff_orientation(data, ori.exif_after_rotation(current, rotation_cw), note)
    result = _reencode_tiff(data, transform)
    _verify_tiff_pixels(data, result, transform)
    return Rotated(result, "reencode", None)


def _set_tiff_orientation(data: bytes, value: int, note: str | None) -> Rotated:
    buf = bytearray(data)
    editor = _TiffEditor(buf)
    editor.set_orientation(value)
    editor.patch_xmp_orientation(value)
    result = bytes(buf)
    _verify_tiff_exif(data, result, value)
    return Rotated(result, "exif", note)


def _tiff_reencode_blocker(data: bytes) -> str | None:
    """Why the pixels of this TIFF must not be re-written, if they must not."""
    with tifffile.TiffFile(io.BytesIO(data)) as tif:
        orientations = set()
        for page in tif.pages:
            if int(page.compression) in _LOSSY_TIFF_COMPRESSIONS:
                return (
                    "the TIFF holds lossy (JPEG-type) compressed pixels that cannot be rotated "
                    "without re-compression"
                )
            if _PHOTOSHOP_LAYERS_TAG in page.tags:
                return "the TIFF holds Photoshop layers that would no longer match a rotated image"
            if page.tags.get(330) is not None:
                return "the TIFF holds sub-images (SubIFDs) that cannot be rewritten safely"
            tag = page.tags.get(ORIENTATION_TAG)
            orientations.add(int(tag.value) if tag is not None else 1)
        if len(orientations) > 1:
            return "the TIFF's pages have different orientations"
    return None


def _tiff_arrays(data: bytes) -> list[np.ndarray]:
    with tifffile.TiffFile(io.BytesIO(data)) as tif:
        return [page.asarray() for page in tif.pages]


def _transform_page(arr: np.ndarray, transform: ori.Transpose | None, planar: bool) -> np.ndarray:
    if not planar:
        return ori.apply_array(arr, transform)
    moved = ori.apply_array(np.moveaxis(arr, 0, -1), transform)
    return np.ascontiguousarray(np.moveaxis(moved, -1, 0))


def _reencode_tiff(data: bytes, transform: ori.Transpose | None) -> bytes:
    out = io.BytesIO()
    try:
        with (
            tifffile.TiffFile(io.BytesIO(data)) as tif,
            tifffile.TiffWriter(out, bigtiff=tif.is_bigtiff, byteorder=tif.byteorder) as writer,
        ):
            for page in tif.pages:
                _write_tiff_page(writer, page, transform)
            needs_exif = any(t in tif.pages.first.tags for t in (_EXIF_IFD_TAG, _GPS_IFD_TAG))
    except RotateError:
        raise
    except Exception as exc:
        raise RotateError(
            f"cannot re-write this TIFF losslessly ({exc}); try the exif method"
        ) from exc
    result = out.getvalue()
    return _copy_tiff_exif(data, result) if needs_exif else result


def _write_tiff_page(
    writer: tifffile.TiffWriter, page: tifffile.TiffPage, transform: ori.Transpose | None
) -> None:
    planar = page.planarconfig == tifffile.PLANARCONFIG.SEPARATE and page.samplesperpixel > 1
    arr = _transform_page(page.asarray(), transform, planar)
    tags = page.tags
    compression = page.compression
    kwargs: dict = dict(
        photometric=page.photometric,
        planarconfig=page.planarconfig if page.samplesperpixel > 1 else None,
        bitspersample=page.bitspersample,
        compression=compression,
        predictor=page.predictor
        if compression != tifffile.COMPRESSION.NONE and page.predictor > 1
        else None,
        subfiletype=page.subfiletype,
        metadata=None,
        software=tags[305].value if 305 in tags else False,
        datetime=tags[306].value if 306 in tags else False,
        # tifffile's own "shaped" JSON would describe the old shape; leave it out.
        description=tags[270].value if 270 in tags and not page.is_shaped else None,
        iccprofile=tags[_ICC_TAG].value if _ICC_TAG in tags else None,
        colormap=page.colormap if page.photometric == tifffile.PHOTOMETRIC.PALETTE else None,
        extrasamples=tuple(page.extrasamples) or None,
        extratags=_tiff_extratags(page),
    )
    if page.is_tiled:
        kwargs["tile"] = (page.tilelength, page.tilewidth)
    else:
        kwargs["rowsperstrip"] = page.rowsperstrip
    if 282 in tags and 283 in tags:
        xres, yres = tags[282].value, tags[283].value
        kwargs["resolution"] = (yres, xres) if _swaps_axes(transform) else (xres, yres)
        kwargs["resolutionunit"] = tags[296].value if 296 in tags else 2
    writer.write(arr, **kwargs)


def _tiff_extratags(page: tifffile.TiffPage) -> list[tuple]:
    extra = []
    for tag in page.tags:
        if tag.code in _TIFF_NOT_COPIED or tag.dtype == 13:
            continue
        value = tag.value
        if tag.code == _XMP_TAG:
            value = _patch_xmp_orientation(bytes(value), 1)
        extra.append((tag.code, int(tag.dtype), tag.count, value, True))
    return extra


def _copy_tiff_exif(original: bytes, result: bytes) -> bytes:
    """Copy the EXIF and GPS sub-IFDs, which tifffile cannot write, with exiftool."""
    exe = shutil.which("exiftool")
    if exe is None:
        raise RotateError(
            "exiftool is needed to keep the EXIF data of a rotated TIFF "
            "(apt install libimage-exiftool-perl)"
        )
    with tempfile.TemporaryDirectory(prefix="orient-") as tmp:
        src, dst = Path(tmp, "src.tif"), Path(tmp, "dst.tif")
        src.write_bytes(original)
        dst.write_bytes(result)
        cmd = [
            exe,
            "-q",
            "-q",
            "-m",
            "-overwrite_original",
            "-tagsFromFile",
            str(src),
            "-ExifIFD:all",
            "-GPS:all",
            "-InteropIFD:all",
            str(dst),
        ]
        proc = subprocess.run(cmd, capture_output=True, timeout=600, check=False)
        if proc.returncode != 0:
            message = proc.stderr.decode("utf-8", "replace").strip()
            raise RotateError(f"cannot copy the TIFF's EXIF data (exiftool: {message})")
        return dst.read_bytes()


def _verify_tiff_pixels(original: bytes, result: bytes, transform: ori.Transpose | None) -> None:
    try:
        with (
            tifffile.TiffFile(io.BytesIO(original)) as a,
            tifffile.TiffFile(io.BytesIO(result)) as b,
        ):
            if len(a.pages) != len(b.pages):
                raise RotateError(
                    f"verification failed: {len(a.pages)} pages became {len(b.pages)}"
                )
            for i, (pa, pb) in enumerate(zip(a.pages, b.pages, strict=True)):
                _verify_tiff_page(i, pa, pb, transform)
            tag = b.pages.first.tags.get(ORIENTATION_TAG)
            if tag is not None and int(tag.value) != 1:
                raise RotateError("verification failed: Orientation is not 1 after rotation")
    except RotateError:
        raise
    except Exception as exc:
        raise RotateError(f"verification failed: the rotated TIFF does not decode ({exc})") from exc


def _verify_tiff_page(
    i: int, pa: tifffile.TiffPage, pb: tifffile.TiffPage, transform: ori.Transpose | None
) -> None:
    for attr in ("bitspersample", "compression", "photometric", "samplesperpixel", "dtype"):
        if getattr(pa, attr) != getattr(pb, attr):
            raise RotateError(f"verification failed: page {i + 1} {attr} changed")
    planar = pa.planarconfig == tifffile.PLANARCONFIG.SEPARATE and pa.samplesperpixel > 1
    expected = _transform_page(pa.asarray(), transform, planar)
    if not np.array_equal(expected, pb.asarray()):
        raise RotateError(
            f"verification failed: page {i + 1} pixels differ from the rotated original"
        )
    if pa.tags.get(_ICC_TAG) is not None and (
        pb.tags.get(_ICC_TAG) is None or pa.tags[_ICC_TAG].value != pb.tags[_ICC_TAG].value
    ):
        raise RotateError(f"verification failed: page {i + 1} lost its ICC profile")


def _verify_tiff_exif(original: bytes, result: bytes, value: int) -> None:
    def segments(data: bytes) -> tuple[list[list[bytes]], int | None]:
        with tifffile.TiffFile(io.BytesIO(data)) as tif:
            pages = [
                [data[o : o + n] for o, n in zip(p.dataoffsets, p.databytecounts, strict=True)]
                for p in tif.pages
            ]
            tag = tif.pages.first.tags.get(ORIENTATION_TAG)
            return pages, None if tag is None else int(tag.value)

    try:
        before, _ = segments(original)
        after, read_back = segments(result)
    except Exception as exc:
        raise RotateError(f"verification failed: the TIFF does not read back ({exc})") from exc
    if before != after:
        raise RotateError(
            "verification failed: TIFF pixel data changed during a metadata-only edit"
        )
    if read_back != value:
        raise RotateError(f"verification failed: Orientation did not read back as {value}")


# --------------------------------------------------------------------------- PNG, WebP, BMP


def _rotate_pillow(data: bytes, fmt: str, rotation_cw: int, current: int) -> Rotated:
    transform = ori.pixel_transform(current, rotation_cw)
    if transform is None and current == 1:
        return Rotated(data, "reencode", "already upright; file unchanged")
    img = _decode(data)
    if fmt == "png":
        result = _reencode_png(data, img, transform)
    elif fmt == "webp":
        result = _reencode_webp(data, img, transform)
    else:
        result = _reencode_bmp(img, transform)
    _verify_pillow(img, result, transform)
    return Rotated(result, "reencode", None)


def _verify_pillow(before: Image.Image, result: bytes, transform: ori.Transpose | None) -> None:
    after = _decode(result)
    _check_mode_and_size(before, after, transform)
    if not np.array_equal(ori.apply_array(np.asarray(before), transform), np.asarray(after)):
        raise RotateError("verification failed: pixels differ from the rotated original")
    if before.mode == "P" and (
        before.getpalette() != after.getpalette()
        or before.info.get("transparency") != after.info.get("transparency")
    ):
        raise RotateError("verification failed: palette or transparency changed")
    if after.getexif().get(ORIENTATION_TAG, 1) != 1:
        raise RotateError("verification failed: Orientation is not 1 after rotation")


def _png_chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    chunks, pos = [], 8
    while pos + 8 <= len(data):
        length = int.from_bytes(data[pos : pos + 4], "big")
        kind = data[pos + 4 : pos + 8]
        chunks.append((kind, data[pos + 8 : pos + 8 + length]))
        pos += 12 + length
        if kind == b"IEND":
            break
    return chunks


def _png_chunk(kind: bytes, payload: bytes) -> bytes:
    crc = zlib.crc32(kind + payload) & 0xFFFFFFFF
    return len(payload).to_bytes(4, "big") + kind + payload + crc.to_bytes(4, "big")


def _reencode_png(data: bytes, img: Image.Image, transform: ori.Transpose | None) -> bytes:
    """New IHDR and IDAT from Pillow; every other chunk (palette, tRNS, iCCP, text...) kept."""
    old = _png_chunks(data)
    if any(kind in (b"acTL", b"fcTL", b"fdAT") for kind, _ in old):
        raise RotateError("animated PNG is not supported; rotate it in an image editor")
    buf = io.BytesIO()
    ori.apply(img, transform).save(buf, "PNG", compress_level=9)
    new = _png_chunks(buf.getvalue())
    ihdr_old, ihdr_new = old[0][1], new[0][1]
    depth_old, ctype_old, depth_new, ctype_new = ihdr_old[8], ihdr_old[9], ihdr_new[8], ihdr_new[9]
    if ctype_old != ctype_new or (ctype_old != 3 and depth_old != depth_new):
        raise RotateError(
            f"this PNG variant ({depth_old}-bit, colour type {ctype_old}) cannot be re-saved "
            "without "
            "changing its bit depth; rotate it in an image editor"
        )
    idat = b"".join(_png_chunk(k, p) for k, p in new if k == b"IDAT")
    out = [data[:8], _png_chunk(b"IHDR", ihdr_new)]
    placed = False
    for kind, payload in old[1:]:
        if kind == b"IDAT":
            out.append(b"" if placed else idat)
            placed = True
        elif kind != b"IEND":
            out.append(_png_chunk(kind, _png_ancillary_upright(kind, payload, transform)))
    out.append(_png_chunk(b"IEND", b""))
    return b"".join(out)


def _png_ancillary_upright(kind: bytes, payload: bytes, transform: ori.Transpose | None) -> bytes:
    if kind == b"pHYs" and _swaps_axes(transform):
        return payload[4:8] + payload[0:4] + payload[8:]
    if kind == b"eXIf":
        return _exif_blob_upright(payload)
    if kind == b"iTXt" and payload.startswith(b"XML:com.adobe.xmp\0"):
        return _patch_xmp_orientation(payload, 1)
    return payload


def _webp_is_lossless(data: bytes) -> bool:
    kinds, pos = [], 12
    while pos + 8 <= len(data):
        size = int.from_bytes(data[pos + 4 : pos + 8], "little")
        kinds.append(data[pos : pos + 4])
        pos += 8 + size + (size & 1)
    if b"ANIM" in kinds:
        raise RotateError("animated WebP is not supported")
    return b"VP8L" in kinds and b"VP8 " not in kinds


def _reencode_webp(data: bytes, img: Image.Image, transform: ori.Transpose | None) -> bytes:
    if not _webp_is_lossless(data):
        raise RotateError(
            "lossy WebP cannot be rotated without re-compressing it, and the EXIF tag is ignored "
            "by "
            "many WebP viewers; keep the original or convert it to a lossless format first"
        )
    params: dict = {"lossless": True, "exact": True, "quality": 100, "method": 4}
    for key in ("icc_profile", "exif", "xmp"):
        if img.info.get(key):
            params[key] = img.info[key]
    if "exif" in params:
        params["exif"] = _exif_blob_upright(params["exif"])
    if "xmp" in params:
        xmp = params["xmp"]
        params["xmp"] = _patch_xmp_orientation(xmp.encode() if isinstance(xmp, str) else xmp, 1)
    buf = io.BytesIO()
    ori.apply(img, transform).save(buf, "WEBP", **params)
    return buf.getvalue()


def _reencode_bmp(img: Image.Image, transform: ori.Transpose | None) -> bytes:
    params = {"dpi": img.info["dpi"]} if img.info.get("dpi") else {}
    if "dpi" in params and _swaps_axes(transform):
        params["dpi"] = tuple(reversed(params["dpi"]))
    buf = io.BytesIO()
    ori.apply(img, transform).save(buf, "BMP", **params)
    return buf.getvalue()


def displayed_rotation_problem(original: bytes, now: bytes, rotation_cw: int) -> str | None:
    """None if ``now``, as a viewer shows it, is ``original`` as shown turned ``rotation_cw``
    degrees clockwise (within the JPEG tolerance); otherwise what is wrong. For audits."""

    def displayed(data: bytes) -> np.ndarray:
        with Image.open(io.BytesIO(data)) as img:
            img.load()
            return np.asarray(ImageOps.exif_transpose(img).convert("RGB"))

    try:
        actual = displayed(now)
    except Exception as exc:  # noqa: BLE001 - any decode failure is the finding
        return f"does not decode: {exc}"
    expected = np.rot90(displayed(original), k=-(rotation_cw // 90))
    if actual.shape != expected.shape:
        return f"shape {actual.shape}, expected {expected.shape}"
    diff = np.abs(actual.astype(np.int16) - expected.astype(np.int16))
    if diff.max(initial=0) > JPEG_LOSSLESS_TOLERANCE or diff.mean() > JPEG_LOSSLESS_MEAN_TOLERANCE:
        return f"pixels differ from the rotated original by up to {diff.max()} (mean {diff.mean():.2f})"
    return None
