"""The model card: one record, read and written in one place; its photo list beside it."""

import json

import pytest

from orient_model.errors import ModelLoadError
from orient_model.model.card import (
    CARD_FILE,
    SOURCES_FILE,
    ModelCard,
    amend_card,
    read_card,
    training_sources,
    write_card,
)

SOURCES = [
    {"path": "/p/a.jpg", "sha256": "a" * 64, "split": "train", "kinds": ["scene"], "width": 128},
    {"path": "/p/b.jpg", "sha256": "b" * 64, "split": "test", "kinds": [], "package_version": "1.2"},
    {"path": "/p/c.jpg", "sha256": "c" * 64, "split": "calib", "note": {"class": "kitchen"}},
]


def test_the_photo_list_goes_beside_the_card_and_comes_back_as_written(tmp_path):
    card = write_card(tmp_path, {"version": "v1", "architecture": "tiny", "training_sources": SOURCES})
    on_disk = json.loads((tmp_path / CARD_FILE).read_text())
    assert "training_sources" not in on_disk and on_disk["training_sources_file"] == SOURCES_FILE
    back = training_sources(on_disk, tmp_path)
    assert back[:2] == SOURCES[:2]  # every record's own fields, not the first record's
    assert json.loads(back[2]["note"]) == {"class": "kitchen"}
    assert card.version == "v1" and card.training_sources_file == SOURCES_FILE
    assert training_sources({"training_sources": SOURCES}, None) == SOURCES  # an older card


def test_amending_a_card_keeps_every_other_field(tmp_path):
    write_card(tmp_path, {"version": "v1", "val_accuracy": 0.9, "history": [{"epoch": 1}]})
    amend_card(tmp_path, insight={"page": "insight/index.html", "photos": 3})
    card = read_card(tmp_path / CARD_FILE)
    assert card.insight == {"page": "insight/index.html", "photos": 3}
    assert card.val_accuracy == 0.9 and card.as_dict()["history"] == [{"epoch": 1}]
    assert "promotion" not in card.as_dict()  # fields never set stay out of the file


@pytest.mark.parametrize("text", ["{not json", "[1, 2]"])
def test_a_card_that_is_not_a_json_object_names_its_file(tmp_path, text):
    (tmp_path / CARD_FILE).write_text(text)
    with pytest.raises(ModelLoadError, match=str(tmp_path / CARD_FILE)):
        read_card(tmp_path / CARD_FILE)


def test_a_gate_that_does_not_say_it_passed_failed():
    assert ModelCard().passed_gate  # a card from before gates
    assert not ModelCard.model_validate({"quality_gate": {"reasons": ["absurd temperature"]}}).passed_gate
