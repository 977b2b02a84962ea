"""Prediction on a CPU runs in a compiled engine that gives PyTorch's probabilities."""

import numpy as np
import pytest
import torch
from PIL import Image

from orient_model.model.architectures import build_model
from orient_model.model.engine import EngineError, OnnxRuntimeEngine, TorchEngine, make_engine
from orient_model.model.predict import Predictor, turned_log_probs
from orient_model.model.registry import LoadedModel


@pytest.fixture(scope="module")
def lite0() -> LoadedModel:
    torch.manual_seed(0)
    model = build_model("efficientnet_lite0", weights="package").eval()
    return LoadedModel(
        model,
        "efficientnet_lite0",
        160,
        (0.485, 0.456, 0.406),
        (0.229, 0.224, 0.225),
        1.3,
        "engine-test",
        {},
        1.1,
        3,
    )


def photos(n: int = 3) -> list[Image.Image]:
    rng = np.random.default_rng(4)
    return [Image.fromarray(rng.integers(0, 256, (120 + 10 * i, 200, 3), dtype=np.uint8)) for i in range(n)]


def test_the_engine_gives_pytorchs_probabilities(lite0):
    fast = Predictor(lite0, device="cpu", engine="auto")
    assert isinstance(fast.engine, OnnxRuntimeEngine)
    slow = Predictor(lite0, device="cpu", engine="torch")
    assert isinstance(slow.engine, TorchEngine)
    got, want = fast.probabilities(photos()), slow.probabilities(photos())
    assert np.abs(got - want).max() < 1e-4


@pytest.mark.parametrize("choice", ["auto", "torch"])
def test_every_engine_is_shown_the_four_turns_pytorch_would_show_it(lite0, choice):
    engine = Predictor(lite0, device="cpu", engine=choice).engine
    batch = torch.rand(2, 3, 160, 160)
    by_torch = torch.cat([torch.rot90(batch, k, dims=(2, 3)) for k in range(4)])  # k quarter turns ccw
    assert torch.equal(engine.turned(batch), engine(by_torch))
    turned = turned_log_probs(engine, batch)
    assert not torch.equal(turned[:, 0], turned[:, 1])  # four different views


def test_an_unknown_engine_is_a_clear_error(lite0):
    with pytest.raises(EngineError, match="unknown engine"):
        make_engine(lite0, torch.device("cpu"), "tensorrt")


class _ShiftedByTwo(torch.nn.Module):
    """A network whose answers are moved two classes on: 'upright' comes out as 'upside down'."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.roll(self.model(x), 2, dims=1)


def test_an_engine_file_swapped_after_its_check_is_checked_again(lite0, tmp_path):
    """The check that an engine gives PyTorch's answers holds for the file that was checked: a
    model.onnx replaced in a model version later is checked again, and refused, every time."""
    from orient_model.model.engine import export_onnx

    torch.save(lite0.model.state_dict(), tmp_path / "model.pt")
    lite0.path = tmp_path / "model.pt"
    try:
        export_onnx(lite0.model, lite0.input_size, tmp_path / "model.onnx")
        assert make_engine(lite0, torch.device("cpu"), "onnxruntime").name == "onnxruntime"
        export_onnx(_ShiftedByTwo(lite0.model).eval(), lite0.input_size, tmp_path / "model.onnx")
        with pytest.raises(EngineError, match="differs from PyTorch"):
            make_engine(lite0, torch.device("cpu"), "onnxruntime")
        assert make_engine(lite0, torch.device("cpu"), "auto").name == "torch"
        got = Predictor(lite0, device="cpu", engine="auto").probabilities(photos())
        want = Predictor(lite0, device="cpu", engine="torch").probabilities(photos())
        assert np.abs(got - want).max() < 1e-6
    finally:
        del lite0.path
