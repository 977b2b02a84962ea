"""Model building: architectures by name, offline ImageNet weights mapped by position."""

import numpy as np
import pytest
import timm
import torch
from PIL import Image
from skimage import data

from orient_model.model.architectures import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    ReLU6,
    WeightsError,
    build_model,
    imagenet_classifier,
    load_state_dict_file,
    map_state_dict_by_position,
    package_weights_file,
    split_stages,
)


def test_package_weights_map_onto_timm_by_position_with_matching_shapes():
    source = load_state_dict_file(package_weights_file())
    target = timm.create_model("efficientnet_lite0", pretrained=False).state_dict()
    assert len(source) == len(target) == 296
    mapped = map_state_dict_by_position(source, target)
    assert list(mapped) == list(target)
    assert all(mapped[k].shape == target[k].shape for k in target)


def test_mapped_weights_recognise_imagenet_classes():
    model = imagenet_classifier().eval()
    img = Image.fromarray(data.chelsea()).convert("RGB").resize((224, 224))
    x = torch.tensor(np.asarray(img) / 255.0, dtype=torch.float32).permute(2, 0, 1)
    x = (x - torch.tensor(IMAGENET_MEAN)[:, None, None]) / torch.tensor(IMAGENET_STD)[:, None, None]
    with torch.no_grad():
        top = model(x[None]).softmax(1).topk(1)
    assert int(top.indices) in range(281, 286)  # the ImageNet cat classes
    assert float(top.values) > 0.3


def test_default_architecture_has_a_four_way_head_and_hookable_relu6():
    model = build_model("efficientnet_lite0", weights="package").eval()
    with torch.no_grad():
        assert model(torch.randn(2, 3, 160, 160)).shape == (2, 4)
    acts = [m for m in model.modules() if isinstance(m, torch.nn.ReLU)]
    assert acts and all(isinstance(m, ReLU6) for m in acts)
    assert not any(type(m) is torch.nn.ReLU6 for m in model.modules())
    assert torch.equal(ReLU6()(torch.tensor([-1.0, 3.0, 9.0])), torch.tensor([0.0, 3.0, 6.0]))


def test_tiny_cnn_is_conv_relu_pool_and_fully_connected():
    model = build_model("tiny")
    kinds = {type(m) for m in model.modules()}
    assert {torch.nn.Conv2d, torch.nn.ReLU, torch.nn.MaxPool2d, torch.nn.Linear} <= kinds
    assert model(torch.randn(3, 3, 64, 64)).shape == (3, 4)


def test_local_weights_file_works(tmp_path):
    path = tmp_path / "lite0.pth"
    torch.save(load_state_dict_file(package_weights_file()), path)
    model = build_model("efficientnet_lite0", weights=str(path))
    assert model(torch.randn(1, 3, 96, 96)).shape == (1, 4)


def test_missing_and_wrong_weights_fail_clearly(tmp_path):
    with pytest.raises(WeightsError, match="weights file not found"):
        build_model("efficientnet_lite0", weights=str(tmp_path / "nope.pth"))
    bad = tmp_path / "bad.pth"
    torch.save({"conv.weight": torch.zeros(3)}, bad)
    with pytest.raises(WeightsError, match="tensors"):
        build_model("efficientnet_lite0", weights=str(bad))
    with pytest.raises(ValueError, match="unknown architecture"):
        build_model("resnet9000")


@pytest.mark.parametrize("stages", [3, 4])
def test_split_stages_halves_compose_to_the_whole_network(stages):
    """``frozen_stages`` moves where the cached features are cut, not what the network computes."""
    torch.manual_seed(0)
    model = build_model("efficientnet_lite0").eval()
    early, late = split_stages(model, stages)
    x = torch.rand(2, 3, 224, 224)
    with torch.inference_mode():
        features = early(x)
        assert torch.allclose(late(features), model(x), atol=1e-5)
    assert features.shape[-1] == {3: 28, 4: 14}[stages]  # stage 4 ends at stride 16, stage 3 at 8
