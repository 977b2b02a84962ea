"""Batched orientation prediction: several views of each photo, each seen at four quarter turns,
voted together; calibrated probabilities; and the keep/rotate/flag decision.

How the model sees a photo is one setting, :class:`Looking`: how many square views along its
long side (``views``) and whether each is also seen turned (``tta``). Each way of looking has its
own temperature and its own risk-coverage curve, fitted on calibration photos (see
:mod:`orient_model.model.evaluate`), so confidences and the certified threshold stay honest
whichever is used.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image

from orient_model import orientation
from orient_model.imageio import square_views
from orient_model.model.data import to_tensor
from orient_model.model.device import resolve_device
from orient_model.model.engine import make_engine
from orient_model.model.registry import LoadedModel


@dataclass(frozen=True)
class Looking:
    """How the model looks at a photo: ``views`` squares along the long side, each at four
    quarter turns when ``tta``."""

    views: int = 3
    tta: bool = True

    @property
    def key(self) -> str:
        return f"views={self.views},tta={self.tta}"


def voted_logits(model: torch.nn.Module, batch: torch.Tensor, channels_last: bool = False) -> torch.Tensor:
    """Test-time voting: ``N x 4`` mean log-probabilities over the four quarter turns of each image.

    A view turned ``k`` quarter turns counter-clockwise has label ``c + k``; its log-probabilities
    are shifted back by ``k`` before averaging, so every view votes for the original's class.
    """
    return turned_log_probs(model, batch, channels_last).mean(1)


def turned_log_probs(
    model: torch.nn.Module, batch: torch.Tensor, channels_last: bool = False
) -> torch.Tensor:
    """``N x 4 x 4``: for each image, the log-probabilities its four quarter turns give, each
    shifted back so that they all speak of the image's own class."""
    views = torch.cat([torch.rot90(batch, k, dims=(2, 3)) for k in range(4)])  # rot90 on H,W is ccw
    if channels_last:
        views = views.contiguous(memory_format=torch.channels_last)
    logp = model(views).float().log_softmax(1).reshape(4, len(batch), 4)
    return torch.stack([torch.roll(logp[k], shifts=-k, dims=1) for k in range(4)], dim=1)


def combine(per_view: np.ndarray, looking: Looking) -> np.ndarray:
    """Votes for one way of looking, from ``N x V x 4 x 4`` log-probabilities (photo, view along
    the long side, quarter turn, class) computed for the widest way: mean log-probabilities."""
    n_views = per_view.shape[1]
    if looking.views == 1:
        chosen = per_view[:, [n_views // 2]]
    elif looking.views == n_views:
        chosen = per_view
    else:
        raise ValueError(f"cannot look with {looking.views} views from {n_views}")
    if not looking.tta:
        chosen = chosen[:, :, :1]
    return chosen.reshape(len(per_view), -1, 4).mean(1)


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
    ):
        self.loaded = loaded
        self.device = resolve_device(device)
        self.looking = Looking(views or loaded.views, tta)
        self.amp = amp and self.device.type == "cuda"
        # channels_last is faster for depthwise convolutions on CPUs too (about 1.6x here).
        self.model = loaded.model.to(self.device).to(memory_format=torch.channels_last).eval()
        self.engine = make_engine(loaded, self.device, engine)

    @property
    def decode_size(self) -> int:
        """The shorter side photos are decoded to (at least) before the model's views are cut."""
        return self.loaded.input_size

    @property
    def temperature(self) -> float:
        return self.loaded.temperature_for(self.looking)

    def tensor(self, img: Image.Image) -> torch.Tensor:
        return to_tensor(img, self.loaded.mean, self.loaded.std)

    @torch.inference_mode()
    def log_probs(self, images: list[Image.Image], looking: Looking | None = None) -> np.ndarray:
        """``N x V x T x 4`` log-probabilities: photo, view along the long side, quarter turn
        (1 without voting), class; uncalibrated."""
        looking = looking or self.looking
        if not images:
            return np.zeros((0, looking.views, 4 if looking.tta else 1, 4), dtype=np.float32)
        size = self.loaded.input_size
        crops = torch.stack(
            [self.tensor(v) for img in images for v in square_views(img, size, looking.views)]
        )
        # On a CPU about 32 images a call run fastest (larger batches leave the caches); a GPU takes all.
        step = len(crops) if self.device.type == "cuda" else (8 if looking.tta else 32)
        parts = []
        for i in range(0, len(crops), step):
            batch = crops[i : i + step].to(self.device).contiguous(memory_format=torch.channels_last)
            with torch.autocast(self.device.type, enabled=self.amp):
                if looking.tta:
                    parts.append(turned_log_probs(self.engine, batch, channels_last=True).float())
                else:
                    parts.append(self.engine(batch).float().log_softmax(1)[:, None])
        logp = torch.cat(parts)
        return logp.cpu().numpy().reshape(len(images), looking.views, -1, 4)

    def probabilities(self, images: list[Image.Image]) -> np.ndarray:
        """``N x 4`` calibrated probabilities of classes 0/90/180/270 for each photo."""
        if not images:
            return np.zeros((0, 4), dtype=np.float32)
        votes = self.log_probs(images).reshape(len(images), -1, 4).mean(1)
        return softmax(votes / self.temperature)


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
    return value, (
        f"threshold {value:.4f}: error among automatic decisions at most {max_error:.1%} (95% "
        f"confidence, {row['automatic']} of {decided} calibration decisions automatic, {row['errors']} wrong)"
    )
