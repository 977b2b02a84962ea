"""Shared by the accuracy benchmarks: train on (part of) a training set, judge on its held-out
photos, print one line of figures per run. Not a test: these take minutes to hours.

The photos a training set names are split by photo (see ``orient_model.training_set``): copies
of ``train`` photos are learnt from, ``val`` copies stop training, ``calib`` photos give the
temperature and certified threshold, ``test`` photos (and whole held-out sources) the figures.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from orient_model.config import MAX_ERROR, TrainConfig  # noqa: E402
from orient_model.model.architectures import ARCHS  # noqa: E402
from orient_model.model.evaluate import PhotoScores, calibrate, certified_metrics, score_photos  # noqa: E402
from orient_model.model.predict import Looking, Predictor  # noqa: E402
from orient_model.model.registry import LoadedModel  # noqa: E402
from orient_model.model.train import fit  # noqa: E402
from orient_model.training_set import manifest_path, read_manifest  # noqa: E402

VOTE, SINGLE = Looking(3, True), Looking(1, False)


def photos_by_split(data_dir: Path) -> dict[str, list[tuple[str, list[str], str]]]:
    """split -> [(path, kinds, sha256)], one entry per photo."""
    out: dict[str, dict] = {}
    for row in read_manifest(manifest_path(data_dir)).to_pylist():
        if row["error"] is None:
            out.setdefault(row["split"], {})[row["source_sha256"]] = (
                row["source_path"],
                row["kinds"] or [],
                row["source_sha256"],
            )
    return {split: sorted(photos.values()) for split, photos in out.items()}


def _sample(photos: list, n: int | None, seed: int) -> list:
    if n is None or n >= len(photos):
        return photos
    pick = np.random.default_rng(seed).choice(len(photos), n, replace=False)
    return [photos[i] for i in sorted(pick)]


def cpu_recipe(arch: str, input_size: int, epochs: int, cache_passes: int) -> TrainConfig:
    """The benchmarks' one training recipe: first stages frozen, cached features, on the CPU."""
    return TrainConfig(
        arch=arch,
        input_size=input_size,
        epochs=epochs,
        freeze="early",
        cache_passes=cache_passes,
        patience=2,
        device="cpu",
        workers=2,
    )


def train_and_judge(
    data_dir: Path,
    cfg: TrainConfig,
    n_train: int | None = None,
    seed: int = 0,
    max_error: float = MAX_ERROR,
    log=print,
    max_judged: int | None = None,
) -> dict:
    """Train on ``n_train`` random training photos (all when None); calibrate; judge on test
    (``max_judged``: at most that many calibration and test photos each, the same for every run)."""
    splits = photos_by_split(data_dir)
    for split in ("calib", "test"):
        splits[split] = _sample(splits.get(split, []), max_judged, 1)
    train = _sample(splits["train"], n_train, seed)
    sources = {sha[:20] for _, _, sha in train}
    start = time.perf_counter()

    def progress(message: str, fraction: float, milestone: bool) -> None:
        if milestone:
            log(f"  {message}")

    result = fit(data_dir, cfg, progress=progress, sources=sources, judge_copies=False)
    seconds = time.perf_counter() - start
    spec = ARCHS[cfg.arch]
    loaded = LoadedModel(
        result.model,
        cfg.arch,
        cfg.input_size or spec.input_size,
        spec.mean,
        spec.std,
        result.temperature,
        "bench",
        {},
        result.tta_temperature,
        cfg.views,
    )
    predictor = Predictor(loaded, device=cfg.device, engine="auto")
    calib = score_photos(predictor, [(p, k) for p, k, _ in splits.get("calib", [])])
    loaded.card["calibration"] = calibrate(calib, [VOTE, SINGLE])
    test = score_photos(predictor, [(p, k) for p, k, _ in splits.get("test", [])])
    return {
        "photos": len(train),
        "train_seconds": seconds,
        "scores": test,
        "loaded": loaded,
        "figures": judge(test, loaded, max_error),
    }


def judge(scores: PhotoScores, loaded: LoadedModel, max_error: float = MAX_ERROR) -> dict[str, dict]:
    out = {}
    for looking in (VOTE, SINGLE):
        out[looking.key] = certified_metrics(scores, looking, loaded.calibration, max_error)
    return out


def figure_line(name: str, run: dict) -> str:
    vote, single = run["figures"][VOTE.key], run["figures"][SINGLE.key]
    kinds = "  ".join(
        f"{k} {m['accuracy']:.3f}"
        for k, m in vote["by_kind"].items()
        if k in ("people", "scene", "greyscale", "old-print", "indoor", "animal", "object")
    )
    return (
        f"{name:<24} photos {run['photos']:>5}  single {single['accuracy']:.3f}  vote {vote['accuracy']:.3f}  "
        f"coverage {vote['coverage']:.2f}  wrong auto {vote['wrong_automatic']}/{vote['automatic']}  "
        f"train {run['train_seconds'] / 60:.1f} min  | {kinds}"
    )
