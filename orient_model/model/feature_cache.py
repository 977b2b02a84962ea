"""Features of the frozen early stages, made once per augmented copy and kept on disk.

With frozen early stages, sending every copy through them again each epoch would repeat the
costliest layers (and the decoding and augmentation before them) for the same result. So each
augmented copy goes through them once, into a float16 file that is memory-mapped, not loaded: at
20,000 photos the training copies' features are about 4.5 GB (31 kB a copy for
efficientnet_lite0 at 224 px), which the page cache holds as far as memory allows and the disk
holds the rest. A cache is complete only once its ``meta.json`` is written (last, atomically),
naming what made it; a run that finds a complete cache with the same identity reads it (a
resumed run sees exactly the features the stopped one saw), anything else is made afresh.

float16 keeps about three significant digits; the later stages' predictions on float16
features match those on the float32 ones (``tests/test_train_resume.py`` checks the tolerance,
``benchmarks/epoch_costs.py`` measures the agreement on real weights). The validation copies,
far fewer, keep float32, so validation on their features equals the whole network's.
"""

from __future__ import annotations

import hashlib
import json
import math
import shutil
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader

from orient_model.config import TrainConfig
from orient_model.files import atomic_write_bytes
from orient_model.model.data import CopiesDataset
from orient_model.model.train_costs import duration, usable_cores

META = "meta.json"


