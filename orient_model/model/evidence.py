"""Evidence an operator can read: the whole photo in its four candidate orientations, each with
its probability and a map of what speaks for it.

Which evidence (``method``):

* ``gradcam`` (default): Grad-CAM (Selvaraju et al. 2017) on the network's last convolutional
  features. It weighs each feature map by how much it raises one class's score, so the maps for
  "upright" and "turn 90 degrees" differ where the model's reasons differ: class-discriminative.
* ``guided``: guided backpropagation (Springenberg et al. 2015), the seed lecture's method: only
  paths where units are active and the gradient positive, "pixels that provide direct positive
  evidence". Sharp, but known to be nearly the same whatever the class (Adebayo et al. 2018).
* ``gradient``: the plain input gradient, for comparison.

Maps are computed for every view the model votes over (squares along the long side) and pasted
back over the whole photo, at the picture's resolution; all flagged photos of a batch share the
passes (Grad-CAM: one forward pass, then a short backward pass per class). Attribution runs on
its own fp32 copy of the model, so it never shares state with batched inference.
"""

from __future__ import annotations

import copy
import io
import threading
import warnings

import numpy as np
import torch
from captum.attr import GuidedBackprop, LayerGradCam, Saliency
from matplotlib import colormaps
from PIL import Image, ImageDraw, ImageFont, ImageOps
from scipy.ndimage import gaussian_filter

from orient_model import orientation
from orient_model.imageio import square_views
from orient_model.model.data import to_batch, to_tensor
from orient_model.model.registry import LoadedModel

PANEL = 256
METHODS = ("gradcam", "guided", "gradient")


def last_conv_layer(model: torch.nn.Module) -> torch.nn.Module:
    """The layer whose activations Grad-CAM weighs: one the model names (``evidence_layer``), an
    EfficientNet's final BN+activation after its 1x1 head convolution, else the last convolution."""
    if isinstance(getattr(model, "evidence_layer", None), torch.nn.Module):
        return model.evidence_layer
    if hasattr(model, "bn2") and hasattr(model, "conv_head"):
        return model.bn2
    convs = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    return convs[-1]


ATTRIBUTION_BATCH = 16


