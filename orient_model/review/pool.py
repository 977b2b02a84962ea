"""The review's share of the training pool (:mod:`orient_model.pool`): every reviewed photo still
in the archive, with the turn that makes it upright, for retraining."""

from __future__ import annotations

import os
from dataclasses import dataclass

from orient_model.archive.paths import Tree
from orient_model.review.decisions import latest_reviews
from orient_model.review.items import display_path
from orient_model.review.queue import ReviewQueue

HOW_KNOWN = "operator review"


@dataclass(frozen=True)
class PoolEntry:
    """A reviewed photo for training: the file at ``path`` (absolute) with content ``sha256`` is
    upright after ``rotation_deg`` clockwise (0 once the decision was applied)."""

    path: str
    sha256: str
    rotation_deg: int
    how_known: str
    reviewer: str
    decided_at: str
    rel_path: str  # inside the archive, for display


def training_pool(
    root: str | os.PathLike[str], state_dir: str | os.PathLike[str] | None = None
) -> list[PoolEntry]:
    """Every reviewed photo still in the archive, with the clockwise turn that makes the file
    as it is now upright: the decision while it is pending, 0 once it was applied."""
    queue = ReviewQueue(root, state_dir)
    items = queue.items()
    entries: dict[tuple[str, str], PoolEntry] = {}

    def entry(rel_path: str, sha256: str, rotation_deg: int, reviewer: str, decided_at: str) -> PoolEntry:
        return PoolEntry(
            str(queue.root / rel_path),
            sha256,
            rotation_deg,
            HOW_KNOWN,
            reviewer,
            decided_at,
            display_path(rel_path),
        )

    for item in items:
        if item.state in ("decided", "applied"):
            turn = item.decision_deg if item.state == "decided" else 0
            entries[(item.rel_path, item.current_sha256)] = entry(
                item.rel_path, item.current_sha256, turn, item.reviewer, item.decided_at
            )
    # Decisions whose report is gone still count while the file holds the decided content.
    journals = queue.journals()
    try:
        reviews = latest_reviews(journals)
    finally:
        for journal in journals:
            journal.close()
    known = {(i.rel_path, i.sha256) for i in items}
    with Tree(queue.root) as tree:
        for sha, review in reviews.items():
            if (review.rel_path, sha) in known:
                continue
            if queue.current_hash(tree, review.rel_path, {}) == sha:
                entries.setdefault(
                    (review.rel_path, sha),
                    entry(review.rel_path, sha, review.rotation_deg, review.reviewer, review.decided_at),
                )
    return sorted(entries.values(), key=lambda e: (e.rel_path, e.sha256))
