"""Retraining that only ever improves the model: a pool that cannot be poisoned, a quality gate,
champion against challenger on the same photos, promotion, rollback, and learning from the
archive itself with safeguards. Real Prefect runs for the flows; tiny models for speed."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from orient_model import orientation
from orient_model.config import AutorotateConfig, TrainConfig, TrainingSetConfig
from orient_model.files import sha256_file
from orient_model.model.predict import Predictor
from orient_model.model.promotion import quality_gate
from orient_model.model.registry import (
    PromotionRefused,
    current_version,
    list_models,
    load_model,
    promote,
    resolve_model_path,
    rollback,
)
from orient_model.pool import (
    OPERATOR_REVIEW,
    Candidate,
    PoolPhoto,
    merge,
    pseudo_labels,
    rising_bar,
    score_archive,
)
from orient_model.synthetic import scene, write_scenes

pytestmark = pytest.mark.slow


def turned_scenes(folder: Path, n: int, share_turned: float, seed: int) -> dict[str, int]:
    """Synthetic scenes, a known share of them turned; returns {name: rotation that makes it upright}."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    truth = {}
    for i in range(n):
        angle = int(rng.choice([90, 180, 270])) if rng.random() < share_turned else 0
        img = orientation.apply(scene(rng, 320, 240), orientation.COUNTER_CLOCKWISE[angle])
        img.save(folder / f"scan_{i:03d}.jpg", quality=90)
        truth[f"scan_{i:03d}.jpg"] = angle
    return truth


@pytest.fixture(scope="module")
def registry(tmp_path_factory, tiny_model) -> Path:
    """A registry holding the session's tiny model (good) and a deliberately weak one."""
    from flows.training import make_training_set, train

    models = tmp_path_factory.mktemp("registry")
    work = tmp_path_factory.mktemp("weak")
    write_scenes(work / "src", 40, seed=21)
    make_training_set(
        [str(work / "src")],
        str(work / "data"),
        TrainingSetConfig(copy_size=96, crops_per_photo=1),
        trust_upright=True,
    )
    weak = train(
        str(work / "data"),
        str(models),
        TrainConfig(
            arch="tiny", epochs=1, max_steps_per_epoch=1, lr=1e-5, workers=0, device="cpu", insight=False
        ),
    )
    good = models / tiny_model.name
    good.mkdir()
    for name in ("model.pt", "card.json"):
        (good / name).write_bytes((tiny_model / name).read_bytes())
    return models, Path(weak).name, good.name


def test_a_folder_of_mostly_turned_photos_is_refused_unless_trusted(prefect_server, tiny_model, tmp_path):
    from flows.training import make_training_set

    turned_scenes(tmp_path / "scans", 30, share_turned=0.6, seed=5)
    state = make_training_set(
        [str(tmp_path / "scans")],
        str(tmp_path / "data"),
        TrainingSetConfig(copy_size=96),
        check_model=str(tiny_model),
        return_state=True,
    )
    assert state.is_failed()
    assert "look turned to the model" in state.message and "--trust-upright" in state.message
    listed = (tmp_path / "data" / "not-upright.tsv").read_text().splitlines()
    assert len(listed) >= 12  # 18 are turned; the tiny model is sure of most
    assert not (tmp_path / "data" / "manifest.parquet").exists()
    state = make_training_set(
        [str(tmp_path / "scans")],
        str(tmp_path / "data"),
        TrainingSetConfig(copy_size=96),
        check_model=str(tiny_model),
        trust_upright=True,
        return_state=True,
    )
    assert state.is_completed() and Path(state.result()).is_file()


def test_exact_duplicates_are_used_once(prefect_server, tmp_path):
    from flows.training import make_training_set
    from orient_model.training_set import read_manifest

    write_scenes(tmp_path / "a", 6, seed=3)
    (tmp_path / "b").mkdir()
    for p in sorted((tmp_path / "a").iterdir())[:2]:
        (tmp_path / "b" / f"copy-of-{p.name}").write_bytes(p.read_bytes())
    manifest = make_training_set(
        [str(tmp_path / "a"), str(tmp_path / "b")],
        str(tmp_path / "data"),
        TrainingSetConfig(copy_size=64),
        trust_upright=True,
    )
    rows = read_manifest(Path(manifest)).to_pylist()
    assert len({r["source_sha256"] for r in rows}) == 6


def test_a_model_failing_its_quality_gate_is_never_promoted(registry):
    models, weak, good = registry
    card = json.loads((models / weak / "card.json").read_text())
    assert card["quality_gate"] == quality_gate(card) and not card["quality_gate"]["passed"]
    with pytest.raises(PromotionRefused, match="quality gate"):
        promote(weak, models)
    assert current_version(models) is None


