"""The auto-rotate pipeline's library half: read -> predict -> decide, batch by batch.

Each file is read once (hashed and decoded from the same bytes, through the archive's
containment layer, so nothing outside it is read), decoded at reduced size in a small thread
pool that runs one batch ahead of the model, so memory stays flat however large the archive is.
A file whose size, time and inode are what a previous run recorded, judged by the same model the
same way, is carried over without being read at all.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path

from PIL import Image

from orient_model.archive.journal import Judgement, Seen
from orient_model.archive.paths import OutsideArchive, Tree
from orient_model.archive.state import Memory
from orient_model.archive.walk import ArchiveEntry
from orient_model.config import AutorotateConfig
from orient_model.files import sha256_bytes
from orient_model.imageio import ImageReadError, inspect_image, load_upright
from orient_model.model.evidence import EvidenceRenderer, thumbnail_png
from orient_model.model.predict import Decision, Predictor
from orient_model.report import ReportRow


@dataclass
class ReadResult:
    row: ReportRow
    upright: Image.Image | None = None  # reduced, display-oriented; None when unusable
    seen: Seen | None = None
    judged: Judgement | None = None  # carried over from an earlier run


@dataclass
class Predicted:
    """What a chunk of files yields: report rows, and what the journal should remember."""

    rows: list[ReportRow] = field(default_factory=list)
    seen: list[Seen] = field(default_factory=list)
    judged: list[Judgement] = field(default_factory=list)


def read_entry(
    tree: Tree,
    entry: ArchiveEntry,
    input_size: int,
    cfg: AutorotateConfig,
    memory: Memory | None = None,
    rejudge: bool = False,
) -> ReadResult:
    """Hash, inspect and decode one file; problems become the row's error, never exceptions."""
    row = ReportRow(path=entry.display_path, path_bytes=entry.path_bytes)
    memory = memory or Memory()
    if entry.skip_reason:
        row.action, row.note = "skip", entry.skip_reason
        return ReadResult(row)
    start = time.perf_counter()
    try:
        with tree.place(entry.rel_path) as place:
            st = place.lstat()
            if st is None:
                raise FileNotFoundError(entry.rel_path)
            judged = None if rejudge else memory.carried(entry.rel_path, st)
            if judged is not None:
                return _carried(row, memory.sha256_of(entry.rel_path), judged, memory)
            data, state = place.read()
    except FileNotFoundError:
        return _error(row, "file disappeared during the run")
    except OutsideArchive as exc:
        row.action, row.note = "skip", str(exc)
        return ReadResult(row)
    except OSError as exc:
        return _error(row, f"cannot read file: {exc.strerror or exc}")
    row.sha256_before = row.sha256_after = sha256_bytes(data)
    seen = Seen(entry.rel_path, state.size, state.mtime_ns, state.ino, row.sha256_before)
    try:
        info = inspect_image(data, cfg.max_pixels)
        row.format, row.width, row.height, row.mode = info.format, info.width, info.height, info.mode
        row.exif_orientation, row.has_icc, row.n_frames = info.exif_orientation, info.has_icc, info.n_frames
        row.dpi = info.dpi[0] if info.dpi else None
        if reason := memory.leave_alone(row.sha256_before):
            row.action, row.note = "skip", reason
            return ReadResult(row, seen=seen)
        upright = load_upright(data, input_size, cfg.max_pixels)
    except ImageReadError as exc:
        result = _error(row, str(exc))
        result.seen, result.judged = seen, Judgement(row.sha256_before, None, str(exc))
        return result
    finally:
        row.read_ms = (time.perf_counter() - start) * 1000
    return ReadResult(row, upright, seen)


def _error(row: ReportRow, message: str) -> ReadResult:
    row.action, row.error = "error", message
    return ReadResult(row)