class EvidenceRenderer:
    def __init__(
        self, loaded: LoadedModel, method: str = "gradcam", device: str = "cpu", views: int | None = None
    ):
        if method not in METHODS:
            raise ValueError(f"unknown evidence method {method!r}; choose one of {', '.join(METHODS)}")
        self.loaded, self.method, self.device = loaded, method, device
        self.views = views or loaded.views
        # Captum's hooks sit on the shared network: two threads attributing at once would read
        # each other's activations (prediction chunks run in threads), so one at a time.
        self._lock = threading.Lock()
        self.model = copy.deepcopy(loaded.model).float().to(device).eval()
        for p in self.model.parameters():
            p.requires_grad_(False)
        if method == "gradcam":
            self.explainer = LayerGradCam(self.model, last_conv_layer(self.model))
        elif method == "guided":
            self.explainer = GuidedBackprop(self.model)
        else:
            self.explainer = Saliency(self.model)

    # ---------------------------------------------------------------- maps

    def _attribute(self, x: torch.Tensor, target: torch.Tensor) -> np.ndarray:
        """``N x h x w`` non-negative evidence for each input's target class."""
        x = x.requires_grad_(self.method != "gradcam")
        with self._lock, warnings.catch_warnings():  # Captum announces its temporary hooks on every call
            warnings.simplefilter("ignore", UserWarning)
            if self.method == "gradcam":
                attr = self.explainer.attribute(x, target=target, relu_attributions=True)
            elif self.method == "guided":
                attr = self.explainer.attribute(x, target=target)
            else:
                attr = self.explainer.attribute(x, target=target, abs=False)
        return attr.clamp(min=0).sum(1).detach().cpu().numpy()

    def _gradcam_every_class(self, x: torch.Tensor) -> np.ndarray:
        """``4 x N x h x w``: Grad-CAM for each of the four classes from one forward pass.

        The same maps as Captum's ``LayerGradCam`` (with ReLU) class by class, which runs the whole
        network once per class; here the backward passes start at the output and stop at the
        evidence layer, a few layers away, so the four classes cost about one forward pass."""
        layer, captured = last_conv_layer(self.model), []

        def keep(module, inputs, output):
            captured.append(output.requires_grad_(True))  # a leaf: nothing before it needs gradients

        with self._lock, torch.enable_grad():
            handle = layer.register_forward_hook(keep)
            try:
                logits = self.model(x)
            finally:
                handle.remove()
            acts = captured[0]
            maps = []
            for c in range(logits.shape[1]):
                (grads,) = torch.autograd.grad(logits[:, c].sum(), acts, retain_graph=c < logits.shape[1] - 1)
                maps.append((grads.mean((2, 3), keepdim=True) * acts).sum(1).clamp(min=0).detach())
        return torch.stack(maps).cpu().numpy()

    def evidence(self, img: Image.Image, target: int) -> np.ndarray:
        """``H x W`` map in [0, 1] of the evidence for class ``target`` in one square view."""
        x = to_tensor(img, self.loaded.mean, self.loaded.std)[None].to(self.device)
        amap = self._attribute(x, torch.tensor([target]))[0]
        return _normalise(_smooth(_resize(amap, img.size[::-1]), self.method))

    def photo_maps(self, photos: list[Image.Image], size: int = PANEL) -> list[np.ndarray]:
        """For each photo (upright as displayed), ``4 x h x w`` evidence for each class over the
        whole photo, at a resolution whose long side is ``size``."""
        side = self.loaded.input_size
        crops, places = [], []
        for i, photo in enumerate(photos):
            for j, view in enumerate(square_views(photo, side, self.views)):
                crops.append(view)
                places.append((i, j))
        if not crops:
            return []
        x = to_batch(crops, self.loaded.mean, self.loaded.std).to(self.device)
        n = len(crops)
        # A backward pass keeps every activation: a whole chunk's flagged photos at once (64 photos x
        # 3 views x 4 classes) took gigabytes, so at most ATTRIBUTION_BATCH inputs go through at a time.
        if self.method == "gradcam":
            parts = [
                self._gradcam_every_class(x[k : k + ATTRIBUTION_BATCH])
                for k in range(0, n, ATTRIBUTION_BATCH)
            ]
            maps = np.concatenate(parts, axis=1)  # class, view, h, w
        else:
            inputs, targets = x.repeat(4, 1, 1, 1), torch.arange(4).repeat_interleave(n)
            flat = np.concatenate(
                [
                    self._attribute(inputs[k : k + ATTRIBUTION_BATCH], targets[k : k + ATTRIBUTION_BATCH])
                    for k in range(0, len(inputs), ATTRIBUTION_BATCH)
                ]
            )
            maps = flat.reshape(4, n, *flat.shape[-2:])  # class, view, h, w
        return [self._whole(photo, maps, places, i, size) for i, photo in enumerate(photos)]

    def _whole(self, photo: Image.Image, maps: np.ndarray, places: list, i: int, size: int) -> np.ndarray:
        w, h = photo.size
        scale = size / max(w, h)
        out_w, out_h = max(1, round(w * scale)), max(1, round(h * scale))
        short = min(out_w, out_h)
        total = np.zeros((4, out_h, out_w), np.float32)
        weight = np.zeros((out_h, out_w), np.float32)
        positions = [0.5] if self.views == 1 else [k / (self.views - 1) for k in range(self.views)]
        for k, (photo_i, view_j) in enumerate(places):
            if photo_i != i:
                continue
            left = round((out_w - short) * positions[view_j]) if out_w > out_h else 0
            top = round((out_h - short) * positions[view_j]) if out_h > out_w else 0
            for c in range(4):
                total[c, top : top + short, left : left + short] += _resize(maps[c, k], (short, short))
            weight[top : top + short, left : left + short] += 1
        total /= np.maximum(weight, 1)[None]
        smooth = np.stack([_smooth(total[c], self.method) for c in range(4)])
        top = np.percentile(smooth, 99)  # one scale for all four: they can be compared
        return np.sqrt(np.clip(smooth / top, 0, 1)) if top > 0 else np.zeros_like(smooth)

    # ---------------------------------------------------------------- pictures

    def render(self, photo: Image.Image, rotation_deg: int, probs=None) -> bytes:
        return self.render_many([photo], [rotation_deg], [probs])[0]

    def render_many(self, photos: list[Image.Image], rotations: list[int], probs: list) -> list[bytes]:
        """One picture per photo: its four candidate orientations, each with its probability, the
        suggested one framed; below each, the evidence for it."""
        maps = self.photo_maps(photos)
        return [
            candidates_sheet(photo, rotation, p, m)
            for photo, rotation, p, m in zip(photos, rotations, probs, maps, strict=True)
        ]


