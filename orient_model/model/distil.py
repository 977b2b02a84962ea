"""Distilling a teacher's vote into one pass.

A model is right more often voting over twelve passes (three views, four turns) than in one, and
an archive pays for every pass. So a network can learn, beside the true label, what the teacher's
vote says of the photo a copy was cut from: which photos are clear, and which other orientation a
doubtful one is mistaken for. The teacher's vote over a photo's cached copies (every view, every
turn, every augmented pass) is its twelve-pass vote as training sees the photo; each copy's target
is that vote turned to the copy's own orientation, mixed with the true label.

The cached features are those of the frozen early stages, so the teacher's later stages read them
directly when its early stages are the student's (any model trained with ``freeze: early`` from the
same starting weights); its votes then cost a fraction of one epoch.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torch import nn

from orient_model.errors import OrientError
from orient_model.model.architectures import split_stages
from orient_model.model.data import HFLIP_LABEL
from orient_model.model.feature_cache import CachedBatches, FeatureCache
from orient_model.model.predict import Looking
from orient_model.model.registry import LoadedModel

CLASSES = 4
# A mirror (training's augmentation) turns a photo mistaken for a quarter turn one way into one
# mistaken for the other way: the vote's two quarter-turn confusions are shared between them.
QUARTER_TURNS = sorted({HFLIP_LABEL[1], HFLIP_LABEL[3]})


class TeacherError(OrientError):
    """A teacher whose later stages cannot read the cached features."""


def teacher_late_stages(
    teacher: LoadedModel, early: nn.Module, arch: str, input_size: int, stages: int
) -> nn.Module:
    """The teacher's later stages, once its early stages are shown to be ``early`` (the
    student's frozen ones, up to the float16 rounding of a shipped model)."""
    if teacher.arch != arch or teacher.input_size != input_size:
        raise TeacherError(
            f"the teacher {teacher.version} is {teacher.arch} at {teacher.input_size} px; the network "
            f"trained is {arch} at {input_size} px: distillation reads the same cached features, so both must match"
        )
    teacher_early, teacher_late = split_stages(teacher.model, stages)
    for (name, mine), theirs in zip(
        early.state_dict().items(), teacher_early.state_dict().values(), strict=True
    ):
        if mine.is_floating_point() and not torch.allclose(
            mine.float(), theirs.float(), rtol=2e-3, atol=1e-4
        ):
            raise TeacherError(
                f"the teacher {teacher.version} has other early stages ({name} differs): train the "
                "teacher with freeze: early from the same weights, or distil without cached features"
            )
    return teacher_late.eval()


@torch.inference_mode()
def vote_targets(
    teacher_late: nn.Module,
    cache: FeatureCache,
    photo_of_copy: np.ndarray,
    temperature: float,
    device: torch.device,
    batch_size: int = 256,
    progress: Callable[[int, int], None] | None = None,
) -> np.ndarray:
    """``N x 4`` probabilities, one row per cached copy: the teacher's vote over every cached
    copy of the same photo (``photo_of_copy``: a photo number per dataset copy), at
    ``temperature`` (the teacher's own for its full look), turned to the copy's orientation.
    ``progress(done, total)`` after each batch of copies."""
    if cache.copies is None:
        raise TeacherError(
            "the feature cache does not say which copy each row is: it was made by an older orient"
        )
    parts, done = [], 0
    for feats, _ in CachedBatches(cache, batch_size):
        parts.append(teacher_late(feats.to(device)).float().log_softmax(1).cpu().numpy())
        done += len(feats)
        if progress:
            progress(done, len(cache))
    log_probs = np.concatenate(parts)
    labels, turns = cache.labels, np.arange(CLASSES)
    rows = np.arange(len(labels))[:, None]
    # Relative to the truth: column k is "needs k quarter turns more than it does".
    relative = log_probs[rows, (labels[:, None] + turns) % CLASSES]
    photo = photo_of_copy[cache.copies]
    votes = np.zeros((photo.max() + 1, CLASSES))
    np.add.at(votes, photo, relative)
    votes /= np.maximum(np.bincount(photo, minlength=len(votes)), 1)[:, None]
    votes = np.exp((votes - votes.max(1, keepdims=True)) / temperature)
    votes /= votes.sum(1, keepdims=True)
    votes[:, QUARTER_TURNS] = votes[:, QUARTER_TURNS].mean(1, keepdims=True)
    # Back to each copy's own orientation: class c is (c - label) turns from the truth.
    return votes[photo][rows, (turns - labels[:, None]) % CLASSES].astype(np.float32)


def mixed_targets(labels: np.ndarray, votes: np.ndarray, weight: float) -> np.ndarray:
    """What a copy is trained towards: ``weight`` of the teacher's vote, the rest its true label
    (cross-entropy against these is the distillation loss plus the label's, in one)."""
    return ((1.0 - weight) * np.eye(CLASSES, dtype=np.float32)[labels] + weight * votes).astype(np.float32)


def full_look_temperature(teacher: LoadedModel) -> float:
    """The temperature the teacher's full look was calibrated with (1 where it was not)."""
    entry = teacher.calibration.get(Looking(teacher.views, True).key, {})
    return float(entry.get("temperature", 1.0))
