"""The training pool: photos whose upright orientation is known, and how it is known.

Three ways a photo joins: it lies in a folder someone designated as upright (checked first:
see :func:`check_upright`), an operator reviewed it (``orient review``), or the current model
judged it in the archive with a high, four-view-consistent confidence (a pseudo-label, in
rounds: see :func:`pseudo_labels`). Each photo keeps its provenance to the training set's
manifest, and an operator's decision always wins over a pseudo-label.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from orient_model import orientation
from orient_model.errors import OrientError
from orient_model.imageio import ImageReadError, load_upright
from orient_model.model.predict import Looking, Predictor, softmax

UPRIGHT_FOLDER, OPERATOR_REVIEW = "upright folder", "operator review"


class NotUpright(OrientError):
    """A folder given as upright holds too many photos the model is sure are turned."""


@dataclass(frozen=True)
class PoolPhoto:
    path: str
    rotation_deg: int  # clockwise turn that makes the photo upright (0: it is)
    label_source: str  # upright folder / operator review / pseudo-label round N
    sha256: str | None = None


@dataclass(frozen=True)
class Suspect:
    path: str
    rotation_deg: int
    confidence: float


def check_upright(
    photos: list[PoolPhoto],
    predictor: Predictor,
    confidence: float = 0.9,
    max_share: float = 0.05,
    report_file: Path | None = None,
    progress: Callable[[int], None] | None = None,
) -> list[Suspect]:
    """Refuse (:class:`NotUpright`) when, in any folder, more than ``max_share`` of the photos
    are confidently predicted as needing a turn: a folder of scans is not a folder of upright
    photos, and training on it would teach the model wrong. Lists them in ``report_file``."""
    suspects, per_folder = [], Counter()
    looking = Looking(1, True)
    for start in range(0, len(photos), 16):
        batch, images = photos[start : start + 16], []
        for photo in batch:
            try:
                img = load_upright(photo.path, predictor.decode_size, 250_000_000)
            except (ImageReadError, OSError):
                img = None
            images.append(img)
        usable = [(p, img) for p, img in zip(batch, images, strict=True) if img is not None]
        if usable:
            shown = [orientation.apply(img, orientation.CLOCKWISE[p.rotation_deg]) for p, img in usable]
            probs = predictor.calibrated(predictor.log_probs(shown, looking), looking)
            for (photo, _), p in zip(usable, probs, strict=True):
                per_folder[str(Path(photo.path).parent)] += 1
                k = int(p.argmax())
                if k != 0 and p[k] >= confidence:
                    suspects.append(Suspect(photo.path, orientation.ROTATIONS[k], float(p[k])))
        if progress:
            progress(len(batch))
    bad = Counter(str(Path(s.path).parent) for s in suspects)
    over = {folder: n for folder, n in bad.items() if n > max_share * per_folder[folder]}
    if over:
        if report_file is not None:
            report_file.parent.mkdir(parents=True, exist_ok=True)
            report_file.write_text(
                "".join(
                    f"{s.path}\tneeds {s.rotation_deg} deg clockwise\t{s.confidence:.3f}\n" for s in suspects
                )
            )
        folder, n = max(over.items(), key=lambda item: item[1] / per_folder[item[0]])
        raise NotUpright(
            f"{n} of {per_folder[folder]} photos in {folder} look turned to the model (confidence >= {confidence:g}); "
            f"{len(suspects)} in all, listed in {report_file}; turn them or leave them out, or pass --trust-upright"
        )
    return suspects


def upright_folders(paths: Iterable[Path]) -> list[PoolPhoto]:
    return [PoolPhoto(str(p), 0, UPRIGHT_FOLDER) for p in paths]


def merge(*groups: list[PoolPhoto]) -> list[PoolPhoto]:
    """One entry per photo: an operator's decision wins over a folder, which wins over a pseudo-label."""
    rank = {OPERATOR_REVIEW: 0, UPRIGHT_FOLDER: 1}
    best: dict[str, PoolPhoto] = {}
    for photo in (p for group in groups for p in group):
        key = photo.sha256 or os.path.realpath(photo.path)
        old = best.get(key)
        if old is None or rank.get(photo.label_source, 2) < rank.get(old.label_source, 2):
            best[key] = photo
    return sorted(best.values(), key=lambda p: p.path)


