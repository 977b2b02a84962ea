"""Batched orientation prediction: several views of each photo, each seen at four quarter turns,
voted together; calibrated probabilities; and the keep/rotate/flag decision.

How the model sees a photo is one setting, :class:`Looking`: how many square views along its
long side (``views``), whether each is also seen turned (``tta``), and whether it glances at the
centre first (``glance``). Each way of looking has its own temperature and its own risk-coverage
curve, fitted on calibration photos (see :mod:`orient_model.model.evaluate`), so confidences and
the certified threshold stay honest whichever is used.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image

from orient_model import orientation
from orient_model.imageio import square_views
from orient_model.model.data import to_batch
from orient_model.model.device import resolve_device
from orient_model.model.engine import INT8, Engine, make_engine
from orient_model.model.registry import LoadedModel


@dataclass(frozen=True)
class Looking:
    """How the model looks at a photo: ``views`` squares along the long side, each at four
    quarter turns when ``tta``.

    ``glance``: first the centre view alone at four turns (four passes); the whole look
    only for photos that glance leaves short of the decision threshold. Most photos are
    decided at a glance, and the two-step rule is calibrated and certified as one (see
    :func:`orient_model.model.calibration.risk_curve`)."""

    views: int = 3
    tta: bool = True
    glance: bool = False

    def __post_init__(self):
        if self.glance and (self.views == 1 or not self.tta):
            raise ValueError("a glance first needs several views, each seen at four turns")

    @property
    def key(self) -> str:
        return f"views={self.views},tta={self.tta}" + (",glance" if self.glance else "")

    @property
    def wide(self) -> Looking:
        """The full look (every view), without the glance."""
        return Looking(self.views, self.tta)


GLANCE = Looking(1, True)  # the centre view at four quarter turns


def voted_logits(engine: Engine, batch: torch.Tensor) -> torch.Tensor:
    """Test-time voting: ``N x 4`` mean log-probabilities over the four quarter turns of each image.

    A view turned ``k`` quarter turns counter-clockwise has label ``c + k``; its log-probabilities
    are shifted back by ``k`` before averaging, so every view votes for the original's class.
    """
    return turned_log_probs(engine, batch).mean(1)


def turned_log_probs(engine: Engine, batch: torch.Tensor) -> torch.Tensor:
    """``N x 4 x 4``: for each image, the log-probabilities its four quarter turns give (each
    engine turns the images its own way), each shifted back so that they all speak of the image's
    own class."""
    logp = engine.turned(batch).float().log_softmax(1).reshape(4, len(batch), 4)
    return torch.stack([torch.roll(logp[k], shifts=-k, dims=1) for k in range(4)], dim=1)


def combine(per_view: np.ndarray, looking: Looking) -> np.ndarray:
    """Votes for one way of looking, from ``N x V x 4 x 4`` log-probabilities (photo, view along
    the long side, quarter turn, class) computed for the widest way: mean log-probabilities.
    (A glance's votes depend on the threshold: see :func:`glanced`.)"""
    if looking.glance:
        raise ValueError("a glance first is voted with its threshold: see glanced()")
    chosen = per_view[:, views_within(looking.views, per_view.shape[1])]
    if not looking.tta:
        chosen = chosen[:, :, :1]
    return chosen.reshape(len(per_view), -1, 4).mean(1)


def views_within(views: int, n_views: int) -> list[int]:
    """Which of ``n_views`` views along the long side are the ``views`` views (the centre for one,
    the two ends for two, ...): ``square_views`` spreads both evenly, so the fewer are among the
    more when their positions coincide."""
    spans = max(views - 1, 1)
    if views > n_views or (n_views - 1) % spans:
        raise ValueError(f"cannot look with {views} views from {n_views}")
    return [(n_views - 1) // 2] if views == 1 else [i * (n_views - 1) // spans for i in range(views)]


def glanced(first: np.ndarray, wide: np.ndarray, threshold: float) -> np.ndarray:
    """Calibrated probabilities of a glance first: the glance's where its top probability reaches
    ``threshold``, else the full look's (both ``... x 4``, each with its own temperature)."""
    sure = first.max(-1, keepdims=True) >= threshold
    return np.where(sure, first, wide)


class Predictor:
    """Runs a loaded model on batches of upright-as-displayed photos (any size and shape)."""

    def __init__(
        self,
        loaded: LoadedModel,
        device: str = "auto",
        tta: bool = True,
        views: int | None = None,
        amp: bool = True,
        engine: str = "torch",
        glance: bool = False,
    ):
        self.device = resolve_device(device)
        self.engine = make_engine(loaded, self.device, engine)
        # The calibration (temperatures, certified threshold) of what actually runs.
        self.loaded = loaded = loaded.run_by(self.engine.name)
        looking = Looking(views or loaded.views, tta)
        glancing = Looking(looking.views, tta, glance=True) if looking.views > 1 and tta else None
        # Only with a risk-coverage curve for the two-step rule: else its threshold is not certified.
        if glance and glancing is not None and glancing.key in loaded.calibration:
            looking = glancing
        self.looking = looking
        self.amp = amp and self.device.type == "cuda"
        # channels_last is faster for depthwise convolutions on CPUs too (about 1.6x here).
        self.model = loaded.model.to(self.device).to(memory_format=torch.channels_last).eval()

    @property
    def decode_size(self) -> int:
        """The shorter side photos are decoded to (at least) before the model's views are cut."""
        return self.loaded.input_size

    def log_probs(self, images: list[Image.Image], looking: Looking | None = None) -> np.ndarray:
        """``N x V x T x 4`` log-probabilities: photo, view along the long side, quarter turn
        (1 without voting), class; uncalibrated. (A glance first: every view.)"""
        looking = (looking or self.looking).wide
        views = range(looking.views)
        return self._views_log_probs(images, looking.views, views, looking.tta)

    @torch.inference_mode()
    def _views_log_probs(
        self, images: list[Image.Image], n_views: int, which: Sequence[int], tta: bool
    ) -> np.ndarray:
        """``N x len(which) x T x 4``: the chosen ones of each photo's ``n_views`` views."""
        if not images:
            return np.zeros((0, len(which), 4 if tta else 1, 4), dtype=np.float32)
        size = self.loaded.input_size
        crops = to_batch(
            [view for img in images for view in square_views(img, size, n_views, which)],
            self.loaded.mean,
            self.loaded.std,
        )
        # On a CPU about 32 images a call run fastest (larger batches leave the caches); a GPU takes all.
        step = len(crops) if self.device.type == "cuda" else (8 if tta else 32)
        parts = []
        for i in range(0, len(crops), step):
            batch = crops[i : i + step]
            with torch.autocast(self.device.type, enabled=self.amp):
                if tta:
                    parts.append(turned_log_probs(self.engine, batch).float())
                else:
                    parts.append(self.engine(batch).float().log_softmax(1)[:, None])
        logp = torch.cat(parts)
        return logp.cpu().numpy().reshape(len(images), len(which), -1, 4)

    def calibrated(self, log_probs: np.ndarray, looking: Looking) -> np.ndarray:
        """``N x 4`` probabilities from ``N x V x T x 4`` log-probabilities: the mean over views and
        turns, scaled by ``looking``'s temperature."""
        votes = log_probs.reshape(len(log_probs), -1, 4).mean(1)
        return softmax(votes / self.loaded.temperature_for(looking))

    def probabilities(self, images: list[Image.Image], threshold: float | None = None) -> np.ndarray:
        """``N x 4`` calibrated probabilities of classes 0/90/180/270 for each photo.

        Glancing first (and given the decision ``threshold``), the photos the glance is sure of
        keep the glance's probabilities; the others are looked at in full, reusing the glance's
        passes over the centre view when it is one of the full look's."""
        if not images:
            return np.zeros((0, 4), dtype=np.float32)
        wide = self.looking.wide
        if not self.looking.glance or threshold is None:
            return self.calibrated(self.log_probs(images, wide), wide)
        centre_lp = self._views_log_probs(images, 1, [0], True)
        first = self.calibrated(centre_lp, GLANCE)
        unsure = np.flatnonzero(first.max(1) < threshold)
        if not len(unsure):
            return first
        # An odd number of views has the centre among them: its passes are not made twice.
        centre = [wide.views // 2] if wide.views % 2 else []
        rest = [i for i in range(wide.views) if i not in centre]
        rest_lp = self._views_log_probs([images[i] for i in unsure], wide.views, rest, True)
        seen = [centre_lp[unsure]] if centre else []
        out = first.copy()  # the order of the views does not matter to the mean
        out[unsure] = self.calibrated(np.concatenate([*seen, rest_lp], axis=1), wide)
        return out


def softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


@dataclass(frozen=True)
class Decision:
    """What to do with one photo: keep or rotate when confident enough, else flag for review."""

    probs: tuple[float, float, float, float]
    rotation_deg: int
    confidence: float
    action: str

    @staticmethod
    def of(probs, threshold: float) -> Decision:
        probs = tuple(float(p) for p in probs)
        k = int(np.argmax(probs))
        confidence = probs[k]
        if confidence < threshold:
            action = "flag"
        else:
            action = "keep" if k == 0 else "rotate"
        return Decision(probs, orientation.ROTATIONS[k], confidence, action)


def decision_threshold(predictor: Predictor, threshold: float | None, max_error: float) -> tuple[float, str]:
    """The confidence a photo needs to be turned or kept without review, and how it was set:
    a fixed ``threshold`` when given, else the lowest threshold whose error among automatic
    decisions is certified to be at most ``max_error`` on the model's calibration photos."""
    from orient_model.model.calibration import certified_threshold

    if threshold is not None:
        return threshold, f"fixed threshold {threshold:g} (not certified)"
    entry = predictor.loaded.calibration.get(predictor.looking.key)
    if entry is None:
        return 0.9, (
            f"model {predictor.loaded.version} has no risk-coverage curve for {predictor.looking.key}; "
            "using threshold 0.9 (not certified)"
        )
    value, row = certified_threshold(entry["risk_curve"], max_error)
    if row is None:
        return value, (
            f"no threshold is certified for error at most {max_error:.1%} with this model: "
            "every photo goes to review"
        )
    decided = entry.get("decisions", entry["photos"])
    how = " (a glance at the centre first, the whole photo when unsure)" if predictor.looking.glance else ""
    network = " (the 8-bit network, calibrated on its own)" if predictor.engine.name == INT8 else ""
    return value, (
        f"threshold {value:.4f}{how}: error among automatic decisions at most {max_error:.1%} (95% "
        f"confidence, {row['automatic']} of {decided} calibration decisions automatic, {row['errors']} "
        f"wrong){network}"
    )