def test_champion_and_challenger_then_rollback(registry, tmp_path, prefect_server):
    from flows.training import make_training_set
    from orient_model.retraining import judge_and_maybe_promote

    models, weak, good = registry
    write_scenes(tmp_path / "truth", 60, seed=33)  # ground-truth photos for judging both
    data = Path(
        make_training_set(
            [str(tmp_path / "truth")],
            str(tmp_path / "data"),
            TrainingSetConfig(
                copy_size=96,
                crops_per_photo=1,
                calibration_fraction=0.45,
                test_fraction=0.45,
                val_fraction=0.1,
            ),
            trust_upright=True,
        )
    ).parent
    # The good model challenges the weak one: it wins and becomes current.
    won = judge_and_maybe_promote(str(data), str(models / good), weak, str(models), 0.05, 0.005)
    assert won["promoted"] and current_version(models) == good, won["reasons"]
    page_says_what_the_rule_decided(won, models / good)
    # Each was judged as an archive run on this machine would run it (not by PyTorch on a CPU).
    as_run = {
        name: Predictor(load_model(models / version), engine="auto").engine.name
        for name, version in (("champion", weak), ("challenger", good))
    }
    assert won["engines"] == as_run and "torch" not in as_run.values()
    # A weak challenger (its gate aside) is judged worse than the good champion and not promoted.
    card_path = models / weak / "card.json"
    card = json.loads(card_path.read_text())
    card["quality_gate"] = {"passed": True, "reasons": []}  # let only the comparison decide
    card_path.write_text(json.dumps(card))
    lost = judge_and_maybe_promote(str(data), str(models / weak), "current", str(models), 0.05, 0.005)
    assert not lost["promoted"] and current_version(models) == good
    assert any("not better" in reason for reason in lost["reasons"])
    page_says_what_the_rule_decided(lost, models / weak)
    assert json.loads(card_path.read_text())["promotion"]["decision"] == "kept the champion"
    promote(weak, models)  # by hand, then undone
    assert [m["version"] for m in list_models(models) if m["current"]] == [weak]
    assert rollback(models) == good and current_version(models) == good
    assert rollback(models) is None and resolve_model_path("current", models).parent.name == "default_model"


def page_says_what_the_rule_decided(decision: dict, folder: Path) -> None:
    """The comparison page's verdict is the promotion's own, its pictures decode, and the card
    and `orient models` name it."""
    import base64
    import html
    import io
    import re

    from PIL import Image

    page = Path(decision["page"])
    text = page.read_text()
    verdict = html.unescape(re.search(r"<p class='verdict' id='verdict'>(.*?)</p>", text).group(1))
    assert verdict.startswith(f"Challenger {decision['challenger']} ")
    assert (" not promoted" not in verdict) == decision["promoted"]
    assert all(reason in verdict for reason in decision["reasons"])
    for title in ("Risk, coverage and reliability", "Accuracy by kind", "Where they disagree"):
        assert f"<h2>{title}</h2>" in text
    pictures = re.findall(r"data:image/png;base64,([A-Za-z0-9+/=]+)", text)
    assert len(pictures) >= 2
    for data in pictures:
        Image.open(io.BytesIO(base64.b64decode(data))).load()  # decodes, or raises
    card = json.loads((folder / "card.json").read_text())
    assert folder / card["promotion"]["page"] == page
    assert [m["comparison"] for m in list_models(folder.parent) if m["version"] == folder.name] == [str(page)]


def test_autorotate_without_a_model_uses_the_promoted_version(registry, tmp_path, prefect_server):
    from flows.autorotate import autorotate

    models, _, good = registry
    promote(good, models)
    try:
        write_scenes(tmp_path / "archive", 3, seed=2)
        summary = autorotate(
            str(tmp_path / "archive"),
            AutorotateConfig(models_dir=str(models)),
            state_dir=str(tmp_path / "state"),
        )
        from orient_model.report import read_report, run_config_of

        config = run_config_of(read_report(Path(summary["report"])))
        assert config["model"] == str(models / good / "model.pt") and config["model_version"] == good
    finally:
        rollback(models)


def test_operator_decisions_override_pseudo_labels(tmp_path):
    photo = tmp_path / "a.jpg"
    scene(np.random.default_rng(1)).save(photo)
    sha = sha256_file(photo)
    guessed = PoolPhoto(str(photo), 90, "pseudo-label round 1", sha)
    reviewed = PoolPhoto(str(photo), 0, OPERATOR_REVIEW, sha)
    assert merge([guessed], [reviewed]) == [reviewed]
    sure = np.log(np.full((4, 4), 1e-4) + np.eye(4)[[1, 1, 1, 1]])
    candidates = [Candidate(str(photo), sha, "box", sure)]
    assert pseudo_labels(candidates, 0.9, 1.0, overruled={sha}) == []
    assert [p.rotation_deg for p in pseudo_labels(candidates, 0.9, 1.0, overruled=set())] == [90]


def test_bootstrap_safeguards_on_a_seeded_archive(tiny_model, tmp_path):
    truth = {}
    for folder, seed in (("box-1", 7), ("box-2", 8), ("box-3", 9)):
        truth.update(
            {
                f"{folder}/{k}": v
                for k, v in turned_scenes(tmp_path / "archive" / folder, 25, 0.2, seed).items()
            }
        )
    predictor = Predictor(load_model(tiny_model), device="cpu")
    candidates = score_archive(tmp_path / "archive", predictor)
    assert len(candidates) == 75
    labels = pseudo_labels(candidates, rising_bar(0.9, 1), 1.0, overruled=set(), max_folder_share=0.4)
    assert labels, "the tiny model is sure of some synthetic scenes"
    right = sum(truth[os.path.relpath(p.path, tmp_path / "archive")] == p.rotation_deg for p in labels)
    assert right / len(labels) >= 0.95
    per_folder = {f: sum(Path(p.path).parent.name == f for p in labels) for f in ("box-1", "box-2", "box-3")}
    assert max(per_folder.values()) <= max(1, int(0.4 * len(labels)))
    stricter = pseudo_labels(candidates, rising_bar(0.9, 3), 1.0, overruled=set(), max_folder_share=0.4)
    assert rising_bar(0.9, 3) > rising_bar(0.9, 1) and len(stricter) <= len(labels)
    overruled = {labels[0].sha256}
    assert labels[0].sha256 not in {
        p.sha256 for p in pseudo_labels(candidates, rising_bar(0.9, 1), 1.0, overruled, max_folder_share=0.4)
    }
