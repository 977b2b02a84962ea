"""Combinations of trained models that need no more photos (a benchmark, not a test): each model
alone, the mirrored look (every view also mirrored, its answer mapped back), weight soups
(models fine-tuned from the same ImageNet weights, their weights averaged) and ensembles (their
log-probabilities averaged), judged on a training set's calibration and test photos the way
promotion judges (three views voted, the certified threshold for 1% error).

    .venv/bin/python benchmarks/combinations.py DATA_DIR MODEL_DIR MODEL_DIR [...] [--photos N]
"""

from __future__ import annotations

import argparse
import itertools
import shutil
import tempfile
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from orient_model.config import MAX_ERROR
from orient_model.model import evaluate
from orient_model.model.calibration import certified_threshold
from orient_model.model.data import HFLIP_LABEL
from orient_model.model.evaluate import PhotoScores, calibrate, metrics, score_photos
from orient_model.model.predict import Looking, Predictor
from orient_model.model.registry import load_model
from orient_model.training_set import whole_photos

MIRROR = np.array([HFLIP_LABEL[k] for k in range(4)])
LOOKING = Looking(3, True)


def scores(model_dir: Path, photos: dict, mirrored: bool = False) -> dict[str, PhotoScores]:
    """Calibration and test scores; ``mirrored``: of the mirrored photos, mapped back to the
    originals' orientations and classes (a mirror turns "needs 90" into "needs 270")."""
    predictor = Predictor(load_model(model_dir), engine="onnxruntime", views=LOOKING.views)
    load = evaluate.load_upright
    if mirrored:
        evaluate.load_upright = lambda *a: load(*a).transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    try:
        out = {split: score_photos(predictor, photos[split]) for split in ("calib", "test")}
    finally:
        evaluate.load_upright = load
    if mirrored:
        for s in out.values():
            s.log_probs = s.log_probs[:, MIRROR][..., MIRROR]
    return out


def joined(parts: list[dict[str, PhotoScores]]) -> dict[str, PhotoScores]:
    """An ensemble: every part's passes voted together."""
    return {
        split: PhotoScores(
            parts[0][split].names,
            parts[0][split].kinds,
            np.concatenate([p[split].log_probs for p in parts], axis=3),
        )
        for split in ("calib", "test")
    }


def soup(model_dirs: list[Path], out: Path) -> Path:
    """A model folder whose weights are the average of the models' (the first one's card)."""
    out.mkdir(parents=True)
    checkpoints = [torch.load(d / "model.pt", weights_only=True) for d in model_dirs]
    averaged = dict(checkpoints[0])
    averaged["state_dict"] = {
        k: (sum(c["state_dict"][k].float() for c in checkpoints) / len(checkpoints)).to(v.dtype)
        if v.is_floating_point()
        else v
        for k, v in checkpoints[0]["state_dict"].items()
    }
    torch.save(averaged, out / "model.pt")
    shutil.copy(model_dirs[0] / "card.json", out / "card.json")  # its int8 network is not this one's
    return out


def line(name: str, s: dict[str, PhotoScores], passes: int) -> str:
    calibration = calibrate(s["calib"], [LOOKING])
    threshold, row = certified_threshold(calibration[LOOKING.key]["risk_curve"], MAX_ERROR)
    test = metrics(s["test"], LOOKING, calibration, threshold)
    calib = metrics(s["calib"], LOOKING, calibration, threshold)
    n_calib, n_test = len(s["calib"].names), len(s["test"].names)
    both = (calib["accuracy"] * n_calib + test["accuracy"] * n_test) / (n_calib + n_test)
    return (
        f"| {name} | {test['accuracy']:.3f} | {both:.3f} | {row['coverage'] if row else 0:.0%} | "
        f"{test['coverage']:.0%} ({test['wrong_automatic']} of {test['automatic']:,}) | {passes} |"
    )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("data", type=Path, help="a training set: its calib and test photos are judged")
    p.add_argument("models", type=Path, nargs="+", help="model folders (the first: the champion)")
    p.add_argument("--photos", type=int, help="only the first N photos of each split (a quick look)")
    args = p.parse_args()
    photos = {split: listed[: args.photos] for split, listed in whole_photos(str(args.data)).items()}
    passes = 4 * LOOKING.views
    print(
        "| | accuracy, test | accuracy, calibration and test | certified coverage | automatic on test (wrong) | passes |"
    )
    print("| --- | --- | --- | --- | --- | --- |")
    alone = {d: scores(d, photos) for d in args.models}
    for d, s in alone.items():
        print(line(d.name, s, passes), flush=True)
    first = args.models[0]
    print(
        line(
            f"{first.name}, mirrored look too",
            joined([alone[first], scores(first, photos, True)]),
            2 * passes,
        )
    )
    with tempfile.TemporaryDirectory() as tmp:
        for n in range(2, len(args.models) + 1):
            for group in itertools.combinations(args.models, n):
                names = " + ".join(d.name for d in group)
                mixed = soup(list(group), Path(tmp) / f"soup{len(list(Path(tmp).iterdir()))}")
                print(line(f"soup: {names}", scores(mixed, photos), passes), flush=True)
                print(line(f"ensemble: {names}", joined([alone[d] for d in group]), n * passes), flush=True)


if __name__ == "__main__":
    main()
