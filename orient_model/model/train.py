"""The training loop, torchvision-reference style: read it top to bottom.

``fit`` trains with a validation pass per epoch and early stopping, then fits the
temperature on the validation split. Progress goes to a callback so any front end
(terminal, Prefect) can show it.
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
from torch.utils.data import DataLoader

from orient_model.config import TrainConfig
from orient_model.errors import OrientError
from orient_model.model.architectures import ARCHS, build_model
from orient_model.model.calibration import expected_calibration_error, fit_temperature, nll
from orient_model.model.data import CopiesDataset
from orient_model.model.device import resolve_device
from orient_model.model.predict import voted_logits

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




def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def train_one_epoch(model, loader, optimizer, scheduler, criterion, device, scaler, cfg, progress, epoch):
    """One pass over the training split (or ``max_steps_per_epoch`` batches of it)."""
    model.train()
    total = math.ceil(len(loader.dataset) / loader.batch_size)
    steps = min(total, cfg.max_steps_per_epoch or total)
    running, seen, t0 = 0.0, 0, time.perf_counter()
    for step, (images, labels) in enumerate(loader):
        if step >= steps:
            break
        images = images.to(device, non_blocking=True)
        if cfg.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        labels = labels.to(device, non_blocking=True)
        with torch.autocast(device.type, enabled=scaler.is_enabled()):
            loss = criterion(model(images), labels)
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        scheduler.step()
        running += float(loss.detach()) * len(labels)
        seen += len(labels)
        if progress:
            progress(f"epoch {epoch + 1}: step {step + 1}/{steps}, loss {running / seen:.3f}",
                     (epoch + (step + 1) / steps) / cfg.epochs, False)
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
        all_logits.append(voted_logits(model, images.to(device)).cpu())
        all_labels.append(labels)
    logits, labels = torch.cat(all_logits), torch.cat(all_labels)
    return EvalResult(float(nn.functional.cross_entropy(logits, labels)),
                      float((logits.argmax(1) == labels).float().mean()), logits, labels)


def load_data(data_dir: Path, cfg: TrainConfig, input_size: int, mean, std):
    train_set = CopiesDataset(data_dir, "train", input_size, mean, std, train=True)
    val_set = CopiesDataset(data_dir, "val", input_size, mean, std, train=False)
    if len(train_set) == 0:
        raise TrainingError(f"no training copies under {Path(data_dir) / 'train'}; run make-training-set first")
    if len(val_set) == 0:
        raise TrainingError(f"no validation copies under {Path(data_dir) / 'val'}; add photos or raise val_fraction")
    gen = torch.Generator().manual_seed(cfg.seed)
    common = dict(num_workers=cfg.workers, pin_memory=torch.cuda.is_available(), persistent_workers=cfg.workers > 0)
    train_loader = DataLoader(train_set, batch_size=cfg.batch_size, shuffle=True, drop_last=False, generator=gen, **common)
    val_loader = DataLoader(val_set, batch_size=cfg.batch_size * 2, shuffle=False, **common)
    return train_loader, val_loader


def validation_metrics(result: EvalResult, temperature: float) -> dict:
    probs = (result.logits / temperature).softmax(1)
    preds = probs.argmax(1)
    confusion = torch.zeros(4, 4, dtype=torch.long)
    for t, p in zip(result.labels, preds):
        confusion[t, p] += 1
    per_class = (confusion.diag().float() / confusion.sum(1).clamp(min=1).float()).tolist()
    return {
        "val_accuracy": float((preds == result.labels).float().mean()),
        "val_per_class_accuracy": dict(zip(["0", "90", "180", "270"], per_class)),
        "confusion_matrix": confusion.tolist(),
        "val_nll_before_calibration": nll(result.logits, result.labels, 1.0),
        "val_nll": nll(result.logits, result.labels, temperature),
        "ece_before_calibration": expected_calibration_error(result.logits.softmax(1), result.labels),
        "ece": expected_calibration_error(probs, result.labels),
        "val_images": len(result.labels),
    }


def fit(data_dir: Path, cfg: TrainConfig, progress: Progress | None = None) -> FitResult:
    """Train ``cfg.arch`` on the copies in ``data_dir``; returns the best model, calibrated."""
    seed_everything(cfg.seed)
    device = resolve_device(cfg.device)
    spec = ARCHS[cfg.arch]
    input_size = cfg.input_size or spec.input_size
    train_loader, val_loader = load_data(data_dir, cfg, input_size, spec.mean, spec.std)
    model = build_model(cfg.arch, weights=cfg.weights).to(device)
    if cfg.channels_last:
        model = model.to(memory_format=torch.channels_last)
    steps_per_epoch = min(len(train_loader), cfg.max_steps_per_epoch or len(train_loader))
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=cfg.lr, total_steps=cfg.epochs * steps_per_epoch, pct_start=0.15
    )
    criterion = nn.CrossEntropyLoss(label_smoothing=cfg.label_smoothing)
    scaler = torch.amp.GradScaler(device.type, enabled=cfg.amp and device.type == "cuda")

    best_state, best_key, best_epoch, stale = None, None, 0, 0
    history: list[dict] = []
    start = time.perf_counter()
    for epoch in range(cfg.epochs):
        stats = train_one_epoch(
            model, train_loader, optimizer, scheduler, criterion, device, scaler, cfg, progress, epoch
        )
        val = evaluate(model, val_loader, nn.CrossEntropyLoss(), device)
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
    model = model.to(memory_format=torch.contiguous_format)
    final = evaluate(model, val_loader, nn.CrossEntropyLoss(), device)
    temperature = fit_temperature(final.logits, final.labels)
    voted = evaluate_voted(model, val_loader, device)
    tta_temperature = fit_temperature(voted.logits, voted.labels)
    metrics = validation_metrics(final, temperature)
    metrics.update({f"{k}_tta": v for k, v in validation_metrics(voted, tta_temperature).items()
                    if k in ("val_accuracy", "val_nll", "val_nll_before_calibration", "ece", "ece_before_calibration")})
    return FitResult(
        model=model.cpu().eval(),
        temperature=temperature,
        tta_temperature=tta_temperature,
        device=str(device),
        epochs_run=len(history),
        best_epoch=best_epoch,
        train_seconds=train_seconds,
        history=history,
        metrics=metrics,
    )
