"""JPEG: turned in the DCT domain by ``jpegtran -perfect``, or by the EXIF Orientation tag.

``lossless`` moves DCT blocks, so there is no generation loss; the EXIF Orientation is then reset
to 1 and the EXIF thumbnail (now wrong) dropped. When the image has partial edge blocks a perfect
transform is impossible; rather than trimming edge pixels or re-compressing we fall back to
``exif``, which changes only the Orientation tag, in place, and leaves every other byte alone.

Verification compares DCT coefficients, not decoded pixels: turning the result back with
``jpegtran -perfect`` must give exactly the original's coefficients (both written out the same
canonical way and compared byte for byte). That is exact where a pixel comparison needs a
tolerance for IDCT rounding, and it never decodes the image, so memory stays near the file's
size however many megapixels it holds.

Multi-picture files (MPO: stereo pairs, and the large previews many cameras store after the
main picture) have every picture turned and their MP index rewritten, so each picture is still
found and still matches; such a file is never turned by its EXIF tag, which would turn the
main picture only.
"""

from __future__ import annotations

import hashlib
import shutil
import struct
import subprocess
import tempfile

from orient_model import orientation as ori
from orient_model.rotate._tiff_editor import TiffEditor
from orient_model.rotate.common import (
    ORIENTATION_TAG,
    Method,
    Rotated,
    RotateError,
    open_pillow,
    patch_xmp_orientation,
    swaps_axes,
    xmp_orientation,
)

# Largest per-channel difference between a jpegtran-rotated JPEG, decoded, and the decoded
# original transformed in pixel space: the coefficients are identical, but libjpeg-turbo's
# integer IDCT rounds its passes differently and chroma upsampling is not symmetric. Only
# audits compare decoded pixels (verification compares coefficients). Measured with
# libjpeg-turbo 2.1: at most 3 (5 on very thin images) for colour, 1 for grey and CMYK.
JPEG_LOSSLESS_TOLERANCE = 6
JPEG_LOSSLESS_MEAN_TOLERANCE = 0.5

_EXIF_HEADER = b"Exif\0\0"
_XMP_HEADER = b"http://ns.adobe.com/xap/1.0/\0"
_MPF_HEADER = b"MPF\0"
_MP_ENTRY_TAG = 0xB002
_CODING = {0xC2: ["-progressive"], 0xC9: ["-arithmetic"], 0xCA: ["-arithmetic", "-progressive"]}


def rotate_jpeg(data: bytes, rotation_deg: int, method: Method, current: int) -> Rotated:
    pictures = _pictures(data)
    if method == "exif":
        if len(pictures.spans) > 1:
            raise RotateError(
                "multi-picture JPEG (MPO): the EXIF tag would turn only its first picture; "
                "use --apply lossless, or leave it as is"
            )
        return set_orientation(data, ori.exif_after_rotation(current, rotation_deg), "exif", None)
    transform = ori.pixel_transform(current, rotation_deg)
    if transform is None and current == 1:
        return Rotated(data, "lossless", "already upright; file unchanged")
    turned = [_turn_picture(pic, transform) for pic in pictures.each(data)]
    if any(t is None for t in turned):
        if len(pictures.spans) > 1:
            raise RotateError(
                "multi-picture JPEG (MPO) whose pictures cannot all be turned losslessly (their size "
                "is not a multiple of the JPEG block size); not changed"
            )
        note = (
            "image size is not a multiple of the JPEG block size, so a lossless rotation "
            "would trim edge pixels; rotated via the EXIF Orientation tag instead"
        )
        return set_orientation(data, ori.exif_after_rotation(current, rotation_deg), "exif", note)
    result = pictures.rebuild(data, turned)
    _verify_lossless(data, result, transform)
    return Rotated(result, "lossless", None)


# --------------------------------------------------------------------------- structure


def _segments(data: bytes | bytearray, start: int = 0):
    """(marker, segment start, segment end) of the header segments of the picture at ``start``,
    up to and including the first SOS."""
    if data[start : start + 2] != b"\xff\xd8":
        raise RotateError("JPEG picture does not start with an SOI marker; the file is damaged")
    pos = start + 2
    while pos + 4 <= len(data):
        if data[pos] != 0xFF:
            raise RotateError("JPEG marker structure is damaged")
        marker = data[pos + 1]
        if marker == 0xFF:
            pos += 1
            continue
        end = pos + 2 + int.from_bytes(data[pos + 2 : pos + 4], "big")
        yield marker, pos, end
        if marker == 0xDA:
            return
        pos = end
    raise RotateError("JPEG has no image data (no scan found); the file is truncated or damaged")


