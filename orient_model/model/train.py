"""The training loop, torchvision-reference style: read it top to bottom.

``fit`` trains with a validation pass per epoch and early stopping. Two ways, one loop:

* ``freeze: none`` fine-tunes the whole network on augmented copies (a GPU's way);
* ``freeze: early`` keeps the first stages as pretrained, runs every augmented training copy
  through them once per cached pass, and trains the later stages and the head on those cached
  features: on a CPU about five times faster per image, since the early high-resolution stages
  cost the most and learn the least about orientation.

Then the model is judged on whole photos it never learnt from, in all four orientations and
every way of looking (:mod:`orient_model.model.evaluate`): calibration photos give each way its
temperature and its risk-coverage curve (the certified threshold), test photos the held-out
figures for the card. Progress goes to a callback so any front end (terminal, Prefect) can
show it.
"""

from __future__ import annotations

import copy
import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from orient_model.config import TrainConfig
from orient_model.errors import OrientError
from orient_model.model.architectures import ARCHS, build_model, split_stages
from orient_model.model.calibration import (
    expected_calibration_error,
    fit_temperature,
    nll,
)
from orient_model.model.data import CopiesDataset
from orient_model.model.device import resolve_device
from orient_model.model.engine import TorchEngine
from orient_model.model.evaluate import calibrate_and_test, lookings_for
from orient_model.model.predict import Predictor, voted_logits
from orient_model.model.registry import LoadedModel

# (message, fraction done, whether the message is a milestone worth always showing)
Progress = Callable[[str, float, bool], None]


class TrainingError(OrientError):
    """Training cannot start or go on; the message says why."""


@dataclass
class EvalResult:
    loss: float
    accuracy: float
    logits: torch.Tensor
    labels: torch.Tensor


@dataclass
class FitResult:
    model: nn.Module
    temperature: float
    tta_temperature: float
    device: str
    epochs_run: int
    best_epoch: int
    train_seconds: float
    history: list[dict] = field(default_factory=list)
    metrics: dict = field(default_factory=dict)
    calibration: dict = field(default_factory=dict)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def train_one_epoch(model, loader, optimizer, scheduler, criterion, device, scaler, cfg, progress, epoch):
    """One pass over the training data (or ``max_steps_per_epoch`` batches of it)."""
    model.train()
    total = math.ceil(len(loader.dataset) / loader.batch_size)
    steps = min(total, cfg.max_steps_per_epoch or total)
    running, seen, t0 = 0.0, 0, time.perf_counter()
    for step, (inputs, labels) in enumerate(loader):
        if step >= steps:
            break
        inputs = inputs.to(device, non_blocking=True).float()
        if cfg.channels_last:
            inputs = inputs.contiguous(memory_format=torch.channels_last)
        labels = labels.to(device, non_blocking=True)
        with torch.autocast(device.type, enabled=scaler.is_enabled()):
            loss = criterion(model(inputs), labels)
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        scheduler.step()
        running += float(loss.detach()) * len(labels)
        seen += len(labels)
        if progress:
            progress(
                f"epoch {epoch + 1}: step {step + 1}/{steps}, loss {running / seen:.3f}",
                (epoch + (step + 1) / steps) / cfg.epochs,
                False,
            )
    return {"train_loss": running / max(seen, 1), "images_per_s": seen / (time.perf_counter() - t0)}


@torch.no_grad()
def evaluate(model, loader, criterion, device) -> EvalResult:
    model.eval()
    all_logits, all_labels = [], []
    for images, labels in loader:
        all_logits.append(model(images.to(device)).float().cpu())
        all_labels.append(labels)
    logits, labels = torch.cat(all_logits), torch.cat(all_labels)
    return EvalResult(
        loss=float(criterion(logits, labels)),
        accuracy=float((logits.argmax(1) == labels).float().mean()),
        logits=logits,
        labels=labels,
    )


@torch.no_grad()
def evaluate_voted(model, loader, device) -> EvalResult:
    """Validation with test-time voting over the four quarter turns (see predict.voted_logits)."""
    model.eval()
    all_logits, all_labels = [], []
    for images, labels in loader:
        all_logits.append(voted_logits(TorchEngine(model, device), images).cpu())
        all_labels.append(labels)
    logits, labels = torch.cat(all_logits), torch.cat(all_labels)
    return EvalResult(
        float(nn.functional.cross_entropy(logits, labels)),
        float((logits.argmax(1) == labels).float().mean()),
        logits,
        labels,
    )


