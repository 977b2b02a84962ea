"""Labelled photos to explain a model on: the card's own held-out photos, or a folder.

A folder is labelled the way the project labels photos everywhere: class folders ``000``,
``090``, ``180``, ``270`` (as training copies are laid out: each photo needs that many degrees
clockwise to be upright), else every photo in it is upright (as the training pool's folders are).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from orient_model import orientation
from orient_model.errors import OrientError
from orient_model.imageio import load_upright
from orient_model.model.card import training_sources
from orient_model.training_set import find_photos

MAX_PIXELS = 250_000_000
CARD_SETS = {"test": "test", "calib": "calibration"}  # the card's split -> what the page calls it


class NoPhotos(OrientError):
    """No labelled photos to explain a model on; the message says what to pass."""


@dataclass(frozen=True)
class LabelledPhoto:
    path: str
    turn_deg: int  # clockwise turn that makes the file upright (0 for an upright photo)
    kinds: tuple[str, ...]  # what it shows ("scene", "text", ...); empty when nobody said
    source: str  # where it came from: its collection in the card's provenance, else its folder
    set: str  # which photos it is among: "test", "calibration" or the folder given

    @property
    def kind(self) -> str:
        return self.kinds[0] if self.kinds else "unlabelled"

    def upright(self, min_side: int) -> Image.Image:
        """The photo decoded (short side at least ``min_side``) and turned upright."""
        img = load_upright(self.path, min_side, MAX_PIXELS)
        return orientation.apply(img, orientation.CLOCKWISE[self.turn_deg])


def card_photos(card: dict, folder: Path | None = None) -> list[LabelledPhoto]:
    """The test and calibration photos a model's card names that are on this machine (upright:
    training sources are upright by construction); ``folder``: the model's version folder, where
    the card's list of photos is kept."""
    out = []
    for record in training_sources(card, folder):
        split = CARD_SETS.get(record.get("split", ""))
        path = record.get("path")
        if split and path and Path(path).is_file():
            source = record.get("source") or Path(path).parent.name
            out.append(LabelledPhoto(path, 0, tuple(record.get("kinds") or ()), source, split))
    return out


def folder_photos(folder: Path) -> list[LabelledPhoto]:
    """Photos in class folders ``000``/``090``/``180``/``270`` under ``folder`` (at any depth), else
    every photo below it, taken as upright. The first sub-folder names the source."""
    folder = Path(folder)
    if not folder.is_dir():
        raise NoPhotos(f"not a folder of photos: {folder}")
    out = []
    for path in find_photos([folder]):
        parts = path.relative_to(folder).parts
        turn = next((int(p) for p in reversed(parts[:-1]) if p in orientation.CLASS_NAMES), 0)
        source = parts[0] if len(parts) > 1 and parts[0] not in orientation.CLASS_NAMES else folder.name
        out.append(LabelledPhoto(str(path), turn, (), source, folder.name))
    if not out:
        raise NoPhotos(f"no photos in {folder}")
    return out


def photos_for(card: dict, folder: Path | None, model_folder: Path | None = None) -> list[LabelledPhoto]:
    """``folder``'s photos when given, else the card's test and calibration photos (their list in
    ``model_folder``, the model's version folder)."""
    if folder is not None:
        return folder_photos(folder)
    photos = card_photos(card, model_folder)
    if not photos:
        raise NoPhotos(
            f"model {card.get('version', '?')}'s test and calibration photos are not on this machine; "
            "pass --photos with a folder of upright photos, or of class folders 000/090/180/270 "
            "(each photo needing that many degrees clockwise)"
        )
    return photos
