"""Checkpoints of a training run, one per finished epoch, so a stopped run can go on.

A checkpoint is a plain dict (torchvision reference style): the model's and the best epoch's
weights, the optimiser's, the schedule's and the gradient scaler's states, the epoch, the
history, and every random state the next epoch draws from (Python's, NumPy's, PyTorch's and
the shuffling generator's), so the epochs after a resume are the epochs the run would have
had. Only tensors and plain types are stored, so ``torch.load(weights_only=True)`` reads it.
It is written to a temporary file and renamed over the last one: a kill mid-write leaves the
previous epoch's checkpoint whole.
"""

from __future__ import annotations

import copy
import io
import random
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from orient_model.errors import OrientError
from orient_model.files import atomic_write_bytes
from orient_model.model.registry import learning_settings

CHECKPOINT = "checkpoint.pt"


class CheckpointError(OrientError):
    """A checkpoint that cannot be resumed; the message says why and what to do."""


def random_states(shuffle: torch.Generator | None) -> dict:
    """Every random state training draws from, as plain types."""
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    return {
        "python": random.getstate(),
        "numpy": {"kind": kind, "keys": keys.tolist(), "pos": pos, "has_gauss": has_gauss, "gauss": gauss},
        "torch": torch.get_rng_state(),
        "shuffle": shuffle.get_state() if shuffle is not None else None,
    }


def restore_random_states(states: dict, shuffle: torch.Generator | None) -> None:
    version, internal, gauss = states["python"]
    random.setstate((version, tuple(internal), gauss))
    n = states["numpy"]
    np.random.set_state((n["kind"], np.array(n["keys"], np.uint32), n["pos"], n["has_gauss"], n["gauss"]))
    torch.set_rng_state(states["torch"])
    if shuffle is not None and states["shuffle"] is not None:
        shuffle.set_state(states["shuffle"])


def save_checkpoint(run_dir: Path, state: dict) -> None:
    """Replace the run's checkpoint with ``state`` (stamped with the time), atomically."""
    buf = io.BytesIO()
    torch.save({**state, "saved_at": time.strftime("%Y-%m-%dT%H:%M:%S%z")}, buf)
    Path(run_dir).mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(Path(run_dir) / CHECKPOINT, buf.getvalue())


def load_checkpoint(run_dir: Path | None) -> dict | None:
    """The run's last checkpoint, or None when it has none."""
    path = Path(run_dir) / CHECKPOINT if run_dir else None
    if path is None or not path.is_file():
        return None
    return torch.load(path, map_location="cpu", weights_only=True)


def interruption(checkpoint: dict) -> dict:
    """What the card records of a stop: after which epoch, when that epoch's checkpoint was
    written (the stop came after it, before the next), and when the run went on."""
    return {
        "stopped_after_epoch": checkpoint["epoch"],
        "last_checkpoint_at": checkpoint["saved_at"],
        "resumed_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


@dataclass
class RunState:
    """What the epochs carry from one to the next, and so what a checkpoint keeps."""

    epoch: int = 0
    best_state: dict | None = None
    best_key: tuple | None = None
    best_epoch: int = 0
    stale: int = 0
    history: list[dict] = field(default_factory=list)
    interruptions: list[dict] = field(default_factory=list)
    seconds_before: float = 0.0  # training seconds of the run's earlier sittings

    def record(self, model, stats: dict, val_accuracy: float, val_loss: float, seconds: float) -> None:
        """One more epoch done: its figures, and the weights if they are the best so far (higher
        validation accuracy, then lower loss); else one more epoch without gain."""
        self.epoch += 1
        self.history.append(
            {
                "epoch": self.epoch,
                **stats,
                "val_loss": val_loss,
                "val_accuracy": val_accuracy,
                "seconds": round(seconds, 1),
            }
        )
        key = (val_accuracy, -val_loss)
        if self.best_key is None or key > tuple(self.best_key):
            self.best_state, self.best_key = copy.deepcopy(model.state_dict()), key
            self.best_epoch, self.stale = self.epoch, 0
        else:
            self.stale += 1

    def checkpoint(self, cfg, model, optimizer, scheduler, scaler, shuffle, seconds: float) -> dict:
        """A plain dict of the run after its last epoch (see :mod:`orient_model.model.checkpoint`)."""
        return {
            "config": cfg.model_dump(),
            "epoch": self.epoch,
            "model": model.state_dict(),
            "best": {
                "state": self.best_state,
                "key": list(self.best_key),
                "epoch": self.best_epoch,
                "stale": self.stale,
            },
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(),
            "scaler": scaler.state_dict(),
            "history": self.history,
            "interruptions": self.interruptions,
            "train_seconds": self.seconds_before + seconds,
            "random": random_states(shuffle),
            "threads": torch.get_num_threads(),  # a resumed run sums in the same order
        }


def resumed(checkpoint: dict, cfg, model, optimizer, scheduler, scaler, shuffle) -> RunState:
    """The run as its last checkpoint left it, with this stop added to its interruptions."""
    same, was = learning_settings(cfg.model_dump()), learning_settings(checkpoint["config"])
    if same != was:
        changed = sorted(k for k in same.keys() | was.keys() if same.get(k) != was.get(k))
        raise CheckpointError(
            f"the checkpoint is from a run with other settings ({', '.join(changed)}); "
            "train without --resume to start over"
        )
    model.load_state_dict(checkpoint["model"])
    optimizer.load_state_dict(checkpoint["optimizer"])
    scheduler.load_state_dict(checkpoint["scheduler"])
    scaler.load_state_dict(checkpoint["scaler"])
    restore_random_states(checkpoint["random"], shuffle)
    best = checkpoint["best"]
    return RunState(
        epoch=checkpoint["epoch"],
        best_state=best["state"],
        best_key=tuple(best["key"]),
        best_epoch=best["epoch"],
        stale=best["stale"],
        history=list(checkpoint["history"]),
        interruptions=[*checkpoint["interruptions"], interruption(checkpoint)],
        seconds_before=checkpoint["train_seconds"],
    )
