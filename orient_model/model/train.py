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

import random
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader

from orient_model.config import MAX_ERROR, TrainConfig
from orient_model.errors import OrientError
from orient_model.model.architectures import ARCHS, build_model, split_stages
from orient_model.model.calibration import (
    expected_calibration_error,
    fit_temperature,
    nll,
)
from orient_model.model.card import ModelCard, QualityGate
from orient_model.model.checkpoint import RunState, load_checkpoint, resumed, save_checkpoint
from orient_model.model.data import CopiesDataset, photo_of
from orient_model.model.device import resolve_device
from orient_model.model.distil import full_look_temperature, mixed_targets, teacher_late_stages, vote_targets
from orient_model.model.engine import TorchEngine
from orient_model.model.evaluate import calibrate_and_test, lookings_for
from orient_model.model.feature_cache import CachedBatches, cached_features, copies_progress
from orient_model.model.predict import Predictor, voted_logits
from orient_model.model.promotion import quality_gate
from orient_model.model.registry import LoadedModel, load_model
from orient_model.model.train_costs import (
    capped_photos,
    capped_train_sources,
    capped_val_sources,
    duration,
    projected_run,
)

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
    interruptions: list[dict] = field(default_factory=list)

    def card(self, about: dict, key: str, photos: dict | None) -> ModelCard:
        """The run's model card: ``about`` (what it was given: sources, config, command), how the
        run went, its figures and calibration, and the quality gate they pass or fail."""
        card = ModelCard.model_validate(
            {
                **about,
                "training_key": key,
                "device": self.device,
                "epochs_run": self.epochs_run,
                "best_epoch": self.best_epoch,
                "training_seconds": round(self.train_seconds, 1),
                "interruptions": self.interruptions,
                "photos_judged": {split: len((photos or {}).get(split) or []) for split in ("calib", "test")},
                "history": self.history,
                **self.metrics,
                "calibration": self.calibration,
            }
        )
        card.quality_gate = QualityGate.model_validate(quality_gate(card.as_dict()))
        return card


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def train_one_epoch(model, loader, optimizer, scheduler, criterion, device, scaler, cfg, progress, epoch):
    """One pass over the training data (or ``max_steps_per_epoch`` batches of it)."""
    model.train()
    total = len(loader)
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
                f"epoch {epoch + 1}: step {step + 1}/{steps}, loss {running / seen:.3f}, "
                f"about {duration((time.perf_counter() - t0) / (step + 1) * (steps - step - 1))} "
                "left of this epoch",
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


def load_data(
    data_dir: Path,
    cfg: TrainConfig,
    input_size: int,
    mean,
    std,
    sources: set[str] | None = None,
    val_sources: set[str] | None = None,
):
    train_set = CopiesDataset(
        data_dir,
        "train",
        input_size,
        mean,
        std,
        train=True,
        scan_look=cfg.scan_look,
        sources=sources,
        numbered=cfg.freeze == "early",  # cached rows traced to their photos (a teacher's vote)
    )
    val_set = CopiesDataset(data_dir, "val", input_size, mean, std, train=False, sources=val_sources)
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


def fit(
    data_dir: Path,
    cfg: TrainConfig,
    progress: Progress | None = None,
    photos: dict | None = None,
    sources: set[str] | None = None,
    judge_copies: bool = True,
    run_dir: Path | None = None,
    resume: bool = False,
) -> FitResult:
    """Train ``cfg.arch`` on the copies in ``data_dir``; returns the best model, calibrated.

    ``photos`` maps ``calib`` and ``test`` to lists of (path, kinds) of whole photos the model
    never learns from; without calibration photos the validation copies give the temperatures
    and there is no certified threshold. ``sources`` trains on those photos' copies only;
    ``judge_copies=False`` skips voting over the validation copies (a caller judging whole photos).
    ``run_dir`` keeps the cached features and a checkpoint after every epoch; with ``resume``
    the run goes on from the last checkpoint there (a temporary folder without ``run_dir``).
    """
    threads = torch.get_num_threads()  # the run may choose fewer (see train_costs.fastest_threads)
    with tempfile.TemporaryDirectory(prefix="orient-train-") as scratch:
        run_dir = Path(run_dir) if run_dir else Path(scratch)
        try:
            return _fit(
                data_dir, cfg, progress, capped_photos(photos, cfg), sources, judge_copies, run_dir, resume
            )
        finally:
            torch.set_num_threads(threads)


