"""Rotating a photo file in memory: every format comes back upright, verified, metadata kept."""

from __future__ import annotations

import io
import subprocess
from pathlib import Path

import numpy as np
import pytest
import tifffile
from PIL import Image, ImageCms, ImageOps

from orient_model import orientation as ori
from orient_model.rotate import RotateError, rotate_bytes
from orient_model.rotate.jpeg import JPEG_LOSSLESS_TOLERANCE

H, W = 48, 64  # multiples of 16: every JPEG transform can be perfect


def upright(h: int = H, w: int = W, channels: int = 3) -> np.ndarray:
    """Flat blocks with a bright patch top-left: asymmetric, and friendly to JPEG."""
    arr = np.full((h, w, channels), 40, np.uint8)
    arr[: h // 2, w // 2 :] = 110
    arr[h // 2 :, : w // 2] = 170
    arr[: h // 4, : w // 4] = 250
    return arr[..., 0] if channels == 1 else arr


def stored_for(arr: np.ndarray, exif: int, rotation_deg: int) -> np.ndarray:
    """Stored pixels that, shown with EXIF ``exif``, need ``rotation_deg`` to be upright."""
    shown = ori.apply_array(arr, ori.COUNTER_CLOCKWISE[rotation_deg])
    return ori.apply_array(shown, ori.inverse(ori.EXIF_TRANSFORMS[exif]))


def exif_with(orientation: int | None = None, **tags: object) -> Image.Exif:
    exif = Image.Exif()
    if orientation is not None:
        exif[274] = orientation
    for key, value in tags.items():
        exif[{"make": 271, "model": 272}[key]] = value
    return exif


def jpeg(arr: np.ndarray, orientation: int | None = None, mode: str | None = None, **save: object) -> bytes:
    img = Image.fromarray(arr)
    if mode:
        img = img.convert(mode)
    buf = io.BytesIO()
    if orientation is not None:
        save["exif"] = exif_with(orientation, make="ScanCo")
    img.save(buf, "JPEG", quality=95, **save)
    return buf.getvalue()


def shown(data: bytes) -> np.ndarray:
    return np.asarray(ImageOps.exif_transpose(Image.open(io.BytesIO(data))))


def orientation_of(data: bytes) -> int:
    return Image.open(io.BytesIO(data)).getexif().get(274, 1)


def assert_upright(data: bytes, arr: np.ndarray, tolerance: float = 0.0) -> None:
    got = shown(data).astype(int)
    assert got.shape[:2] == arr.shape[:2]
    if tolerance:
        assert np.abs(got - arr.astype(int)).mean() <= tolerance
    else:
        assert np.array_equal(got, arr)


def sos(data: bytes) -> bytes:
    return data[data.index(b"\xff\xda") :]


# ----------------------------------------------------------------------------- JPEG lossless


@pytest.mark.parametrize("exif", range(1, 9))
@pytest.mark.parametrize("rotation", [0, 90, 180, 270])
def test_jpeg_lossless_any_exif_orientation_ends_upright_with_orientation_1(exif: int, rotation: int) -> None:
    arr = upright()
    original = jpeg(stored_for(arr, exif, rotation), orientation=exif)
    out = rotate_bytes(original, rotation, "lossless", exif_orientation=exif)
    if exif == 1 and rotation == 0:
        assert out.data == original
        return
    assert out.method == "lossless" and out.note is None
    assert orientation_of(out.data) == 1
    assert Image.open(io.BytesIO(out.data)).size == (W, H)  # stored upright, not just shown
    assert_upright(out.data, arr, tolerance=2.0)
    assert Image.open(io.BytesIO(out.data)).getexif().get(271) == "ScanCo"


@pytest.mark.parametrize(
    ("mode", "save", "limit"),
    [
        ("RGB", {}, JPEG_LOSSLESS_TOLERANCE),
        ("L", {}, 1),
        ("CMYK", {}, 1),
        ("RGB", {"progressive": True}, JPEG_LOSSLESS_TOLERANCE),
        ("RGB", {"subsampling": 0}, JPEG_LOSSLESS_TOLERANCE),
    ],
)
def test_jpeg_lossless_pixels_equal_rotated_original_within_measured_tolerance(
    mode: str, save: dict, limit: int
) -> None:
    rng = np.random.default_rng(0)
    noisy = (rng.random((H, W, 3)) * 255).astype(np.uint8)  # worst case for rounding
    original = jpeg(noisy, mode=mode, **save)
    out = rotate_bytes(original, 90, "lossless")
    before, after = Image.open(io.BytesIO(original)), Image.open(io.BytesIO(out.data))
    assert after.mode == before.mode
    assert after.info.get("progressive", 0) == before.info.get("progressive", 0)
    expected = ori.apply_array(np.asarray(before), ori.CLOCKWISE[90]).astype(int)
    assert np.abs(np.asarray(after).astype(int) - expected).max() <= limit


def test_jpeg_lossless_keeps_bytes_after_end_marker() -> None:
    original = jpeg(upright(), orientation=1) + b"TRAILER-motion-photo-data"
    out = rotate_bytes(original, 90, "lossless")
    assert out.method == "lossless"
    assert out.data.endswith(b"\xff\xd9TRAILER-motion-photo-data")


def test_jpeg_lossless_drops_stale_thumbnail_keeps_icc_and_camera_tags() -> None:
    import pyexiv2

    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    stored = stored_for(upright(), 6, 0)
    original = jpeg(stored, icc_profile=icc, exif=exif_with(6, make="ScanCo", model="X1"))
    with pyexiv2.ImageData(original) as img:
        img.modify_thumbnail(jpeg(upright(12, 16)))
        original = img.get_bytes()
    out = rotate_bytes(original, 0, "lossless")
    assert_upright(out.data, upright(), tolerance=2.0)
    result = Image.open(io.BytesIO(out.data))
    assert result.info["icc_profile"] == icc
    assert result.getexif().get(272) == "X1" and result.getexif().get(274) == 1
    with pyexiv2.ImageData(out.data) as img:
        assert not img.read_thumbnail()


def test_jpeg_with_partial_blocks_falls_back_to_exif_without_touching_pixels() -> None:
    arr = upright(50, 70)
    original = jpeg(stored_for(arr, 1, 90), orientation=1)
    out = rotate_bytes(original, 90, "lossless")
    assert out.method == "exif"
    assert "block" in out.note and "EXIF" in out.note
    assert sos(out.data) == sos(original)
    assert orientation_of(out.data) == 6
    assert_upright(out.data, arr, tolerance=2.0)


# ----------------------------------------------------------------------------- EXIF method


def test_exif_method_inserts_exif_block_into_jpeg_without_one() -> None:
    arr = upright()
    original = jpeg(stored_for(arr, 1, 270))
    assert b"Exif\0\0" not in original
    out = rotate_bytes(original, 270, "exif")
    assert out.method == "exif"
    assert sos(out.data) == sos(original)
    assert orientation_of(out.data) == 8
    assert_upright(out.data, arr, tolerance=2.0)


@pytest.mark.parametrize("exif", [3, 6, 5])
def test_exif_method_composes_with_existing_jpeg_tag(exif: int) -> None:
    arr = upright()
    original = jpeg(stored_for(arr, exif, 90), orientation=exif)
    out = rotate_bytes(original, 90, "exif")
    assert orientation_of(out.data) == ori.exif_after_rotation(exif, 90)
    assert sos(out.data) == sos(original)
    assert_upright(out.data, arr, tolerance=2.0)


def tiff(pages: list[np.ndarray], orientation: int | None = None, **kw: object) -> bytes:
    buf = io.BytesIO()
    extratags = [(274, 3, 1, orientation, True)] if orientation else []
    with tifffile.TiffWriter(buf) as tw:
        for page in pages:
            tw.write(page, extratags=extratags, metadata=None, **kw)
    return buf.getvalue()


@pytest.mark.parametrize("exif", [None, 1, 6])
def test_exif_method_on_tiff_changes_only_the_tag(exif: int | None) -> None:
    arr = upright()
    original = tiff(
        [stored_for(arr, exif or 1, 180)], orientation=exif, photometric="rgb", compression="zlib"
    )
    out = rotate_bytes(original, 180, "exif")
    assert out.method == "exif"
    with tifffile.TiffFile(io.BytesIO(out.data)) as t, tifffile.TiffFile(io.BytesIO(original)) as o:
        page, old = t.pages.first, o.pages.first
        assert int(page.tags[274].value) == ori.exif_after_rotation(exif or 1, 180)
        assert (
            out.data[page.dataoffsets[0] : page.dataoffsets[0] + page.databytecounts[0]]
            == (original[old.dataoffsets[0] : old.dataoffsets[0] + old.databytecounts[0]])
        )
    assert_upright(out.data, arr)


# ----------------------------------------------------------------------------- TIFF re-encode


def reencoded_pages(data: bytes) -> list[np.ndarray]:
    with tifffile.TiffFile(io.BytesIO(data)) as t:
        return [p.asarray() for p in t.pages]


@pytest.mark.parametrize("compression", [None, "lzw", "zlib"])
def test_tiff_16bit_gray_stays_16bit_and_exact(compression: str | None) -> None:
    rng = np.random.default_rng(1)
    arr = (rng.random((H, W)) * 65535).astype(np.uint16)
    original = tiff([arr], compression=compression, photometric="minisblack")
    out = rotate_bytes(original, 90, "lossless")
    assert out.method == "reencode"
    with tifffile.TiffFile(io.BytesIO(out.data)) as t:
        page = t.pages.first
        assert page.dtype == np.uint16 and page.bitspersample == 16
        assert page.compression == tifffile.TiffFile(io.BytesIO(original)).pages.first.compression
        assert np.array_equal(page.asarray(), ori.apply_array(arr, ori.CLOCKWISE[90]))


def test_tiff_48bit_rgb_stays_48bit_with_orientation_baked_in() -> None:
    rng = np.random.default_rng(2)
    arr = (rng.random((H, W, 3)) * 65535).astype(np.uint16)
    original = tiff(
        [stored_for(arr, 8, 90)],
        orientation=8,
        photometric="rgb",
        compression="zlib",
        predictor=True,
    )
    out = rotate_bytes(original, 90, "lossless", exif_orientation=8)
    with tifffile.TiffFile(io.BytesIO(out.data)) as t:
        page = t.pages.first
        assert page.bitspersample == 16 and page.samplesperpixel == 3
        assert page.tags.get(274) is None or int(page.tags[274].value) == 1
        assert np.array_equal(page.asarray(), arr)


def test_multipage_tiff_rotates_every_page() -> None:
    pages = [upright(), upright()[::-1].copy(), upright(16, 24)]
    original = tiff([stored_for(p, 1, 270) for p in pages], photometric="rgb", compression="lzw")
    out = rotate_bytes(original, 270, "lossless")
    got = reencoded_pages(out.data)
    assert len(got) == 3
    for page, want in zip(got, pages, strict=True):
        assert np.array_equal(page, want)


def test_tiff_keeps_icc_dpi_xmp_description_and_exif(tmp_path: Path) -> None:
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    img = Image.fromarray(stored_for(upright(), 6, 0))
    path = tmp_path / "scan.tif"
    img.save(
        path,
        "TIFF",
        compression="tiff_lzw",
        dpi=(600, 300),
        icc_profile=icc,
        exif=exif_with(6, make="ScanCo"),
        description="Grandma, 1961",
    )
    # Pillow writes neither the EXIF sub-IFD (DateTimeOriginal) nor XMP for TIFF.
    subprocess.run(
        [
            "exiftool",
            "-q",
            "-overwrite_original",
            "-DateTimeOriginal=1961:07:04 10:00:00",
            "-XMP-tiff:Orientation#=6",
            "-XMP-dc:Creator=Archive",
            str(path),
        ],
        check=True,
    )
    out = rotate_bytes(path.read_bytes(), 0, "lossless")
    assert out.method == "reencode"
    result = Image.open(io.BytesIO(out.data))
    assert np.array_equal(np.asarray(result), upright())
    assert result.info["icc_profile"] == icc
    assert tuple(round(v) for v in result.info["dpi"]) == (300, 600)  # swapped with the axes
    assert result.getexif().get(274, 1) == 1
    assert result.getexif().get(271) == "ScanCo"
    assert result.getexif().get_ifd(0x8769).get(0x9003) == "1961:07:04 10:00:00"
    assert result.tag_v2.get(270) == "Grandma, 1961"
    xmp = bytes(result.tag_v2[700])
    assert b"<tiff:Orientation>1</tiff:Orientation>" in xmp and b"Archive" in xmp


def test_jpeg_compressed_tiff_is_not_recompressed_but_tagged() -> None:
    original = tiff([upright()], photometric="rgb", compression="jpeg")
    out = rotate_bytes(original, 90, "lossless")
    assert out.method == "exif" and "lossy" in out.note
    assert reencoded_pages(out.data)[0].tobytes() == reencoded_pages(original)[0].tobytes()


# ----------------------------------------------------------------------------- PNG, WebP, BMP


def test_palette_png_keeps_palette_transparency_text_icc_and_dpi() -> None:
    from PIL import PngImagePlugin

    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    arr = (upright(channels=1) // 50).astype(np.uint8)
    img = Image.fromarray(ori.apply_array(arr, ori.COUNTER_CLOCKWISE[90]), "L").convert("P")
    img.putpalette([0, 0, 0, 255, 0, 0, 0, 255, 0, 0, 0, 255, 255, 255, 0, 9, 9, 9])
    info = PngImagePlugin.PngInfo()
    info.add_text("Title", "Wedding")
    buf = io.BytesIO()
    img.save(
        buf,
        "PNG",
        transparency=bytes([0, 128, 255, 255, 255, 255]),
        pnginfo=info,
        icc_profile=icc,
        dpi=(300, 300),
    )
    out = rotate_bytes(buf.getvalue(), 90, "lossless")
    assert out.method == "reencode"
    result, before = Image.open(io.BytesIO(out.data)), Image.open(buf)
    assert result.mode == "P" and result.getpalette() == before.getpalette()
    assert result.info["transparency"] == before.info["transparency"] == bytes([0, 128, 255, 255, 255, 255])
    assert result.text["Title"] == "Wedding" and result.info["icc_profile"] == icc
    assert tuple(round(v) for v in result.info["dpi"]) == (300, 300)
    assert np.array_equal(np.asarray(result), arr)


def test_png_exif_orientation_is_baked_in() -> None:
    arr = upright()
    buf = io.BytesIO()
    Image.fromarray(stored_for(arr, 6, 180)).save(buf, "PNG", exif=exif_with(6))
    out = rotate_bytes(buf.getvalue(), 180, "exif")
    assert out.method == "reencode"
    assert orientation_of(out.data) == 1
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(out.data))), arr)


def test_16bit_gray_png_stays_16bit() -> None:
    arr = (np.random.default_rng(3).random((H, W)) * 65535).astype(np.uint16)
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, "PNG")
    out = rotate_bytes(buf.getvalue(), 180, "lossless")
    assert out.data[24] == 16  # IHDR bit depth
    assert np.array_equal(
        np.asarray(Image.open(io.BytesIO(out.data))), ori.apply_array(arr, ori.CLOCKWISE[180])
    )