def _carried(row: ReportRow, sha256: str, judged: Judgement, memory: Memory) -> ReadResult:
    row.sha256_before = row.sha256_after = sha256
    row.carried = True
    if reason := memory.leave_alone(sha256):
        row.action, row.note = "skip", reason
    elif judged.error is not None:
        row.action, row.error = "error", judged.error
    return ReadResult(row, judged=judged)


def batched(items: Iterable, n: int) -> Iterator[list]:
    it = iter(items)
    while batch := list(islice(it, n)):
        yield batch


def predict_entries(
    root: Path,
    entries: list[ArchiveEntry],
    predictor: Predictor,
    cfg: AutorotateConfig,
    threshold: float,
    renderer: EvidenceRenderer | None = None,
    memory: Memory | None = None,
    progress: Callable[[int], None] | None = None,
    rejudge: bool = False,
) -> Predicted:
    """Rows for ``entries`` with predictions and decisions; flagged photos get pictures."""
    size = predictor.decode_size
    out = Predicted()
    # A GPU eats batches faster than two threads decode them: feed it with every core.
    workers = (
        cfg.read_workers if predictor.device.type == "cpu" else max(cfg.read_workers, os.cpu_count() or 2)
    )
    with Tree(root) as tree, ThreadPoolExecutor(workers) as pool:

        def submit(batch):
            return [(e, pool.submit(read_entry, tree, e, size, cfg, memory, rejudge)) for e in batch]

        batches = batched(entries, cfg.batch_size)
        pending = submit(next(batches, []))
        while pending:
            reads = [_looked_at(tree, e, f.result(), size, cfg, memory, threshold) for e, f in pending]
            pending = submit(next(batches, []))  # decode the next batch while the model runs
            usable = [r for r in reads if r.upright is not None]
            start = time.perf_counter()
            probs = predictor.probabilities([r.upright for r in usable], threshold)
            per_photo_ms = (time.perf_counter() - start) * 1000 / max(len(usable), 1)
            for read, p in zip(usable, probs, strict=True):
                read.row.predict_ms = per_photo_ms
                read.judged = Judgement(read.row.sha256_before, tuple(float(v) for v in p), None)
            flagged = []
            for read in reads:
                row = read.row
                if read.judged is not None and read.judged.probs is not None and row.action != "skip":
                    _decide(row, Decision.of(read.judged.probs, threshold))
                    if row.action == "flag" and read.upright is not None:  # carried: pictured before
                        row.thumbnail_png = thumbnail_png(read.upright, cfg.thumbnail_size)
                        flagged.append(read)
                out.rows.append(row)
                if read.seen is not None:
                    out.seen.append(read.seen)
                if read.judged is not None and not row.carried:
                    out.judged.append(read.judged)
            if renderer is not None and flagged:  # evidence for the batch's flagged photos in one pass
                pictures = renderer.render_many(
                    [r.upright for r in flagged],
                    [r.row.rotation_deg for r in flagged],
                    [r.judged.probs for r in flagged],
                )
                for read, picture in zip(flagged, pictures, strict=True):
                    read.row.saliency_png = picture
            if progress:
                progress(len(reads))
    return out


def _looked_at(
    tree: Tree,
    entry: ArchiveEntry,
    read: ReadResult,
    size: int,
    cfg: AutorotateConfig,
    memory: Memory | None,
    threshold: float,
) -> ReadResult:
    """The read itself, or, for a photo a run that changes files would turn on a judgement carried
    over from a journal, a fresh read for the model to look at: a journal is a file anyone can
    edit, so no photo is turned on its word alone."""
    judged = read.judged
    if cfg.apply == "none" or not read.row.carried or judged is None or judged.probs is None:
        return read
    if read.row.action == "skip" or Decision.of(judged.probs, threshold).action != "rotate":
        return read
    return read_entry(tree, entry, size, cfg, memory, rejudge=True)


def _decide(row: ReportRow, decision: Decision) -> None:
    row.prob_0, row.prob_90, row.prob_180, row.prob_270 = decision.probs
    row.rotation_deg, row.confidence, row.action = decision.rotation_deg, decision.confidence, decision.action
