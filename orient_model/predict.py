"""Batched orientation prediction with test-time voting, and the keep/rotate/flag decision."""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image

from orient_model import orientation
from orient_model.data import to_tensor
from orient_model.device import resolve_device
from orient_model.registry import LoadedModel


class Predictor:
    """Runs a loaded model on batches of upright-as-displayed square images.

    With ``tta`` each photo is also seen turned by 90, 180 and 270 degrees; a view turned
    ``k`` quarter turns counter-clockwise has label ``c + k``, so its votes are shifted back
    by ``k`` and the four calibrated distributions are averaged.
    """

    def __init__(self, loaded: LoadedModel, device: str = "auto", tta: bool = True, amp: bool = True):
        self.loaded = loaded
        self.device = resolve_device(device)
        self.tta = tta
        self.amp = amp and self.device.type == "cuda"
        self.model = loaded.model.to(self.device).eval()
        if self.device.type == "cuda":
            self.model = self.model.to(memory_format=torch.channels_last)

    def tensor(self, img: Image.Image) -> torch.Tensor:
        return to_tensor(img, self.loaded.mean, self.loaded.std)

    @torch.inference_mode()
    def probabilities(self, images: list[Image.Image]) -> np.ndarray:
        """``N x 4`` calibrated probabilities of classes 0/90/180/270 for each image."""
        if not images:
            return np.zeros((0, 4), dtype=np.float32)
        batch = torch.stack([self.tensor(img) for img in images]).to(self.device)
        turns = (0, 1, 2, 3) if self.tta else (0,)
        views = torch.cat([torch.rot90(batch, k, dims=(2, 3)) for k in turns])  # rot90 on H,W is ccw
        if self.device.type == "cuda":
            views = views.contiguous(memory_format=torch.channels_last)
        with torch.autocast(self.device.type, enabled=self.amp):
            logits = self.model(views).float()
        probs = (logits / self.loaded.temperature).softmax(1).cpu().reshape(len(turns), len(images), 4)
        aligned = torch.stack([torch.roll(probs[i], shifts=-k, dims=1) for i, k in enumerate(turns)])
        return aligned.mean(0).numpy()


def decide(probs: np.ndarray, threshold: float) -> tuple[int, float, str]:
    """(rotation_deg, confidence, action): keep or rotate when confident, else flag."""
    k = int(np.argmax(probs))
    confidence = float(probs[k])
    if confidence < threshold:
        return orientation.ANGLES[k], confidence, "flag"
    return orientation.ANGLES[k], confidence, ("keep" if k == 0 else "rotate")