def _fit(data_dir, cfg, progress, photos, sources, judge_copies, run_dir: Path, resume: bool) -> FitResult:
    seed_everything(cfg.seed)
    say = progress or (lambda message, fraction, milestone: None)
    device = resolve_device(cfg.device)
    spec = ARCHS[cfg.arch]
    input_size = cfg.input_size or spec.input_size
    val_sources = capped_val_sources(data_dir, cfg)
    if sources is None:
        sources = capped_train_sources(data_dir, cfg)
    train_loader, val_loader = load_data(data_dir, cfg, input_size, spec.mean, spec.std, sources, val_sources)
    model = build_model(cfg.arch, weights=cfg.weights).to(device)
    if cfg.channels_last:
        model = model.to(memory_format=torch.channels_last)
    checkpoint = load_checkpoint(run_dir)
    if checkpoint is not None and not resume:
        say(
            f"a stopped run's checkpoint (after epoch {checkpoint['epoch']}) is not resumed: starting over",
            0.0,
            True,
        )
        checkpoint = None
    elif resume and checkpoint is None:
        say("nothing to resume: no checkpoint of this run yet, starting from the first epoch", 0.0, True)
    start = time.perf_counter()
    if cfg.freeze == "early":
        early, late = split_stages(model, cfg.frozen_stages)
        for p in early.parameters():
            p.requires_grad_(False)
        # a teacher whose early stages differ is refused now, not after the caching
        teacher = load_teacher(cfg, early, input_size) if cfg.teacher else None
        if checkpoint is None:
            say(projected_run(early, late, train_loader, val_loader, photos, cfg, device), 0.0, True)
        else:
            torch.set_num_threads(checkpoint.get("threads") or torch.get_num_threads())
        train_cache, val_cache = cached_features(early, train_loader, val_loader, cfg, device, run_dir, say)
        if teacher is not None:
            train_cache.targets = teacher_targets(
                cfg, teacher, train_cache, train_loader.dataset, device, say
            )
            say(
                f"teacher {cfg.teacher}: {cfg.teacher_weight:.0%} of each copy's target is its vote",
                0.0,
                True,
            )
        seed_everything(cfg.seed)  # the epochs draw the same whether the features were made now or found
        shuffle = torch.Generator().manual_seed(cfg.seed)
        train_loader = CachedBatches(train_cache, cfg.batch_size, shuffle)
        trained, judged, judged_loader = late, late, CachedBatches(val_cache, val_loader.batch_size)
    else:
        if cfg.teacher:
            raise TrainingError("a teacher's vote is learnt from cached features: set freeze: early")
        shuffle = train_loader.generator
        trained, judged, judged_loader = model, model, val_loader
    trainable = [p for p in trained.parameters() if p.requires_grad]
    steps_per_epoch = min(len(train_loader), cfg.max_steps_per_epoch or len(train_loader))
    optimizer = torch.optim.AdamW(trainable, lr=cfg.lr, weight_decay=cfg.weight_decay)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=cfg.lr, total_steps=cfg.epochs * steps_per_epoch, pct_start=0.15
    )
    criterion = nn.CrossEntropyLoss(label_smoothing=cfg.label_smoothing)
    scaler = torch.amp.GradScaler(device.type, enabled=cfg.amp and device.type == "cuda")
    run = RunState()
    if checkpoint is not None:
        run = resumed(checkpoint, cfg, model, optimizer, scheduler, scaler, shuffle)
        say(
            f"resuming after epoch {run.epoch} of {cfg.epochs} (checkpoint of {checkpoint['saved_at']})",
            run.epoch / cfg.epochs,
            True,
        )
    for epoch in range(run.epoch, cfg.epochs):
        if run.stale >= cfg.patience:
            break
        epoch_start = time.perf_counter()
        stats = train_one_epoch(
            trained, train_loader, optimizer, scheduler, criterion, device, scaler, cfg, progress, epoch
        )
        val = evaluate(judged, judged_loader, nn.CrossEntropyLoss(), device)
        run.record(model, stats, val.accuracy, val.loss, time.perf_counter() - epoch_start)
        seconds = time.perf_counter() - start
        save_checkpoint(run_dir, run.checkpoint(cfg, model, optimizer, scheduler, scaler, shuffle, seconds))
        left = (cfg.epochs - epoch - 1) * run.history[-1]["seconds"]
        say(
            f"epoch {epoch + 1}/{cfg.epochs}: train loss {stats['train_loss']:.3f}, "
            f"val loss {val.loss:.3f}, val accuracy {val.accuracy:.1%}, {stats['images_per_s']:.1f} images/s; "
            f"checkpoint saved{f', about {duration(left)} of epochs left' if left else ''}",
            (epoch + 1) / cfg.epochs,
            True,
        )
        if run.stale >= cfg.patience:
            say(f"early stop: no validation gain for {run.stale} epochs", 1.0, True)
    train_seconds = run.seconds_before + time.perf_counter() - start
    model.load_state_dict(run.best_state)
    model = model.to(memory_format=torch.contiguous_format).eval()
    final = evaluate(judged, judged_loader, nn.CrossEntropyLoss(), device)
    temperature = fit_temperature(final.logits, final.labels)
    result = FitResult(
        model.cpu(),
        temperature,
        temperature,
        str(device),
        len(run.history),
        run.best_epoch,
        train_seconds,
        run.history,
        validation_metrics(final, temperature),
        interruptions=run.interruptions,
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


def load_teacher(cfg: TrainConfig, early, input_size: int):
    """The teacher's temperature for the full look and its later stages, which must read features
    of the same early stages as the student's (:func:`teacher_late_stages` says which tensor differs)."""
    with torch.random.fork_rng(devices=[]):  # building it draws nothing from the run's generator
        teacher = load_model(cfg.teacher)
    return full_look_temperature(teacher), teacher_late_stages(
        teacher, early, cfg.arch, input_size, cfg.frozen_stages
    )


def teacher_targets(cfg: TrainConfig, teacher, cache, dataset, device, say: Progress) -> np.ndarray:
    """Each cached copy's target: the teacher's vote on its photo mixed with its label (see
    :mod:`orient_model.model.distil`)."""
    temperature, late = teacher
    _, photo_of_copy = np.unique([photo_of(path) for path, _ in dataset.samples], return_inverse=True)
    report = copies_progress(say, "the teacher's vote")
    votes = vote_targets(late.to(device), cache, photo_of_copy, temperature, device, progress=report)
    return mixed_targets(cache.labels, votes, cfg.teacher_weight)


def judge_on_photos(
    result: FitResult,
    cfg: TrainConfig,
    input_size: int,
    photos: dict,
    progress: Progress | None = None,
    max_error: float = MAX_ERROR,
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
