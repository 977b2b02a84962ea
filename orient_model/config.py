"""Configuration: one pydantic model per job, read from YAML, every value overridable.

``configs/default.yaml`` spells out these defaults for archivists; a test keeps the two equal.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class TrainingSetConfig(_Section):
    copy_size: int = Field(256, ge=32, description="side in px of the square training copies")
    crops_per_photo: int = Field(1, ge=1, le=5, description="square crops taken along a photo's long side")
    val_fraction: float = Field(0.2, ge=0.0, lt=1.0, description="share of source photos held out")
    jpeg_quality: int = Field(92, ge=50, le=100, description="quality of every copy (4:4:4, same encoder)")
    max_pixels: int = Field(250_000_000, description="refuse larger sources (decompression bombs)")


class TrainConfig(_Section):
    arch: Literal["efficientnet_lite0", "tiny"] = "efficientnet_lite0"
    weights: str = Field("auto", description="auto | package | timm | none | path to a state dict file")
    input_size: int | None = Field(None, description="model input side in px; None = the architecture's")
    epochs: int = Field(8, ge=1)
    batch_size: int = Field(32, ge=1)
    lr: float = Field(1e-3, gt=0)
    weight_decay: float = Field(1e-4, ge=0)
    label_smoothing: float = Field(0.0, ge=0, lt=1)
    patience: int = Field(3, ge=1, description="epochs without validation gain before stopping early")
    device: Literal["auto", "cpu", "cuda"] = "auto"
    amp: bool = Field(True, description="mixed precision on CUDA")
    channels_last: bool = True
    workers: int = Field(2, ge=0, description="data loader processes")
    seed: int = 0
    max_steps_per_epoch: int | None = Field(None, description="cap for quick runs; None = whole split")


class AutorotateConfig(_Section):
    model: str = Field("default", description="'default' (shipped), a registry version folder or a .pt file")
    threshold: float = Field(0.9, ge=0, le=1, description="confidence needed to rotate without review (0 = never flag)")
    apply: Literal["lossless", "exif", "none"] = "none"
    batch_size: int = Field(32, ge=1)
    device: Literal["auto", "cpu", "cuda"] = "auto"
    tta: bool = Field(True, description="vote over the four rotated views")
    saliency: Literal["guided", "gradient", "off"] = "guided"
    thumbnail_size: int = Field(256, ge=32)
    max_pixels: int = Field(250_000_000, description="refuse larger images (decompression bombs)")
    read_workers: int = Field(2, ge=1, description="threads decoding photos ahead of the model")


class OrientConfig(_Section):
    training_set: TrainingSetConfig = TrainingSetConfig()
    train: TrainConfig = TrainConfig()
    autorotate: AutorotateConfig = AutorotateConfig()


def load_config(path: Path | str | None = None, overrides: dict[str, dict[str, Any]] | None = None) -> OrientConfig:
    """Defaults, then the YAML file, then explicit overrides (None values are ignored)."""
    data: dict[str, Any] = {}
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"config file not found: {path}")
        data = yaml.safe_load(path.read_text()) or {}
    for section, values in (overrides or {}).items():
        data.setdefault(section, {}).update({k: v for k, v in values.items() if v is not None})
    return OrientConfig.model_validate(data)


def dump_defaults() -> str:
    return yaml.safe_dump(OrientConfig().model_dump(), sort_keys=False)
