"""Changing files in an archive: backed up, journaled, contained, undoable, safe to kill anywhere.

Layout of an archive's state folder (``ARCHIVE/.orient/`` unless told otherwise)::

    lock, lock.json   one run at a time (:mod:`orient_model.archive.lock`)
    journal.sqlite    every change and run (:mod:`orient_model.archive.journal`)
    backup/<sha256>   original bytes, content addressed, written before any change

The change protocol (:meth:`Archive.apply`) is ordered so a ``kill -9`` at any instant leaves
every photo either original or fully rotated and verified, and the journal able to tell which:
read (no link followed) + hash check -> rotate in memory and verify -> back up the original
(verified) -> journal 'planned' (committed) -> write a temporary file -> check the folder is
still where it was and the file still what was read -> atomic rename -> journal 'done'.
:meth:`Archive.recover` settles 'planned' rows by hashing the file, and a re-run finishes the
job without rotating twice. Every path, for apply, mirror copies, recovery and undo alike, is
opened through :mod:`orient_model.archive.paths`, so no write leaves its tree. Apply, mirror
copies and recovery share this module's protocol (backup, journal states, the replace);
undo, which only reads it back, lives in :mod:`orient_model.archive.undo`.

Out of scope, by the nature of an atomic replace: a file with several hard links is replaced at
its one name only (the other names keep the original bytes); extended attributes and ACLs
beyond the permission bits are not carried over to the new file.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from orient_model.archive.journal import Change, Journal
from orient_model.archive.layout import backup_dir, journal_path
from orient_model.archive.lock import state_lock
from orient_model.archive.paths import (
    STATE_DIRNAME,
    ChangedSinceRead,
    FileState,
    OutsideArchive,
    Tree,
    relation,
)
from orient_model.archive.walk import remove_stale_temp_files
from orient_model.errors import OrientError
from orient_model.files import atomic_write_bytes, sha256_bytes, sha256_file
from orient_model.rotate import Method, rotate_bytes

if TYPE_CHECKING:
    from orient_model.archive.undo import UndoOutcome

# Called with (stage, relative path) as a change goes through its protocol; crash drills and
# race tests use it to act at an exact point ("verified", "backed-up", "planned", "replaced", and
# "restored" when undo has put an original back but not yet journaled it).
StageHook = Callable[[str, str], None]


class ReadOnlyFile(OrientError):
    """The photo (or its folder) is not writable; nothing was changed."""


class BackupFailed(OrientError):
    """The original could not be backed up safely, so it was not changed."""


class WriteFailed(OrientError):
    """The new file could not be written, or did not read back; the original is kept."""


class MirrorConflict(OrientError):
    """A mirror target that orient did not write, or that overlaps the archive; left alone."""


@dataclass
class ApplyResult:
    applied: bool
    method: str
    sha256_before: str
    sha256_after: str
    note: str | None


def state_dir(root: str | os.PathLike[str]) -> Path:
    """The state folder an archive keeps inside itself for runs that change it."""
    return Path(os.path.realpath(root)) / STATE_DIRNAME


def archive_lock(root: str | os.PathLike[str], run_id: str, state: Path | None = None):
    """Hold an archive for one run (see :func:`orient_model.archive.lock.state_lock`)."""
    return state_lock(state or state_dir(root), str(root), run_id)


class Archive:
    """One photo archive and its state. Use it while holding the archive's lock."""

    def __init__(
        self,
        root: str | os.PathLike[str],
        state: str | os.PathLike[str] | None = None,
        on_stage: StageHook | None = None,
    ) -> None:
        self.tree = Tree(root)
        self.root = self.tree.root
        self.state_dir = Path(state) if state is not None else self.root / STATE_DIRNAME
        self.backup_dir = backup_dir(self.state_dir)
        self.on_stage = on_stage or (lambda stage, rel: None)
        self.backup_dir.mkdir(parents=True, exist_ok=True)
        try:
            self.journal = Journal(journal_path(self.state_dir))
        except BaseException:
            self.tree.close()
            raise
        self._mirrors: dict[Path, Tree] = {}

    def close(self) -> None:
        self.journal.close()
        self.tree.close()
        for tree in self._mirrors.values():
            tree.close()

    def __enter__(self) -> Archive:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ queries

    def rotated_by(self, sha256: str, rel_path: str | None = None) -> Change | None:
        """The done change that produced a file with this hash (at ``rel_path``, when given), so a
        re-run leaves it alone."""
        return self.journal.done_in_place_producing(sha256, rel_path)

    def entries(self, run_id: str | None = None) -> list[Change]:
        return self.journal.changes(None if run_id is None else [run_id])

    # ------------------------------------------------------------------ apply

    def apply(
        self,
        rel_path: str,
        rotation_deg: int,
        method: Method,
        run_id: str,
        expected_sha256: str,
        out_dir: Path | None = None,
        *,
        exif_orientation: int | None = None,
    ) -> ApplyResult:
        """Rotate one file in place, or write its rotated copy into the ``out_dir`` mirror tree.

        Raises an :class:`~orient_model.errors.OrientError` (the message goes into the report)
        whenever the file is not changed for a reason the user should know.
        """
        with self.tree.place(rel_path) as place:
            data, state = read_photo(place)
            before = sha256_bytes(data)
            if before != expected_sha256:
                raise ChangedSinceRead(
                    f"{rel_path}: file changed since it was read; run again to re-check it"
                )
            previous = self.rotated_by(before)
            if previous is not None and out_dir is None:
                return ApplyResult(
                    False,
                    previous.method,
                    before,
                    before,
                    f"already rotated by run {previous.run_id!r}; left as is",
                )
            rotated = rotate_bytes(data, rotation_deg, method, exif_orientation=exif_orientation)
            after = sha256_bytes(rotated.data)
            self.on_stage("verified", rel_path)
            if out_dir is not None:
                return self._write_copy(
                    out_dir,
                    rel_path,
                    rotated.data,
                    before,
                    rotation_deg,
                    rotated.method,
                    run_id,
                    rotated.note,
                )
            if after == before:
                return ApplyResult(False, rotated.method, before, after, rotated.note)
            _check_writable(state, (self.root / rel_path).parent, rel_path)
            self._backup(data, before)
            self.on_stage("backed-up", rel_path)
            change = self.journal.add_change(
                run_id, rel_path, None, rotation_deg, rotated.method, before, before, after, rotated.note
            )
            self.on_stage("planned", rel_path)
            self._replace(change, place, rotated.data, state, before, after)
            self.journal.set_state(change, "done")
            return ApplyResult(True, rotated.method, before, after, rotated.note)

    def mirror(self, rel_path: str, out_dir: Path, expected_sha256: str, run_id: str) -> ApplyResult:
        """Copy an unchanged photo into the ``out_dir`` mirror tree, verified by its hash."""
        with self.tree.place(rel_path) as place:
            data, _ = read_photo(place)
        before = sha256_bytes(data)
        if before != expected_sha256:
            raise ChangedSinceRead(f"{rel_path}: file changed since it was read; not copied")
        return self._write_copy(out_dir, rel_path, data, before, 0, "copy", run_id, None)

    def _mirror_tree(self, out_dir: Path) -> Tree:
        out = Path(os.path.realpath(out_dir))
        if out not in self._mirrors:
            check_mirror_folder(self.root, out, self.state_dir)
            out.mkdir(parents=True, exist_ok=True)
            self._mirrors[out] = Tree(out)
        return self._mirrors[out]

    def _write_copy(
        self,
        out_dir: Path,
        rel_path: str,
        data: bytes,
        source_sha256: str,
        rotation_deg: int,
        method: str,
        run_id: str,
        note: str | None,
    ) -> ApplyResult:
        """Put ``data`` at ``rel_path`` in the mirror: a new file, or over a copy orient wrote there
        before (backed up and journaled like any change), never over anything else."""
        tree = self._mirror_tree(out_dir)
        after = sha256_bytes(data)
        with tree.place(rel_path, create_folders=True) as place:
            state, current = None, None
            if place.lstat() is not None:
                existing, state = read_photo(place)
                current = sha256_bytes(existing)
                if current == after:
                    return ApplyResult(
                        False, method, source_sha256, after, "the output folder already holds this copy"
                    )
                ours = self.journal.last_done_at(tree.root, rel_path)
                if ours is None or ours.sha256_after != current:
                    raise MirrorConflict(
                        f"{rel_path}: {tree.root / rel_path} exists and was not written by orient; "
                        "not overwritten (choose an empty output folder)"
                    )
                self._backup(existing, current)
            change = self.journal.add_change(
                run_id, rel_path, tree.root, rotation_deg, method, source_sha256, current, after, note
            )
            self.on_stage("planned", rel_path)
            self._replace(change, place, data, state, current, after)
            self.journal.set_state(change, "done")
        return ApplyResult(True, method, source_sha256, after, note)

    def _replace(
        self, change: int, place, data: bytes, state: FileState | None, before: str | None, after: str
    ) -> None:
        try:
            place.replace(data, state, before)
            self.on_stage("replaced", place.rel_path)
            ok = place.sha256() == after
        except (ChangedSinceRead, OutsideArchive) as exc:
            self.journal.set_state(change, "abandoned", str(exc))
            raise
        except OSError as exc:
            self.journal.set_state(change, "abandoned", f"write failed: {exc}")
            raise WriteFailed(
                f"{place.rel_path}: cannot write the new file ({exc.strerror or exc}); original kept"
            ) from exc
        if not ok:
            self.journal.set_state(change, "abandoned", "the new file did not read back")
            raise WriteFailed(
                f"{place.rel_path}: the new file did not read back correctly; "
                f"the original is in {self.backup_dir / (before or '')}"
            )

    def _backup(self, data: bytes, sha256: str) -> None:
        """Keep the original bytes (verified) before anything is changed."""
        path = self.backup_dir / sha256
        try:
            if path.exists() and sha256_file(path) == sha256:
                return
            atomic_write_bytes(path, data)
            ok = sha256_file(path) == sha256
        except OSError as exc:
            raise BackupFailed(
                f"cannot write the backup copy to {path} ({exc.strerror or exc}); file not touched"
            ) from exc
        if not ok:
            raise BackupFailed(f"backup copy at {path} does not read back correctly; file not touched")

    # ------------------------------------------------------------------ recovery

    def recover(self) -> list[str]:
        """Settle changes a killed run left 'planned', and sweep its temporary files."""
        messages = [f"removed leftover temporary file {p}" for p in remove_stale_temp_files(self.root)]
        for change in self.journal.planned():
            messages.append(self._settle(change))
        return messages

    def tree_of(self, change: Change) -> Tree:
        """The tree a change wrote into: the archive, or the mirror folder it named."""
        if change.in_place:
            return self.tree
        return self._mirror_tree(Path(change.target_root))

    def _current(self, change: Change) -> tuple[str | None, FileState | None]:
        """The hash and state of a change's target now (None, None when absent)."""
        with self.tree_of(change).place(change.rel_path) as place:
            if place.lstat() is None:
                return None, None
            data, state = read_photo(place)
            return sha256_bytes(data), state

    def _settle(self, change: Change) -> str:
        where = change.rel_path if change.in_place else f"{change.target_root}/{change.rel_path}"
        try:
            if not change.in_place:
                remove_stale_temp_files(self.tree_of(change).root)
            current, _ = self._current(change)
        except (OrientError, OSError) as exc:
            self.journal.set_state(change.id, "abandoned", f"not settled: {exc}")
            return f"{where}: cannot be checked ({exc}); left as is"
        if current == change.sha256_after:
            self.journal.set_state(change.id, "done")
            return f"{where}: change by run {change.run_id!r} had completed; marked done"
        if current == change.sha256_before:
            self.journal.set_state(change.id, "abandoned", "interrupted before the file was replaced")
            return f"{where}: change by run {change.run_id!r} never happened; file is as it was"
        self.journal.set_state(change.id, "abandoned", "file changed by something else during the run")
        return (
            f"{where}: neither the original nor the new version (changed by something else?); "
            f"left as is, the original kept in {self.backup_dir}"
        )

    def adopt_unfinished(self, run_id: str) -> list[str]:
        """Runs killed before they finished become part of ``run_id``, which completes their work:
        undoing ``run_id`` (e.g. from its report) then undoes theirs too."""
        adopted = [r for r in self.journal.unfinished_runs() if r != run_id]
        for other in adopted:
            self.journal.finish_run(other, adopted_by=run_id)
        return adopted

    def finish(self, run_id: str) -> None:
        self.journal.finish_run(run_id)

    def runs_undone_with(self, run_id: str) -> list[str]:
        """``run_id`` and, transitively, the interrupted runs it adopted (newest first)."""
        order, todo = [], [run_id]
        while todo:
            current = todo.pop()
            order.append(current)
            todo += self.journal.adopted_by(current)
        return order

    # ------------------------------------------------------------------ undo

    def undo(
        self,
        run_id: str,
        report: dict[str, tuple[str | None, str | None]] | None = None,
        paths: Iterable[str] | None = None,
        dry_run: bool = False,
    ) -> list[UndoOutcome]:
        """Put back what run ``run_id`` (and the interrupted runs it completed) changed; see
        :func:`orient_model.archive.undo.undo_changes`."""
        from orient_model.archive.undo import undo_changes  # undo builds on this module

        return undo_changes(self, run_id, report, paths, dry_run)


