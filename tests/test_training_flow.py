"""Training through the real Prefect flows: learns, calibrates, registers, loads back."""

import json
import os
from pathlib import Path

import pytest
import torch

from orient_model.config import TrainConfig
from orient_model.model.calibration import fit_temperature, nll
from orient_model.model.registry import ModelLoadError, load_model

pytestmark = pytest.mark.slow


def test_tiny_cnn_learns_orientation_well_above_chance(tiny_model):
    card = json.loads((tiny_model / "card.json").read_text())
    assert card["val_accuracy"] > 0.8  # chance is 0.25
    assert card["architecture"] == "tiny" and card["device"] == "cpu"
    assert card["interruptions"] == []  # trained in one sitting
    # its checkpoint and cached features are spent once the model is saved
    assert not (tiny_model.parents[1] / "data" / ".training").exists()
    for key in (
        "input_size",
        "normalization",
        "classes",
        "temperature",
        "training_manifest_sha256",
        "training_sources_file",
        "val_per_class_accuracy",
        "confusion_matrix",
        "ece",
        "training_seconds",
        "package_versions",
    ):
        assert key in card, key
    assert sum(map(sum, card["confusion_matrix"])) == card["val_images"]
    assert card["val_nll"] <= card["val_nll_before_calibration"] + 1e-9


def test_frozen_early_stages_validate_on_cached_features_as_the_whole_network_would(tiny_model):
    from torch import nn

    from orient_model.model.architectures import ARCHS
    from orient_model.model.train import evaluate, fit, load_data

    data = tiny_model.parents[1] / "data"
    cfg = TrainConfig(
        arch="tiny", freeze="early", cache_passes=1, epochs=2, batch_size=32, workers=0, device="cpu", views=1
    )
    result = fit(data, cfg, judge_copies=False)
    spec = ARCHS["tiny"]
    _, val_loader = load_data(data, cfg, spec.input_size, spec.mean, spec.std)
    whole = evaluate(result.model, val_loader, nn.CrossEntropyLoss(), torch.device("cpu"))
    assert result.metrics["val_accuracy"] == whole.accuracy
    best = result.history[result.best_epoch - 1]
    assert (best["val_accuracy"], best["val_loss"]) == (whole.accuracy, pytest.approx(whole.loss, abs=1e-5))


def test_registration_adds_the_8bit_network_that_auto_then_runs(tiny_model):
    from orient_model.model.engine import INT8
    from orient_model.model.predict import Predictor

    card = json.loads((tiny_model / "card.json").read_text())
    int8 = card["int8"]
    assert (tiny_model / int8["file"]).is_file() and "views=1,tta=True" in int8["calibration"]
    assert int8["test"]["views=1,tta=True"]["photos"] > 0
    predictor = Predictor(load_model(tiny_model), device="cpu", engine="auto")
    assert predictor.engine.name == INT8 and predictor.loaded.calibration == int8["calibration"]


def test_train_or_load_reuses_the_model_trained_on_the_same_data(tiny_model):
    from flows.training import train

    cfg = TrainConfig(arch="tiny", epochs=6, batch_size=32, lr=3e-3, workers=0, device="cpu", views=1)
    data_dir = tiny_model.parent.parent / "data"
    assert Path(train(str(data_dir), str(tiny_model.parent), cfg)) == tiny_model
    assert len(os.listdir(tiny_model.parent)) == 1


def test_checkpoint_round_trip_with_weights_only(tiny_model):
    raw = torch.load(tiny_model / "model.pt", map_location="cpu", weights_only=True)
    assert raw["arch"] == "tiny" and raw["classes"] == [0, 90, 180, 270]
    loaded = load_model(tiny_model)
    x = torch.randn(4, 3, 64, 64)
    again = load_model(tiny_model / "model.pt")
    with torch.no_grad():
        assert torch.allclose(loaded.model(x), again.model(x))
    assert loaded.temperature == raw["temperature"] > 0


def test_corrupt_or_missing_checkpoint_fails_clearly(tmp_path, tiny_model):
    broken = tmp_path / "model.pt"
    broken.write_bytes((tiny_model / "model.pt").read_bytes()[:1000])
    with pytest.raises(ModelLoadError, match="corrupt"):
        load_model(broken)
    with pytest.raises(ModelLoadError, match="no model at"):
        load_model(tmp_path / "missing")


def test_temperature_scaling_lowers_validation_nll():
    torch.manual_seed(0)
    labels = torch.randint(0, 4, (400,))
    logits = torch.randn(400, 4)
    logits[torch.arange(400), labels] += 2.0  # right most of the time...
    logits *= 4.0  # ...but far too sure of itself
    t = fit_temperature(logits, labels)
    assert t > 1.5
    assert nll(logits, labels, t) < 0.8 * nll(logits, labels, 1.0)


def test_a_perfectly_separated_calibration_set_gives_a_bounded_temperature():
    from orient_model.model.calibration import TEMPERATURE_RANGE

    labels = torch.arange(4).repeat(25)
    logits = torch.nn.functional.one_hot(labels, 4).float() * 3.0  # always right: NLL falls as T -> 0
    t = fit_temperature(logits, labels)
    assert TEMPERATURE_RANGE[0] <= t < 1.0
    assert nll(logits, labels, t) < nll(logits, labels, 1.0)


def test_making_copies_runs_one_thread_a_core_not_one_a_chunk():
    """Prefect's thread pool is unbounded by default: a large pool ran a thread per chunk."""
    from flows.training import make_training_set

    assert make_training_set.task_runner._max_workers == (os.cpu_count() or 2)