def _picture_end(data: bytes, start: int = 0) -> int:
    """Offset just after the EOI marker that ends the picture at ``start``."""
    *_, (_, _, pos) = _segments(data, start)  # the scan data starts where the SOS header ends
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


def _image_payload(data: bytes) -> bytes:
    """Everything but the APPn and COM segments: what a metadata edit must not change."""
    out, last = bytearray(), 0
    for marker, start, end in _segments(data):
        if 0xE0 <= marker <= 0xEF or marker == 0xFE:
            out += data[last:start]
            last = end
    return bytes(out + data[last:])


def _sof(data: bytes) -> int:
    """The frame marker (0xC0 baseline, 0xC2 progressive, ...) that says how scans are coded."""
    for marker, _, _ in _segments(data):
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            return marker
    raise RotateError("JPEG has no frame header; the file is damaged")


def _app(data: bytes | bytearray, marker: int, header: bytes) -> tuple[int, int] | None:
    """(start, end) of the first APPn segment carrying ``header``, in the first picture."""
    for m, start, end in _segments(data):
        if m == marker and data[start + 4 : start + 4 + len(header)] == header:
            return start, end
    return None


class _Pictures:
    """Where each picture of a (multi-picture) JPEG lies, and how to put turned ones back."""

    def __init__(self, spans: list[tuple[int, int]]) -> None:
        self.spans = spans

    def each(self, data: bytes) -> list[bytes]:
        return [data[a:b] for a, b in self.spans]

    def rebuild(self, data: bytes, turned: list[bytes]) -> bytes:
        """The turned pictures in the original's order, with whatever lay between and after them,
        and the first picture's MP index rewritten to their new sizes and places."""
        out = bytearray()
        places = []
        last = 0
        for (start, end), picture in zip(self.spans, turned, strict=True):
            out += data[last:start]
            places.append((len(out), len(picture)))
            out += picture
            last = end
        out += data[last:]
        if len(self.spans) > 1:
            _rewrite_mp_index(out, places)
        return bytes(out)


def _pictures(data: bytes) -> _Pictures:
    first_end = _picture_end(data)
    found = _read_mp_index(data)
    if found is None:
        return _Pictures([(0, first_end)])
    base, entries = found
    spans = [(0, first_end)]
    for offset, size in entries[1:]:
        start = base + offset
        if offset == 0 or data[start : start + 2] != b"\xff\xd8" or start + size > len(data):
            raise RotateError("multi-picture JPEG whose picture index is damaged; not changed")
        spans.append((start, _picture_end(data, start)))
    return _Pictures(spans)


def _mp_ifd(data: bytes | bytearray) -> tuple[int, str, int, int] | None:
    """(MP header offset, byte order, MPEntry data offset, image count) from the first picture."""
    where = _app(data, 0xE2, _MPF_HEADER)
    if where is None:
        return None
    base = where[0] + 4 + len(_MPF_HEADER)
    order = bytes(data[base : base + 2])
    if order not in (b"II", b"MM"):
        raise RotateError("multi-picture JPEG whose MP header is damaged; not changed")
    bo = "<" if order == b"II" else ">"
    ifd = base + struct.unpack_from(bo + "I", data, base + 4)[0]
    for i in range(struct.unpack_from(bo + "H", data, ifd)[0]):
        tag, _typ, count, value = struct.unpack_from(bo + "HHII", data, ifd + 2 + 12 * i)
        if tag == _MP_ENTRY_TAG:
            return base, bo, base + value, count // 16
    return None


def _read_mp_index(data: bytes) -> tuple[int, list[tuple[int, int]]] | None:
    found = _mp_ifd(data)
    if found is None:
        return None
    base, bo, pos, count = found
    entries = []
    for i in range(count):
        _attr, size, offset = struct.unpack_from(bo + "III", data, pos + 16 * i)
        entries.append((offset, size))
    return base, entries


