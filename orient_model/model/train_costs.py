"""What a training run will cost, before it starts: per-copy seconds times the counts.

A run with frozen early stages does four kinds of work, each proportional to a count: every
training copy decoded, augmented and sent through the early stages once per cached pass; the
later stages trained on every cached copy each epoch; the validation copies through the early
stages once and the later stages each epoch; and the calibration and test photos judged whole
(three views at four turns: 12 passes of the whole network a photo, which serve all four
orientations). :func:`project_seconds` multiplies measured per-copy costs by those counts, so a
long run can say how long it will take before it takes it, and the benchmark
``benchmarks/epoch_costs.py`` can say where the time goes at a corpus size not yet gathered.
"""

from __future__ import annotations

import copy
import os
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from orient_model.config import TrainConfig, TrainingSetConfig
from orient_model.model.data import photo_of, split_copies

TURNS = 4
JUDGED_PASSES = 3 * TURNS  # three views, four turns each; the four orientations are re-indexed from them


@dataclass(frozen=True)
class CopyCosts:
    """Seconds per copy (one square view at one turn) of each kind of work, on this machine."""

    decode_augment: float
    early_forward: float
    late_train_step: float
    late_forward: float
    whole_forward: float
    feature_bytes: int = 0
    threads: int = 0  # PyTorch threads they were timed with


@dataclass(frozen=True)
class RunShape:
    """The counts a run's cost scales with."""

    train_copies: int
    val_copies: int
    calibration_photos: int
    test_photos: int
    epochs: int
    cache_passes: int
    loader_workers: int = 0  # decode and augment beside the network, on cores of their own

    @classmethod
    def for_corpus(
        cls,
        photos: int,
        sets: TrainingSetConfig,
        epochs: int,
        cache_passes: int,
        max_val_photos: int | None,
        max_calibration_photos: int | None,
        loader_workers: int = 0,
    ) -> RunShape:
        """The counts ``photos`` photos make with the split fractions of ``sets`` and the caps."""
        copies = sets.crops_per_photo * TURNS
        val = round(photos * sets.val_fraction)
        calib = round(photos * sets.calibration_fraction)
        test = round(photos * sets.test_fraction)
        return cls(
            train_copies=(photos - val - calib - test) * copies,
            val_copies=cap(val, max_val_photos) * copies,
            calibration_photos=cap(calib, max_calibration_photos),
            test_photos=test,
            epochs=epochs,
            cache_passes=cache_passes,
            loader_workers=loader_workers,
        )

    def describe(self) -> str:
        return (
            f"{self.train_copies:,} training copies x {self.cache_passes} cached pass(es), {self.epochs} epochs, "
            f"{self.val_copies:,} validation copies, {self.calibration_photos:,} calibration and "
            f"{self.test_photos:,} test photos"
        )


def duration(seconds: float) -> str:
    """A duration as a person reads it: 40 s, 12 min, 2.5 h."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def cap(count: int, limit: int | None) -> int:
    return count if limit is None else min(count, limit)


def project_seconds(costs: CopyCosts, shape: RunShape) -> dict[str, float]:
    """Projected seconds of each part of a run, and their total (``run``). Caching is decoding
    plus the early stages (:func:`caching_seconds`); judging is at PyTorch's pace, an upper bound
    where ONNX Runtime runs the photos."""
    cached = shape.train_copies * shape.cache_passes
    caching = caching_seconds(costs, shape.loader_workers)
    parts = {
        "cache training features (once)": cached * caching,
        "cache validation features (once)": shape.val_copies * caching,
        "train later stages (all epochs)": cached * costs.late_train_step * shape.epochs,
        "validate (all epochs)": shape.val_copies * costs.late_forward * shape.epochs,
        "judge calibration and test photos": (shape.calibration_photos + shape.test_photos)
        * JUDGED_PASSES
        * costs.whole_forward,
    }
    parts["one epoch (train + validate)"] = (
        cached * costs.late_train_step + shape.val_copies * costs.late_forward
    )
    parts["run"] = sum(v for k, v in parts.items() if not k.startswith("one epoch"))
    return parts


def caching_seconds(costs: CopyCosts, loader_workers: int) -> float:
    """Seconds a copy while caching. The early stages run on ``costs.threads`` cores; loader
    processes decode beside them only on cores left over. With none left (2 cores, 2 threads)
    the two take turns: the sum (53,168 copies cached in 28 min here, where overlapping them
    had projected 12)."""
    spare = usable_cores() - costs.threads
    if loader_workers < 1 or spare < 1:
        return costs.decode_augment + costs.early_forward
    return max(costs.decode_augment / min(loader_workers, spare), costs.early_forward)


def seconds_per_item(fn, items: int, repeat: int = 2) -> float:
    """Seconds per item of ``fn`` (which handles ``items`` items), best of ``repeat`` after a warm-up."""
    fn()
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best / items


def usable_cores() -> int:
    """Cores this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def fastest_threads(step: Callable[[], None], copies: int) -> int:
    """Sets, and returns, the PyTorch thread count (as many as now, or one) under which ``step``
    runs faster on this machine now. On a quiet machine every core helps; on one shared with
    other jobs, threads that wait for each other at every layer can be several times slower
    (the later stages' training step on this 2-core machine, busy: 64 ms a copy with one
    thread, 255 ms with two)."""
    timings = {}
    for threads in dict.fromkeys((torch.get_num_threads(), 1)):
        torch.set_num_threads(threads)
        timings[threads] = seconds_per_item(step, copies, repeat=1)
    best = min(timings, key=timings.get)
    torch.set_num_threads(best)
    return best


