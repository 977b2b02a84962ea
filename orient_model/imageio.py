"""Reading photos: recognise them by content, inspect them cheaply, decode them small.

Every path that turns a file into model input goes through :func:`load_upright` and
:func:`square_views`, so training copies, prediction and evidence see the same pixels.
"""

from __future__ import annotations

import io
import threading
import warnings
from collections.abc import Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from orient_model import orientation
from orient_model.errors import OrientError

SUPPORTED_FORMATS = ("JPEG", "MPO", "TIFF", "PNG", "WEBP", "BMP")


class ImageReadError(OrientError):
    """A file that cannot be used as a photo; the message goes into reports as is."""


@dataclass(frozen=True)
class ImageInfo:
    format: str
    width: int
    height: int
    mode: str
    exif_orientation: int
    dpi: tuple[float, float] | None
    has_icc: bool
    n_frames: int


def _raw_exif_orientation(img: Image.Image) -> int | None:
    try:
        value = img.getexif().get(orientation.EXIF_ORIENTATION_TAG)
    except Exception:  # noqa: BLE001 - a broken EXIF block must not hide the photo
        return None
    return value


_PILLOW_CAP = threading.Lock()


@contextmanager
def our_pixel_cap(max_pixels: int | None):
    """Open with Pillow's own pixel cap lifted (it would raise on open() before we could report
    the file; the caller checks ``max_pixels`` itself): Pillow's global is changed only while our
    own opens run, never for the rest of the process."""
    del max_pixels  # checked by the caller against the opened header
    with _PILLOW_CAP:
        before = Image.MAX_IMAGE_PIXELS
        Image.MAX_IMAGE_PIXELS = None
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", Image.DecompressionBombWarning)
                yield
        finally:
            Image.MAX_IMAGE_PIXELS = before


def open_image(source: Path | str | bytes, max_pixels: int) -> Image.Image:
    """Open lazily (header only) and refuse what is not a supported, sane image.

    ``source`` is a path or the file's bytes (read once, hashed and decoded from memory).
    """
    try:
        if isinstance(source, bytes):
            if not source:
                raise ImageReadError("empty file (0 bytes)")
            with our_pixel_cap(max_pixels):
                img = Image.open(io.BytesIO(source))
        else:
            if Path(source).stat().st_size == 0:
                raise ImageReadError("empty file (0 bytes)")
            with our_pixel_cap(max_pixels):
                img = Image.open(source)
    except ImageReadError:
        raise
    except UnidentifiedImageError:
        raise ImageReadError("not an image (content is not a recognised image format)") from None
    except PermissionError:
        raise ImageReadError("permission denied: cannot read the file") from None
    except FileNotFoundError:
        raise ImageReadError("file disappeared during the run") from None
    except (OSError, ValueError, SyntaxError) as exc:
        raise ImageReadError(f"unreadable image header: {exc}") from None
    if img.format not in SUPPORTED_FORMATS:
        img.close()
        raise ImageReadError(f"unsupported image format {img.format}")
    if img.width * img.height > max_pixels:
        size = f"{img.width}x{img.height}"
        img.close()
        raise ImageReadError(
            f"image too large ({size} = {img.width * img.height:,} pixels > cap of {max_pixels:,}); "
            "possible decompression bomb, raise max_pixels in the config if it is genuine"
        )
    return img


def inspect_image(source: Path | str | bytes, max_pixels: int) -> ImageInfo:
    """Header facts needed by the report and the writer; decodes no pixels."""
    with open_image(source, max_pixels) as img:
        raw = _raw_exif_orientation(img)
        exif = 1 if raw is None else raw
        if not orientation.valid_exif_orientation(exif):
            raise ImageReadError(f"bogus EXIF orientation value {raw!r} (valid: 1-8); photo left alone")
        dpi = img.info.get("dpi")
        return ImageInfo(
            format="JPEG" if img.format == "MPO" else img.format,
            width=img.width,
            height=img.height,
            mode=img.mode,
            exif_orientation=int(exif),
            dpi=(float(dpi[0]), float(dpi[1])) if dpi else None,
            has_icc=bool(img.info.get("icc_profile")),
            n_frames=getattr(img, "n_frames", 1),
        )


def to_rgb8(img: Image.Image) -> Image.Image:
    """8-bit RGB for the model, scaling high bit depths and flattening transparency on white."""
    if img.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        arr = np.asarray(img, dtype=np.float64)
        top = 65535.0 if img.mode.startswith("I;16") or arr.max() > 255 else 255.0
        arr = np.clip(arr / top * 255.0 + 0.5, 0, 255).astype(np.uint8)
        return Image.fromarray(arr, "L").convert("RGB")
    if img.mode == "P" and "transparency" in img.info:
        img = img.convert("RGBA")
    if img.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = img.convert("RGBA")
        canvas = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(canvas, rgba).convert("RGB")
    return img.convert("RGB")


def center_square(img: Image.Image, size: int, position: float = 0.5) -> Image.Image:
    """Square crop (no aspect ratio left to leak the label), resized to ``size``.

    ``position`` slides the crop along the long side (0 = start, 1 = end).
    """
    w, h = img.size
    side = min(w, h)
    left = round((w - side) * position) if w > h else 0
    top = round((h - side) * position) if h > w else 0
    crop = img.crop((left, top, left + side, top + side))
    if side != size:
        crop = crop.resize((size, size), Image.Resampling.BICUBIC, reducing_gap=2.0)
    return crop


def square_views(
    img: Image.Image, size: int, n: int, which: Sequence[int] | None = None
) -> list[Image.Image]:
    """``n`` square views spread along the photo's long side (``n = 1``: the centre), so that
    together they see the whole photo: a landscape's sky and ground, a portrait's head and feet.
    Squares keep the aspect ratio out of what the model sees (it would betray a quarter turn).
    ``which``: only those of the ``n`` views (cutting one costs a resize)."""
    positions = [0.5] if n == 1 else [i / (n - 1) for i in range(n)]
    return [center_square(img, size, positions[i]) for i in (range(n) if which is None else which)]


def load_upright(source: Path | str | bytes, min_side: int, max_pixels: int) -> Image.Image:
    """Decode at reduced size (JPEG DCT scaling, ``reduce`` otherwise), display-oriented, RGB 8-bit.

    The shorter side of the result is at least ``min_side`` when the original allows it.
    """
    img = open_image(source, max_pixels)
    try:
        if img.format in ("JPEG", "MPO"):
            # draft() picks the smallest DCT scale keeping both sides >= the request.
            img.draft("RGB" if img.mode != "CMYK" else None, (min_side, min_side))
        raw = _raw_exif_orientation(img)
        if raw is not None and not orientation.valid_exif_orientation(raw):
            raise ImageReadError(f"bogus EXIF orientation value {raw!r} (valid: 1-8); photo left alone")
        img.load()
        factor = min(img.size) // (2 * min_side)
        if factor >= 2:
            img = img.reduce(factor)
        img = orientation.apply(img, orientation.EXIF_TRANSFORMS[raw or 1])
        return to_rgb8(img)
    except ImageReadError:
        raise
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
        raise ImageReadError(f"cannot decode image: {exc}") from None
    finally:
        img.close()