def _rewrite_mp_index(out: bytearray, places: list[tuple[int, int]]) -> None:
    found = _mp_ifd(out)
    if found is None:
        raise RotateError("multi-picture JPEG whose picture index was lost while turning it; not changed")
    base, bo, pos, count = found
    if count != len(places):
        raise RotateError("multi-picture JPEG whose picture index does not match its pictures; not changed")
    for i, (start, size) in enumerate(places):
        struct.pack_into(bo + "I", out, pos + 16 * i + 4, size)
        struct.pack_into(bo + "I", out, pos + 16 * i + 8, 0 if i == 0 else start - base)


# --------------------------------------------------------------------------- turning


def _jpegtran(data: bytes, args: list[str]) -> bytes | None:
    """Run jpegtran; ``None`` when a ``-perfect`` transform is impossible."""
    exe = shutil.which("jpegtran")
    if exe is None:
        raise RotateError("jpegtran is not installed (Debian/Ubuntu: apt install libjpeg-turbo-progs)")
    # Output goes through an unlinked file, read back once: a pipe's chunks joined would hold the
    # picture twice, and pictures can be a quarter of a gigabyte.
    with tempfile.TemporaryFile() as out:
        proc = subprocess.run(
            [exe, *args], input=data, stdout=out, stderr=subprocess.PIPE, timeout=900, check=False
        )
        message = proc.stderr.decode("utf-8", "replace").strip()
        if proc.returncode != 0 and "not perfect" in message:
            return None
        out.seek(0)
        result = out.read()
    if proc.returncode != 0 or not result:
        raise RotateError(f"JPEG data is damaged or unsupported (jpegtran: {message or proc.returncode})")
    return result


def _turn_picture(picture: bytes, transform: ori.Transpose | None) -> bytes | None:
    """One picture turned in the DCT domain (coding mode kept), its metadata made upright."""
    if transform is None:
        moved = picture
    else:
        # jpegtran writes baseline Huffman unless told; keep the original's coding mode.
        args = ["-perfect", "-copy", "all", *_CODING.get(_sof(picture), []), *ori.JPEGTRAN_ARGS[transform]]
        moved = _jpegtran(picture, args)
        if moved is None:
            return None
    return _metadata_upright(moved, swaps_axes(transform))


def _canonical(picture: bytes, transform: ori.Transpose | None = None) -> bytes:
    """The SHA-256 of the picture's coefficients written one fixed way (no metadata, optimised
    Huffman), so two pictures with equal coefficients give equal digests."""
    args = ["-copy", "none", "-optimize"]
    if transform is not None:
        args = ["-perfect", *args, *ori.JPEGTRAN_ARGS[transform]]
    out = _jpegtran(picture, args)
    if out is None:
        raise RotateError("verification failed: the turned picture cannot be turned back exactly")
    return hashlib.sha256(out).digest()


def _verify_lossless(original: bytes, result: bytes, transform: ori.Transpose | None) -> None:
    before, after = _pictures(original), _pictures(result)
    if len(before.spans) != len(after.spans):
        raise RotateError(f"verification failed: {len(before.spans)} pictures became {len(after.spans)}")
    back = ori.inverse(transform)
    for i, (old, new) in enumerate(zip(before.each(original), after.each(result), strict=True)):
        if _canonical(old) != _canonical(new, back):
            raise RotateError(
                f"verification failed: picture {i + 1}'s coefficients are not the original's turned"
            )
        if _orientation(new) not in (None, 1):
            raise RotateError("verification failed: EXIF Orientation is not 1 after rotation")
    if original[before.spans[-1][1] :] != result[after.spans[-1][1] :]:
        raise RotateError("verification failed: data after the JPEG end marker was not kept")


# --------------------------------------------------------------------------- metadata


def _orientation(picture: bytes) -> int | None:
    value = open_pillow(picture).getexif().get(ORIENTATION_TAG)
    return None if value is None else int(value)


def _exiv2_edit(data: bytes, exif: dict[str, str], xmp: dict[str, str], drop_thumbnail: bool) -> bytes:
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
        raise RotateError(f"cannot update the JPEG's metadata (exiv2: {exc}); try the exif method") from exc


def _exiv2_read(data: bytes) -> tuple[dict[str, str], dict[str, str]]:
    import pyexiv2

    try:
        with pyexiv2.ImageData(data) as img:
            return img.read_exif(encoding="iso-8859-1"), img.read_xmp(encoding="iso-8859-1")
    except Exception as exc:
        raise RotateError(f"cannot read the JPEG's metadata (exiv2: {exc})") from exc


