"""How the model behaves on labelled photos: every photo shown in all four orientations, as an
archive's photos arrive, answered as an archive run here would answer (same engine, same
calibration, same certified threshold); then the figures a person checks it by.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from orient_model import orientation
from orient_model.config import MAX_ERROR
from orient_model.errors import OrientError
from orient_model.imageio import ImageReadError
from orient_model.insight.figures import draw_reliability, draw_risk, new_figure, png
from orient_model.insight.photos import LabelledPhoto
from orient_model.model.calibration import risk_curve
from orient_model.model.evaluate import in_all_orientations, one_orientation_each
from orient_model.model.predict import Looking, Predictor, decision_threshold
from orient_model.model.registry import LoadedModel

RELIABILITY_BINS = 10


class NoJudgedPhotos(OrientError):
    """None of the photos given could be read."""


@dataclass
class Judged:
    """The model's calibrated answers: ``probs[i, r]`` for photo ``i`` shown needing ``r * 90``
    degrees clockwise (``N x 4 x 4``); one decision a photo and orientation."""

    photos: list[LabelledPhoto]
    probs: np.ndarray
    threshold: float
    how: str  # how the threshold was set, in words
    engine: str
    failed: list[tuple[str, str]] = field(default_factory=list)

    @property
    def labels(self) -> np.ndarray:
        return np.tile(np.arange(4), (len(self.photos), 1))

    @property
    def answers(self) -> np.ndarray:
        return self.probs.argmax(-1)

    @property
    def confidence(self) -> np.ndarray:
        return self.probs.max(-1)

    @property
    def right(self) -> np.ndarray:
        return self.answers == self.labels

    @property
    def automatic(self) -> np.ndarray:
        return self.confidence >= self.threshold

    @property
    def decisions(self) -> int:
        return self.probs.shape[0] * 4


def shown_four_ways(upright) -> list:
    """The photo as it would arrive needing 0, 90, 180 and 270 degrees clockwise."""
    return [orientation.apply(upright, orientation.COUNTER_CLOCKWISE[r]) for r in orientation.ROTATIONS]


def four_ways(predictor: Predictor, images: list, looking: Looking) -> np.ndarray:
    """``N x 4 x 4`` calibrated probabilities of each photo shown needing 0, 90, 180 and 270
    degrees: with the four turns, from the upright photo's passes re-indexed (a quarter of the
    network's work, see :func:`orient_model.model.evaluate.in_all_orientations`); without them,
    from the photo turned for real."""
    if not looking.tta:
        shown = [view for img in images for view in shown_four_ways(img)]
        return predictor.calibrated(predictor.log_probs(shown, looking), looking).reshape(len(images), 4, 4)
    upright = predictor.log_probs(images, looking)
    four = np.stack([in_all_orientations(lp, img.size) for lp, img in zip(upright, images, strict=True)])
    return predictor.calibrated(four.reshape(-1, *four.shape[2:]), looking).reshape(len(images), 4, 4)


def judge(
    loaded: LoadedModel,
    photos: list[LabelledPhoto],
    max_error: float = MAX_ERROR,
    device: str = "cpu",
    batch: int = 8,
    progress: Callable[[int, int], None] | None = None,
) -> Judged:
    """Answer every photo in all four orientations with the engine and certified threshold an
    archive run on this machine would use."""
    predictor = Predictor(loaded, device=device, engine="auto")
    looking = predictor.looking.wide
    threshold, how = decision_threshold(predictor, None, max_error)
    kept, parts, failed = [], [], []
    for start in range(0, len(photos), batch):
        images = []
        for photo in photos[start : start + batch]:
            try:
                images.append(photo.upright(predictor.decode_size))
                kept.append(photo)
            except (ImageReadError, OSError) as exc:
                failed.append((photo.path, str(exc)))
        if images:
            parts.append(four_ways(predictor, images, looking))
        if progress:
            progress(min(start + batch, len(photos)), len(photos))
    probs = np.concatenate(parts) if parts else np.zeros((0, 4, 4), np.float32)
    return Judged(kept, probs, threshold, how, predictor.engine.name, failed)


# --------------------------------------------------------------------------- figures as numbers


def confusion(judged: Judged) -> np.ndarray:
    """``4 x 4`` decisions: rows the turn each needed, columns the turn the model answered."""
    out = np.zeros((4, 4), int)
    np.add.at(out, (judged.labels.ravel(), judged.answers.ravel()), 1)
    return out


def reliability(probs: np.ndarray, labels: np.ndarray, bins: int = RELIABILITY_BINS) -> list[dict]:
    """Decisions by calibrated confidence (the top of four probabilities, 0.25 to 1): per bin
    how many, their mean confidence and the share of them that were right."""
    probs, labels = probs.reshape(-1, 4), labels.ravel()
    confidence, right = probs.max(1), probs.argmax(1) == labels
    edges = np.linspace(0.25, 1.0, bins + 1)
    which = np.clip(np.searchsorted(edges, confidence, side="right") - 1, 0, bins - 1)
    out = []
    for b in range(bins):
        inside = which == b
        n = int(inside.sum())
        out.append(
            {
                "low": float(edges[b]),
                "high": float(edges[b + 1]),
                "decisions": n,
                "confidence": float(confidence[inside].mean()) if n else None,
                "accuracy": float(right[inside].mean()) if n else None,
            }
        )
    return out


def by_group(judged: Judged, group_of: Callable[[LabelledPhoto], str]) -> dict[str, dict]:
    """Accuracy and the share decided automatically, per group of photos (kind, source, ...)."""
    groups = np.array([group_of(p) for p in judged.photos])
    out = {}
    for name in sorted(set(groups.tolist())):
        mask = groups == name
        out[name] = {
            "photos": int(mask.sum()),
            "accuracy": float(judged.right[mask].mean()),
            "automatic_share": float(judged.automatic[mask].mean()),
            "wrong_automatic": int((judged.automatic & ~judged.right)[mask].sum()),
        }
    return out


def risk_curves(judged: Judged) -> tuple[list[dict], list[dict]]:
    """Risk against coverage over every decision, and over one random orientation per photo
    (independent decisions: its bound holds as stated)."""
    curve = risk_curve(judged.confidence.ravel(), judged.right.ravel())
    pick = one_orientation_each(len(judged.photos))
    rows = np.arange(len(pick))
    independent = risk_curve(judged.confidence[rows, pick], judged.right[rows, pick])
    return curve, independent


def summary(judged: Judged) -> dict:
    """The numbers behind the behaviour figures (also written beside the page)."""
    curve, independent = risk_curves(judged)
    return {
        "photos": len(judged.photos),
        "decisions": judged.decisions,
        "engine": judged.engine,
        "threshold": judged.threshold,
        "threshold_set_by": judged.how,
        "accuracy": float(judged.right.mean()) if judged.decisions else None,
        "automatic_share": float(judged.automatic.mean()) if judged.decisions else None,
        "confusion": confusion(judged).tolist(),
        "reliability": reliability(judged.probs, judged.labels),
        "by_kind": by_group(judged, lambda p: p.kind),
        "by_source": by_group(judged, lambda p: p.source),
        "by_set": by_group(judged, lambda p: p.set),
        "risk_curve": curve,
        "risk_curve_independent": independent,
        "unreadable": [path for path, _ in judged.failed],
    }


# --------------------------------------------------------------------------- pictures


def groups_figure(numbers: dict) -> bytes:
    groupings = [("by kind", numbers["by_kind"]), ("by source", numbers["by_source"])]
    tallest = max(len(g) for _, g in groupings)
    fig, axes = new_figure(11, 1.2 + 0.45 * tallest, columns=2)
    for ax, (title, groups) in zip(axes[0], groupings):
        names = list(groups)
        y = np.arange(len(names))
        ax.barh(y - 0.2, [groups[n]["accuracy"] for n in names], 0.4, label="accuracy")
        ax.barh(y + 0.2, [groups[n]["automatic_share"] for n in names], 0.4, label="decided automatically")
        ax.set_yticks(y, [f"{n} ({groups[n]['photos']})" for n in names])
        ax.invert_yaxis()
        ax.set(xlim=(0, 1), title=f"{title} (photos)", xlabel="share of decisions")
        ax.grid(axis="x", alpha=0.3)
    fig.legend(*axes[0][0].get_legend_handles_labels(), loc="outside lower center", ncols=2, fontsize=8)
    return png(fig)


def confusion_figure(matrix: np.ndarray) -> bytes:
    fig, ax = new_figure(4.6, 4)
    ax.imshow(matrix, cmap="Blues")
    names = [f"{r}\u00b0" for r in orientation.ROTATIONS]
    ax.set_xticks(range(4), names)
    ax.set_yticks(range(4), names)
    ax.set(xlabel="turn the model answered", ylabel="turn the photo needed")
    top = matrix.max() or 1
    for i in range(4):
        for j in range(4):
            ax.text(
                j,
                i,
                str(matrix[i, j]),
                ha="center",
                va="center",
                color="white" if matrix[i, j] > top / 2 else "black",
            )
    return png(fig)


def reliability_figure(bins: list[dict]) -> bytes:
    fig, ax = new_figure(5, 4)
    draw_reliability(ax, bins)
    return png(fig)


def risk_figure(numbers: dict) -> bytes:
    fig, axes = new_figure(11, 4, columns=2)
    for ax, key, title in (
        (axes[0][0], "risk_curve", "every photo in all four orientations"),
        (axes[0][1], "risk_curve_independent", "one orientation per photo (independent)"),
    ):
        draw_risk(ax, numbers[key], numbers["threshold"])
        ax.set_title(title)
    return png(fig)
