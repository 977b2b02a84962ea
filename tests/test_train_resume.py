"""A training run killed mid-epoch goes on from its last checkpoint to the same model, and the
float16 feature cache it trains from predicts as the uncached network does."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from orient_model.config import TrainConfig

REPO = Path(__file__).resolve().parents[1]
CFG = TrainConfig(
    arch="tiny", freeze="early", epochs=2, batch_size=16, lr=3e-3, workers=0, device="cpu", views=1
)
# Run in a process of its own, killed (SIGKILL: no handler, no clean-up) after the first step of
# epoch 2, when epoch 1's checkpoint is on disk and epoch 2's updates are only in memory.
KILLED_RUN = """
import os, signal, sys
from pathlib import Path
from orient_model.config import TrainConfig
from orient_model.model.train import fit

def progress(message, fraction, milestone):
    if message.startswith("epoch 2: step 1/"):
        os.kill(os.getpid(), signal.SIGKILL)

fit(Path(sys.argv[1]), TrainConfig.model_validate_json(sys.argv[3]), progress, run_dir=Path(sys.argv[2]))
"""


@pytest.fixture(autouse=True)
def one_thread():
    """One thread each: tiny networks on a busy machine run several times faster without the
    threads' wait for each other."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def copies(make_copies) -> Path:
    return make_copies("resume", 24, seed=3)


def test_a_run_killed_mid_epoch_resumes_to_the_model_an_unbroken_run_makes(copies, tmp_path):
    from orient_model.model.train import fit

    straight = fit(copies, CFG, run_dir=tmp_path / "straight")
    killed = subprocess.run(
        [sys.executable, "-c", KILLED_RUN, str(copies), str(tmp_path / "run"), CFG.model_dump_json()],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"},
        capture_output=True,
        text=True,
    )
    assert killed.returncode == -9, killed.stderr
    resumed = fit(copies, CFG, run_dir=tmp_path / "run", resume=True)

    for name, tensor in straight.model.state_dict().items():
        assert torch.allclose(tensor, resumed.model.state_dict()[name], atol=1e-6), name
    timing = ("seconds", "images_per_s")
    assert [{k: v for k, v in h.items() if k not in timing} for h in resumed.history] == [
        {k: v for k, v in h.items() if k not in timing} for h in straight.history
    ]
    assert resumed.metrics["val_accuracy"] == straight.metrics["val_accuracy"]
    [stop] = resumed.interruptions
    assert stop["stopped_after_epoch"] == 1 and stop["last_checkpoint_at"] <= stop["resumed_at"]
    assert straight.interruptions == []


def test_float16_cached_features_predict_as_the_uncached_network(copies, tmp_path):
    """The tolerance: probabilities within 0.002 of the whole network's in float32, and the same
    class wherever the two best classes are further apart than that."""
    from orient_model.model.architectures import ARCHS, build_model, split_stages
    from orient_model.model.feature_cache import CachedBatches, write_cache
    from orient_model.model.train import load_data

    torch.manual_seed(0)
    spec = ARCHS["tiny"]
    model = build_model("tiny").eval()
    _, val_loader = load_data(copies, CFG, spec.input_size, spec.mean, spec.std)
    early, late = split_stages(model, CFG.frozen_stages)
    cache = write_cache(tmp_path / "features", {"test": 1}, early, val_loader, 1, torch.device("cpu"))
    with torch.inference_mode():
        whole = torch.cat([model(images).softmax(1) for images, _ in val_loader])
        cached = torch.cat([late(features).softmax(1) for features, _ in CachedBatches(cache, 16)])
    assert cache.features.dtype.name == "float16" and len(cache) == len(whole)
    assert torch.allclose(cached, whole, atol=2e-3)
    top2 = whole.topk(2, dim=1).values
    clear = (top2[:, 0] - top2[:, 1]) > 4e-3
    assert clear.any()
    assert torch.equal(cached.argmax(1)[clear], whole.argmax(1)[clear])


def test_max_train_photos_trains_on_a_seeded_choice_of_photos(copies, tmp_path):
    """A learning-curve point or a trial: fewer training photos, the same judging photos."""
    from orient_model.model.data import split_copies
    from orient_model.model.train import fit
    from orient_model.model.train_costs import capped_train_sources

    all_photos = {p.name.split("_")[0] for p, _ in split_copies(copies, "train")}
    capped = CFG.model_copy(update={"max_train_photos": 5, "epochs": 1})
    chosen = capped_train_sources(copies, capped)
    assert len(chosen) == 5 and chosen <= all_photos and chosen == capped_train_sources(copies, capped)
    assert capped_train_sources(copies, CFG) is None
    assert capped_train_sources(copies, CFG.model_copy(update={"max_train_photos": 10_000})) is None
    said = []
    fit(copies, capped, progress=lambda message, fraction, milestone: said.append(message), run_dir=tmp_path)
    assert any("20 training copies" in m for m in said), said  # 5 photos x 4 turns
