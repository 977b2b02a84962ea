"""Saliency maps point at the evidence: a model that only looks at one region is caught doing so."""

import io

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from orient_model.model.evidence import EvidenceRenderer
from orient_model.model.registry import LoadedModel


class LooksAtTopLeft(nn.Module):
    """A toy orientation model whose every output depends only on the top-left quarter."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.act = nn.ReLU()
        self.head = nn.Linear(8, 4)
        mask = torch.zeros(1, 1, 64, 64)
        mask[..., :32, :32] = 1
        self.register_buffer("mask", mask)

    def forward(self, x):
        return self.head(self.act(self.conv(x * self.mask)).mean((2, 3)))


def toy_loaded() -> LoadedModel:
    return LoadedModel(LooksAtTopLeft().eval(), "toy", 64, (0.5,) * 3, (0.25,) * 3, 1.0, "toy", {})


@pytest.mark.parametrize("method", ["guided", "gradient"])
def test_map_concentrates_where_the_model_looks(method):
    renderer = EvidenceRenderer(toy_loaded(), method)
    img = Image.fromarray(np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8))
    for target in range(4):
        amap = renderer.evidence(img, target)
        assert amap.shape == (64, 64)
        total = amap.sum()
        assert total > 0
        assert amap[:32, :32].sum() / total > 0.95


def test_rendered_sheet_is_a_png_with_one_panel_per_map():
    renderer = EvidenceRenderer(toy_loaded())
    img = Image.new("RGB", (64, 64), (90, 120, 150))
    sheet = Image.open(io.BytesIO(renderer.render(img, 90)))
    assert sheet.format == "PNG" and sheet.width == 3 * 256
    upright = Image.open(io.BytesIO(renderer.render(img, 0)))
    assert upright.width == 2 * 256


def test_attribution_uses_its_own_model_copy():
    loaded = toy_loaded()
    renderer = EvidenceRenderer(loaded)
    assert renderer.model is not loaded.model
    assert all(not p.requires_grad for p in renderer.model.parameters())
    assert all(p.requires_grad for p in loaded.model.parameters())
