"""The insight report: every figure computed for real, for a tiny model trained on generated photos."""

from __future__ import annotations

import base64
import io
import json
import re

import numpy as np
import pytest
from PIL import Image

from orient_model import orientation
from orient_model.insight import card_photos, folder_photos
from orient_model.model.card import training_sources
from orient_model.synthetic import scene

pytestmark = pytest.mark.slow

SECTIONS = (
    "Behaviour by kind and source",
    "Confusion matrix",
    "Reliability",
    "Risk and coverage",
    "Where it fails",
    "What it looks at",
    "Where in the frame it looks, per answer",
    "Units",
    "First layer filters",
)


def embedded_pictures(page: str) -> list[Image.Image]:
    pictures = []
    for data in re.findall(r"data:image/png;base64,([A-Za-z0-9+/=]+)", page):
        img = Image.open(io.BytesIO(base64.b64decode(data)))
        img.load()  # decodes every pixel, or raises
        pictures.append(img)
    return pictures


def test_the_page_of_a_trained_model_has_every_section_and_its_figures_add_up(tiny_model):
    """Training wrote it, on the model's own test and calibration photos (its card names them)."""
    from flows.training import INSIGHT_CAPS

    card = json.loads((tiny_model / "card.json").read_text())
    photos = card_photos(card, tiny_model)
    assert {p.set for p in photos} == {"test", "calibration"}
    page_path = tiny_model / card["insight"]["page"]
    page = page_path.read_text()
    for title in SECTIONS:
        assert f"<h2>{title}</h2>" in page, title
    pictures = embedded_pictures(page)
    assert len(pictures) >= len(SECTIONS) + 3  # several pictures in the gallery and the units
    assert len(list(page_path.parent.glob("*.png"))) == len(pictures)
    numbers = json.loads((page_path.parent / "insight.json").read_text())
    assert numbers["photos"] == len(photos) and numbers["decisions"] == 4 * len(photos)
    assert np.sum(numbers["confusion"]) == numbers["decisions"]
    assert np.trace(numbers["confusion"]) / numbers["decisions"] == pytest.approx(numbers["accuracy"])
    assert sum(b["decisions"] for b in numbers["reliability"]) == numbers["decisions"]
    assert sum(g["photos"] for g in numbers["by_kind"].values()) == len(photos)
    averaged = min(len(photos), INSIGHT_CAPS.average)
    assert sum(numbers["average_map_decisions"]) == 4 * averaged


def test_orient_explain_writes_the_page_for_a_labelled_folder(tiny_model, tmp_path):
    from click.testing import CliRunner

    from flows.cli import main
    from orient_model.synthetic import write_scenes

    write_scenes(tmp_path / "photos" / "garden" / "090", 3, seed=8, size=(128, 96))
    out = tmp_path / "out"
    result = CliRunner().invoke(
        main, ["explain", "--model", str(tiny_model), "--photos", str(tmp_path / "photos"), "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    numbers = json.loads((out / "insight.json").read_text())
    assert numbers["photos"] == 3 and list(numbers["by_source"]) == ["garden"]
    assert np.sum(numbers["confusion"]) == 12
    page = (out / "index.html").read_text()
    assert all(f"<h2>{title}</h2>" in page for title in SECTIONS) and embedded_pictures(page)


def test_a_folder_of_class_folders_is_labelled_by_the_turn_each_needs(tmp_path):
    upright = scene(np.random.default_rng(4), 96, 64)
    for turn in orientation.ROTATIONS:
        folder = tmp_path / "box" / orientation.CLASS_NAMES[turn // 90]
        folder.mkdir(parents=True)
        orientation.apply(upright, orientation.COUNTER_CLOCKWISE[turn]).save(folder / "a.png")
    photos = folder_photos(tmp_path)
    assert sorted(p.turn_deg for p in photos) == list(orientation.ROTATIONS)
    for photo in photos:
        again = photo.upright(64)
        assert again.size == upright.size and photo.source == "box"
        assert np.abs(np.asarray(again, int) - np.asarray(upright, int)).max() == 0
    plain = tmp_path / "plain"
    plain.mkdir()
    upright.save(plain / "b.png")
    assert [p.turn_deg for p in folder_photos(plain)] == [0]


def test_orient_explain_says_what_to_pass_when_the_cards_photos_are_elsewhere(tiny_model, tmp_path):
    from click.testing import CliRunner

    from flows.cli import main

    moved = tmp_path / "model"
    moved.mkdir()
    card = json.loads((tiny_model / "card.json").read_text())
    card["training_sources"] = [
        {**s, "path": f"/nowhere/{s['sha256']}.jpg"} for s in training_sources(card, tiny_model)
    ]
    (moved / "card.json").write_text(json.dumps(card))
    (moved / "model.pt").write_bytes((tiny_model / "model.pt").read_bytes())
    result = CliRunner().invoke(main, ["explain", "--model", str(moved)])
    assert result.exit_code == 1
    assert "not on this machine" in result.output and "--photos" in result.output


def test_training_writes_the_page_names_it_in_the_card_and_links_it_to_the_run(tiny_model, prefect_server):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    card = json.loads((tiny_model / "card.json").read_text())
    page = tiny_model / card["insight"]["page"]
    assert card["insight"]["photos"] == len(card_photos(card, tiny_model))
    assert embedded_pictures(page.read_text())
    with get_client(sync_client=True) as client:
        links = client.read_artifacts(
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=["model-insight"]))
        )
    assert any(page.resolve().as_uri() in str(link.data) for link in links)
