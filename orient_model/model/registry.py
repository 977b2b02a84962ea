"""The model registry: one version folder per trained model, a plain checkpoint and a card.

``MODELS_DIR/<version>/model.pt`` holds only plain types (loads with ``weights_only=True``);
``card.json`` says what the model is, what it was trained on and how well it does.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import os
import platform
import time
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import torch
from torch import nn

from orient_model.config import TrainConfig
from orient_model.errors import ModelLoadError, OrientError
from orient_model.files import atomic_write_bytes, sha256_file
from orient_model.model.architectures import ARCHS, NUM_CLASSES, build_model
from orient_model.model.card import CARD_FILE, read_card, write_card

CHECKPOINT_FORMAT = "orient-model/1"
DEFAULT_MODEL_DIR = Path(__file__).parents[1] / "default_model"
# Settings that change where or how fast training runs, not what it learns.
_NOT_IN_KEY = {
    "device",
    "workers",
    "amp",
    "channels_last",
    "int8",
    "insight",
}  # the weights do not depend on them


@dataclass
class LoadedModel:
    model: nn.Module
    arch: str
    input_size: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    temperature: float
    version: str
    card: dict
    tta_temperature: float = 1.0
    views: int = 1  # square views along the long side that prediction votes over
    path: Path | None = None  # the checkpoint it was loaded from

    @property
    def calibration(self) -> dict:
        """Per way of looking (``views=V,tta=B``): temperature and risk-coverage curve."""
        return self.card.get("calibration") or {}

    def run_by(self, engine: str) -> LoadedModel:
        """The model as a given engine runs it: an 8-bit network has its own calibration and
        test figures (``int8`` in the card), which then stand for the card's own."""
        entry = self.card.get("int8") if engine == "onnxruntime-int8" else None
        if not entry:
            return self
        return dataclasses.replace(
            self,
            card={**self.card, "calibration": entry.get("calibration", {}), "test": entry.get("test", {})},
        )

    def temperature_for(self, looking) -> float:
        entry = self.calibration.get(looking.key)
        if entry is not None:
            return float(entry["temperature"])
        return self.tta_temperature if looking.tta else self.temperature


def learning_settings(settings: dict) -> dict:
    """The settings of a training config (``model_dump()``) that its model's weights depend on."""
    return {k: v for k, v in settings.items() if k not in _NOT_IN_KEY}


