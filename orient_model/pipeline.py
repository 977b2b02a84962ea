"""The auto-rotate pipeline's library half: read -> predict -> decide, batch by batch.

Each file is read once (hashed and decoded from the same bytes), decoded at reduced size
in a small thread pool that runs one batch ahead of the model, so memory stays flat however
large the archive is.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from itertools import islice
from pathlib import Path

from PIL import Image

from orient_model.archive.atomic import sha256_bytes
from orient_model.archive.walk import ArchiveEntry
from orient_model.config import AutorotateConfig
from orient_model.imageio import ImageReadError, center_square, inspect_image, load_upright
from orient_model.model.evidence import SaliencyRenderer, thumbnail_png
from orient_model.model.predict import Predictor, decide
from orient_model.report import ReportRow

AlreadyRotated = Callable[[str], str | None]


@dataclass
class ReadResult:
    row: ReportRow
    upright: Image.Image | None = None  # reduced, display-oriented; None when unusable


def read_entry(root: Path, entry: ArchiveEntry, input_size: int, cfg: AutorotateConfig,
               already_rotated: AlreadyRotated | None = None) -> ReadResult:
    """Hash, inspect and decode one file; problems become the row's error, never exceptions."""
    row = ReportRow(path=entry.display_path, path_bytes=entry.path_bytes)
    if entry.skip_reason:
        row.action, row.note = "skip", entry.skip_reason
        return row_only(row)
    start = time.perf_counter()
    try:
        data = (Path(root) / entry.rel_path).read_bytes()
    except FileNotFoundError:
        row.error = "file disappeared during the run"
        return row_only(row)
    except OSError as exc:
        row.error = f"cannot read file: {exc.strerror or exc}"
        return row_only(row)
    row.sha256_before = row.sha256_after = sha256_bytes(data)
    try:
        info = inspect_image(data, cfg.max_pixels)
        row.format, row.width, row.height, row.mode = info.format, info.width, info.height, info.mode
        row.exif_orientation, row.has_icc, row.n_frames = info.exif_orientation, info.has_icc, info.n_frames
        row.dpi = info.dpi[0] if info.dpi else None
        if already_rotated and (previous := already_rotated(row.sha256_before)):
            row.action, row.note = "skip", f"already rotated by run {previous}; not rotated twice"
            return row_only(row)
        upright = load_upright(data, input_size, cfg.max_pixels)
    except ImageReadError as exc:
        row.error = str(exc)
        return row_only(row)
    finally:
        row.read_ms = (time.perf_counter() - start) * 1000
    return ReadResult(row, upright)


def row_only(row: ReportRow) -> ReadResult:
    if row.error:
        row.action = "error"
    return ReadResult(row)


def batched(items: Iterable, n: int) -> Iterator[list]:
    it = iter(items)
    while batch := list(islice(it, n)):
        yield batch


def predict_entries(
    root: Path,
    entries: list[ArchiveEntry],
    predictor: Predictor,
    cfg: AutorotateConfig,
    renderer: SaliencyRenderer | None = None,
    already_rotated: AlreadyRotated | None = None,
    progress: Callable[[int], None] | None = None,
) -> list[ReportRow]:
    """Rows for ``entries`` with predictions and decisions; flagged photos get pictures."""
    size = predictor.loaded.input_size
    rows: list[ReportRow] = []
    with ThreadPoolExecutor(cfg.read_workers) as pool:
        def submit(batch):
            return [pool.submit(read_entry, root, e, size, cfg, already_rotated) for e in batch]

        batches = batched(entries, cfg.batch_size)
        pending = submit(next(batches, []))
        while pending:
            reads = [f.result() for f in pending]
            pending = submit(next(batches, []))  # decode the next batch while the model runs
            usable = [r for r in reads if r.upright is not None]
            start = time.perf_counter()
            views = [center_square(r.upright, size) for r in usable]
            probs = predictor.probabilities(views)
            per_photo_ms = (time.perf_counter() - start) * 1000 / max(len(usable), 1)
            for read, view, p in zip(usable, views, probs):
                row = read.row
                row.prob_0, row.prob_90, row.prob_180, row.prob_270 = (float(v) for v in p)
                row.rotation_deg, row.confidence, row.action = decide(p, cfg.threshold)
                row.predict_ms = per_photo_ms
                if row.action == "flag":
                    row.thumbnail_png = thumbnail_png(read.upright, cfg.thumbnail_size)
                    if renderer is not None:
                        row.saliency_png = renderer.render(view, row.rotation_deg)
            rows.extend(r.row for r in reads)
            if progress:
                progress(len(reads))
    return rows
