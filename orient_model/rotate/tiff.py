"""TIFF: pixels re-written losslessly with tifffile (every page, bit depth, compression, ICC,
resolution, XMP; EXIF via exiftool), or only the Orientation tag edited in place.

Lossy (JPEG-in-TIFF) pages, Photoshop layers, SubIFDs and pages of differing orientation are
never re-written: those files are turned by their Orientation tag instead.
"""

from __future__ import annotations

import io
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import tifffile

from orient_model import orientation as ori
from orient_model.rotate._tiff_editor import TiffEditor
from orient_model.rotate.common import (
    ORIENTATION_TAG,
    XMP_TAG,
    Method,
    Rotated,
    RotateError,
    patch_xmp_orientation,
    swaps_axes,
    xmp_orientation,
)

_EXIF_IFD_TAG, _GPS_IFD_TAG, _ICC_TAG = 34665, 34853, 34675
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


def tiff_orientation(data: bytes) -> int | None:
    """The Orientation of the first page (the tag, else XMP's tiff:Orientation)."""
    try:
        with tifffile.TiffFile(io.BytesIO(data)) as tif:
            page = tif.pages.first
            tag = page.tags.get(ORIENTATION_TAG)
            if tag is not None:
                return int(tag.value)
            xmp = page.tags.get(XMP_TAG)
            return xmp_orientation(xmp.value) if xmp is not None else None
    except RotateError:
        raise
    except Exception as exc:
        raise RotateError(f"cannot read TIFF (damaged or unsupported): {exc}") from exc


def rotate_tiff(data: bytes, rotation_deg: int, method: Method, current: int) -> Rotated:
    if method == "exif":
        return _set_tiff_orientation(data, ori.exif_after_rotation(current, rotation_deg), None)
    transform = ori.pixel_transform(current, rotation_deg)
    if transform is None and current == 1:
        return Rotated(data, "reencode", "already upright; file unchanged")
    reason = _tiff_reencode_blocker(data)
    if reason is not None:
        note = f"{reason}; rotated via the EXIF Orientation tag instead"
        return _set_tiff_orientation(data, ori.exif_after_rotation(current, rotation_deg), note)
    result = _reencode_tiff(data, transform)
    _verify_tiff_pixels(data, result, transform)
    return Rotated(result, "reencode", None)


def _set_tiff_orientation(data: bytes, value: int, note: str | None) -> Rotated:
    buf = bytearray(data)
    editor = TiffEditor(buf)
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
        raise RotateError(f"cannot re-write this TIFF losslessly ({exc}); try the exif method") from exc
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
        predictor=page.predictor if compression != tifffile.COMPRESSION.NONE and page.predictor > 1 else None,
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
        kwargs["resolution"] = (yres, xres) if swaps_axes(transform) else (xres, yres)
        kwargs["resolutionunit"] = tags[296].value if 296 in tags else 2
    writer.write(arr, **kwargs)


def _tiff_extratags(page: tifffile.TiffPage) -> list[tuple]:
    extra = []
    for tag in page.tags:
        if tag.code in _TIFF_NOT_COPIED or tag.dtype == 13:
            continue
        value = tag.value
        if tag.code == XMP_TAG:
            value = patch_xmp_orientation(bytes(value), 1)
        extra.append((tag.code, int(tag.dtype), tag.count, value, True))
    return extra


def _copy_tiff_exif(original: bytes, result: bytes) -> bytes:
    """Copy the EXIF and GPS sub-IFDs, which tifffile cannot write, with exiftool."""
    exe = shutil.which("exiftool")
    if exe is None:
        raise RotateError(
            "exiftool is needed to keep the EXIF data of a rotated TIFF (apt install libimage-exiftool-perl)"
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
                raise RotateError(f"verification failed: {len(a.pages)} pages became {len(b.pages)}")
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
        raise RotateError(f"verification failed: page {i + 1} pixels differ from the rotated original")
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
        raise RotateError("verification failed: TIFF pixel data changed during a metadata-only edit")
    if read_back != value:
        raise RotateError(f"verification failed: Orientation did not read back as {value}")
