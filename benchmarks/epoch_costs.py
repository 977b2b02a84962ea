"""Where a training run's time goes on this machine, per copy, projected to a corpus (a benchmark).

Times each part of the ``--freeze early`` recipe on a few generated copies (or a real training
set's, ``--data``) and multiplies by the counts a corpus of ``--photos`` photos makes
(``crops_per_photo`` square views x 4 turns of each photo in train and val; calibration and test
photos judged whole, 3 views x 4 turns in each of 4 orientations). Prints the projection for
the old recipe (every split as large as the photo fractions make it, PyTorch's own thread
count) beside the new one (the validation and calibration caps of ``TrainConfig`` and the
thread count a run picks by measurement), one row per part:

    .venv/bin/python benchmarks/epoch_costs.py [--photos 20000] [--epochs 3] [--cache-passes 1]
        [--weights package] [--data DIR] [--loading]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, TensorDataset

from orient_model.config import TrainConfig, TrainingSetConfig
from orient_model.model.architectures import ARCHS, build_model, split_stages
from orient_model.model.data import CopiesDataset
from orient_model.model.feature_cache import CachedBatches, FeatureCache, write_cache
from orient_model.model.train_costs import (
    CopyCosts,
    RunShape,
    probe_costs,
    project_seconds,
    seconds_per_item,
)
from orient_model.synthetic import write_scenes
from orient_model.training_set import find_photos, process_source


def measure(data: Path, cfg: TrainConfig, copies: int) -> tuple[CopyCosts, CopyCosts, str]:
    """Per-copy costs on the copies in ``data`` with PyTorch's own thread count and with the one a
    run picks, and how far float16 features move predictions."""
    spec = ARCHS[cfg.arch]
    size = cfg.input_size or spec.input_size
    dataset = CopiesDataset(data, "train", size, spec.mean, spec.std, train=True, scan_look=cfg.scan_look)
    model = build_model(cfg.arch, weights=cfg.weights).to(memory_format=torch.channels_last).eval()
    early, late = split_stages(model, cfg.frozen_stages)
    n, cpu = min(copies, len(dataset)), torch.device("cpu")
    threads = torch.get_num_threads()
    own = probe_costs(early, late, dataset, cpu, n)
    picked = probe_costs(early, late, dataset, cpu, n, pick_threads=True)
    torch.set_num_threads(threads)
    x = torch.stack([dataset[i][0] for i in range(min(copies, len(dataset)))])
    with torch.inference_mode():
        features = early(x.contiguous(memory_format=torch.channels_last))
        full = late(features).softmax(1)
        half = late(features.half().float()).softmax(1)
    agreement = (
        f"float16 features against float32 on {len(x)} copies: same class on "
        f"{int((full.argmax(1) == half.argmax(1)).sum())}, largest probability change "
        f"{float((full - half).abs().max()):.5f}"
    )
    return own, picked, agreement


def reading(copies: int, shape: tuple[int, ...], batch: int) -> str:
    """Per-copy ms to read a shuffled epoch of float16 features: the old in-memory dataset through a
    DataLoader (one item at a time, then collated) against batches from the memory-mapped file."""
    features = torch.randn(copies, *shape).half()
    labels = torch.randint(0, 4, (copies,))
    loader = DataLoader(TensorDataset(features, labels), batch_size=batch, shuffle=True)
    with tempfile.TemporaryDirectory() as tmp:
        np.save(Path(tmp) / "f.npy", features.numpy())
        cache = FeatureCache(np.load(Path(tmp) / "f.npy", mmap_mode="r"), labels.numpy())
        batches = CachedBatches(cache, batch, torch.Generator().manual_seed(0))
        before = seconds_per_item(lambda: [x.float() for x, _ in loader], copies)
        after = seconds_per_item(lambda: list(batches), copies)
    return f"reading cached features, ms a copy: in memory via DataLoader {before * 1e3:.3f}, memory-mapped batches {after * 1e3:.3f}"


def loading(data: Path, cfg: TrainConfig, copies: int) -> str:
    """Copies a second through decoding, augmentation and the early stages, by loader processes
    and torch threads (the caching pass's data loading)."""
    spec = ARCHS[cfg.arch]
    size = cfg.input_size or spec.input_size
    dataset = CopiesDataset(data, "train", size, spec.mean, spec.std, train=True, scan_look=cfg.scan_look)
    dataset.samples = dataset.samples[:copies]
    early, _ = split_stages(build_model(cfg.arch, weights=cfg.weights), cfg.frozen_stages)
    threads, rates = torch.get_num_threads(), []
    for workers, torch_threads in ((0, 2), (1, 1), (1, 2), (2, 1), (2, 2)):
        torch.set_num_threads(torch_threads)
        loader = DataLoader(dataset, batch_size=16, num_workers=workers)
        with tempfile.TemporaryDirectory() as tmp:
            start = time.perf_counter()
            write_cache(Path(tmp), {}, early, loader, 1, torch.device("cpu"))
            rates.append(
                f"{workers} workers + {torch_threads} threads {copies / (time.perf_counter() - start):.1f}"
            )
    torch.set_num_threads(threads)
    return "caching, copies a second: " + " | ".join(rates)


def show(runs: dict[str, tuple[CopyCosts, RunShape]]) -> None:
    """Per-copy costs, then each run's projected minutes by part, side by side."""
    for name, (costs, _) in runs.items():
        ms = {
            "decode+augment": costs.decode_augment,
            "early stages": costs.early_forward,
            "later stages train step": costs.late_train_step,
            "later stages forward": costs.late_forward,
            "whole network forward": costs.whole_forward,
        }
        print(
            f"{name}, per copy with {costs.threads} thread(s), ms: "
            + " | ".join(f"{k} {v * 1e3:.1f}" for k, v in ms.items())
        )
    projections = {name: project_seconds(costs, shape) for name, (costs, shape) in runs.items()}
    print(f"{'minutes':<36}" + "".join(f"{n:>16}" for n in runs))
    for part in next(iter(projections.values())):
        print(f"{part:<36}" + "".join(f"{projections[n][part] / 60:>16.1f}" for n in runs))
    for name, (_, shape) in runs.items():
        print(f"{name}: {shape.describe()}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--photos", type=int, default=20_000, help="photos in the corpus (all splits)")
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--cache-passes", type=int, default=1)
    p.add_argument("--arch", default="efficientnet_lite0")
    p.add_argument("--weights", default="none", help="package for the ImageNet start (same cost)")
    p.add_argument("--copies", type=int, default=32, help="copies timed through each part")
    p.add_argument("--data", type=Path, help="a training set (make-training-set) to time instead")
    p.add_argument("--loading", action="store_true", help="also time caching by loader processes and threads")
    args = p.parse_args()
    cfg = TrainConfig(arch=args.arch, weights=args.weights, input_size=None, freeze="early")
    print(
        f"torch threads {torch.get_num_threads()}, {args.arch}, {args.copies} copies a part, "
        f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores"
    )
    with tempfile.TemporaryDirectory() as tmp:
        data = args.data
        if data is None:
            data = Path(tmp) / "data"
            write_scenes(Path(tmp) / "src", 16, seed=0, size=(640, 480))
            for path in find_photos([Path(tmp) / "src"]):
                process_source(path, data, TrainingSetConfig(val_fraction=0, calibration_fraction=0))
        own, picked, agreement = measure(data, cfg, args.copies)
        loaded = loading(data, cfg, 4 * args.copies) if args.loading else None
    sets = TrainingSetConfig()
    common = dict(
        photos=args.photos,
        sets=sets,
        epochs=args.epochs,
        cache_passes=args.cache_passes,
        loader_workers=cfg.workers,
    )
    uncapped = RunShape.for_corpus(**common, max_val_photos=None, max_calibration_photos=None)
    capped = RunShape.for_corpus(
        **common, max_val_photos=cfg.max_val_photos, max_calibration_photos=cfg.max_calibration_photos
    )
    show({"before": (own, uncapped), "after": (picked, capped)})
    print(f"cached features: {own.feature_bytes / 1e3:.0f} kB a copy (float16); {agreement}")
    print(reading(2048, (80, 14, 14), 32))
    if loaded:
        print(loaded)


if __name__ == "__main__":
    main()
