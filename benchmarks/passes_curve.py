"""Network passes a photo against accuracy: every way of looking cut from one scoring of the
calibration and test photos, each calibrated and certified on its own, judged on the test photos.

    python benchmarks/passes_curve.py DATA_DIR [--model default] [--engine auto] [--scores F.npz]

A way of looking is views along the long side times turns of each (1: upright only, 2: upright
and upside down, 4: all four), or a glance first: a cheaper look decides the photos it is sure
of at the certified threshold, the full look (three views, four turns) the rest, reusing the
glance's passes; its threshold certifies the two steps as one rule (as ``orient autorotate
--glance`` does). ``passes`` is the mean number of network passes a test photo costs. The scores
(12 passes of every photo, both splits) are kept in ``--scores`` to try more ways without scoring
again.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from orient_model.config import MAX_ERROR  # noqa: E402
from orient_model.model.calibration import certified_threshold, fit_temperature, risk_curve  # noqa: E402
from orient_model.model.evaluate import WIDEST, PhotoScores, score_photos  # noqa: E402
from orient_model.model.predict import Predictor, softmax, views_within  # noqa: E402
from orient_model.model.registry import load_model  # noqa: E402
from orient_model.training_set import whole_photos  # noqa: E402

TURNS = {1: [0], 2: [0, 2], 4: [0, 1, 2, 3]}


@dataclass(frozen=True)
class Look:
    views: int
    turns: int

    @property
    def passes(self) -> int:
        return self.views * self.turns

    def votes(self, scores: PhotoScores) -> np.ndarray:
        """``N x 4 x 4``: photo, orientation shown, class; mean log-probabilities."""
        chosen = scores.log_probs[:, :, views_within(self.views, WIDEST)][:, :, :, TURNS[self.turns]]
        return chosen.reshape(*chosen.shape[:2], -1, 4).mean(2)

    def reused_by(self, full: Look) -> int:
        """Passes of this look that the full look makes too."""
        shared_views = set(views_within(self.views, WIDEST)) & set(views_within(full.views, WIDEST))
        return len(shared_views) * len(set(TURNS[self.turns]) & set(TURNS[full.turns]))


FULL = Look(WIDEST, 4)
SINGLE = [Look(1, 1), Look(1, 2), Look(3, 1), Look(1, 4), Look(3, 2), Look(2, 4), Look(3, 4)]
GLANCES = [Look(1, 1), Look(1, 2), Look(1, 4)]


def probabilities(look: Look, scores: PhotoScores, temperature: float) -> np.ndarray:
    return softmax(look.votes(scores) / temperature).reshape(-1, 4)


def judged(first: Look, then: Look | None, calib: PhotoScores, test: PhotoScores, max_error: float) -> dict:
    """One way of looking certified on ``calib`` and judged on ``test`` (every photo in each of
    its four orientations)."""
    labels = {name: np.tile(np.arange(4), len(s.names)) for name, s in (("calib", calib), ("test", test))}
    steps = [first] + ([then] if then else [])
    temps = [
        fit_temperature(torch.from_numpy(s.votes(calib).reshape(-1, 4)), torch.from_numpy(labels["calib"]))
        for s in steps
    ]
    looks = {}
    for name, scores in (("calib", calib), ("test", test)):
        probs = [probabilities(s, scores, t) for s, t in zip(steps, temps, strict=True)]
        looks[name] = [(p.max(1), p.argmax(1) == labels[name]) for p in probs]
    curve = risk_curve(*looks["calib"][0], then=looks["calib"][1] if then else None)
    threshold, _ = certified_threshold(curve, max_error)
    (conf, right), *rest = looks["test"]
    sure = conf >= threshold
    if then:
        conf2, right2 = rest[0]
        right = np.where(sure, right, right2)
        auto = sure | (conf2 >= threshold)
        passes = first.passes + (~sure).mean() * (then.passes - first.reused_by(then))
    else:
        auto, passes = sure, first.passes
    return {
        "look": f"{first.views} view(s) x {first.turns} turn(s)"
        + (f", then {then.views} x {then.turns}" if then else ""),
        "passes": float(passes),
        "decided_first": float(sure.mean()) if then else None,
        "threshold": float(threshold),
        "accuracy": float(right.mean()),
        "coverage": float(auto.mean()),
        "automatic": int(auto.sum()),
        "wrong_automatic": int((auto & ~right).sum()),
    }


def scored(args) -> tuple[PhotoScores, PhotoScores, str]:
    if args.scores and args.scores.is_file():
        saved = np.load(args.scores, allow_pickle=True)
        return (
            PhotoScores(list(saved["calib_names"]), list(saved["calib_kinds"]), saved["calib"]),
            PhotoScores(list(saved["test_names"]), list(saved["test_kinds"]), saved["test"]),
            str(saved["engine"]),
        )
    photos = {split: chosen[: args.limit] for split, chosen in whole_photos(args.data_dir).items()}
    predictor = Predictor(load_model(args.model), device="cpu", views=WIDEST, engine=args.engine)
    start = time.perf_counter()
    calib, test = score_photos(predictor, photos["calib"]), score_photos(predictor, photos["test"])
    print(f"scored {len(calib.names)} + {len(test.names)} photos in {time.perf_counter() - start:.0f} s")
    if args.scores:
        np.savez_compressed(
            args.scores,
            calib=calib.log_probs,
            test=test.log_probs,
            calib_names=np.array(calib.names, dtype=object),
            test_names=np.array(test.names, dtype=object),
            calib_kinds=np.array(calib.kinds, dtype=object),
            test_kinds=np.array(test.kinds, dtype=object),
            engine=predictor.engine.name,
        )
    return calib, test, predictor.engine.name


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("data_dir", type=Path)
    p.add_argument("--model", default="default", help="'default', a version folder or a model.pt")
    p.add_argument(
        "--engine", default="auto", help="as orient autorotate --engine (auto: 8-bit where certified)"
    )
    p.add_argument("--scores", type=Path, help="npz file: read the scores from it, or keep them in it")
    p.add_argument("--limit", type=int, help="the first LIMIT photos of each split (a quick try)")
    p.add_argument("--max-error", type=float, default=MAX_ERROR)
    p.add_argument("--json", type=Path)
    args = p.parse_args()
    calib, test, engine = scored(args)
    rows = [judged(look, None, calib, test, args.max_error) for look in SINGLE]
    rows += [judged(look, FULL, calib, test, args.max_error) for look in GLANCES]
    print(f"{engine}; certified for error <= {args.max_error:.1%} on {len(calib.names)} calibration photos, ")
    print(f"judged on {len(test.names)} test photos in all four orientations")
    print(f"{'look':<34} {'passes':>6} {'first':>6} {'accuracy':>8} {'automatic':>9} {'wrong':>6}")
    for r in rows:
        first = f"{r['decided_first']:.0%}" if r["decided_first"] is not None else "-"
        print(
            f"{r['look']:<34} {r['passes']:>6.2f} {first:>6} {r['accuracy']:>8.3f} "
            f"{r['coverage']:>9.1%} {r['wrong_automatic']:>6}"
        )
    if args.json:
        args.json.write_text(json.dumps({"engine": engine, "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
