"""Shared fixtures: one Prefect test server per session, and a tiny model trained for real."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

# Flows log to a temporary Prefect home, and report-only state and the model registry live in a
# temporary data directory: never the user's.
_PREFECT_HOME = tempfile.mkdtemp(prefix="orient-prefect-home-")
os.environ["PREFECT_HOME"] = _PREFECT_HOME
os.environ["XDG_DATA_HOME"] = tempfile.mkdtemp(prefix="orient-data-home-")
os.environ.pop("ORIENT_MODELS_DIR", None)
os.environ["ORIENT_CACHE_DIR"] = tempfile.mkdtemp(prefix="orient-cache-")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")


@pytest.fixture(scope="session")
def prefect_server():
    """The Prefect test harness, started once, only for tests that run flows."""
    from prefect.settings import temporary_settings
    from prefect.testing.utilities import prefect_test_harness

    from flows.server import temporary_server_settings

    with prefect_test_harness(server_startup_timeout=90), temporary_settings(temporary_server_settings()):
        yield


@pytest.fixture(scope="session")
def cli_env(prefect_server) -> dict[str, str]:
    """Environment for `orient` subprocesses: the session's Prefect server, not one each."""
    from prefect.settings import PREFECT_API_URL

    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env.update(
        PREFECT_HOME=_PREFECT_HOME,
        PREFECT_API_URL=PREFECT_API_URL.value(),
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
        PYTHONPATH=str(Path(__file__).resolve().parents[1]),
    )
    return env


@pytest.fixture(scope="session")
def scenes_dir(tmp_path_factory) -> Path:
    from orient_model.synthetic import write_scenes

    folder = tmp_path_factory.mktemp("upright")
    write_scenes(folder, 120, seed=11)
    return folder


@pytest.fixture(scope="session")
def tiny_model(prefect_server, scenes_dir, tmp_path_factory) -> Path:
    """A tiny CNN trained through the real flows on synthetic upright scenes (version folder)."""
    from flows.training import make_training_set, train
    from orient_model.config import TrainConfig, TrainingSetConfig

    work = tmp_path_factory.mktemp("tiny")
    make_training_set(
        [str(scenes_dir)],
        str(work / "data"),
        TrainingSetConfig(copy_size=96, crops_per_photo=1),
        trust_upright=True,
    )
    cfg = TrainConfig(arch="tiny", epochs=6, batch_size=32, lr=3e-3, workers=0, device="cpu", views=1)
    return Path(train(str(work / "data"), str(work / "models"), cfg))


@pytest.fixture(scope="session")
def make_copies(tmp_path_factory):
    """``make_copies(name, photos, seed)``: a training set of 64 px copies (one view each, a
    quarter for validation, no calibration split) cut from generated scenes."""
    from orient_model.config import TrainingSetConfig
    from orient_model.synthetic import write_scenes
    from orient_model.training_set import find_photos, process_source

    def make(name: str, photos: int, seed: int) -> Path:
        work = tmp_path_factory.mktemp(name)
        write_scenes(work / "src", photos, seed=seed)
        sets = TrainingSetConfig(copy_size=64, crops_per_photo=1, val_fraction=0.25, calibration_fraction=0)
        for path in find_photos([work / "src"]):
            process_source(path, work / "data", sets)
        return work / "data"

    return make
