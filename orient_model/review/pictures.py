"""Pictures for the review page: each photo turned the four ways, with the model's evidence for
each turn, and a larger view of one photo."""

from __future__ import annotations

import hashlib
import io
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from orient_model import orientation
from orient_model.archive.paths import Tree
from orient_model.errors import OrientError
from orient_model.imageio import ImageReadError, load_upright
from orient_model.review.items import ContentChanged, ReviewError, ReviewItem, display_path

PICTURE_SIDE = 400  # long side of each candidate picture, in px
FULL_SIDE = 1600  # long side of the full-size view


@dataclass(frozen=True)
class ItemPictures:
    """An item's four candidates (JPEG) and the evidence for each (None without a model)."""

    candidates: tuple[bytes, bytes, bytes, bytes]
    evidence: tuple[bytes, bytes, bytes, bytes] | None
    note: str | None


class Pictures:
    """Pictures for the review page, made on demand: the photo turned each of the four ways,
    and Grad-CAM evidence for each turn (class-discriminative: the maps differ where the
    model's reasons differ). Each model is loaded once; recent pictures are kept."""

    def __init__(
        self, root: Path, max_pixels: int = 250_000_000, keep: int = 48, side: int = PICTURE_SIDE
    ) -> None:
        self.root, self.max_pixels, self.keep, self.side = Path(root), max_pixels, keep, side
        self._renderers: dict[str, object] = {}
        self._cache: OrderedDict[tuple[str, str], ItemPictures] = OrderedDict()
        self._lock = threading.Lock()  # one rendering at a time: the attribution hooks are not thread-safe

    def _photo(self, rel_path: str, expected_sha256: str, min_side: int) -> Image.Image:
        with Tree(self.root) as tree, tree.place(rel_path) as place:
            data, _ = place.read()
        if hashlib.sha256(data).hexdigest() != expected_sha256:
            raise ContentChanged(
                f"{display_path(rel_path)}: the file changed since the queue was read; reload the page"
            )
        return load_upright(data, min_side, self.max_pixels)

    def _renderer(self, model: str | None):
        if not model:
            return None, "no model recorded in the report: no evidence"
        if model not in self._renderers:
            from orient_model.model.evidence import EvidenceRenderer
            from orient_model.model.registry import load_model

            try:
                self._renderers[model] = EvidenceRenderer(load_model(model), "gradcam")
            except (OrientError, OSError) as exc:
                self._renderers[model] = exc
        renderer = self._renderers[model]
        if isinstance(renderer, Exception):
            return None, f"no evidence: the model {model} cannot be loaded ({renderer})"
        return renderer, None

    def of(self, item: ReviewItem) -> ItemPictures:
        key = (item.id, item.current_sha256)
        with self._lock:
            if key in self._cache:
                self._cache.move_to_end(key)
                return self._cache[key]
            pictures = self._render(item)
            self._cache[key] = pictures
            while len(self._cache) > self.keep:
                self._cache.popitem(last=False)
            return pictures

    def _render(self, item: ReviewItem) -> ItemPictures:
        from orient_model.model.evidence import overlay

        try:
            photo = self._photo(item.rel_path, item.current_sha256, self.side)
        except ImageReadError as exc:
            raise ReviewError(f"{item.path}: {exc}") from None
        photo.thumbnail((self.side, self.side), Image.Resampling.BICUBIC)
        renderer, note = self._renderer(item.model)
        maps = renderer.photo_maps([photo], size=max(photo.size))[0] if renderer is not None else None
        candidates, evidence = [], []
        for rotation in orientation.ROTATIONS:
            turn = (rotation - item.shown_offset) % 360  # the file may already be turned
            transform = orientation.CLOCKWISE[turn]
            candidates.append(_jpeg(orientation.apply(photo, transform)))
            if maps is not None:
                amap = maps[orientation.class_index(turn)]
                amap = np.asarray(
                    Image.fromarray(amap.astype(np.float32), mode="F").resize(photo.size), np.float32
                )
                evidence.append(_jpeg(orientation.apply(overlay(photo, np.clip(amap, 0, 1)), transform)))
        return ItemPictures(tuple(candidates), tuple(evidence) if maps is not None else None, note)


def full_view(root: Path, rel_path: str, max_pixels: int = 250_000_000, side: int = FULL_SIDE) -> bytes:
    """A JPEG of one archive photo as displayed (long side at most ``side``), read through the
    archive's containment layer: a path that leaves the archive raises :class:`OutsideArchive`."""
    with Tree(root) as tree, tree.place(rel_path) as place:
        data, _ = place.read()
    photo = load_upright(data, side // 2, max_pixels)
    photo.thumbnail((side, side), Image.Resampling.BICUBIC)
    return _jpeg(photo, quality=90)


def _jpeg(img: Image.Image, quality: int = 85) -> bytes:
    buf = io.BytesIO()
    img.convert("RGB").save(buf, "JPEG", quality=quality)
    return buf.getvalue()