class FeatureCache:
    """Memory-mapped features (``N x C x H x W``; float16 for training copies), their labels, and
    which copy of the dataset each row is (``copies``; None where the dataset was not numbered).

    ``targets`` (``N x 4`` probabilities, set by distillation) replace the labels in batches."""

    def __init__(self, features: np.ndarray, labels: np.ndarray, copies: np.ndarray | None = None) -> None:
        self.features, self.labels, self.copies = features, labels, copies
        self.targets: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.labels)

    def batch(self, indices: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Float32 features and labels (or targets) of ``indices`` (read in file order: fewer
        page faults)."""
        rows = np.sort(indices.numpy())
        feats = torch.from_numpy(np.ascontiguousarray(self.features[rows])).float()
        wanted = self.labels if self.targets is None else self.targets
        return feats, torch.from_numpy(wanted[rows])


class CachedBatches:
    """Batches over a :class:`FeatureCache`, reshuffled each pass by ``generator`` (whose state a
    checkpoint keeps, so a resumed run draws the same order), or in order without one."""

    def __init__(self, cache: FeatureCache, batch_size: int, generator: torch.Generator | None = None):
        self.cache, self.batch_size, self.generator = cache, batch_size, generator

    def __len__(self) -> int:
        return math.ceil(len(self.cache) / self.batch_size)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        n = len(self.cache)
        order = torch.randperm(n, generator=self.generator) if self.generator else torch.arange(n)
        for start in range(0, n, self.batch_size):
            yield self.cache.batch(order[start : start + self.batch_size])


def open_cache(directory: Path, identity: dict) -> FeatureCache | None:
    """The complete cache in ``directory`` made for ``identity``, or None."""
    meta = Path(directory) / META
    if not meta.is_file() or json.loads(meta.read_text()).get("identity") != identity:
        return None
    features = np.load(directory / "features.npy", mmap_mode="r")
    copies = directory / "copies.npy"
    return FeatureCache(
        features, np.load(directory / "labels.npy"), np.load(copies) if copies.is_file() else None
    )


@torch.inference_mode()
def write_cache(
    directory: Path,
    identity: dict,
    early: nn.Module,
    loader: DataLoader,
    passes: int,
    device: torch.device,
    progress: Callable[[int, int], None] | None = None,
    dtype: type = np.float16,
    probe: ThreadProbe | None = None,
) -> FeatureCache:
    """Every copy of ``loader``, augmented afresh on each pass, through ``early`` into
    ``directory`` as ``dtype`` (replacing whatever was there); ``progress(copies done, copies)``."""
    directory = Path(directory)
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(parents=True)
    early.eval()
    total, done, features = passes * len(loader.dataset), 0, None
    labels, copies = np.empty(total, dtype=np.int64), np.empty(total, dtype=np.int64)
    numbered = getattr(loader.dataset, "numbered", False)
    arrived = time.perf_counter()
    for _ in range(passes):
        for images, y, *index in loader:
            out = early(images.to(device).contiguous(memory_format=torch.channels_last))
            if features is None:
                shape = (total, *out.shape[1:])
                features = np.lib.format.open_memmap(directory / "features.npy", "w+", dtype, shape)
            features[done : done + len(y)] = out.float().cpu().numpy()
            labels[done : done + len(y)] = y.numpy()
            if index:
                copies[done : done + len(y)] = index[0].numpy()
            done += len(y)
            if probe is not None:
                now = time.perf_counter()
                probe.observe(now - arrived, len(y))
                arrived = now
            if progress:
                progress(done, total)
    features.flush()
    np.save(directory / "labels.npy", labels)
    if numbered:
        np.save(directory / "copies.npy", copies)
    atomic_write_bytes(directory / META, json.dumps({"identity": identity, "copies": total}).encode())
    return open_cache(directory, identity)


def cache_identity(cfg: TrainConfig, dataset: CopiesDataset, passes: int) -> dict:
    """Everything the cached features of ``dataset`` depend on: the same identity, the same features."""
    copies = hashlib.sha256("\n".join(str(path) for path, _ in dataset.samples).encode()).hexdigest()
    weights = Path(cfg.weights)
    if weights.is_file():  # a file of weights (retraining from the current model) can change
        stat = weights.stat()
        weights = f"{weights.resolve()}:{stat.st_size}:{stat.st_mtime_ns}"
    return {
        "copies": copies,
        "train": dataset.train,
        "passes": passes,
        "numbered": getattr(dataset, "numbered", False),
        "weights": str(weights),
        **{
            k: getattr(cfg, k)
            for k in ("arch", "input_size", "frozen_stages", "seed", "scan_look", "workers", "batch_size")
        },
    }


class ThreadProbe:
    """Picks the PyTorch thread count for caching on the real work: a few batches with each
    candidate (after one to settle), then the fastest for the rest; no batch is wasted. Whether
    loader processes beside the network want a core of their own depends on the machine's load:
    on this 2-core machine, busy, caching ran at 7.6 copies/s with two threads and 14.0 with one;
    quiet, one thread left the second core mostly idle (the loaders used a quarter of it)."""

    def __init__(self, candidates: list[int], batches: int = 6) -> None:
        self.candidates = list(dict.fromkeys(candidates))
        self.batches = batches
        self.seconds: dict[int, list[float]] = {}
        self.trying, self.seen = 0, 0
        self.chosen: int | None = self.candidates[0] if len(self.candidates) == 1 else None
        torch.set_num_threads(self.candidates[0])

    def observe(self, seconds: float, copies: int) -> None:
        """One batch's wall time (waiting for the loaders included) with the current count."""
        if self.chosen is not None:
            return
        self.seen += 1
        if self.seen == 1:
            return  # the first batch after a change settles the new threads
        spent = self.seconds.setdefault(self.candidates[self.trying], [0.0, 0])
        spent[0] += seconds
        spent[1] += copies
        if self.seen <= self.batches:
            return
        self.trying, self.seen = self.trying + 1, 0
        if self.trying < len(self.candidates):
            torch.set_num_threads(self.candidates[self.trying])
            return
        self.chosen = min(self.seconds, key=lambda n: self.seconds[n][0] / self.seconds[n][1])
        torch.set_num_threads(self.chosen)

    def summary(self) -> str:
        if self.chosen is None:
            return f"caching ended before each thread count was tried ({torch.get_num_threads()} last)"
        rates = ", ".join(f"{c / s:.1f} copies/s with {n}" for n, (s, c) in self.seconds.items() if s > 0)
        return f"caching with {self.chosen} PyTorch thread(s)" + (f" ({rates})" if rates else "")


@contextmanager
def thread_probe(workers: int, device: torch.device) -> Iterator[ThreadProbe | None]:
    """A :class:`ThreadProbe` between every core and the cores the loader processes leave
    (none on a GPU, or without loader processes); the thread count is put back afterwards."""
    before = torch.get_num_threads()
    if workers < 1 or device.type != "cpu":
        yield None
        return
    try:
        yield ThreadProbe([before, max(1, min(before, usable_cores() - workers))])
    finally:
        torch.set_num_threads(before)


def copies_progress(say, doing: str) -> Callable[[int, int], None]:
    """A ``progress(done, total)`` for a pass over the copies that tells ``say`` the time left."""
    started = time.perf_counter()

    def report(done: int, total: int) -> None:
        left = (time.perf_counter() - started) / done * (total - done)
        say(f"{doing}: {done}/{total} copies, about {duration(left)} left", 0.0, done == total)

    return report


def cached_features(
    early: nn.Module, train_loader, val_loader, cfg: TrainConfig, device, run_dir: Path, say
) -> tuple[FeatureCache, FeatureCache]:
    """The training copies' features (float16, ``cfg.cache_passes`` augmented passes) and the
    validation copies' (float32, so validation on them equals the whole network's), made once
    into ``run_dir`` or found there complete."""
    caches = []
    for what, loader, passes, dtype in (
        ("training", train_loader, cfg.cache_passes, np.float16),
        ("validation", val_loader, 1, np.float32),
    ):
        folder, identity = run_dir / f"{what}-features", cache_identity(cfg, loader.dataset, passes)
        cache = open_cache(folder, identity)
        if cache is not None:
            say(f"{what} features: {len(cache)} copies already cached", 0.0, True)
        else:
            report = copies_progress(say, f"caching {what} features")
            with thread_probe(loader.num_workers, torch.device(device)) as probe:
                cache = write_cache(folder, identity, early, loader, passes, device, report, dtype, probe)
            if probe is not None:
                say(f"{what} features: {probe.summary()}", 0.0, True)
        caches.append(cache)
    return caches[0], caches[1]
