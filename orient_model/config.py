"""Configuration: one pydantic model per job, the single source of every setting.

Each field's default and description are written once, here. The command line's options, their
help and the defaults ``--help`` shows are derived from these fields (``flows/cli/``), and so
is the commented YAML that ``orient config`` prints (``configs/default.yaml`` is that output; a
test keeps the two equal). One precedence rule, in :func:`load_config`:

    command-line flag  >  environment (ORIENT_<SECTION>__<SETTING>)  >  config file  >  default
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field

from orient_model.errors import OrientError

ENV_PREFIX = "ORIENT_"


# The defaults every part of orient shares (commands, flows, library functions), written once.
MAX_ERROR = 0.01  # error allowed among automatic decisions, certified at 95% confidence
MARGIN = 0.005  # accuracy a challenger must gain over the champion


class ConfigError(OrientError):
    """A config file or setting that cannot be used; the message names it."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class TrainingSetConfig(_Section):
    """orient make-training-set"""

    copy_size: int = Field(256, ge=32, description="side in px of the square training copies")
    crops_per_photo: int = Field(
        3,
        ge=1,
        le=5,
        description="square crops taken along each photo's long side (one for a photo within 10% of square)",
    )
    val_fraction: float = Field(0.1, ge=0.0, lt=1.0, description="share of photos for early stopping")
    calibration_fraction: float = Field(
        0.2, ge=0.0, lt=1.0, description="share of photos for calibration and the certified threshold"
    )
    test_fraction: float = Field(
        0.1, ge=0.0, lt=1.0, description="share of photos held out for the card's figures"
    )
    held_out_dirs: list[str] = Field(
        default_factory=list, description="folders whose photos are only ever test photos (other sources)"
    )
    jpeg_quality: int = Field(
        92, ge=50, le=100, description="quality of every copy (JPEG 4:4:4, one encoder)"
    )
    max_pixels: int = Field(250_000_000, ge=1, description="refuse larger sources (decompression bombs)")


class TrainConfig(_Section):
    """orient train"""

    arch: Literal["efficientnet_lite0", "efficientnet_lite2", "tiny"] = Field(
        "efficientnet_lite0",
        description="network: efficientnet_lite0 / lite2 (ImageNet start) or tiny (tests)",
    )
    weights: str = Field("auto", description="auto | package | timm | none | path to a state dict file")
    input_size: int | None = Field(
        None, ge=16, description="model input side in px (null: the network's own)"
    )
    epochs: int = Field(8, ge=1, description="at most; early stopping may end sooner")
    batch_size: int = Field(32, ge=1, description="images per optimiser step")
    lr: float = Field(1e-3, gt=0, description="peak learning rate (one-cycle schedule, AdamW)")
    weight_decay: float = Field(1e-4, ge=0, description="AdamW weight decay")
    label_smoothing: float = Field(0.0, ge=0, lt=1, description="label smoothing of the training loss")
    patience: int = Field(3, ge=1, description="epochs without validation gain before stopping early")
    device: Literal["auto", "cpu", "cuda"] = Field(
        "auto", description="auto (the GPU when present) | cpu | cuda"
    )
    amp: bool = Field(True, description="mixed precision on the GPU")
    channels_last: bool = Field(True, description="channels-last memory layout (faster convolutions)")
    workers: int = Field(2, ge=0, description="data loader processes")
    seed: int = Field(0, description="random seed (shuffling, augmentation, initialisation)")
    max_steps_per_epoch: int | None = Field(
        None, ge=1, description="cap for quick trial runs (null: the whole split)"
    )
    freeze: Literal["none", "early"] = Field(
        "none", description="early: keep the first stages as pretrained, train the rest on cached features"
    )
    cache_passes: int = Field(
        4, ge=1, description="augmented passes over the copies to cache (with freeze: early)"
    )
    frozen_stages: int = Field(
        4,
        ge=1,
        le=6,
        description="EfficientNet stages kept as pretrained (with freeze: early): 4 ends at stride 16",
    )
    max_train_photos: int | None = Field(
        None,
        ge=1,
        description="training photos used at most (a seeded random choice: trials, learning curves); null: all",
    )
    max_val_photos: int | None = Field(
        1000,
        ge=1,
        description="validation photos used at most (their copies: early stopping); null: all",
    )
    max_calibration_photos: int | None = Field(
        2000,
        ge=1,
        description="calibration photos used at most (temperatures, certified threshold); null: all",
    )
    scan_look: float = Field(1.0, ge=0.0, le=2.0, description="strength of scanned-print effects (0: none)")
    teacher: str | None = Field(
        None,
        description="learn a model's vote too (distillation, with freeze: early): default | a version folder | a file",
    )
    teacher_weight: float = Field(
        0.5,
        ge=0.0,
        le=1.0,
        description="share of the teacher's vote in each copy's target (the rest: its label)",
    )
    views: int = Field(
        3, ge=1, le=3, description="square views along the long side that prediction votes over"
    )
    int8: bool = Field(
        True, description="also an 8-bit network for CPUs, calibrated on its own (a second judging pass)"
    )
    insight: bool = Field(
        True, description="write the model's insight page (orient explain) on its test and calibration photos"
    )


