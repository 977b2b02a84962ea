"""PNG, WebP and BMP: decoded, transformed and re-saved losslessly through Pillow.

PNG keeps every ancillary chunk (palette, transparency, ICC, text); only IHDR and IDAT are
rebuilt. Lossy or animated WebP and animated PNG are refused rather than re-compressed.
"""

from __future__ import annotations

import io
import zlib

import numpy as np
from PIL import Image

from orient_model import orientation as ori
from orient_model.rotate._tiff_editor import exif_blob_upright
from orient_model.rotate.common import (
    ORIENTATION_TAG,
    Rotated,
    RotateError,
    check_mode_and_size,
    decode,
    patch_xmp_orientation,
    swaps_axes,
)


def rotate_pillow(data: bytes, fmt: str, rotation_deg: int, current: int) -> Rotated:
    transform = ori.pixel_transform(current, rotation_deg)
    if transform is None and current == 1:
        return Rotated(data, "reencode", "already upright; file unchanged")
    img = decode(data)
    if fmt == "png":
        result = _reencode_png(data, img, transform)
    elif fmt == "webp":
        result = _reencode_webp(data, img, transform)
    else:
        result = _reencode_bmp(img, transform)
    _verify_pillow(img, result, transform)
    return Rotated(result, "reencode", None)


def _verify_pillow(before: Image.Image, result: bytes, transform: ori.Transpose | None) -> None:
    after = decode(result)
    check_mode_and_size(before, after, transform)
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
    if kind == b"pHYs" and swaps_axes(transform):
        return payload[4:8] + payload[0:4] + payload[8:]
    if kind == b"eXIf":
        return exif_blob_upright(payload)
    if kind == b"iTXt" and payload.startswith(b"XML:com.adobe.xmp\0"):
        return patch_xmp_orientation(payload, 1)
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
        params["exif"] = exif_blob_upright(params["exif"])
    if "xmp" in params:
        xmp = params["xmp"]
        params["xmp"] = patch_xmp_orientation(xmp.encode() if isinstance(xmp, str) else xmp, 1)
    buf = io.BytesIO()
    ori.apply(img, transform).save(buf, "WEBP", **params)
    return buf.getvalue()


def _reencode_bmp(img: Image.Image, transform: ori.Transpose | None) -> bytes:
    params = {"dpi": img.info["dpi"]} if img.info.get("dpi") else {}
    if "dpi" in params and swaps_axes(transform):
        params["dpi"] = tuple(reversed(params["dpi"]))
    buf = io.BytesIO()
    ori.apply(img, transform).save(buf, "BMP", **params)
    return buf.getvalue()