def candidates_sheet(photo: Image.Image, suggested_deg: int, probs, maps: np.ndarray | None) -> bytes:
    """PNG: the photo turned each of the four ways (top row) and the evidence for each (bottom)."""
    font = ImageFont.load_default(size=14)
    thumb = photo.copy()
    thumb.thumbnail((PANEL, PANEL), Image.Resampling.BICUBIC)
    rows = 2 if maps is not None else 1
    cell = PANEL + 12
    sheet = Image.new("RGB", (4 * cell, rows * cell + 26), "white")
    draw = ImageDraw.Draw(sheet)
    for k, rotation in enumerate(orientation.ROTATIONS):
        turn = orientation.CLOCKWISE[rotation]
        shown = orientation.apply(thumb, turn)
        x0 = k * cell + (cell - shown.width) // 2
        y0 = 26 + (cell - shown.height) // 2
        sheet.paste(shown, (x0, y0))
        if maps is not None:
            evidence = orientation.apply(Image.fromarray((maps[k] * 255).astype(np.uint8)), turn)
            over = overlay(shown, np.asarray(evidence.resize(shown.size), np.float32) / 255.0)
            sheet.paste(over, (x0, cell + y0))
        p = f"{float(probs[k]):.0%}" if probs is not None else ""
        label = ("as scanned" if rotation == 0 else f"turn {rotation}\u00b0") + (f": {p}" if p else "")
        mark = rotation == suggested_deg
        draw.text(
            (k * cell + 6, 5),
            ("\u2714 " if mark else "") + label,
            fill="#b00000" if mark else "black",
            font=font,
        )
        if mark:
            for r in range(3):
                draw.rectangle(
                    [k * cell + r, 22 + r, (k + 1) * cell - 1 - r, sheet.height - 1 - r], outline="#d00000"
                )
    return png_bytes(sheet)


def _resize(amap: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    img = Image.fromarray(amap.astype(np.float32), mode="F")
    return np.asarray(img.resize((shape[1], shape[0]), Image.Resampling.BILINEAR), np.float32)


def _smooth(amap: np.ndarray, method: str) -> np.ndarray:
    # Gradient maps are pixel-sharp speckle; a light blur turns them into regions a person sees.
    return amap if method == "gradcam" else gaussian_filter(amap, sigma=max(amap.shape) / 100)


def _normalise(amap: np.ndarray) -> np.ndarray:
    top = np.percentile(amap, 99)
    return np.sqrt(np.clip(amap / top, 0, 1)) if top > 0 else np.zeros_like(amap)


def overlay(img: Image.Image, amap: np.ndarray, alpha: float = 0.65) -> Image.Image:
    """The photo dimmed to grey with the evidence drawn over it in a heat colour map."""
    base = np.asarray(ImageOps.grayscale(img).convert("RGB"), dtype=np.float32) * 0.6
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