def _metadata_upright(data: bytes, swapped: bool) -> bytes:
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


def set_orientation(data: bytes, value: int, method: str, note: str | None) -> Rotated:
    """The file with only its Orientation changed, in place: the EXIF tag's bytes (and XMP's
    tiff:Orientation, same length); every other byte stays where it was."""
    exif_at = _app(data, 0xE1, _EXIF_HEADER)
    xmp_at = _app(data, 0xE1, _XMP_HEADER)
    if exif_at is None and xmp_at is None and value == 1:
        return Rotated(data, method, note or "already upright; file unchanged")
    out = bytearray(data)
    if xmp_at is not None:
        start, end = xmp_at
        if xmp_orientation(bytes(out[start:end])) is not None:
            out[start:end] = patch_xmp_orientation(bytes(out[start:end]), value)
    if exif_at is not None:
        start, end = exif_at
        blob = bytearray(out[start + 4 : end])
        TiffEditor(blob, len(_EXIF_HEADER)).set_orientation(value)
        out[start:end] = _app1(bytes(blob))
    else:
        out[_exif_insert_point(data) : _exif_insert_point(data)] = _app1(_minimal_exif(data, value))
        note = (
            (note + "; ") if note else ""
        ) + "the file had no EXIF block: one holding only the Orientation was added"
    result = bytes(out)
    _verify_orientation_edit(data, result, value)
    return Rotated(result, method, note)


def _app1(payload: bytes) -> bytes:
    if len(payload) + 2 > 0xFFFF:
        raise RotateError("the EXIF block is too large to hold one more tag; use the lossless method")
    return b"\xff\xe1" + (len(payload) + 2).to_bytes(2, "big") + payload


def _exif_insert_point(data: bytes) -> int:
    """After SOI and a JFIF APP0 (which must come first), before everything else."""
    first = next(_segments(data))
    if first[0] == 0xE0 and data[first[1] + 4 : first[1] + 9] == b"JFIF\0":
        return first[2]
    return 2


def _minimal_exif(data: bytes, value: int) -> bytes:
    """An EXIF block (big-endian TIFF structure) with the Orientation and, where the JFIF header
    states a density, the same resolution: an EXIF block without one means 72 dpi by the EXIF
    standard, which the file never said. JFIF's 'no unit' (an aspect ratio) is EXIF's unit 1."""
    inline = {ORIENTATION_TAG: (3, value)}
    rationals: dict[int, int] = {}
    jfif = _app(data, 0xE0, b"JFIF\0")
    if jfif is not None:
        unit = data[jfif[0] + 11]
        x_density, y_density = struct.unpack(">HH", data[jfif[0] + 12 : jfif[0] + 16])
        if x_density and y_density:
            rationals = {0x011A: x_density, 0x011B: y_density}
            inline[0x0128] = (3, {1: 2, 2: 3}.get(unit, 1))  # ResolutionUnit: inch, cm, or none
    tags = sorted([*inline, *rationals])
    values_at = 8 + 2 + 12 * len(tags) + 4
    entries, extra = b"", b""
    for tag in tags:
        if tag in rationals:
            entries += struct.pack(">HHII", tag, 5, 1, values_at + len(extra))
            extra += struct.pack(">II", rationals[tag], 1)
        else:
            typ, number = inline[tag]
            entries += struct.pack(">HHIHH", tag, typ, 1, number, 0)
    ifd = struct.pack(">H", len(tags)) + entries + b"\0\0\0\0"
    return _EXIF_HEADER + b"MM\x00\x2a" + struct.pack(">I", 8) + ifd + extra


def _verify_orientation_edit(original: bytes, result: bytes, value: int) -> None:
    if _image_payload(result) != _image_payload(original):
        raise RotateError("verification failed: JPEG image data changed during a metadata-only edit")
    before, after = dict(open_pillow(original).getexif()), dict(open_pillow(result).getexif())
    if after.get(ORIENTATION_TAG) != value:
        raise RotateError(f"verification failed: EXIF Orientation did not read back as {value}")
    before.pop(ORIENTATION_TAG, None)
    after.pop(ORIENTATION_TAG, None)
    added = {k for k in after if k not in before} - {0x011A, 0x011B, 0x0128}
    if added or any(after.get(k) != v for k, v in before.items()):
        raise RotateError("verification failed: an EXIF tag other than the Orientation changed")
