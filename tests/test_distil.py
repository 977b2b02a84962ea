"""Distillation: each cached copy learns its photo's vote, turned to the copy's orientation, from a
teacher whose later stages read the same cached features."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from orient_model.config import TrainConfig
from orient_model.model.distil import TeacherError, mixed_targets, vote_targets
from orient_model.model.feature_cache import FeatureCache

CFG = TrainConfig(
    arch="tiny",
    freeze="early",
    epochs=1,
    batch_size=16,
    lr=3e-3,
    workers=0,
    device="cpu",
    views=1,
    int8=False,
)


def cache_of(logits: list[list[float]], labels: list[int]) -> FeatureCache:
    """A cache whose 'features' are the teacher's logits (the later stages below just flatten)."""
    features = np.array(logits, dtype=np.float32)[:, :, None, None]
    return FeatureCache(features, np.array(labels), copies=np.arange(len(labels)))


def test_each_copy_learns_its_photos_vote_turned_to_its_own_orientation():
    sure, unsure = 4.0, 0.0
    # Photo 0: four copies, one per orientation; the teacher is right on three, wrong on one.
    # Photo 1: two copies the teacher takes for upside down, both times.
    logits, labels = [], []
    for label in range(4):
        row = [unsure] * 4
        row[label if label != 3 else 0] = sure
        logits.append(row)
        labels.append(label)
    for label in (1, 2):
        row = [unsure] * 4
        row[(label + 2) % 4] = sure
        logits.append(row)
        labels.append(label)
    cache = cache_of(logits, labels)
    photo_of_copy = np.array([0, 0, 0, 0, 1, 1])

    targets = vote_targets(nn.Flatten(), cache, photo_of_copy, 1.0, torch.device("cpu"))

    assert targets.shape == (6, 4) and np.allclose(targets.sum(1), 1.0)
    assert (targets[:4].argmax(1) == np.arange(4)).all()  # the vote is right where one copy was not
    for row, label in zip(targets[:4], range(4), strict=True):  # the same vote, in each copy's frame
        assert np.allclose(np.roll(row, -label), np.roll(targets[0], 0), atol=1e-6)
    assert targets[0, 0] < 0.99  # the wrong copy left doubt in the vote
    assert np.isclose(targets[0, 1], targets[0, 3])  # a mirror shares the two quarter-turn mistakes
    assert list(targets[4:].argmax(1)) == [3, 0]  # photo 1's vote: upside down from each copy's truth
    sharper = vote_targets(nn.Flatten(), cache, photo_of_copy, 0.5, torch.device("cpu"))
    assert sharper[0, 0] > targets[0, 0]


def test_targets_mix_the_label_and_the_vote():
    votes = np.array([[0.1, 0.2, 0.6, 0.1]], dtype=np.float32)
    assert np.allclose(mixed_targets(np.array([0]), votes, 0.0), [[1, 0, 0, 0]])
    assert np.allclose(mixed_targets(np.array([0]), votes, 1.0), votes)
    assert np.allclose(mixed_targets(np.array([0]), votes, 0.5), [[0.55, 0.1, 0.3, 0.05]])


def test_a_cache_without_copy_numbers_is_refused():
    cache = FeatureCache(np.zeros((2, 4, 1, 1), np.float32), np.array([0, 1]))
    with pytest.raises(TeacherError, match="which copy"):
        vote_targets(nn.Flatten(), cache, np.array([0, 0]), 1.0, torch.device("cpu"))


@pytest.fixture(scope="module")
def copies(make_copies) -> Path:
    return make_copies("distil", 16, seed=5)


def saved(result, folder: Path) -> Path:
    from orient_model.model.registry import save_model

    return save_model(folder, result.model, CFG.arch, 64, result.temperature, {"training_key": "teacher"})


def test_a_student_learns_from_a_teacher_with_its_early_stages_and_not_from_another(copies, tmp_path):
    from orient_model.model.train import fit

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        teacher = saved(fit(copies, CFG.model_copy(update={"input_size": 64})), tmp_path / "models")
        plain = fit(copies, CFG.model_copy(update={"input_size": 64}))
        cfg = CFG.model_copy(update={"input_size": 64, "teacher": str(teacher)})
        said: list[str] = []
        student = fit(copies, cfg, lambda message, fraction, milestone: said.append(message))
        assert any(m.startswith(f"teacher {teacher}: 50%") for m in said)
        changed = [
            name
            for name, tensor in student.model.state_dict().items()
            if tensor.is_floating_point() and not torch.allclose(tensor, plain.model.state_dict()[name])
        ]
        assert changed  # the vote moved the weights
        # Only the vote's share: a teacher at weight 0 trains the plain model.
        unweighted = fit(copies, cfg.model_copy(update={"teacher_weight": 0.0}))
        for name, tensor in unweighted.model.state_dict().items():
            assert torch.allclose(tensor, plain.model.state_dict()[name], atol=1e-5), name
        # Another seed starts from other early stages: its later stages cannot read these features,
        # which is said before any copy is cached (a long wait on a full corpus).
        said.clear()
        with pytest.raises(TeacherError, match="other early stages"):
            fit(
                copies,
                cfg.model_copy(update={"seed": 1}),
                lambda message, fraction, milestone: said.append(message),
            )
        assert not any("features" in m for m in said), said
    finally:
        torch.set_num_threads(threads)


def test_a_training_key_names_the_teachers_weights_not_its_name(tmp_path):
    from orient_model.model.registry import training_key

    folder = tmp_path / "teacher"
    folder.mkdir()
    (folder / "model.pt").write_bytes(b"first weights")
    cfg = CFG.model_copy(update={"teacher": str(folder)})
    first = training_key("manifest", cfg)
    (folder / "model.pt").write_bytes(b"second weights")  # a later model under the same name
    assert training_key("manifest", cfg) != first
    assert training_key("manifest", CFG) != first
