"""The archive's state folder: a lock, a journal of every change, and a backup of every original.

Layout of ``<root>/.orient/``::

    lock              filelock (an OS lock, so it is released if the holder is killed)
    lock.json         who holds it: pid, host, run id, start time (for the error message)
    journal.sqlite    one row per change (WAL, synchronous=FULL)
    backup/<sha256>   original bytes, content addressed, written before any change

The change protocol (:meth:`Archive.apply`) is ordered so a ``kill -9`` at any instant leaves
every photo either original or fully rotated and verified, and the journal able to tell which:
read + hash check -> rotate in memory and verify -> back up the original (verified) -> journal
'planned' (committed) -> atomic replace -> journal 'done'. :meth:`Archive.recover` settles
'planned' rows by hashing the file, and a re-run finishes the job without rotating twice
(:meth:`Archive.rotated_by`).
"""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from filelock import FileLock, Timeout

from orient_model.atomic import (
    atomic_write_bytes,
    remove_stale_temp_files,
    sha256_bytes,
    sha256_file,
)
from orient_model.errors import OrientError
from orient_model.rotate import Method, RotateError, rotate_bytes

STATE_DIRNAME = ".orient"
STATES = ("planned", "done", "undone", "abandoned")


class ArchiveLocked(OrientError):
    """Another run holds the archive; the message names it."""


class JournalError(OrientError):
    """A request the journal cannot answer (e.g. an unknown run id)."""


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def state_dir(root: str | os.PathLike[str]) -> Path:
    return Path(root) / STATE_DIRNAME


@contextmanager
def archive_lock(root: str | os.PathLike[str], run_id: str) -> Iterator[dict]:
    """Hold the archive for one run; a second run fails fast with :class:`ArchiveLocked`.

    The OS lock (flock) dies with its process, so a killed run never leaves the archive
    locked; ``lock.json`` only exists to tell the next run who was holding it.
    """
    folder = state_dir(root)
    folder.mkdir(exist_ok=True)
    lock = FileLock(folder / "lock", timeout=0)
    try:
        lock.acquire()
    except Timeout:
        raise ArchiveLocked(_locked_message(root, folder / "lock.json")) from None
    holder = {"pid": os.getpid(), "host": socket.gethostname(), "run_id": run_id, "started": _now()}
    try:
        atomic_write_bytes(folder / "lock.json", json.dumps(holder).encode())
        yield holder
    finally:
        (folder / "lock.json").unlink(missing_ok=True)
        lock.release()


def _locked_message(root: str | os.PathLike[str], info_path: Path) -> str:
    try:
        holder = json.loads(info_path.read_text())
        who = (
            f"run {holder.get('run_id')!r} (pid {holder.get('pid')} on {holder.get('host')}, "
            f"started {holder.get('started')})"
        )
    except (OSError, ValueError):
        who = "another run"
    return f"archive {root} is in use by {who}; wait for it to finish or stop that process"


@dataclass
class JournalEntry:
    """One recorded change to one file."""

    id: int
    run_id: str
    rel_path: str  # os.fsdecode form: non-UTF-8 names survive via surrogateescape
    rotation_cw: int
    method: str
    sha256_before: str
    sha256_after: str
    state: str
    created_at: str
    updated_at: str
    note: str | None
    out_dir: str | None  # set when the corrected copy went to another tree


@dataclass
class ApplyResult:
    applied: bool
    method: str
    sha256_before: str
    sha256_after: str
    note: str | None


@dataclass
class UndoOutcome:
    rel_path: str
    restored: bool
    message: str


_SCHEMA = """
CREATE TABLE IF NOT EXISTS changes (
    id INTEGER PRIMARY KEY,
    run_id TEXT NOT NULL,
    rel_path BLOB NOT NULL,
    rotation_cw INTEGER NOT NULL,
    method TEXT NOT NULL,
    sha256_before TEXT NOT NULL,
    sha256_after TEXT NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('planned', 'done', 'undone', 'abandoned')),
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    note TEXT,
    out_dir BLOB
);
CREATE INDEX IF NOT EXISTS changes_after ON changes (sha256_after, state);
CREATE INDEX IF NOT EXISTS changes_run ON changes (run_id);
CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT PRIMARY KEY,
    finished_at TEXT NOT NULL,
    adopted_by TEXT
);
"""
_COLUMNS = (
    "id, run_id, rel_path, rotation_cw, method, sha256_before, sha256_after, state, "
    "created_at, updated_at, note, out_dir"
)