def test_lossless_webp_with_alpha_is_exact_and_lossy_webp_is_refused() -> None:
    rgba = np.dstack([upright(), np.full((H, W), 200, np.uint8)])
    rgba[0, 0, 3] = 0
    buf = io.BytesIO()
    Image.fromarray(stored_for(rgba, 1, 90)).save(buf, "WEBP", lossless=True, exact=True)
    out = rotate_bytes(buf.getvalue(), 90, "lossless")
    assert out.method == "reencode"
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(out.data))), rgba)
    lossy = io.BytesIO()
    Image.fromarray(upright()).save(lossy, "WEBP", quality=80)
    with pytest.raises(RotateError, match="lossy WebP"):
        rotate_bytes(lossy.getvalue(), 90, "lossless")


def test_bmp_is_rotated_exactly() -> None:
    arr = upright()
    buf = io.BytesIO()
    Image.fromarray(stored_for(arr, 1, 180)).save(buf, "BMP", dpi=(200, 200))
    out = rotate_bytes(buf.getvalue(), 180, "exif")
    assert out.method == "reencode"
    result = Image.open(io.BytesIO(out.data))
    assert np.array_equal(np.asarray(result), arr)
    assert tuple(round(v) for v in result.info["dpi"]) == (200, 200)


# ----------------------------------------------------------------------------- refusals