def training_key(manifest_sha256: str, cfg: TrainConfig) -> str:
    """Identity of a training run: same manifest and same learning settings -> same model."""
    settings = learning_settings(cfg.model_dump())
    if settings.get("teacher"):  # its weights, not its name: a later "default" is another teacher
        settings["teacher"] = sha256_file(resolve_model_path(settings["teacher"]))
    blob = json.dumps({"manifest": manifest_sha256, "config": settings}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()


def package_versions() -> dict[str, str]:
    names = ["orient", "torch", "torchvision", "timm", "pillow", "numpy", "prefect"]
    out = {"python": platform.python_version()}
    for name in names:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return out


def find_trained(models_dir: Path, key: str) -> Path | None:
    """The newest version folder whose card carries this training key."""
    models_dir = Path(models_dir)
    if not models_dir.is_dir():
        return None
    for folder in sorted(models_dir.iterdir(), reverse=True):
        card = folder / CARD_FILE
        if card.is_file() and (folder / "model.pt").is_file():
            try:
                if read_card(card).training_key == key:
                    return folder
            except ModelLoadError:
                continue
    return None


def save_model(
    models_dir: Path,
    model: nn.Module,
    arch: str,
    input_size: int,
    temperature: float,
    card: dict,
    half: bool = False,
    tta_temperature: float = 1.0,
    views: int = 1,
) -> Path:
    """Write a new version folder (checkpoint first, card last: a card means a complete model)."""
    spec = ARCHS[arch]
    version = time.strftime("%Y%m%d-%H%M%S") + "-" + card.get("training_key", "manual")[:8]
    folder = Path(models_dir) / version
    folder.mkdir(parents=True, exist_ok=False)
    state = {
        k: (v.half() if half and v.is_floating_point() else v).clone() for k, v in model.state_dict().items()
    }
    checkpoint = {
        "format": CHECKPOINT_FORMAT,
        "arch": arch,
        "num_classes": NUM_CLASSES,
        "input_size": input_size,
        "mean": list(spec.mean),
        "std": list(spec.std),
        "classes": [0, 90, 180, 270],
        "temperature": float(temperature),
        "tta_temperature": float(tta_temperature),
        "views": int(views),
        "state_dict": state,
    }
    buf = io.BytesIO()
    torch.save(checkpoint, buf)
    atomic_write_bytes(folder / "model.pt", buf.getvalue())
    full_card = {
        "version": version,
        "architecture": arch,
        "input_size": input_size,
        "normalization": {"mean": list(spec.mean), "std": list(spec.std)},
        "classes": {
            "0": "upright",
            "90": "needs 90 deg clockwise",
            "180": "upside down",
            "270": "needs 270 deg clockwise",
        },
        "temperature": float(temperature),
        "tta_temperature": float(tta_temperature),
        "views": int(views),
        "package_versions": package_versions(),
        **card,
    }
    write_card(folder, full_card)
    return folder


def read_checkpoint(path: Path) -> dict:
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise ModelLoadError(f"model file not found: {path}") from None
    except Exception as exc:  # noqa: BLE001 - truncated zip, bad pickle, ...: all mean "corrupt"
        raise ModelLoadError(
            f"corrupt or unreadable checkpoint {path}: {type(exc).__name__}: {exc}"
        ) from None
    if not isinstance(checkpoint, dict) or checkpoint.get("format") != CHECKPOINT_FORMAT:
        raise ModelLoadError(
            f"{path} is not an orient model checkpoint (expected format {CHECKPOINT_FORMAT})"
        )
    return checkpoint


def default_models_dir() -> Path:
    """The model registry: ``ORIENT_MODELS_DIR``, else ``models`` in the user's data directory."""
    import os

    import platformdirs

    return Path(os.environ.get("ORIENT_MODELS_DIR") or Path(platformdirs.user_data_dir("orient")) / "models")


# ---------------------------------------------------------------------------- the current model

# {"version": the current one, "stack": promotions still in force (rollback pops one),
#  "log": every promotion and rollback, for the audit}
CURRENT_FILE = "current.json"


class PromotionRefused(OrientError):
    """A model that must not become current (it failed its quality gate, or does not exist)."""


def _current_record(models_dir: Path) -> dict:
    path = Path(models_dir) / CURRENT_FILE
    if not path.is_file():
        return {"version": None, "stack": [], "log": []}
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ModelLoadError(f"{path} is unreadable ({exc}); promote a model again to rewrite it") from None


def current_version(models_dir: Path | None = None) -> str | None:
    """The promoted model's version, or None when nothing was promoted (the shipped model serves).

    A version is a folder of the registry: a record naming anything else (a path, ``..``, a link
    out of the registry) is refused, so an edited ``current.json`` cannot slip in a foreign model."""
    models_dir = Path(models_dir or default_models_dir())
    version = _current_record(models_dir)["version"]
    if version is None:
        return None
    folder = models_dir / str(version)
    inside = (
        isinstance(version, str)
        and version not in ("", ".", "..")
        and "/" not in version
        and os.sep not in version
        and Path(os.path.realpath(folder)).parent == Path(os.path.realpath(models_dir))
    )
    if not inside:
        raise ModelLoadError(
            f"{models_dir / CURRENT_FILE} names {folder}, which is not a model of the registry "
            f"{models_dir}; promote a registered version (`orient models`) to rewrite it"
        )
    return version


def promote(version: str, models_dir: Path | None = None, why: str = "promoted by hand") -> dict:
    """Make ``version`` current, atomically; the previous one is kept for :func:`rollback`."""
    models_dir = Path(models_dir or default_models_dir())
    folder = models_dir / version
    card_path = folder / CARD_FILE
    if not (folder / "model.pt").is_file() or not card_path.is_file():
        raise PromotionRefused(f"no model {version!r} in {models_dir}; `orient models` lists them")
    card = read_card(card_path)
    if not card.passed_gate:
        reasons = card.quality_gate.reasons if card.quality_gate else []
        raise PromotionRefused(
            f"model {version} failed its quality gate ({'; '.join(reasons)}); it can never be current"
        )
    record = _current_record(models_dir)
    record["stack"].append(version)
    record["version"] = version
    record["log"].append({"version": version, "at": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "why": why})
    atomic_write_bytes(models_dir / CURRENT_FILE, json.dumps(record, indent=1).encode())
    return record


def rollback(models_dir: Path | None = None) -> str | None:
    """Make the model that was current before the present one current again (None: the shipped one)."""
    models_dir = Path(models_dir or default_models_dir())
    record = _current_record(models_dir)
    if not record["stack"]:
        raise PromotionRefused("nothing was promoted, so there is nothing to roll back")
    left = record["stack"].pop()
    previous = record["stack"][-1] if record["stack"] else None
    record["log"].append(
        {"version": previous, "at": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "why": f"rolled back from {left}"}
    )
    record["version"] = previous
    atomic_write_bytes(models_dir / CURRENT_FILE, json.dumps(record, indent=1).encode())
    return previous


def list_models(models_dir: Path | None = None) -> list[dict]:
    """Every registered version with its headline figures; ``current`` marks the promoted one."""
    models_dir = Path(models_dir or default_models_dir())
    current = current_version(models_dir) if models_dir.is_dir() else None
    out = []
    for folder in sorted(models_dir.iterdir()) if models_dir.is_dir() else []:
        card_path = folder / CARD_FILE
        if not card_path.is_file():
            continue
        card = read_card(card_path)
        test = next(iter(card.test.values()), {})
        promotion = card.promotion or {}
        out.append(
            {
                "version": folder.name,
                "current": folder.name == current,
                "architecture": card.architecture,
                "trained_at": card.trained_at,
                "test_accuracy": test.get("accuracy"),
                "coverage": test.get("coverage"),
                "quality_gate": card.passed_gate,
                "promotion": promotion.get("decision"),
                # the pages a person checks it by: how it sees, and its promotion's comparison
                "insight": str(folder / card.insight["page"]) if card.insight else None,
                "comparison": str(folder / page) if (page := promotion.get("page")) else None,
            }
        )
    return out


def resolve_model_path(ref: str | Path, models_dir: Path | None = None) -> Path:
    """'current' (the promoted model, else the shipped one), 'default' (the shipped one), a
    version folder, a model.pt file, or a version name inside the registry."""
    if str(ref) == "current":
        version = current_version(models_dir)
        if version is None:
            return DEFAULT_MODEL_DIR / "model.pt"
        return Path(models_dir or default_models_dir()) / version / "model.pt"
    if str(ref) == "default":
        return DEFAULT_MODEL_DIR / "model.pt"
    models_dir = Path(models_dir or default_models_dir())
    path = Path(ref)
    if path.is_dir():
        return path / "model.pt"
    if path.is_file():
        return path
    if (models_dir / str(ref) / "model.pt").is_file():
        return models_dir / str(ref) / "model.pt"
    raise ModelLoadError(
        f"no model at {ref}: give current, default, a version in {models_dir}, a version folder, "
        "or a model.pt file"
    )


def load_model(ref: str | Path, models_dir: Path | None = None) -> LoadedModel:
    """One call: a ready-to-run model (eval mode, float32, CPU) from a version folder or file."""
    path = resolve_model_path(ref, models_dir)
    checkpoint = read_checkpoint(path)
    model = build_model(checkpoint["arch"], weights="none", num_classes=checkpoint["num_classes"])
    state = {k: v.float() if v.is_floating_point() else v for k, v in checkpoint["state_dict"].items()}
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        raise ModelLoadError(
            f"checkpoint {path} does not match architecture {checkpoint['arch']}: {exc}"
        ) from None
    card_path = path.parent / CARD_FILE
    card = read_card(card_path).as_dict() if card_path.is_file() else {}
    return LoadedModel(
        model=model.eval(),
        arch=checkpoint["arch"],
        input_size=int(checkpoint["input_size"]),
        mean=tuple(checkpoint["mean"]),
        std=tuple(checkpoint["std"]),
        temperature=float(checkpoint["temperature"]),
        version=card.get("version", path.parent.name),
        card=card,
        tta_temperature=float(checkpoint.get("tta_temperature", 1.0)),
        views=int(checkpoint.get("views", 1)),
        path=path,
    )