def check_mirror_folder(archive_root: Path, out_dir: Path, state: Path | None = None) -> None:
    """A mirror folder must be neither the archive nor inside it nor around it (or its state)."""
    for other, what in ((archive_root, "archive"), (state, "state folder")):
        if other is None:
            continue
        overlap = relation(out_dir, other)
        if overlap is not None:
            says = {"same": "is the", "inside": "is inside the", "contains": "contains the"}[overlap]
            raise MirrorConflict(
                f"output folder {out_dir} {says} {what} {other}; choose a folder outside the archive"
            )


def read_photo(place) -> tuple[bytes, FileState]:
    """A photo's bytes and state, a vanished or unreadable file told as such (not a bare OSError)."""
    try:
        return place.read()
    except FileNotFoundError:
        raise ChangedSinceRead(f"{place.rel_path}: file no longer exists") from None
    except PermissionError:
        raise ReadOnlyFile(f"{place.rel_path}: permission denied reading the file") from None


def _check_writable(state: FileState, folder: Path, rel_path: str) -> None:
    if not state.mode & (stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH):
        raise ReadOnlyFile(
            f"{rel_path}: file is read-only; make it writable to rotate it, or use an output folder"
        )
    if not os.access(folder, os.W_OK):
        raise ReadOnlyFile(f"{rel_path}: no permission to write in {folder}; not touched")