def test_unsupported_and_damaged_files_raise_clear_errors() -> None:
    gif = io.BytesIO()
    Image.fromarray(upright()).save(gif, "GIF")
    with pytest.raises(RotateError, match="unsupported file format"):
        rotate_bytes(gif.getvalue(), 90, "lossless")
    truncated = jpeg(upright())[:400]
    with pytest.raises(RotateError, match="damaged|truncated"):
        rotate_bytes(truncated, 90, "lossless")
    with pytest.raises(RotateError, match="damaged|truncated"):
        rotate_bytes(truncated, 90, "exif")


def test_bogus_or_mismatched_orientation_is_refused() -> None:
    with pytest.raises(RotateError, match="not a valid value"):
        rotate_bytes(jpeg(upright()), 90, "lossless", exif_orientation=9)
    with pytest.raises(RotateError, match="invalid value 9"):
        rotate_bytes(jpeg(upright(), orientation=9), 90, "lossless")
    with pytest.raises(RotateError, match="prediction assumed 1"):
        rotate_bytes(jpeg(upright(), orientation=6), 90, "lossless", exif_orientation=1)
    with pytest.raises(RotateError, match="rotation must be"):
        rotate_bytes(jpeg(upright()), 45, "lossless")


def test_jpegtran_is_the_only_pixel_path_for_jpeg() -> None:
    """A JPEG is never re-compressed: the rotated scan is exactly what jpegtran produces."""
    original = jpeg(upright())
    out = rotate_bytes(original, 180, "lossless")
    direct = subprocess.run(
        ["jpegtran", "-perfect", "-copy", "all", *ori.JPEGTRAN_ARGS[ori.CLOCKWISE[180]]],
        input=original,
        capture_output=True,
        check=True,
    ).stdout
    assert sos(out.data) == sos(direct)