def load_data(data_dir: Path, cfg: TrainConfig, input_size: int, mean, std, sources: set[str] | None = None):
    train_set = CopiesDataset(
        data_dir, "train", input_size, mean, std, train=True, scan_look=cfg.scan_look, sources=sources
    )
    val_set = CopiesDataset(data_dir, "val", input_size, mean, std, train=False)
    if len(train_set) == 0:
        raise TrainingError(
            f"no training copies under {Path(data_dir) / 'train'}; run make-training-set first"
        )
    if len(val_set) == 0:
        raise TrainingError(
            f"no validation copies under {Path(data_dir) / 'val'}; add photos or raise val_fraction"
        )
    gen = torch.Generator().manual_seed(cfg.seed)
    common = dict(
        num_workers=cfg.workers, pin_memory=torch.cuda.is_available(), persistent_workers=cfg.workers > 0
    )
    train_loader = DataLoader(
        train_set, batch_size=cfg.batch_size, shuffle=True, drop_last=False, generator=gen, **common
    )
    val_loader = DataLoader(val_set, batch_size=cfg.batch_size * 2, shuffle=False, **common)
    return train_loader, val_loader


def validation_metrics(result: EvalResult, temperature: float) -> dict:
    """Single-view figures on the validation copies (per class, confusion, calibration)."""
    probs = (result.logits / temperature).softmax(1)
    preds = probs.argmax(1)
    confusion = torch.zeros(4, 4, dtype=torch.long)
    for t, p in zip(result.labels, preds, strict=True):
        confusion[t, p] += 1
    per_class = (confusion.diag().float() / confusion.sum(1).clamp(min=1).float()).tolist()
    return {
        "val_accuracy": float((preds == result.labels).float().mean()),
        "val_per_class_accuracy": dict(zip(["0", "90", "180", "270"], per_class, strict=True)),
        "confusion_matrix": confusion.tolist(),
        "val_nll_before_calibration": nll(result.logits, result.labels, 1.0),
        "val_nll": nll(result.logits, result.labels, temperature),
        "ece_before_calibration": expected_calibration_error(result.logits.softmax(1), result.labels),
        "ece": expected_calibration_error(probs, result.labels),
        "val_images": len(result.labels),
    }


@torch.inference_mode()
def cache_features(
    early: nn.Module,
    loader: DataLoader,
    passes: int,
    device,
    progress: Progress | None,
    what: str = "training",
    dtype: torch.dtype = torch.float16,
) -> TensorDataset:
    """Every copy, augmented afresh on each pass, through the frozen early stages (training
    copies in half precision: about 30 kB a copy for efficientnet_lite0 at 224 px)."""
    early.eval()
    feats, labels = [], []
    total = passes * len(loader)
    for p in range(passes):
        for i, (images, y) in enumerate(loader):
            x = images.to(device).contiguous(memory_format=torch.channels_last)
            feats.append(early(x).to(dtype).cpu())
            labels.append(y)
            if progress:
                progress(
                    f"caching {what} features: pass {p + 1}/{passes}, batch {i + 1}/{len(loader)}",
                    0.0,
                    (p * len(loader) + i + 1) == total,
                )
    return TensorDataset(torch.cat(feats), torch.cat(labels))


