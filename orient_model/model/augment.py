"""Make training copies look like scanned prints, without ever telling the model their class.

Archive scans are faded, tinted, grainy, dusty, scratched, slightly skewed, framed by white
borders or the scanner bed, and JPEG-compressed at any quality. :func:`scan_look` adds a random
mix of these to a training copy *after* it has been turned to its class, in the frame the file
is stored in, as a scanner adds them. Every effect is drawn the same way whatever the class and
is isotropic (borders and margins fall on random sides, scratches run in random directions,
JPEG chroma is subsampled equally both ways), so no effect can carry the label: the leak test in
``tests/test_training_set.py`` checks exactly that, and fails for an effect that is not.
"""

from __future__ import annotations

import io
import math

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

# Chance of each effect on one copy; several usually combine.
CHANCES = {
    "grey": 0.15,
    "sepia": 0.08,
    "cast": 0.25,
    "fade": 0.3,
    "border": 0.15,
    "bed": 0.08,
    "skew": 0.3,
    "grain": 0.3,
    "dust": 0.15,
    "scratches": 0.1,
    "blur": 0.15,
    "jpeg": 0.5,
}


def scan_look(img: Image.Image, rng: np.random.Generator, strength: float = 1.0) -> Image.Image:
    """A copy of ``img`` (RGB, square) with a random mix of scan effects; same size."""
    chance = {k: min(1.0, v * strength) for k, v in CHANCES.items()}
    if rng.random() < chance["skew"]:
        img = _skew(img, rng)
    if rng.random() < chance["border"]:
        img = _border(img, rng)
    if rng.random() < chance["bed"]:
        img = _scanner_bed(img, rng)
    arr = np.asarray(img, dtype=np.float32)
    if rng.random() < chance["grey"]:
        arr = _grey(arr)
    elif rng.random() < chance["sepia"]:
        arr = _sepia(arr, rng)
    if rng.random() < chance["cast"]:
        arr = arr * rng.uniform(0.85, 1.15, 3).astype(np.float32)
    if rng.random() < chance["fade"]:
        arr = _fade(arr, rng)
    if rng.random() < chance["grain"]:
        arr = arr + rng.normal(0, rng.uniform(3, 14), arr.shape[:2])[..., None].astype(np.float32)
    img = Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))
    if rng.random() < chance["dust"]:
        img = _dust(img, rng)
    if rng.random() < chance["scratches"]:
        img = _scratches(img, rng)
    if rng.random() < chance["blur"]:
        img = img.filter(ImageFilter.GaussianBlur(float(rng.uniform(0.4, 1.2))))
    if rng.random() < chance["jpeg"]:
        img = _jpeg(img, rng)
    return img


def _grey(arr: np.ndarray) -> np.ndarray:
    y = arr @ np.array([0.299, 0.587, 0.114], np.float32)
    return np.repeat(y[..., None], 3, axis=2)


def _sepia(arr: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    y = _grey(arr)[..., 0:1] / 255.0
    tone = np.array([1.0, 0.86, 0.66], np.float32) * rng.uniform(0.9, 1.05)
    return y * tone * 255.0 + np.array([18, 10, 0], np.float32) * (1 - y)


def _fade(arr: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Lower contrast and a lifted black level, as an old print's dyes fade."""
    contrast = rng.uniform(0.55, 0.9)
    floor = rng.uniform(10, 60)
    mean = arr.mean()
    return (arr - mean) * contrast + mean * rng.uniform(0.95, 1.1) + floor * (1 - contrast)


def _border(img: Image.Image, rng: np.random.Generator) -> Image.Image:
    """A print's white (or black, or cream) border: each side its own random width."""
    w, h = img.size
    colour = [(245, 245, 240), (20, 20, 20), (238, 228, 205)][int(rng.integers(3))]
    widths = (rng.uniform(0.0, 0.08, 4) * min(w, h)).astype(int)
    out = img.copy()
    draw = ImageDraw.Draw(out)
    left, top, right, bottom = widths
    draw.rectangle([0, 0, w, top], fill=colour)
    draw.rectangle([0, h - bottom, w, h], fill=colour)
    draw.rectangle([0, 0, left, h], fill=colour)
    draw.rectangle([w - right, 0, w, h], fill=colour)
    return out


def _scanner_bed(img: Image.Image, rng: np.random.Generator) -> Image.Image:
    """The photo lies on the scanner glass: shrunk, placed at a random spot on a light bed."""
    w, h = img.size
    scale = rng.uniform(0.75, 0.95)
    small = img.resize((max(8, int(w * scale)), max(8, int(h * scale))), Image.Resampling.BILINEAR)
    bed = Image.new("RGB", (w, h), tuple(int(v) for v in rng.uniform(205, 250, 3)))
    x, y = int(rng.integers(0, w - small.width + 1)), int(rng.integers(0, h - small.height + 1))
    bed.paste(small, (x, y))
    return bed


def _skew(img: Image.Image, rng: np.random.Generator) -> Image.Image:
    """A print laid a few degrees off square, cropped back to fill the frame."""
    angle = float(rng.uniform(-4, 4))
    w, h = img.size
    turned = img.rotate(angle, Image.Resampling.BILINEAR, expand=False)
    rad = math.radians(abs(angle))
    keep = 1 / (math.cos(rad) + math.sin(rad))  # the largest centred square free of corners
    cw, ch = int(w * keep), int(h * keep)
    box = ((w - cw) // 2, (h - ch) // 2, (w - cw) // 2 + cw, (h - ch) // 2 + ch)
    return turned.crop(box).resize((w, h), Image.Resampling.BILINEAR)


def _dust(img: Image.Image, rng: np.random.Generator) -> Image.Image:
    out = img.copy()
    draw = ImageDraw.Draw(out)
    w, h = img.size
    for _ in range(int(rng.integers(3, 25))):
        x, y = rng.uniform(0, w), rng.uniform(0, h)
        r = rng.uniform(0.3, 1.8) * max(w, h) / 256
        shade = int(rng.choice([rng.integers(0, 60), rng.integers(200, 256)]))
        draw.ellipse([x - r, y - r, x + r, y + r], fill=(shade, shade, shade))
    return out


def _scratches(img: Image.Image, rng: np.random.Generator) -> Image.Image:
    out = img.copy()
    draw = ImageDraw.Draw(out)
    w, h = img.size
    for _ in range(int(rng.integers(1, 5))):
        theta = rng.uniform(0, math.pi)  # any direction
        length = rng.uniform(0.2, 0.9) * max(w, h)
        cx, cy = rng.uniform(0, w), rng.uniform(0, h)
        dx, dy = math.cos(theta) * length / 2, math.sin(theta) * length / 2
        shade = int(rng.integers(200, 256)) if rng.random() < 0.7 else int(rng.integers(0, 50))
        draw.line([(cx - dx, cy - dy), (cx + dx, cy + dy)], fill=(shade, shade, shade), width=1)
    return out


def _jpeg(img: Image.Image, rng: np.random.Generator) -> Image.Image:
    buf = io.BytesIO()
    # 4:4:4 or 4:2:0 only: both treat the two axes alike (4:2:2 would not).
    img.save(buf, "JPEG", quality=int(rng.integers(35, 96)), subsampling=int(rng.choice([0, 2])))
    buf.seek(0)
    return Image.open(buf).convert("RGB")
