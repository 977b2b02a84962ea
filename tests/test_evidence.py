"""Evidence a person can read: it points where the model looks, and it tells the classes apart."""

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


class HalfMask(nn.Module):
    """Feature channel 0 sees only the top half, channel 1 only the bottom half."""

    def __init__(self):
        super().__init__()
        mask = torch.zeros(1, 2, 64, 64)
        mask[:, 0, :32] = 1
        mask[:, 1, 32:] = 1
        self.register_buffer("mask", mask)

    def forward(self, f):
        return f * self.mask


class TopForUprightBottomForTurned(nn.Module):
    """A toy model that reads class 0 ('upright') from the top of the image and class 1 ('needs
    90 degrees') from the bottom, as a real network does: localised features, and a head that
    weighs feature channels per class. Class-discriminative evidence must tell them apart."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 2, 3, padding=1)
        with torch.no_grad():
            self.conv.weight.fill_(0.05)
            self.conv.bias.fill_(0.1)
        self.evidence_layer = nn.Sequential(nn.ReLU(), HalfMask())
        self.head = nn.Linear(2, 4, bias=False)
        with torch.no_grad():
            self.head.weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.0, 0.0], [0.0, 0.0]]))

    def forward(self, x):
        return self.head(self.evidence_layer(self.conv(x)).mean((2, 3)))


def loaded(model: nn.Module) -> LoadedModel:
    return LoadedModel(model.eval(), "toy", 64, (0.5,) * 3, (0.25,) * 3, 1.0, "toy", {}, 1.0, 1)


@pytest.mark.parametrize("method", ["gradcam", "guided", "gradient"])
def test_evidence_concentrates_where_the_model_looks(method):
    renderer = EvidenceRenderer(loaded(LooksAtTopLeft()), method)
    img = Image.fromarray(np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8))
    for target in range(4):
        amap = renderer.evidence(img, target)
        assert amap.shape == (64, 64)
        total = amap.sum()
        assert total > 0
        assert amap[:34, :34].sum() / total > 0.9


def test_gradcam_evidence_for_two_classes_lands_in_different_halves():
    renderer = EvidenceRenderer(loaded(TopForUprightBottomForTurned()), "gradcam")
    img = Image.fromarray(np.random.default_rng(1).integers(60, 200, (64, 64, 3), dtype=np.uint8))
    upright, turned = renderer.evidence(img, 0), renderer.evidence(img, 1)
    assert upright[:32].sum() > 0.9 * upright.sum()
    assert turned[32:].sum() > 0.9 * turned.sum()
    [maps] = renderer.photo_maps([img])  # over the whole photo, all four classes at once
    assert maps.shape[0] == 4
    assert maps[0][: maps.shape[1] // 2].sum() > 0.9 * maps[0].sum()
    assert maps[1][maps.shape[1] // 2 :].sum() > 0.9 * maps[1].sum()


def test_the_picture_shows_the_whole_photo_four_ways_with_probabilities():
    renderer = EvidenceRenderer(loaded(LooksAtTopLeft()))
    photo = Image.new("RGB", (96, 64), (90, 120, 150))  # landscape: the picture shows all of it
    sheet = Image.open(io.BytesIO(renderer.render(photo, 90, (0.1, 0.6, 0.2, 0.1))))
    assert sheet.format == "PNG" and sheet.width == 4 * (256 + 12)
    assert sheet.height > 2 * 256  # candidates above, evidence below


def test_attribution_uses_its_own_model_copy():
    model = loaded(LooksAtTopLeft())
    renderer = EvidenceRenderer(model)
    assert renderer.model is not model.model
    assert all(not p.requires_grad for p in renderer.model.parameters())
    assert all(p.requires_grad for p in model.model.parameters())


def test_evidence_from_several_threads_at_once_matches_one_at_a_time():
    """Prediction chunks run in threads and share one renderer; Captum's hooks on the shared
    network must not mix two threads' activations (it raised, or gave the wrong map)."""
    from concurrent.futures import ThreadPoolExecutor

    from orient_model.model import architectures

    torch.manual_seed(0)
    net = architectures.build_model("efficientnet_lite0").eval()
    renderer = EvidenceRenderer(
        LoadedModel(net, "efficientnet_lite0", 64, (0.5,) * 3, (0.25,) * 3, 1.0, "t", {}, 1.0, 1)
    )
    rng = np.random.default_rng(2)
    photos = [Image.fromarray(rng.integers(0, 256, (64, 80, 3), dtype=np.uint8)) for _ in range(4)]
    expected = [renderer.photo_maps([p])[0] for p in photos]
    with ThreadPoolExecutor(4) as pool:
        got = list(pool.map(lambda p: renderer.photo_maps([p])[0], photos * 6))
    for i, maps in enumerate(got):
        np.testing.assert_allclose(maps, expected[i % 4], rtol=1e-4, atol=1e-6)
    # Many photos at once are attributed a few inputs at a time (memory), with the same maps.
    together = renderer.photo_maps(photos * 2)
    for i, maps in enumerate(together):
        np.testing.assert_allclose(maps, expected[i % 4], rtol=1e-4, atol=1e-6)


def test_gradcam_for_every_class_from_one_forward_pass_matches_captum_class_by_class():
    from orient_model.model import architectures

    torch.manual_seed(0)
    net = architectures.build_model("efficientnet_lite0").eval()
    renderer = EvidenceRenderer(
        LoadedModel(net, "efficientnet_lite0", 64, (0.5,) * 3, (0.25,) * 3, 1.0, "t", {}, 1.0, 1)
    )
    x = torch.randn(3, 3, 64, 64)
    shared = renderer._gradcam_every_class(x)
    by_class = np.stack([renderer._attribute(x.clone(), torch.full((3,), c)) for c in range(4)])
    assert shared.shape == by_class.shape == (4, 3, 2, 2) and by_class.max() > 0
    np.testing.assert_allclose(shared, by_class, rtol=1e-4, atol=1e-6)
