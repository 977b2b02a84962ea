"""What an operator decides about: an item of the review queue, its id, and the errors a review
request can meet."""

from __future__ import annotations

import hashlib
import os
from dataclasses import asdict, dataclass

from orient_model import orientation
from orient_model.errors import OrientError


class ReviewError(OrientError):
    """A review request that cannot be carried out; the message says why and what to do."""


class UnknownItem(ReviewError):
    """No item of the queue has this id (a typo, or its file changed since the run)."""


class InvalidDecision(ReviewError):
    """A decision that is not one of the four quarter turns, or from nobody."""


class ContentChanged(ReviewError):
    """The file no longer holds the content the decision would be about."""


def make_item_id(path_bytes: bytes, sha256: str) -> str:
    """A stable, opaque id for a photo's content at a path (the same in every tab and restart)."""
    return hashlib.sha256(path_bytes + b"\0" + sha256.encode()).hexdigest()[:20]


def turned_probs(probs: tuple[float, ...], turned_deg: int) -> tuple[float, float, float, float]:
    """Probabilities for content already turned ``turned_deg`` clockwise: it needs ``r`` more
    exactly when the original needed ``turned_deg + r``."""
    shift = turned_deg // 90
    return tuple(float(probs[(k + shift) % 4]) for k in range(4))


@dataclass(frozen=True)
class ReviewItem:
    """One photo an operator may decide about."""

    id: str
    path: str  # for display (undecodable bytes as escapes)
    rel_path: str  # os form (surrogateescape), for the file system and the journal
    folder: str  # '' at the archive's top
    sha256: str  # the content the run judged and a decision is about
    current_sha256: str  # what the file holds now (the same, or the result of the decision)
    probs: tuple[float, float, float, float]  # for the content ``sha256``: upright after 0/90/180/270
    suggested_deg: int
    confidence: float
    action: str  # flag | rotate | keep, as the run decided
    applied_by_run: bool  # a 'rotate' the run carried out: the content is the turned photo
    run_id: str
    model: str | None  # the model file that judged it (for evidence)
    state: str  # unreviewed | decided | applied
    decision_deg: int | None = None
    reviewer: str | None = None
    decided_at: str | None = None
    # How far the file on disk is turned clockwise from the judged content: the decision once
    # applied, or back by the run's own turn when that turn was put back and the decision is pending.
    on_disk_deg: int = 0

    @property
    def shown_offset(self) -> int:
        """How far the file on disk is turned from the judged content."""
        return self.on_disk_deg

    def as_json(self) -> dict:
        out = asdict(self)
        out.pop("rel_path")
        out["probs"] = {str(r): p for r, p in zip(orientation.ROTATIONS, self.probs)}
        return out


def display_path(rel_path: str) -> str:
    return os.fsencode(rel_path).decode("utf-8", "backslashreplace")