class AutorotateConfig(_Section):
    """orient autorotate / orient serve"""

    model: str = Field(
        "current", description="current (promoted, else shipped) | default (shipped) | a version | a file"
    )
    models_dir: str | None = Field(
        None, description="the model registry (null: ORIENT_MODELS_DIR, else your data dir)"
    )
    max_error: float = Field(
        MAX_ERROR,
        gt=0,
        lt=1,
        description="error allowed among automatic decisions (certified, 95% confidence)",
    )
    threshold: float | None = Field(
        None, ge=0, le=1, description="a fixed confidence to act alone instead of max_error (0: never flag)"
    )
    apply: Literal["lossless", "exif", "none"] = Field(
        "none", description="none (report only) | lossless | exif: how confident decisions are carried out"
    )
    batch_size: int = Field(32, ge=1, description="photos per model batch")
    device: Literal["auto", "cpu", "cuda"] = Field(
        "auto", description="auto (the GPU when present) | cpu | cuda"
    )
    engine: Literal["auto", "onnxruntime-int8", "openvino", "onnxruntime", "torch"] = Field(
        "auto",
        description="what runs the network on a CPU: auto picks the fastest verified engine "
        "(the model's calibrated 8-bit network when it has one)",
    )
    tta: bool = Field(True, description="also look at each view turned four ways, and vote")
    views: int | None = Field(
        None,
        ge=1,
        le=3,
        description="square views along the long side (null: the model's own; 2: the two ends, a third fewer passes)",
    )
    glance: bool = Field(
        False,
        description="faster: glance at the centre view first, the whole photo only when unsure",
    )
    saliency: Literal["gradcam", "guided", "gradient", "off"] = Field(
        "gradcam", description="evidence drawn for flagged photos: gradcam | guided | gradient | off"
    )
    thumbnail_size: int = Field(256, ge=32, description="side in px of the pictures of flagged photos")
    max_pixels: int = Field(250_000_000, ge=1, description="refuse larger images (decompression bombs)")
    read_workers: int = Field(2, ge=1, description="threads decoding photos ahead of the model")
    chunks_ahead: int = Field(
        1, ge=1, description="chunks of 64 photos predicted ahead of the one being written"
    )
    dask_address: str | None = Field(
        None, description="a Dask scheduler (tcp://host:8786) to predict on its workers (null: here)"
    )


class RetrainConfig(_Section):
    """orient retrain / orient bootstrap / the weekly retraining: how challengers are trained and the promotion gate"""

    max_error: float = Field(
        MAX_ERROR,
        gt=0,
        lt=1,
        description="error target at which the challenger must certify at least the champion's coverage",
    )
    margin: float = Field(MARGIN, ge=0, lt=1, description="accuracy a challenger must gain over the champion")
    freeze: Literal["none", "early"] = Field(
        "early",
        description="how challengers train: early keeps the first stages as pretrained (5x faster on a CPU)",
    )
    trust_upright: bool = Field(False, description="do not check the upright folders with the current model")


class OrientConfig(_Section):
    training_set: TrainingSetConfig = TrainingSetConfig()
    train: TrainConfig = TrainConfig()
    retrain: RetrainConfig = RetrainConfig()
    autorotate: AutorotateConfig = AutorotateConfig()


SECTIONS: dict[str, type[_Section]] = {
    "training_set": TrainingSetConfig,
    "train": TrainConfig,
    "retrain": RetrainConfig,
    "autorotate": AutorotateConfig,
}


def read_config_file(path: Path | str) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ConfigError(
            f"config file {path} is not valid YAML{where}: {getattr(exc, 'problem', exc)}"
        ) from None
    if data is None:
        return {}
    if not isinstance(data, dict) or any(not isinstance(v, dict | None) for v in data.values()):
        raise ConfigError(f"config file {path} must map sections ({', '.join(SECTIONS)}) to settings")
    return {k: v or {} for k, v in data.items()}


def environment_settings(environ: dict[str, str] | None = None) -> dict[str, dict[str, Any]]:
    """Settings from ORIENT_<SECTION>__<SETTING> variables, values read as YAML (0.8, true, [a, b])."""
    out: dict[str, dict[str, Any]] = {}
    for name, raw in (os.environ if environ is None else environ).items():
        if not name.startswith(ENV_PREFIX) or "__" not in name:
            continue
        section, _, setting = name[len(ENV_PREFIX) :].lower().partition("__")
        try:
            value = yaml.safe_load(raw)
        except yaml.YAMLError:
            value = raw
        out.setdefault(section, {})[setting] = value
    return out


def load_config(
    path: Path | str | None = None,
    overrides: dict[str, dict[str, Any]] | None = None,
    environ: dict[str, str] | None = None,
) -> OrientConfig:
    """Defaults < config file < environment < explicit overrides (a None override means unset)."""
    data: dict[str, Any] = read_config_file(path) if path is not None else {}
    for layer in (environment_settings(environ), overrides or {}):
        for section, values in layer.items():
            data.setdefault(section, {}).update({k: v for k, v in values.items() if v is not None})
    return OrientConfig.model_validate(data)


def _yaml_value(value: Any) -> str:
    return yaml.safe_dump(value, default_flow_style=True).strip().removesuffix("...").strip()


def dump_defaults() -> str:
    """The defaults as commented YAML, every setting with its description (configs/default.yaml)."""
    lines = [
        "# orient configuration: the defaults, spelled out. Copy this file, change what you need and",
        "# pass it with --config. Any value can also be given on the command line (--setting-name) or in",
        "# the environment (ORIENT_<SECTION>__<SETTING>); a flag wins over the environment, which wins",
        "# over the file.",
        "",
    ]
    for name, section in SECTIONS.items():
        lines.append(f"{name + ':':<30}# {section.__doc__.strip()}")
        for field, info in section.model_fields.items():
            default = info.get_default(call_default_factory=True)
            entry = f"  {field}: {_yaml_value(default)}"
            lines.append(f"{entry + ' ':<30}# {info.description}")  # a comment needs a space before it
        lines.append("")
    return "\n".join(lines)
