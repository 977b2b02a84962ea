"""The 8-bit network: calibrated on its own, used only when it is the network calibrated on this
machine's arithmetic, and otherwise left for the float network with its own calibration."""

import json
import logging

import numpy as np
import pytest
import torch

from orient_model.model.architectures import build_model
from orient_model.model.calibration import certified_threshold
from orient_model.model.engine import INT8, EngineError, check_inputs, make_engine
from orient_model.model.int8 import add_int8
from orient_model.model.predict import Predictor, decision_threshold
from orient_model.model.registry import LoadedModel
from orient_model.synthetic import scene

DEFAULT = "views=3,tta=True"


def saved_lite0(folder) -> LoadedModel:
    torch.manual_seed(0)
    model = build_model("efficientnet_lite0", weights="package").eval()
    folder.mkdir(parents=True, exist_ok=True)
    torch.save(model.state_dict(), folder / "model.pt")  # identifies the weights (engine cache key)
    loaded = LoadedModel(
        model, "efficientnet_lite0", 128, (0.485, 0.456, 0.406), (0.229, 0.224, 0.225), 1.0, "t", {}, 1.0, 3
    )
    loaded.path = folder / "model.pt"
    return loaded


@pytest.fixture(scope="module")
def with_int8(tmp_path_factory):
    root = tmp_path_factory.mktemp("int8")
    rng = np.random.default_rng(0)
    paths = []
    for i in range(20):
        path = root / "photos" / f"s{i}.jpg"
        path.parent.mkdir(exist_ok=True)
        scene(rng, 200 + 10 * (i % 3), 150).save(path, quality=90)
        paths.append(path)
    copies = root / "data" / "train" / "000"  # quantization ranges: training copies
    copies.mkdir(parents=True)
    for i in range(8):
        scene(rng, 160, 160).save(copies / f"c{i}.jpg", quality=90)
    loaded = saved_lite0(root / "model")
    photos = {
        "calib": [(str(p), ["scene"]) for p in paths[:12]],
        "test": [(str(p), ["scene"]) for p in paths[12:]],
    }
    entry = add_int8(loaded, root / "data", photos)
    return loaded, entry


def test_the_8bit_network_is_calibrated_and_judged_on_its_own(with_int8):
    loaded, entry = with_int8
    assert (loaded.path.parent / entry["file"]).is_file()
    assert DEFAULT in entry["calibration"] and DEFAULT in entry["test"]
    assert entry["test"][DEFAULT]["photos"] == 8
    assert len(entry["check_probabilities"]) == 8
    assert entry["quantized_on"].startswith("8 training copies")
    json.dumps(entry)  # goes into the card as it is


def test_auto_runs_the_8bit_network_with_its_own_calibration(with_int8):
    loaded, entry = with_int8
    loaded.card["calibration"] = {DEFAULT: {**entry["calibration"][DEFAULT], "temperature": 99.0}}
    predictor = Predictor(loaded, device="cpu", engine="auto")
    assert predictor.engine.name == INT8
    assert predictor.loaded.calibration is entry["calibration"]
    assert predictor.loaded.temperature_for(predictor.looking) == entry["calibration"][DEFAULT]["temperature"]
    value, how = decision_threshold(predictor, None, 0.01)
    assert value == certified_threshold(entry["calibration"][DEFAULT]["risk_curve"], 0.01)[0]
    own = entry["calibration"][DEFAULT]
    curve = own["risk_curve"]
    try:  # a curve that certifies a threshold: the note says whose calibration it is
        own["risk_curve"] = [
            {"threshold": 0.6, "automatic": 400, "coverage": 1.0, "errors": 0, "upper_bound": 0.0075}
        ]
        value, how = decision_threshold(predictor, None, 0.01)
        assert value == 0.6 and "8-bit network" in how, how
    finally:
        own["risk_curve"] = curve
    floats = Predictor(loaded, device="cpu", engine="onnxruntime")
    assert floats.loaded.temperature_for(floats.looking) == 99.0  # the float network keeps its own


def test_a_changed_8bit_file_is_not_used(with_int8, tmp_path, caplog):
    loaded, entry = with_int8
    path = loaded.path.parent / entry["file"]
    original = path.read_bytes()
    try:
        path.write_bytes(original + b"\0")
        with caplog.at_level(logging.WARNING, logger="orient.engine"):
            predictor = Predictor(loaded, device="cpu", engine="auto")
        assert predictor.engine.name == "onnxruntime"
        assert predictor.loaded.calibration is not entry["calibration"]
        assert "not the network that was calibrated" in caplog.text
    finally:
        path.write_bytes(original)


def test_other_8bit_arithmetic_is_not_trusted_with_the_calibration(with_int8, caplog):
    """A CPU whose 8-bit kernels round differently gives other probabilities than those the
    threshold was certified on: the float network runs instead, and says why."""
    loaded, entry = with_int8
    recorded = entry["check_probabilities"]
    try:
        entry["check_probabilities"] = [[p + 0.01 for p in row] for row in recorded]
        with caplog.at_level(logging.WARNING, logger="orient.engine"):
            predictor = Predictor(loaded, device="cpu", engine="auto")
        assert predictor.engine.name == "onnxruntime"
        assert "8-bit arithmetic differs" in caplog.text
        with pytest.raises(EngineError, match="8-bit arithmetic differs.*--engine onnxruntime"):
            make_engine(loaded, torch.device("cpu"), INT8)
    finally:
        entry["check_probabilities"] = recorded


def test_the_8bit_check_does_not_depend_on_the_thread_count(with_int8):
    """A Dask worker runs torch and ONNX Runtime on one thread: its check inputs are the same as
    with two, and its 8-bit network passes the check recorded at this process's thread count."""
    loaded, _ = with_int8
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = check_inputs(loaded.input_size)
        assert make_engine(loaded, torch.device("cpu"), INT8, threads=1).name == INT8
        torch.set_num_threads(2)
        assert torch.equal(one, check_inputs(loaded.input_size))
    finally:
        torch.set_num_threads(threads)


def test_asking_for_8bit_without_one_is_a_clear_error(tmp_path):
    loaded = saved_lite0(tmp_path / "plain")
    with pytest.raises(EngineError, match="no 8-bit network"):
        make_engine(loaded, torch.device("cpu"), INT8)
    assert Predictor(loaded, device="cpu", engine="auto").engine.name == "onnxruntime"


def test_the_card_shows_both_networks_figures(with_int8):
    from orient_model.model.card import model_card_markdown

    loaded, entry = with_int8
    card = {"version": "t", "val_accuracy": 0.9, "calibration": entry["calibration"], "test": entry["test"]}
    card["int8"] = entry
    text = model_card_markdown(card)
    assert text.count("| views=3,tta=True |") == 4  # calibration and test rows, for each network
    assert "The 8-bit network" in text and "nan" not in text
