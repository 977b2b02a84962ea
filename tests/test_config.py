"""The archivist's config file states the real defaults, and overrides win."""

from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError

from orient_model.config import ConfigError, OrientConfig, dump_defaults, load_config

DEFAULT_YAML = Path(__file__).parents[1] / "configs" / "default.yaml"


def test_default_yaml_is_what_orient_config_prints_and_states_the_real_defaults():
    assert DEFAULT_YAML.read_text() == dump_defaults()
    assert yaml.safe_load(DEFAULT_YAML.read_text()) == OrientConfig().model_dump()


def test_flag_beats_environment_beats_file_beats_default(tmp_path):
    path = tmp_path / "night.yaml"
    path.write_text("autorotate:\n  batch_size: 8\n  max_error: 0.02\n  apply: lossless\n")
    env = {"ORIENT_AUTOROTATE__MAX_ERROR": "0.05", "ORIENT_AUTOROTATE__TTA": "false", "HOME": "/x"}
    cfg = load_config(path, {"autorotate": {"max_error": 0.001}}, environ=env).autorotate
    assert cfg.max_error == 0.001  # flag
    assert cfg.tta is False  # environment
    assert cfg.batch_size == 8 and cfg.apply == "lossless"  # file
    assert cfg.read_workers == 2  # default


def test_a_malformed_file_is_one_clear_error(tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text("autorotate:\n  apply: [lossless\n")
    with pytest.raises(ConfigError, match=r"not valid YAML at line \d+"):
        load_config(path)


def test_file_then_overrides(tmp_path):
    path = tmp_path / "night.yaml"
    path.write_text("autorotate:\n  threshold: 0.8\n  apply: lossless\n")
    cfg = load_config(path, {"autorotate": {"threshold": 0.95, "batch_size": None}}, environ={})
    assert cfg.autorotate.threshold == 0.95 and cfg.autorotate.apply == "lossless"
    assert cfg.autorotate.batch_size == 32


def test_typos_and_bad_values_are_rejected(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("autorotate:\n  treshold: 0.8\n")
    with pytest.raises(ValidationError, match="treshold"):
        load_config(path)
    with pytest.raises(ValidationError):
        load_config(None, {"autorotate": {"apply": "lossy"}})


def test_the_config_files_retrain_section_reaches_retraining(tmp_path):
    """How challengers train and the promotion gate come from the config's retrain section
    (file < environment < flags), never a value forced by the command."""
    from flows.cli import retraining_config

    assert retraining_config(None, {}).train.freeze == "early"  # the retraining default
    path = tmp_path / "orient.yaml"
    path.write_text("train:\n  epochs: 2\nretrain:\n  freeze: none\n  margin: 0.02\n")
    conf = retraining_config(path, {})
    assert conf.train.freeze == "none" and conf.train.epochs == 2 and conf.retrain.margin == 0.02
    assert retraining_config(path, {"freeze": "early", "epochs": 3}).train.freeze == "early"
    assert retraining_config(path, {"freeze": None}).train.epochs == 2