class Journal:
    """SQLite record of changes.

    Paths are stored as bytes (``os.fsencode``) so names that are not UTF-8 round-trip.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.conn = sqlite3.connect(path, isolation_level=None, timeout=30)
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute("PRAGMA synchronous=FULL")
        self.conn.executescript(_SCHEMA)

    def close(self) -> None:
        self.conn.close()

    def add(
        self,
        run_id: str,
        rel_path: str,
        rotation_cw: int,
        method: str,
        before: str,
        after: str,
        note: str | None,
        out_dir: Path | None,
    ) -> int:
        """Insert a 'planned' row; committed (durably) before the file is touched."""
        now = _now()
        out = None if out_dir is None else os.fsencode(out_dir)
        cur = self.conn.execute(
            "INSERT INTO changes (run_id, rel_path, rotation_cw, method, sha256_before,"
            " sha256_after, state, created_at, updated_at, note, out_dir)"
            " VALUES (?,?,?,?,?,?,'planned',?,?,?,?)",
            (
                run_id,
                os.fsencode(rel_path),
                rotation_cw,
                method,
                before,
                after,
                now,
                now,
                note,
                out,
            ),
        )
        return int(cur.lastrowid)

    def set_state(self, entry_id: int, state: str, note: str | None = None) -> None:
        assert state in STATES
        self.conn.execute(
            "UPDATE changes SET state = ?, updated_at = ?, note = COALESCE(?, note) WHERE id = ?",
            (state, _now(), note, entry_id),
        )

    def entries(self, where: str = "1", params: tuple = ()) -> list[JournalEntry]:
        rows = self.conn.execute(
            f"SELECT {_COLUMNS} FROM changes WHERE {where} ORDER BY id", params
        )
        return [_entry(row) for row in rows]

    def finish_run(self, run_id: str, adopted_by: str | None = None) -> None:
        """Mark a run finished (its report written), or adopted by the run that completed it."""
        self.conn.execute(
            "INSERT OR REPLACE INTO runs (run_id, finished_at, adopted_by) VALUES (?,?,?)",
            (run_id, _now(), adopted_by),
        )

    def unfinished_runs(self) -> list[str]:
        """Runs that changed files but never finished (killed): no report will ever name them."""
        rows = self.conn.execute(
            "SELECT run_id FROM changes WHERE run_id NOT IN (SELECT run_id FROM runs)"
            " GROUP BY run_id ORDER BY MIN(id)"
        ).fetchall()
        return [r[0] for r in rows]

    def is_finished(self, run_id: str) -> bool:
        return self.conn.execute("SELECT 1 FROM runs WHERE run_id = ?", (run_id,)).fetchone() is not None

    def adopted_by(self, run_id: str) -> list[str]:
        rows = self.conn.execute("SELECT run_id FROM runs WHERE adopted_by = ?", (run_id,)).fetchall()
        return [r[0] for r in rows]

    def run_ids(self) -> list[str]:
        return [r[0] for r in self.conn.execute("SELECT DISTINCT run_id FROM changes ORDER BY id")]


def _entry(row: tuple) -> JournalEntry:
    values = list(row)
    values[2] = os.fsdecode(bytes(values[2]))
    values[11] = None if values[11] is None else os.fsdecode(bytes(values[11]))
    return JournalEntry(*values)


class Archive:
    """One photo archive and its ``.orient`` state. Use it while holding :func:`archive_lock`."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(os.path.realpath(root))
        self.state_dir = state_dir(self.root)
        self.backup_dir = self.state_dir / "backup"
        self.backup_dir.mkdir(parents=True, exist_ok=True)
        self.journal = Journal(self.state_dir / "journal.sqlite")

    def close(self) -> None:
        self.journal.close()

    def __enter__(self) -> Archive:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ queries

    def rotated_by(self, sha256: str) -> JournalEntry | None:
        """The done change that produced a file with this hash, so a re-run leaves it alone."""
        found = self.journal.entries("sha256_after = ? AND state = 'done'", (sha256,))
        return found[-1] if found else None

    def entries(self, run_id: str | None = None) -> list[JournalEntry]:
        if run_id is None:
            return self.journal.entries()
        return self.journal.entries("run_id = ?", (run_id,))

    # ------------------------------------------------------------------ apply

    def apply(
        self,
        rel_path: str,
        rotation_cw: int,
        method: Method,
        run_id: str,
        expected_sha256: str,
        out_dir: Path | None = None,
        *,
        exif_orientation: int | None = None,
    ) -> ApplyResult:
        """Rotate one file in place (or into ``out_dir``), crash-safely; see the module doc."""
        source = self._resolve(rel_path)
        data = _read(source, rel_path)
        before = sha256_bytes(data)
        if before != expected_sha256:
            raise RotateError(
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
        rotated = rotate_bytes(data, rotation_cw, method, exif_orientation=exif_orientation)
        after = sha256_bytes(rotated.data)
        if after == before:
            return ApplyResult(False, rotated.method, before, after, rotated.note)
        if out_dir is None:
            self._check_writable(source, rel_path)
            self._backup(data, before)
            target = source
        else:
            target = self._out_target(Path(out_dir), rel_path)
        entry = self.journal.add(
            run_id,
            rel_path,
            rotation_cw,
            rotated.method,
            before,
            after,
            rotated.note,
            None if out_dir is None else Path(out_dir).resolve(),
        )
        self._write(entry, target, rotated.data, after, rel_path)
        self.journal.set_state(entry, "done")
        return ApplyResult(True, rotated.method, before, after, rotated.note)

    def mirror(self, rel_path: str, out_dir: Path, expected_sha256: str) -> None:
        """Copy an unchanged photo into the ``out_dir`` mirror tree, verified by its hash."""
        data = _read(self._resolve(rel_path), rel_path)
        if sha256_bytes(data) != expected_sha256:
            raise RotateError(f"{rel_path}: file changed since it was read; not copied")
        atomic_write_bytes(self._out_target(Path(out_dir), rel_path), data)

    def _resolve(self, rel_path: str) -> Path:
        """The file for ``rel_path``, refusing anything that leads outside the archive."""
        if os.path.isabs(rel_path):
            raise RotateError(f"{rel_path}: expected a path relative to the archive root")
        path = self.root / rel_path
        real = Path(os.path.realpath(path))
        if not real.is_relative_to(self.root) or real.is_relative_to(self.state_dir):
            raise RotateError(f"{rel_path}: resolves outside the archive ({real}); not touched")
        if path.is_symlink():
            raise RotateError(
                f"{rel_path}: is a symbolic link; rotate the file it points to instead"
            )
        return real

    def _check_writable(self, path: Path, rel_path: str) -> None:
        mode = path.stat().st_mode
        if not mode & (stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH):
            raise RotateError(
                f"{rel_path}: file is read-only; make it writable to rotate it, "
                "or use an output folder"
            )
        if not os.access(path.parent, os.W_OK):
            raise RotateError(f"{rel_path}: no permission to write in {path.parent}; not touched")

    def _out_target(self, out_dir: Path, rel_path: str) -> Path:
        target = out_dir / rel_path
        if not Path(os.path.realpath(target)).is_relative_to(os.path.realpath(out_dir)):
            raise RotateError(f"{rel_path}: would be written outside the output folder {out_dir}")
        target.parent.mkdir(parents=True, exist_ok=True)
        return target

    def _backup(self, data: bytes, sha256: str) -> None:
        """Keep the original bytes (verified) before anything is changed."""
        path = self.backup_dir / sha256
        if path.exists() and sha256_file(path) == sha256:
            return
        try:
            atomic_write_bytes(path, data)
        except OSError as exc:
            raise RotateError(
                f"cannot write the backup copy to {path} ({exc}); file not touched"
            ) from exc
        if sha256_file(path) != sha256:
            raise RotateError(
                f"backup copy at {path} does not read back correctly; file not touched"
            )

    def _write(self, entry: int, target: Path, data: bytes, after: str, rel_path: str) -> None:
        try:
            atomic_write_bytes(target, data)
            ok = sha256_file(target) == after
        except OSError as exc:
            self.journal.set_state(entry, "abandoned", f"write failed: {exc}")
            raise RotateError(
                f"{rel_path}: cannot write the rotated file ({exc}); original kept"
            ) from exc
        if not ok:
            self.journal.set_state(entry, "abandoned", "rotated file did not read back")
            raise RotateError(f"{rel_path}: the rotated file did not read back correctly")

    # ------------------------------------------------------------------ recovery and undo

    def recover(self) -> list[str]:
        """Settle changes a killed run left 'planned', and sweep its temporary files."""
        messages = [
            f"removed leftover temporary file {p}" for p in remove_stale_temp_files(self.root)
        ]
        for entry in self.journal.entries("state = 'planned'"):
            messages.append(self._settle(entry))
        return messages

    def _target(self, entry: JournalEntry) -> Path:
        base = self.root if entry.out_dir is None else Path(entry.out_dir)
        return base / entry.rel_path

    def _settle(self, entry: JournalEntry) -> str:
        try:
            current = sha256_file(self._target(entry))
        except OSError:
            current = None
        if current == entry.sha256_after:
            self.journal.set_state(entry.id, "done")
            return f"{entry.rel_path}: rotation by run {entry.run_id!r} had completed; marked done"
        if current == entry.sha256_before or (current is None and entry.out_dir is not None):
            self.journal.set_state(
                entry.id, "abandoned", "interrupted before the file was replaced"
            )
            return (
                f"{entry.rel_path}: rotation by run {entry.run_id!r} never happened; "
                "file is original"
            )
        self.journal.set_state(
            entry.id, "abandoned", "file changed by something else during the run"
        )
        return (
            f"{entry.rel_path}: neither the original nor the rotated version (changed by something "
            f"else?); left as is, original kept in {self.backup_dir / entry.sha256_before}"
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

    def undo(self, run_id: str) -> list[UndoOutcome]:
        """Put back the byte-identical originals of every file run ``run_id`` changed, and of
        the interrupted runs it completed."""
        runs = self.runs_undone_with(run_id)
        placeholders = ",".join("?" * len(runs))
        entries = self.journal.entries(f"run_id IN ({placeholders})", tuple(runs))
        if not entries and self.journal.is_finished(run_id):
            return []  # a finished run that changed no file: nothing to undo
        if not entries:
            known = ", ".join(self.journal.run_ids()[-5:]) or "none"
            raise JournalError(
                f"no changes recorded for run {run_id!r} in {self.root} (recent runs: {known})"
            )
        self.recover()
        entries = self.journal.entries(f"run_id IN ({placeholders})", tuple(runs))
        return [self._undo_one(e) for e in reversed(entries) if e.state in ("done", "undone")]

    def _undo_one(self, entry: JournalEntry) -> UndoOutcome:
        name = entry.rel_path
        if entry.state == "undone":
            return UndoOutcome(name, False, "already undone")
        if entry.out_dir is not None:
            return UndoOutcome(
                name, False, f"corrected copy is in {entry.out_dir}; the original was never changed"
            )
        path = self.root / name
        try:
            current = sha256_file(path)
        except OSError as exc:
            return UndoOutcome(name, False, f"cannot read the file ({exc}); not restored")
        if current == entry.sha256_before:  # an undo killed after its replace
            self.journal.set_state(entry.id, "undone")
            return UndoOutcome(name, True, "already the original; marked undone")
        if current != entry.sha256_after:
            return UndoOutcome(
                name,
                False,
                f"changed since run {entry.run_id!r} rotated it; not restored "
                f"(original kept in {self.backup_dir / entry.sha256_before})",
            )
        backup = self.backup_dir / entry.sha256_before
        try:
            original = backup.read_bytes()
        except OSError:
            return UndoOutcome(name, False, f"backup {backup} is missing; not restored")
        if sha256_bytes(original) != entry.sha256_before:
            return UndoOutcome(name, False, f"backup {backup} is damaged; not restored")
        atomic_write_bytes(path, original)
        self.journal.set_state(entry.id, "undone")
        return UndoOutcome(name, True, f"restored the original from before run {entry.run_id!r}")


def _read(path: Path, rel_path: str) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise RotateError(f"{rel_path}: file no longer exists") from None
    except PermissionError:
        raise RotateError(f"{rel_path}: permission denied reading the file") from None
    except OSError as exc:
        raise RotateError(f"{rel_path}: cannot read the file ({exc})") from exc


def read_journal(root: str | os.PathLike[str]) -> list[dict]:
    """A read-only snapshot of an archive's journal, safe while a run is writing to it (audits,
    drills); ``[]`` before the first change."""
    path = state_dir(root) / "journal.sqlite"
    if not path.exists():
        return []
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
        try:
            cur = conn.execute(
                "SELECT id, run_id, rel_path, rotation_cw, method, sha256_before, sha256_after, "
                "state FROM changes ORDER BY id"
            )
            names = [c[0] for c in cur.description]
            rows = [dict(zip(names, r, strict=True)) for r in cur]
        finally:
            conn.close()
    except sqlite3.Error:  # not created yet, or mid-creation
        return []
    for row in rows:
        row["rel_path"] = os.fsdecode(bytes(row["rel_path"]))
    return rows


def archive_contents(root: str | os.PathLike[str]) -> dict[str, bytes]:
    """Every file's bytes by relative path, the state folder left out (audits, drills)."""
    root = Path(root)
    return {
        path.relative_to(root).as_posix(): path.read_bytes()
        for path in sorted(root.rglob("*"))
        if path.is_file() and path.relative_to(root).parts[0] != STATE_DIRNAME
    }
