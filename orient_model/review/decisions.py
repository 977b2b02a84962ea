"""The journal side of the review: who decides, where decisions are written, the newest decision
for each content, and which turns the journals say were carried out."""

from __future__ import annotations

import getpass
import os
from collections.abc import Iterable
from pathlib import Path

from orient_model.archive.journal import Journal, JournalError, Review
from orient_model.archive.layout import journal_path
from orient_model.archive.paths import STATE_DIRNAME
from orient_model.archive.state import StateFolders
from orient_model.review.items import InvalidDecision


def default_reviewer() -> str:
    """The name a decision is recorded under when none is given: the user running orient."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no user name in a container
        return "operator"


def check_reviewer(reviewer: str) -> str:
    """The reviewer's name, trimmed: the journal keeps who decided, so a blank name is refused."""
    if not isinstance(reviewer, str) or not reviewer.strip() or len(reviewer) > 100:
        raise InvalidDecision("a decision needs a reviewer's name (1 to 100 characters)")
    return reviewer.strip()


def latest_reviews(journals: Iterable[Journal]) -> dict[str, Review]:
    """The newest decision for each content, across journals (ties: the first journal's)."""
    latest: dict[str, Review] = {}
    for journal in journals:
        try:
            found = journal.reviews()
        except JournalError:
            continue
        for sha, review in found.items():
            if sha not in latest or review.decided_at > latest[sha].decided_at:
                latest[sha] = review
    return latest


def decision_state_folder(folders: StateFolders, root: Path) -> Path:
    """Where decisions are written: the archive's own ``.orient`` when it exists and is writable
    (the decisions travel with the archive), else the per-archive folder report-only runs use."""
    inside = root / STATE_DIRNAME
    journal = journal_path(inside)
    if (
        inside.is_dir()
        and os.access(inside, os.W_OK)
        and (not journal.exists() or os.access(journal, os.W_OK))
    ):
        return inside
    outside = next(f for f in folders.all if f != inside)
    return outside


class Origins:
    """Which content an in-place change turned into which, and by how much, from the journals
    (for knowing that a file now holds a decision's result, or the original of a turn that was
    put back)."""

    def __init__(self, journals: list[Journal]) -> None:
        self.journals = journals
        self._map: dict[tuple[str, str], dict[str, int]] | None = None

    def turns(self) -> dict[tuple[str, str], dict[str, int]]:
        """(path, content a change wrote) -> {content it was made from: clockwise turn}, read once."""
        if self._map is None:
            self._map = {}
            for journal in self.journals:
                try:
                    changes = journal.changes()
                except JournalError:
                    continue
                for c in changes:  # 'planned': written or not; looked up by what a file holds now
                    if c.in_place and c.state in ("planned", "done", "undone"):
                        turns = self._map.setdefault((c.rel_path, c.sha256_after), {})
                        turns[c.source_sha256] = c.rotation_deg
        return self._map

    def of(self, rel_path: str, sha256: str) -> set[str]:
        """The contents a change at ``rel_path`` turned into ``sha256``."""
        return set(self.turns().get((rel_path, sha256), {}))

    def turn(self, rel_path: str, source: str, result: str) -> int | None:
        """The clockwise turn a change at ``rel_path`` made of ``source`` to give ``result``."""
        return self.turns().get((rel_path, result), {}).get(source)

    def carried_out(self, rel_path: str, judged: str, decided_deg: int, current: str) -> bool:
        """Whether a journaled turn made ``current`` the judged content turned as decided: from
        the judged content itself, or from the original of a run's turn that was put back (the
        proof when the apply-review that did it was stopped before writing its report)."""
        if self.turn(rel_path, judged, current) == decided_deg:
            return True
        return any(
            self.turn(rel_path, original, current)
            == (decided_deg + self.turn(rel_path, original, judged)) % 360
            for original in self.of(rel_path, judged)
        )