def probe_costs(
    early: nn.Module, late: nn.Module, dataset, device: torch.device, copies: int, pick_threads: bool = False
) -> CopyCosts:
    """Per-copy costs timed on the first ``copies`` training copies; the model is left as it was
    (the training step runs on a copy of the later stages). ``pick_threads`` first sets the
    thread count the training step runs fastest with (see :func:`fastest_threads`)."""
    start = time.perf_counter()
    samples = [dataset[i] for i in range(copies)]
    decode_augment = (time.perf_counter() - start) / copies
    x = torch.stack([s[0] for s in samples]).to(device).contiguous(memory_format=torch.channels_last)
    y = torch.tensor([s[1] for s in samples], device=device)
    early.eval()
    with torch.inference_mode():
        features = early(x).half()
    trial = copy.deepcopy(late).train()
    optimizer = torch.optim.AdamW([p for p in trial.parameters() if p.requires_grad], 1e-4)
    cached = features.clone()  # outside inference mode: a training step may keep it for backward

    def step() -> None:
        loss = nn.functional.cross_entropy(trial(cached.float()), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    threads = (
        fastest_threads(step, copies) if pick_threads and device.type == "cpu" else torch.get_num_threads()
    )
    with torch.inference_mode():
        early_forward = seconds_per_item(lambda: early(x), copies)
    late_train_step = seconds_per_item(step, copies)
    trial.eval()
    with torch.inference_mode():
        late_forward = seconds_per_item(lambda: trial(cached.float()), copies)
    return CopyCosts(
        decode_augment=decode_augment,
        early_forward=early_forward,
        late_train_step=late_train_step,
        late_forward=late_forward,
        whole_forward=early_forward + late_forward,
        feature_bytes=features[0].numel() * 2,
        threads=threads,
    )


def capped_train_sources(data_dir: Path, cfg: TrainConfig) -> set[str] | None:
    """At most ``cfg.max_train_photos`` training photos (a seeded random choice), as copy-name
    prefixes; None keeps them all. The other photos stay in their split: a smaller run is judged
    on the same calibration and test photos as a full one, so the two compare."""
    return _capped_split(data_dir, "train", cfg.max_train_photos, cfg.seed)


def capped_val_sources(data_dir: Path, cfg: TrainConfig) -> set[str] | None:
    """At most ``cfg.max_val_photos`` validation photos (a seeded random choice), as the copy-name
    prefixes :class:`CopiesDataset` keeps; None keeps them all. Early stopping compares epochs on
    the same copies, so a thousand photos (12,000 copies) tell a point's difference apart; more
    only cost time every epoch."""
    return _capped_split(data_dir, "val", cfg.max_val_photos, cfg.seed)


def _capped_split(data_dir: Path, split: str, limit: int | None, seed: int) -> set[str] | None:
    """At most ``limit`` of a split's photos (a seeded random choice of copy-name prefixes)."""
    if limit is None:
        return None
    names = sorted({photo_of(path) for path, _ in split_copies(data_dir, split)})
    if len(names) <= limit:
        return None
    return set(random.Random(seed).sample(names, limit))


def capped_photos(photos: dict | None, cfg: TrainConfig) -> dict | None:
    """``photos`` with at most ``cfg.max_calibration_photos`` calibration photos (a seeded random
    choice; the same when capped again). Each is judged in 12 passes of the whole network; with
    2,000 photos (8,000 decisions) the certified bound at a true 0.5% error among 75% automatic
    decisions is 0.68%, and 4,000 photos would lower it by only 0.06 points."""
    limit = cfg.max_calibration_photos
    if not photos or limit is None or len(photos.get("calib") or []) <= limit:
        return photos
    return {**photos, "calib": sorted(random.Random(cfg.seed).sample(sorted(photos["calib"]), limit))}


def projected_run(
    early, late, train_loader, val_loader, photos: dict | None, cfg: TrainConfig, device
) -> str:
    """How long the run will take, from a few probe copies timed through each kind of work (and
    the thread count the epochs will use, set here: see :func:`fastest_threads`)."""
    copies = min(16, len(train_loader.dataset))
    costs = probe_costs(early, late, train_loader.dataset, device, copies, pick_threads=True)
    shape = RunShape(
        train_copies=len(train_loader.dataset),
        val_copies=len(val_loader.dataset),
        calibration_photos=len((photos or {}).get("calib") or []),
        test_photos=len((photos or {}).get("test") or []),
        epochs=cfg.epochs,
        cache_passes=cfg.cache_passes,
        loader_workers=cfg.workers,
    )
    parts = project_seconds(costs, shape)
    caching = parts["cache training features (once)"] + parts["cache validation features (once)"]
    return (
        f"projected: caching {duration(caching)}, {cfg.epochs} epochs of "
        f"{duration(parts['one epoch (train + validate)'])}, judging "
        f"{duration(parts['judge calibration and test photos'])}: about {duration(parts['run'])} in all "
        f"({shape.describe()}; {costs.threads} PyTorch thread(s), the faster here); a checkpoint follows "
        "every epoch, and `orient train --resume` goes on after a stop"
    )
