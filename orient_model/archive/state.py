"""Where a run keeps its state, and what the archive's journals remember, for one run.

A run that changes files keeps its state inside the archive (``ARCHIVE/.orient``): the backups
must live on the archive's file system and travel with it. A report-only run never writes into
the archive: its state goes to ``--state-dir``, by default a folder per archive in the user's
data directory, so read-only and shared mounts work. Each run reads the other place's journal
too (read-only), so what one kind of run learnt serves the other.

:class:`Memory` is a plain, picklable snapshot of those journals: the hashes rotated before,
the originals an undo put back (pinned: never turned automatically again), operator reviews,
and the judgements and file identities that let an unchanged file be carried over unread.
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from orient_model.archive.journal import Journal, JournalError, Judgement, Review, Seen
from orient_model.archive.layout import journal_path
from orient_model.archive.paths import STATE_DIRNAME, relation
from orient_model.errors import OrientError


class StateFolderConflict(OrientError):
    """A state folder that is, lies in or holds the archive: runs would write among the photos."""


def archive_slug(root: str | os.PathLike[str]) -> str:
    """A short, stable, readable name for an archive: its folder's name and a hash of its path
    (for state folders, deployment names and artifact keys: lowercase letters, digits, dashes)."""
    real = os.path.realpath(root)
    name = re.sub(r"[^a-z0-9]+", "-", Path(real).name.lower()).strip("-")[:30] or "archive"
    return f"{name}-{hashlib.sha256(os.fsencode(real)).hexdigest()[:8]}"


def default_state_dir(root: str | os.PathLike[str]) -> Path:
    """The per-archive state folder in the user's data directory (for report-only runs)."""
    import platformdirs

    return Path(platformdirs.user_data_dir("orient")) / "archives" / archive_slug(root)


@dataclass(frozen=True)
class StateFolders:
    """The state folder a run writes, and the others it reads."""

    primary: Path
    others: tuple[Path, ...]

    @property
    def all(self) -> tuple[Path, ...]:
        return (self.primary, *self.others)


def state_folders(
    root: str | os.PathLike[str], applies: bool, state_dir: str | os.PathLike[str] | None = None
) -> StateFolders:
    inside = Path(os.path.realpath(root)) / STATE_DIRNAME
    outside = Path(state_dir) if state_dir is not None else default_state_dir(root)
    overlap = relation(outside, root)
    if overlap is not None:
        says = {"same": "is the", "inside": "is inside the", "contains": "contains the"}[overlap]
        raise StateFolderConflict(
            f"state folder {outside} {says} archive {root}: its reports, pictures and lock would sit "
            "among the photos; choose a folder outside the archive"
        )
    if applies:
        return StateFolders(inside, (outside,))
    return StateFolders(outside, (inside,))


@dataclass
class Memory:
    """What the archive's journals remember that matters to one run (a picklable snapshot)."""

    rotated: dict[str, str] = field(default_factory=dict)  # hash a rotation produced -> run id
    pinned: dict[str, str] = field(default_factory=dict)  # original put back by undo -> run undone
    reviewed: dict[str, Review] = field(default_factory=dict)  # content hash -> latest review
    seen: dict[str, Seen] = field(default_factory=dict)  # relative path -> identity when last read
    judged: dict[str, Judgement] = field(default_factory=dict)  # content hash -> judgement

    def leave_alone(self, sha256: str) -> str | None:
        """Why a file with this content must not be turned or flagged automatically, if so."""
        if (run := self.rotated.get(sha256)) is not None:
            return f"already rotated by run {run}; not rotated twice"
        if (review := self.reviewed.get(sha256)) is not None:
            if review.rotation_deg == 0:
                return f"confirmed upright by {review.reviewer} on {review.decided_at[:10]}; left as is"
            return (
                f"reviewed by {review.reviewer}: needs {review.rotation_deg}\u00b0 clockwise; "
                "apply it with `orient apply-review`"
            )
        if (run := self.pinned.get(sha256)) is not None:
            return (
                f"put back by undoing run {run}; not turned automatically again (a review can still turn it)"
            )
        return None

    def carried(self, rel_path: str, st: os.stat_result) -> Judgement | None:
        """The judgement of an unchanged file (same size, time and inode as when last read)."""
        seen = self.seen.get(rel_path)
        if seen is None or (seen.size, seen.mtime_ns, seen.ino) != (st.st_size, st.st_mtime_ns, st.st_ino):
            return None
        return self.judged.get(seen.sha256)

    def sha256_of(self, rel_path: str) -> str | None:
        seen = self.seen.get(rel_path)
        return None if seen is None else seen.sha256

    def for_paths(self, rel_paths: list[str]) -> Memory:
        """The part of this snapshot a chunk of files needs (what travels to a worker)."""
        seen = {p: self.seen[p] for p in rel_paths if p in self.seen}
        hashes = {s.sha256 for s in seen.values()}
        return Memory(
            self.rotated,
            self.pinned,
            self.reviewed,
            seen,
            {h: self.judged[h] for h in hashes if h in self.judged},
        )


def open_journals(folders: StateFolders, create_primary: bool = True) -> tuple[Journal | None, list[Journal]]:
    """The primary journal (created when asked) and the readable others (missing ones skipped)."""
    primary = None
    if create_primary:
        folders.primary.mkdir(parents=True, exist_ok=True)
        primary = Journal(journal_path(folders.primary))
    elif journal_path(folders.primary).is_file():
        primary = Journal(journal_path(folders.primary), readonly=True)
    others = []
    for folder in folders.others:
        if journal_path(folder).is_file():
            try:
                others.append(Journal(journal_path(folder), readonly=True))
            except JournalError:
                continue  # another version's, or damaged: this run does without it
    return primary, others


def remember(
    journals: list[Journal],
    model_version: str | None = None,
    view_key: str | None = None,
    carry_over: bool = True,
) -> Memory:
    """One snapshot from several journals (later journals do not override the first's answers)."""
    memory = Memory()
    for journal in reversed(journals):  # the first (the run's own) wins
        try:
            memory.rotated.update(journal.done_in_place())
            memory.pinned.update(journal.undone_originals())
            memory.reviewed.update(journal.reviews())
            if carry_over and model_version is not None:
                memory.seen.update(journal.seen())
                memory.judged.update(journal.judgements(model_version, view_key or ""))
        except JournalError:
            continue
    # An original that was later rotated again is no longer pinned by an older undo.
    for sha in memory.rotated:
        memory.pinned.pop(sha, None)
    return memory