@dataclass(frozen=True)
class Candidate:
    """A photo of the archive as the current model sees it, for pseudo-labelling."""

    path: str
    sha256: str
    folder: str
    turned_log_probs: np.ndarray  # 4 x 4: each quarter-turn view's log-probabilities, shifted back


def pseudo_labels(
    candidates: list[Candidate],
    bar: float,
    temperature: float,
    overruled: set[str],
    max_folder_share: float = 0.2,
    round_no: int = 1,
) -> list[PoolPhoto]:
    """Photos the model is sure about, in a way that resists fooling itself: the vote is above
    ``bar``, every one of the four turned views agrees on its own, none is a photo an operator
    overruled, no folder gives more than ``max_folder_share`` of them, and each predicted
    orientation is represented in proportion (at most twice its share among the candidates)."""
    chosen = []
    for c in candidates:
        if c.sha256 in overruled:
            continue
        votes = softmax(c.turned_log_probs.mean(0) / temperature)
        k = int(votes.argmax())
        each = c.turned_log_probs.argmax(1)
        if votes[k] >= bar and (each == k).all():
            chosen.append((c, k, float(votes[k])))
    chosen.sort(key=lambda item: -item[2])
    limit = max(1, int(max_folder_share * max(len(chosen), 1)))
    per_folder, per_class, out = Counter(), Counter(), []
    share = Counter(int(np.argmax(c.turned_log_probs.mean(0))) for c in candidates)
    class_cap = {
        k: max(1, int(2 * share[k] / max(len(candidates), 1) * max(len(chosen), 1))) for k in range(4)
    }
    for c, k, _ in chosen:
        if per_folder[c.folder] >= limit or per_class[k] >= class_cap[k]:
            continue
        per_folder[c.folder] += 1
        per_class[k] += 1
        out.append(PoolPhoto(c.path, orientation.ROTATIONS[k], f"pseudo-label round {round_no}", c.sha256))
    return out


def rising_bar(start: float, round_no: int) -> float:
    """Each round asks for more confidence than the last (half the remaining doubt), so a model
    cannot talk itself into its own mistakes as the pool grows."""
    return 1 - (1 - start) / (2 ** (round_no - 1))


def score_archive(
    root: Path, predictor: Predictor, progress: Callable[[int], None] | None = None, batch: int = 16
) -> list[Candidate]:
    """Every readable photo of an archive as the model sees it (one view, four quarter turns),
    read through the archive's containment layer."""
    from orient_model.archive.paths import OutsideArchive, Tree
    from orient_model.archive.walk import walk_archive
    from orient_model.files import sha256_bytes

    looking = Looking(1, True)
    out: list[Candidate] = []
    entries = [e for e in walk_archive(root) if e.skip_reason is None]
    with Tree(root) as tree:
        for start in range(0, len(entries), batch):
            loaded = []
            for entry in entries[start : start + batch]:
                try:
                    with tree.place(entry.rel_path) as place:
                        data, _ = place.read()
                    loaded.append(
                        (entry, sha256_bytes(data), load_upright(data, predictor.decode_size, 250_000_000))
                    )
                except (OSError, ImageReadError, OutsideArchive):
                    continue
            if loaded:
                lp = predictor.log_probs([img for _, _, img in loaded], looking)
                for (entry, sha, _), views in zip(loaded, lp, strict=True):
                    out.append(
                        Candidate(
                            str(Path(root) / entry.rel_path), sha, str(Path(entry.rel_path).parent), views[0]
                        )
                    )
            if progress:
                progress(min(batch, len(entries) - start))
    return out
