"""The shipped default model: small, documented, loadable, and right on photos it never saw."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from orient_model import orientation as ori
from orient_model.demo import DEMO_PHOTOS
from orient_model.imageio import center_square
from orient_model.model.card import training_sources
from orient_model.model.predict import Predictor
from orient_model.model.registry import DEFAULT_MODEL_DIR, load_model
from orient_model.report import read_report

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"

RESERVED = (
    "plasma-workspace-wallpapers",
    "mate-backgrounds",
    "lomiri-wallpapers-20.04",
    "opencv-doc",
    "visp-images-data",
    "libdlib19.1",
    "vladmandic/human",
    "microsoft/Bringing-Old-Photos-Back-to-Life",
    "sczhou/CodeFormer",
)


def test_default_model_is_small_and_its_card_documents_it():
    assert (DEFAULT_MODEL_DIR / "model.pt").stat().st_size <= 30 * 1024 * 1024
    card = json.loads((DEFAULT_MODEL_DIR / "card.json").read_text())
    assert card["architecture"] == "efficientnet_lite0"
    assert "scripts/train_default_model.sh" in card["reproduce"]
    sources = training_sources(card, DEFAULT_MODEL_DIR)  # inline in older cards, else Parquet beside it
    assert len(sources) >= 2500
    for source in sources:
        assert len(source["sha256"]) == 64 and source["license"] and source["source"]
        assert source["source"] not in RESERVED
    demo_packages = {"scikit-image", "scikit-learn", "matplotlib"}
    assert not demo_packages & {s["source"] for s in sources}
    for key in (
        "val_accuracy",
        "confusion_matrix",
        "ece",
        "temperature",
        "calibration",
        "test",
        "training_seconds",
        "device",
    ):
        assert key in card


def test_the_shipped_8bit_network_is_the_one_calibrated_and_no_worse_on_test_photos():
    """What a CPU runs by default: its file is the one its calibration saw, and on the test split
    it is as right and decides as much alone as the float network (within a point)."""
    import hashlib

    from orient_model.model.engine import INT8

    card = json.loads((DEFAULT_MODEL_DIR / "card.json").read_text())
    int8 = card["int8"]
    path = DEFAULT_MODEL_DIR / int8["file"]
    assert hashlib.sha256(path.read_bytes()).hexdigest() == int8["sha256"]
    assert path.stat().st_size + (DEFAULT_MODEL_DIR / "model.pt").stat().st_size <= 30 * 1024 * 1024
    key = f"views={card['views']},tta=True"
    ours, floats = int8["test"][key], card["test"][key]
    assert ours["accuracy"] >= floats["accuracy"] - 0.01 and ours["coverage"] >= floats["coverage"] - 0.01
    assert ours["wrong_automatic"] <= 0.01 * ours["automatic"]
    predictor = Predictor(load_model("default"), device="cpu", engine="auto")
    if predictor.engine.name == INT8:  # else this CPU's 8-bit arithmetic differs: the float one runs
        assert predictor.loaded.calibration == int8["calibration"]


def test_default_model_orients_the_held_out_demo_photos():
    loaded = load_model("default")
    predictor = Predictor(loaded, device="cpu", engine="auto")  # what a CPU runs by default
    views, truth = [], []
    for photo in DEMO_PHOTOS:
        upright = photo.load()
        for angle in ori.ROTATIONS:
            views.append(center_square(ori.apply(upright, ori.COUNTER_CLOCKWISE[angle]), loaded.input_size))
            truth.append(angle)
    probs = predictor.probabilities(views)
    correct = sum(ori.ROTATIONS[int(p.argmax())] == t for p, t in zip(probs, truth))
    assert correct / len(truth) >= 0.75, f"{correct}/{len(truth)}"


@pytest.mark.slow
def test_demo_command_runs_end_to_end(tmp_path, cli_env):
    """As the quick start runs it: no options, so its folder is relative to where it runs."""
    env_cmd = [sys.executable, "-m", "flows.cli", "demo"]
    result = subprocess.run(env_cmd, capture_output=True, text=True, timeout=900, env=cli_env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "accuracy against the known rotations" in result.stdout
    accuracy = json.loads((tmp_path / "orient-demo" / "accuracy.json").read_text())
    assert accuracy["judged"] == 32
    assert "3 error" in result.stdout
    # The README's next step, as it spells it: the review page lists the demo's flagged photos.
    from fastapi.testclient import TestClient

    from flows.review import create_app

    step = next(
        line for line in README.read_text().splitlines() if "orient review orient-demo/archive" in line
    )
    command = step[step.index("orient review") :].split("`")[0].split()
    assert command[:3] == ["orient", "review", "orient-demo/archive"] and len(command) == 3, command
    reports = list((tmp_path / "orient-demo" / "archive" / ".orient" / "reports").glob("*.parquet"))
    flagged = sum(r["action"] == "flag" for r in read_report(reports[0]).to_pylist())
    assert len(reports) == 1 and flagged > 0
    os.chdir(tmp_path)  # the command runs where the demo ran
    try:
        http = TestClient(create_app(command[2], reviewer="demo", allowed_hosts=["testserver"]))
        listing = http.get("/api/state", params={"kind": "flagged"}).json()
    finally:
        os.chdir(REPO)
    assert listing["matching"] == flagged and len(listing["items"]) == flagged
    assert f"orient review {Path('orient-demo') / 'archive'}" in result.stdout


def test_default_model_is_calibrated_for_a_glance_first_and_for_two_views_but_looks_in_full_by_default():
    from orient_model.model.predict import Looking, decision_threshold

    loaded = load_model("default")
    assert Predictor(loaded, device="cpu").looking == Looking(3, True)
    glancing = Predictor(loaded, device="cpu", glance=True)
    assert glancing.looking == Looking(3, True, glance=True)
    threshold, how = decision_threshold(glancing, None, 0.01)
    assert 0.5 < threshold < 1 and "glance" in how and "at most 1.0%" in how
    # Two views (--views 2) are calibrated too, from the same scores: a certified threshold of their own.
    two = Predictor(loaded, device="cpu", views=2)
    threshold, how = decision_threshold(two, None, 0.01)
    assert two.looking == Looking(2, True) and 0.5 < threshold < 1 and "at most 1.0%" in how