def fit(
    data_dir: Path,
    cfg: TrainConfig,
    progress: Progress | None = None,
    photos: dict | None = None,
    sources: set[str] | None = None,
    judge_copies: bool = True,
) -> FitResult:
    """Train ``cfg.arch`` on the copies in ``data_dir``; returns the best model, calibrated.

    ``photos`` maps ``calib`` and ``test`` to lists of (path, kinds) of whole photos the model
    never learns from; without calibration photos the validation copies give the temperatures
    and there is no certified threshold. ``sources`` trains on those photos' copies only;
    ``judge_copies=False`` skips voting over the validation copies (a caller judging whole photos).
    """
    seed_everything(cfg.seed)
    device = resolve_device(cfg.device)
    spec = ARCHS[cfg.arch]
    input_size = cfg.input_size or spec.input_size
    train_loader, val_loader = load_data(data_dir, cfg, input_size, spec.mean, spec.std, sources)
    model = build_model(cfg.arch, weights=cfg.weights).to(device)
    if cfg.channels_last:
        model = model.to(memory_format=torch.channels_last)
    start = time.perf_counter()
    if cfg.freeze == "early":
        early, late = split_stages(model)
        for p in early.parameters():
            p.requires_grad_(False)
        cached = cache_features(early, train_loader, cfg.cache_passes, device, progress)
        gen = torch.Generator().manual_seed(cfg.seed)
        train_loader = DataLoader(cached, batch_size=cfg.batch_size, shuffle=True, generator=gen)
        trained, trainable = late, [p for p in late.parameters() if p.requires_grad]
        # The validation copies are not augmented: through the frozen stages once, in full
        # precision (late(early(x)) == model(x)), not again every epoch.
        val_features = cache_features(early, val_loader, 1, device, progress, "validation", torch.float32)
        judged, judged_loader = late, DataLoader(val_features, batch_size=val_loader.batch_size)
    else:
        trained, trainable = model, list(model.parameters())
        judged, judged_loader = model, val_loader
    steps_per_epoch = min(len(train_loader), cfg.max_steps_per_epoch or len(train_loader))
    optimizer = torch.optim.AdamW(trainable, lr=cfg.lr, weight_decay=cfg.weight_decay)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=cfg.lr, total_steps=cfg.epochs * steps_per_epoch, pct_start=0.15
    )
    criterion = nn.CrossEntropyLoss(label_smoothing=cfg.label_smoothing)
    scaler = torch.amp.GradScaler(device.type, enabled=cfg.amp and device.type == "cuda")

    best_state, best_key, best_epoch, stale = None, None, 0, 0
    history: list[dict] = []
    for epoch in range(cfg.epochs):
        stats = train_one_epoch(
            trained, train_loader, optimizer, scheduler, criterion, device, scaler, cfg, progress, epoch
        )
        val = evaluate(judged, judged_loader, nn.CrossEntropyLoss(), device)
        history.append({"epoch": epoch + 1, **stats, "val_loss": val.loss, "val_accuracy": val.accuracy})
        if progress:
            progress(
                f"epoch {epoch + 1}/{cfg.epochs}: train loss {stats['train_loss']:.3f}, "
                f"val loss {val.loss:.3f}, val accuracy {val.accuracy:.1%}, {stats['images_per_s']:.1f} images/s",
                (epoch + 1) / cfg.epochs,
                True,
            )
        key = (val.accuracy, -val.loss)
        if best_key is None or key > best_key:
            best_state, best_key, best_epoch, stale = copy.deepcopy(model.state_dict()), key, epoch + 1, 0
        else:
            stale += 1
            if stale >= cfg.patience:
                if progress:
                    progress(f"early stop: no validation gain for {stale} epochs", 1.0, True)
                break
    train_seconds = time.perf_counter() - start
    model.load_state_dict(best_state)
    model = model.to(memory_format=torch.contiguous_format).eval()
    final = evaluate(judged, judged_loader, nn.CrossEntropyLoss(), device)
    temperature = fit_temperature(final.logits, final.labels)
    result = FitResult(
        model.cpu(),
        temperature,
        temperature,
        str(device),
        len(history),
        best_epoch,
        train_seconds,
        history,
        validation_metrics(final, temperature),
    )
    if photos and photos.get("calib"):
        judge_on_photos(result, cfg, input_size, photos, progress)
    elif (
        judge_copies
    ):  # no calibration photos (small sets): the validation copies stand in, no certified threshold
        voted = evaluate_voted(model, val_loader, device)
        result.tta_temperature = fit_temperature(voted.logits, voted.labels)
        result.metrics["val_accuracy_tta"] = voted.accuracy
    return result


def judge_on_photos(
    result: FitResult,
    cfg: TrainConfig,
    input_size: int,
    photos: dict,
    progress: Progress | None = None,
    max_error: float = 0.01,
) -> None:
    """Calibrate on the calibration photos, then measure on the test photos (whole photos, all
    four orientations): fills ``result.calibration`` and the ``test_*`` metrics."""
    spec = ARCHS[cfg.arch]
    loaded = LoadedModel(
        result.model,
        cfg.arch,
        input_size,
        spec.mean,
        spec.std,
        result.temperature,
        "candidate",
        {},
        result.tta_temperature,
        cfg.views,
    )
    predictor = Predictor(loaded, device=cfg.device, engine="auto")

    def say(what: str):
        return (
            None
            if progress is None
            else (
                lambda i, n: (
                    progress(f"judging {what} photos: {i}/{n}", 1.0, i == n)
                    if i % 50 == 0 or i == n
                    else None
                )
            )
        )

    result.calibration, test = calibrate_and_test(predictor, photos, lookings_for(cfg.views), max_error, say)
    if test:
        result.metrics["test"] = test
