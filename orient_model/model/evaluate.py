"""Judging a model on whole photos, as the archive will show them: each photo in all four
orientations, seen the way prediction sees it. Used for calibration (temperature and the
certified threshold, per way of looking), for the held-out figures in a model's card, and by
the benchmarks and the independent evaluation.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from orient_model import orientation
from orient_model.imageio import ImageReadError, load_upright
from orient_model.model.calibration import (
    certified_threshold,
    expected_calibration_error,
    fit_temperature,
    risk_curve,
)
from orient_model.model.predict import GLANCE, Looking, Predictor, combine, glanced, softmax

MAX_PIXELS = 250_000_000
WIDEST = 3  # views photos are scored with; fewer views are among them (see views_within)


@dataclass
class PhotoScores:
    """Uncalibrated log-probabilities of photos shown in each of the four orientations:
    ``log_probs[i, r]`` is photo ``i`` shown needing ``r * 90`` degrees clockwise, ``V x T x 4``."""

    names: list[str]
    kinds: list[list[str]]
    log_probs: np.ndarray  # N x 4 x V x T x 4
    failed: list[tuple[str, str]] = field(default_factory=list)

    def votes(self, looking: Looking) -> np.ndarray:
        """``N x 4 x 4`` voted log-probabilities for one way of looking."""
        n = len(self.names)
        flat = self.log_probs.reshape(n * 4, *self.log_probs.shape[2:])
        return combine(flat, looking).reshape(n, 4, 4)

    def probabilities(self, looking: Looking, calibration: dict[str, dict], threshold: float) -> np.ndarray:
        """``N x 4 x 4`` calibrated probabilities, with each way of looking's own temperature from
        ``calibration``; a glance first takes the full look's where the glance is short of
        ``threshold``."""
        if not looking.glance:
            return softmax(self.votes(looking) / calibration[looking.key]["temperature"])
        first = self.probabilities(GLANCE, calibration, threshold)
        return glanced(first, self.probabilities(looking.wide, calibration, threshold), threshold)


def lookings_for(views: int) -> list[Looking]:
    """The ways of looking a model with ``views`` views is calibrated and judged for: its own
    (glancing first, and not), each number of views up to the widest with the four turns (all are
    cut from the widest look's scores, so they cost nothing more), and one view and its own
    without the turns."""
    out = [Looking(views, True), Looking(1, True), Looking(views, False), Looking(1, False)]
    if views > 1:
        out.append(Looking(views, True, glance=True))
    out += [Looking(v, True) for v in range(2, WIDEST + 1)]
    return list(dict.fromkeys(out))


def score_photos(
    predictor: Predictor,
    photos: Sequence[tuple[str | Path, list[str]]],
    batch: int = 32,
    progress: Callable[[int, int], None] | None = None,
) -> PhotoScores:
    """Show every photo in all four orientations to the model, with the widest way of looking.

    The four orientations are made of one orientation's passes: turning a photo a quarter turns
    each of its square views a quarter (the end views trade places where the turn runs the long
    side the other way), so the twelve passes of the upright photo (views x turns) are the twelve
    of each turned one, re-indexed (:func:`in_all_orientations`). A quarter of the network's work,
    and the same figures up to the resize's rounding (``tests/test_evaluate.py`` holds them to the
    photos turned for real)."""
    looking = Looking(WIDEST, True)
    names, kinds, scores, failed = [], [], [], []
    pending: list[tuple[str, list[str], Image.Image]] = []

    def flush() -> None:
        lp = predictor.log_probs([img for _, _, img in pending], looking)
        for (name, kind, img), upright in zip(pending, lp, strict=True):
            scores.append(in_all_orientations(upright, img.size))
            names.append(name)
            kinds.append(kind)
        pending.clear()

    for i, (path, kind) in enumerate(photos):
        try:
            pending.append((str(path), list(kind), load_upright(path, predictor.decode_size, MAX_PIXELS)))
        except (ImageReadError, OSError) as exc:
            failed.append((str(path), str(exc)))
        if len(pending) >= batch:
            flush()
        if progress:
            progress(i + 1, len(photos))
    if pending:
        flush()
    empty = np.zeros((0, 4, looking.views, 4, 4), np.float32)
    return PhotoScores(names, kinds, np.stack(scores) if scores else empty, failed)


def in_all_orientations(upright: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """``4 x V x T x 4`` log-probabilities of a photo shown needing 0, 90, 180 and 270 degrees,
    from the ``V x T x 4`` of the upright photo (``size``: its width and height). Shown needing
    ``r`` quarter turns, view ``v`` turned ``t`` more is the upright photo's view ``v`` (the end
    views swapped where the long side now runs the other way) turned ``t - r``, and its classes
    are shifted by ``r``."""
    width, height = size
    out = []
    for r in range(4):
        # Turning a landscape counter-clockwise once or twice puts its left end at the bottom or the
        # right; a portrait's top goes to the right end after two or three.
        reversed_views = r in ((1, 2) if width > height else (2, 3) if height > width else ())
        views = upright[::-1] if reversed_views else upright
        out.append(np.roll(np.roll(views, -r, axis=1), r, axis=2))
    return np.stack(out)


def one_orientation_each(n: int, seed: int = 0) -> np.ndarray:
    """A random orientation per photo: independent decisions, as an archive presents them."""
    return np.random.default_rng(seed).integers(0, 4, n)


def calibrate(scores: PhotoScores, lookings: Sequence[Looking]) -> dict[str, dict]:
    """Per way of looking: the temperature and the risk-coverage curve, on calibration photos
    each shown in all four orientations (as an archive's photos arrive in any of them).

    The curve counts every orientation's decision, as the certified threshold is specified. The
    four orientations of one photo are not independent draws, so that curve's 95% is nominal;
    ``risk_curve_independent`` counts one random orientation per photo (independent decisions,
    so its bound holds as stated, at the price of a quarter of the decisions).

    A glance first has no temperature of its own: it uses the glance's and the full look's (both
    calibrated here too), and its curve is the two-step rule's."""
    out: dict[str, dict] = {}
    labels_all = np.tile(np.arange(4), len(scores.names))
    pick = one_orientation_each(len(scores.names))
    needed = [
        part for looking in lookings for part in ((GLANCE, looking.wide) if looking.glance else (looking,))
    ]
    probs: dict[str, np.ndarray] = {}
    for looking in dict.fromkeys(needed):
        votes = scores.votes(looking)
        temperature = fit_temperature(torch.from_numpy(votes.reshape(-1, 4)), torch.from_numpy(labels_all))
        probs[looking.key] = softmax(votes / temperature)  # N x 4 orientations x 4 classes
        out[looking.key] = {"temperature": temperature}
    everyone = np.arange(len(pick))
    for looking in dict.fromkeys(needed + list(lookings)):
        if looking.glance:
            parts = [probs[GLANCE.key], probs[looking.wide.key]]
            out[looking.key] = {"temperature": out[looking.wide.key]["temperature"]}
        else:
            parts = [probs[looking.key]]
        out[looking.key].update(
            {
                "photos": len(pick),
                "decisions": len(labels_all),
                "risk_curve": _curve([p.reshape(-1, 4) for p in parts], labels_all),
                "risk_curve_independent": _curve([p[everyone, pick] for p in parts], pick),
            }
        )
    return out


def _curve(parts: list[np.ndarray], labels: np.ndarray) -> list[dict]:
    """The risk-coverage curve of one look's ``K x 4`` probabilities, or of a glance then the full look."""
    looks = [(p.max(1), p.argmax(1) == labels) for p in parts]
    return risk_curve(*looks[0], then=looks[1] if len(looks) > 1 else None)


def metrics(scores: PhotoScores, looking: Looking, calibration: dict[str, dict], threshold: float) -> dict:
    """Accuracy (overall, per class, per kind), coverage and wrong automatic decisions at a
    threshold, and calibration error, over every photo in every orientation; ``calibration``
    holds each way of looking's temperature (see :func:`calibrate`)."""
    probs = scores.probabilities(looking, calibration, threshold).reshape(-1, 4)
    labels = np.tile(np.arange(4), len(scores.names))
    pred, conf = probs.argmax(1), probs.max(1)
    right = pred == labels
    auto = conf >= threshold
    kinds = [k for k in scores.kinds for _ in range(4)]
    by_kind = {}
    for kind in sorted({k for ks in scores.kinds for k in ks}):
        mask = np.array([kind in ks for ks in kinds])
        by_kind[kind] = {
            "photos": int(mask.sum() // 4),
            "accuracy": float(right[mask].mean()),
            "coverage": float(auto[mask].mean()),
            "wrong_automatic": int((auto & ~right)[mask].sum()),
            "automatic": int(auto[mask].sum()),
        }
    at_a_glance = None  # how many decisions the glance made alone (the rest were looked at in full)
    if looking.glance:
        first = scores.probabilities(GLANCE, calibration, threshold).reshape(-1, 4)
        at_a_glance = float((first.max(1) >= threshold).mean()) if len(first) else 0.0
    return {
        "looking": looking.key,
        "decided_at_a_glance": at_a_glance,
        "photos": len(scores.names),
        "decisions": int(len(labels)),
        "accuracy": float(right.mean()) if len(labels) else float("nan"),
        "per_class_accuracy": {
            str(r): float(right[labels == i].mean()) for i, r in enumerate(orientation.ROTATIONS)
        },
        "threshold": float(threshold),
        "coverage": float(auto.mean()) if len(labels) else 0.0,
        "automatic": int(auto.sum()),
        "wrong_automatic": int((auto & ~right).sum()),
        "error_among_automatic": float((auto & ~right).sum() / max(auto.sum(), 1)),
        "ece": expected_calibration_error(torch.from_numpy(probs), torch.from_numpy(labels)),
        "by_kind": by_kind,
    }


def certified_metrics(
    scores: PhotoScores, looking: Looking, calibration: dict[str, dict], max_error: float
) -> dict:
    """:func:`metrics` at ``looking``'s certified threshold for ``max_error`` (0.9, not certified,
    where ``calibration`` has no risk-coverage curve for it)."""
    entry = calibration.get(looking.key)
    threshold = certified_threshold(entry["risk_curve"], max_error)[0] if entry else 0.9
    return metrics(scores, looking, calibration, threshold)


def calibrate_and_test(
    predictor: Predictor,
    photos: dict,
    lookings: Sequence[Looking],
    max_error: float,
    progress_for: Callable[[str], Callable[[int, int], None] | None] | None = None,
) -> tuple[dict[str, dict], dict[str, dict]]:
    """Calibration per way of looking on ``photos["calib"]`` (see :func:`calibrate`), then the
    held-out figures on ``photos["test"]`` at each way's certified threshold (0.9 where none is).
    ``progress_for(what)`` gives a progress callback for scoring the ``what`` photos."""
    say = progress_for or (lambda what: None)
    calibration = calibrate(score_photos(predictor, photos["calib"], progress=say("calibration")), lookings)
    test: dict[str, dict] = {}
    if photos.get("test"):
        scores = score_photos(predictor, photos["test"], progress=say("test"))
        for looking in lookings:
            test[looking.key] = certified_metrics(scores, looking, calibration, max_error)
    return calibration, test
