"""Synthetic upright scenes: a known 'up' for tests, benchmarks and crash drills.

Sky on top (a vertical gradient with a sun), ground below a random horizon, objects
standing on the ground. Simple, but a classifier must look at the layout to orient it.
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw, ImageFilter


def scene(rng: np.random.Generator, width: int = 320, height: int = 240) -> Image.Image:
    horizon = int(height * rng.uniform(0.45, 0.7))
    sky_top = rng.uniform([40, 80, 150], [120, 160, 255])
    sky_low = rng.uniform([170, 190, 210], [240, 245, 255])
    t = np.linspace(0, 1, horizon)[:, None, None]
    sky = (sky_top * (1 - t) + sky_low * t) * np.ones((1, width, 1))
    ground_base = rng.uniform([30, 60, 10], [120, 140, 70])
    if rng.random() < 0.3:  # dusk over snow: brightness alone no longer tells up from down
        sky_top, sky_low = sky_top * 0.35, sky_low * 0.45
        ground_base = rng.uniform([190, 190, 200], [230, 230, 240])
    rows = height - horizon
    shade = np.linspace(0.8, 1.2, rows)[:, None, None]
    noise = rng.normal(0, 18, (rows, width, 1))
    ground = np.clip(ground_base * shade + noise, 0, 255)
    img = Image.fromarray(np.concatenate([sky, ground], 0).astype(np.uint8), "RGB")
    draw = ImageDraw.Draw(img)
    r = int(rng.uniform(0.04, 0.09) * height)
    sx, sy = int(rng.uniform(0.1, 0.9) * width), int(rng.uniform(0.1, 0.35) * height)
    draw.ellipse(
        [sx - r, sy - r, sx + r, sy + r],
        fill=tuple(int(v) for v in rng.uniform([230, 200, 80], [255, 255, 180])),
    )
    for _ in range(int(rng.integers(2, 6))):
        w = int(rng.uniform(0.04, 0.12) * width)
        h = int(rng.uniform(0.1, 0.35) * height)
        x = int(rng.uniform(0, width - w))
        colour = tuple(int(v) for v in rng.uniform(20, 110, 3))
        draw.rectangle([x, horizon - h, x + w, horizon + 2], fill=colour)
        draw.polygon(
            [(x - w // 3, horizon - h), (x + w + w // 3, horizon - h), (x + w // 2, horizon - h - w)],
            fill=colour,
        )
    return img.filter(ImageFilter.GaussianBlur(0.6))


def write_scenes(
    out_dir, n: int, seed: int = 0, size: tuple[int, int] = (320, 240), fmt: str = "JPEG"
) -> list:
    """Write ``n`` upright scenes; returns their paths."""
    from pathlib import Path

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    ext = {"JPEG": "jpg", "PNG": "png", "TIFF": "tif"}[fmt]
    paths = []
    for i in range(n):
        w, h = size if rng.random() < 0.7 else size[::-1]
        path = out_dir / f"scene_{i:04d}.{ext}"
        scene(rng, w, h).save(path, fmt, **({"quality": 90} if fmt == "JPEG" else {}))
        paths.append(path)
    return paths
