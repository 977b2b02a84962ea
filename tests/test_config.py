"""The archivist's config file states the real defaults, and overrides win."""

from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError

from orient_model.config import OrientConfig, load_config

DEFAULT_YAML = Path(__file__).parents[1] / "configs" / "default.yaml"


def test_default_yaml_matches_the_code_defaults():
    assert yaml.safe_load(DEFAULT_YAML.read_text()) == OrientConfig().model_dump()


def test_file_then_overrides(tmp_path):
    path = tmp_path / "night.yaml"
    path.write_text("autorotate:\n  threshold: 0.8\n  apply: lossless\n")
    cfg = load_config(path, {"autorotate": {"threshold": 0.95, "batch_size": None}})
    assert cfg.autorotate.threshold == 0.95 and cfg.autorotate.apply == "lossless"
    assert cfg.autorotate.batch_size == 32


def test_typos_and_bad_values_are_rejected(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("autorotate:\n  treshold: 0.8\n")
    with pytest.raises(ValidationError, match="treshold"):
        load_config(path)
    with pytest.raises(ValidationError):
        load_config(None, {"autorotate": {"apply": "lossy"}})
