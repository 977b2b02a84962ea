"""Saliency thumbnails for operators: which pixels speak for an orientation.

Guided backpropagation (Springenberg et al. 2015, via Captum) keeps only the paths where
units are active and the gradient is positive: "pixels that provide direct positive
evidence" for a class, as in the seed lecture and the Joshi & Guerzhoy orientation work.
A plain input gradient is available for comparison. Attribution runs on its own fp32
copy of the model, so it never shares state with batched inference.
"""

from __future__ import annotations

import copy
import io
import warnings

import numpy as np
import torch
from captum.attr import GuidedBackprop, Saliency
from matplotlib import colormaps
from PIL import Image, ImageDraw, ImageFont
from scipy.ndimage import gaussian_filter

from orient_model.imageio import center_square
from orient_model.model.data import to_tensor
from orient_model.model.registry import LoadedModel

PANEL = 256


class EvidenceRenderer:
    def __init__(self, loaded: LoadedModel, method: str = "guided", device: str = "cpu"):
        self.loaded = loaded
        self.model = copy.deepcopy(loaded.model).float().to(device).to(memory_format=torch.channels_last).eval()
        for p in self.model.parameters():
            p.requires_grad_(False)
        self.device = device
        self.explainer = GuidedBackprop(self.model) if method == "guided" else Saliency(self.model)
        self.method = method

    def evidence(self, img: Image.Image, target: int) -> np.ndarray:
        """``H x W`` map in [0, 1] of positive evidence for class ``target``."""
        x = to_tensor(img, self.loaded.mean, self.loaded.std)[None].to(self.device)
        x = x.contiguous(memory_format=torch.channels_last).requires_grad_(True)
        if self.method == "guided":
            with warnings.catch_warnings():  # Captum announces its (temporary) ReLU hooks every call
                warnings.simplefilter("ignore", UserWarning)
                attr = self.explainer.attribute(x, target=target)
        else:
            attr = self.explainer.attribute(x, target=target, abs=False)
        amap = attr[0].clamp(min=0).sum(0).detach().cpu().numpy()
        # Guided backprop is pixel-sharp speckle; a light blur turns it into regions a person sees.
        amap = gaussian_filter(amap, sigma=max(amap.shape) / 100)
        top = np.percentile(amap, 99)
        return np.sqrt(np.clip(amap / top, 0, 1)) if top > 0 else np.zeros_like(amap)

    def render(self, photo: Image.Image, rotation_deg: int, probs=None) -> bytes:
        """PNG: the model's view, evidence for the suggested rotation, evidence for upright."""
        img = center_square(photo, self.loaded.input_size)
        k = rotation_deg // 90
        panels = [(img, "as scanned")]
        label = "upright" if k == 0 else f"turn {rotation_deg}\u00b0 clockwise"
        panels.append((overlay(img, self.evidence(img, k)), f"evidence for: {label}"))
        if k != 0:
            panels.append((overlay(img, self.evidence(img, 0)), "evidence for: upright as is"))
        sheet = Image.new("RGB", (PANEL * len(panels), PANEL + 20), "white")
        draw = ImageDraw.Draw(sheet)
        font = ImageFont.load_default(size=13)
        for i, (panel, text) in enumerate(panels):
            sheet.paste(panel.resize((PANEL, PANEL), Image.Resampling.BILINEAR), (i * PANEL, 20))
            draw.text((i * PANEL + 4, 3), text, fill="black", font=font)
        return png_bytes(sheet)


def overlay(img: Image.Image, amap: np.ndarray, alpha: float = 0.65) -> Image.Image:
    """The photo dimmed to grey with the evidence drawn over it in a heat colour map."""
    base = np.asarray(img.convert("L").convert("RGB"), dtype=np.float32) * 0.6
    heat = colormaps["inferno"](amap)[..., :3] * 255.0
    weight = (alpha * amap)[..., None]
    return Image.fromarray((base * (1 - weight) + heat * weight).clip(0, 255).astype(np.uint8))


def thumbnail_png(img: Image.Image, size: int = PANEL) -> bytes:
    thumb = img.copy()
    thumb.thumbnail((size, size), Image.Resampling.BICUBIC)
    return png_bytes(thumb)


def png_bytes(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "PNG", compress_level=3)  # optimize=True costs ~0.1 s a picture for a few kB
    return buf.getvalue()


