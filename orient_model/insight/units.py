"""Hidden units, as the seed lecture shows them (Zeiler and Fergus 2014): for a few channels of an
early, a middle and the last convolutional stage, the photo patches that excite each most; and
the first layer's filters drawn as images, the templates its first units match.

A patch is the part of the input a unit effectively sees: the square around the unit's place
that holds most of the input gradient of that stage's units (measured, not the theoretical
receptive field, which for a deep stage is the whole view).
"""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image
from torch import nn

from orient_model.imageio import center_square
from orient_model.insight.behaviour import Judged
from orient_model.insight.figures import mosaic, new_figure, png
from orient_model.model.data import to_tensor
from orient_model.model.evidence import last_conv_layer
from orient_model.model.registry import LoadedModel

CHANNELS = 6  # channels shown per stage
PATCHES = 6  # patches shown per channel
GRADIENT_MASS = 0.8  # share of the input gradient a patch holds


def stages(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """An early, a middle and the last convolutional stage: an EfficientNet's second and middle
    block and its head (the layer Grad-CAM reads), else the first, middle and last convolution."""
    if hasattr(model, "blocks") and hasattr(model, "conv_head"):
        blocks = model.blocks
        return [("early", blocks[1]), ("middle", blocks[len(blocks) // 2]), ("last", last_conv_layer(model))]
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    return [("early", convs[0]), ("middle", convs[len(convs) // 2]), ("last", convs[-1])]


def _activations(model: nn.Module, layers: list[nn.Module], x: torch.Tensor) -> list[torch.Tensor]:
    got: list[torch.Tensor] = []
    handles = [layer.register_forward_hook(lambda m, i, out: got.append(out)) for layer in layers]
    try:
        model(x)
    finally:
        for handle in handles:
            handle.remove()
    return got


def patch_side(model: nn.Module, layer: nn.Module, x: torch.Tensor) -> int:
    """The side of the centred square of input holding :data:`GRADIENT_MASS` of the gradient of
    the layer's centre units (all channels, summed over a few views)."""
    x = x.clone().requires_grad_(True)
    with torch.enable_grad():
        (act,) = _activations(model, [layer], x)
        h, w = act.shape[-2:]
        act[:, :, h // 2, w // 2].sum().backward()
    grad = x.grad.abs().sum((0, 1)).numpy()
    size = grad.shape[0]
    centre_y, centre_x = (h // 2 + 0.5) * size / h, (w // 2 + 0.5) * size / w
    total = grad.sum() or 1.0
    for half in range(1, size):
        y0, x0 = max(0, int(centre_y - half)), max(0, int(centre_x - half))
        if grad[y0 : int(centre_y + half), x0 : int(centre_x + half)].sum() >= GRADIENT_MASS * total:
            return max(2 * half, 6)
    return size


def top_patches(loaded: LoadedModel, judged: Judged, chosen: list[int], batch: int = 16) -> list[dict]:
    """Per stage: its channels that reach the highest activations, and for each the patches
    (one per view at most) where it is most active, from the centre views of ``chosen`` upright."""
    model = loaded.model.float().eval()
    views = [center_square(judged.photos[i].upright(loaded.input_size), loaded.input_size) for i in chosen]
    x = torch.stack([to_tensor(v, loaded.mean, loaded.std) for v in views])
    named = stages(model)
    peaks: list[list[torch.Tensor]] = [[] for _ in named]  # per stage: N x C maxima, and where
    places: list[list[torch.Tensor]] = [[] for _ in named]
    shapes = []
    with torch.no_grad():
        for start in range(0, len(x), batch):
            acts = _activations(model, [layer for _, layer in named], x[start : start + batch])
            shapes = [a.shape[-2:] for a in acts]
            for s, act in enumerate(acts):
                value, where = act.flatten(2).max(2)
                peaks[s].append(value)
                places[s].append(where)
    out = []
    for s, (name, layer) in enumerate(named):
        value, where = torch.cat(peaks[s]), torch.cat(places[s])  # N x C
        side = patch_side(model, layer, x[:4])
        h, w = shapes[s]
        channels = value.max(0).values.argsort(descending=True)[:CHANNELS].tolist()
        rows = []
        for c in channels:
            order = value[:, c].argsort(descending=True)[:PATCHES].tolist()
            patches = []
            for n in order:
                y, xx = divmod(int(where[n, c]), int(w))
                cy, cx = (y + 0.5) * loaded.input_size / h, (xx + 0.5) * loaded.input_size / w
                box = (int(cx - side / 2), int(cy - side / 2), int(cx + side / 2), int(cy + side / 2))
                patches.append(views[n].crop(box))  # outside the view: black, as the network's padding
            rows.append({"channel": c, "patches": patches, "peak": float(value[order[0], c])})
        layer_name = next((n for n, m in model.named_modules() if m is layer), type(layer).__name__)
        out.append({"stage": name, "layer": layer_name, "patch_side": side, "channels": rows})
    return out


def patches_figure(stage: dict, cell: int = 64) -> bytes:
    """One row per channel, its patches strongest first."""
    rows = [
        [
            np.asarray(p.resize((cell, cell), Image.Resampling.BICUBIC), np.float32) / 255
            for p in row["patches"]
        ]
        for row in stage["channels"]
    ]
    fig, ax = new_figure(1.0 + 0.8 * PATCHES, 0.6 + 0.8 * len(rows))
    ax.imshow(mosaic(rows, cell))
    ax.set_yticks([r * (cell + 4) + cell / 2 for r in range(len(rows))])
    ax.set_yticklabels([f"channel {row['channel']}" for row in stage["channels"]], fontsize=8)
    ax.set_xticks([])
    ax.set_title(
        f"{stage['stage']} stage ({stage['layer']}): patches of {stage['patch_side']} px", fontsize=10
    )
    return png(fig)


def first_filters(model: nn.Module) -> torch.Tensor | None:
    """The first convolution's weights when it reads the three colour channels."""
    conv = next((m for m in model.modules() if isinstance(m, nn.Conv2d)), None)
    return conv.weight.detach().float() if conv is not None and conv.in_channels == 3 else None


def filters_figure(weights: torch.Tensor, cell: int = 24) -> bytes:
    """Each filter as a small colour image, mapped so that zero is mid-grey (one scale for all)."""
    count, cols = len(weights), min(len(weights), 16)
    scale = float(weights.abs().max()) or 1.0
    tiles = [
        np.kron((w.permute(1, 2, 0).numpy() / scale + 1) / 2, np.ones((cell // w.shape[-1] + 1,) * 2 + (1,)))
        for w in weights
    ]
    side = min(t.shape[0] for t in tiles)
    rows = [tiles[i : i + cols] for i in range(0, count, cols)]
    fig, ax = new_figure(0.5 + 0.45 * cols, 0.6 + 0.45 * len(rows))
    ax.imshow(mosaic(rows, side, gap=3), interpolation="nearest")
    ax.axis("off")
    ax.set_title(
        f"first layer: {count} filters of {weights.shape[-2]}x{weights.shape[-1]} pixels", fontsize=10
    )
    return png(fig)
