"""The journal: an SQLite record of every change, every run, written before anything is touched.

One ``changes`` row per file written, target-centric: which tree (the archive, or a mirror
folder), which path, what was there before (``sha256_before``; NULL when the file was new), what
is there after, and from which archive photo (``source_sha256``). A row is committed as
'planned' before its file is replaced and set 'done' after, so a ``kill -9`` at any instant
leaves the journal able to tell what happened (see :mod:`orient_model.archive.changes`).

Paths are stored as bytes (``os.fsencode``) so names that are not UTF-8 round-trip. Callers use
the methods below; no SQL leaves this module. A damaged or locked journal raises
:class:`JournalError` with a message a user can act on.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from orient_model.archive.lock import now_utc
from orient_model.errors import OrientError

STATES = ("planned", "done", "undone", "abandoned")
SCHEMA_VERSION = 2


class JournalError(OrientError):
    """The journal cannot answer (locked, an unknown run id, a contradiction); the message says why."""


class UnknownRun(JournalError):
    """No run of that id changed anything in this archive (a typo, or another archive's run)."""


class JournalDamaged(JournalError):
    """The journal file cannot be read at all; undo can still work from a report and the backups."""


@dataclass(frozen=True)
class Change:
    """One recorded write of one file."""

    id: int
    run_id: str
    rel_path: str  # os.fsdecode form: non-UTF-8 names survive via surrogateescape
    target_root: str | None  # None: the archive itself; else the mirror folder written to
    rotation_deg: int
    method: str
    source_sha256: str  # the archive photo the new bytes were made from
    sha256_before: str | None  # what was at the target before; None when nothing was
    sha256_after: str
    state: str
    created_at: str
    updated_at: str
    note: str | None

    @property
    def in_place(self) -> bool:
        return self.target_root is None


_SCHEMA = """
CREATE TABLE IF NOT EXISTS changes (
    id INTEGER PRIMARY KEY,
    run_id TEXT NOT NULL,
    rel_path BLOB NOT NULL,
    target_root BLOB,
    rotation_deg INTEGER NOT NULL,
    method TEXT NOT NULL,
    source_sha256 TEXT NOT NULL,
    sha256_before TEXT,
    sha256_after TEXT NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('planned', 'done', 'undone', 'abandoned')),
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    note TEXT
);
CREATE INDEX IF NOT EXISTS changes_after ON changes (sha256_after, state);
CREATE INDEX IF NOT EXISTS changes_run ON changes (run_id);
CREATE INDEX IF NOT EXISTS changes_path ON changes (rel_path);
CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT PRIMARY KEY,
    finished_at TEXT NOT NULL,
    adopted_by TEXT
);
CREATE TABLE IF NOT EXISTS seen (
    rel_path BLOB PRIMARY KEY,
    size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    ino INTEGER NOT NULL,
    sha256 TEXT NOT NULL,
    run_id TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS judgements (
    sha256 TEXT NOT NULL,
    model_version TEXT NOT NULL,
    view_key TEXT NOT NULL,
    prob_0 REAL,
    prob_90 REAL,
    prob_180 REAL,
    prob_270 REAL,
    error TEXT,
    run_id TEXT NOT NULL,
    judged_at TEXT NOT NULL,
    PRIMARY KEY (sha256, model_version, view_key)
);
CREATE TABLE IF NOT EXISTS reviews (
    id INTEGER PRIMARY KEY,
    sha256 TEXT NOT NULL,
    rel_path BLOB NOT NULL,
    rotation_deg INTEGER NOT NULL CHECK (rotation_deg IN (0, 90, 180, 270)),
    reviewer TEXT NOT NULL,
    decided_at TEXT NOT NULL,
    run_id TEXT,
    suggested_deg INTEGER,
    confidence REAL
);
CREATE INDEX IF NOT EXISTS reviews_sha ON reviews (sha256);
"""
_COLUMNS = (
    "id, run_id, rel_path, target_root, rotation_deg, method, source_sha256, sha256_before, "
    "sha256_after, state, created_at, updated_at, note"
)
# The first journals (before schema versions) named the rotation rotation_cw and the mirror
# folder out_dir, and kept the source's hash in sha256_before even for mirror copies.
_MIGRATE_FROM_0 = """
ALTER TABLE changes RENAME COLUMN rotation_cw TO rotation_deg;
ALTER TABLE changes RENAME COLUMN out_dir TO target_root;
ALTER TABLE changes ADD COLUMN source_sha256 TEXT NOT NULL DEFAULT '';
UPDATE changes SET source_sha256 = sha256_before;
UPDATE changes SET sha256_before = NULL WHERE target_root IS NOT NULL;
"""


@dataclass(frozen=True)
class Seen:
    """A file's identity when it was last read, so an unchanged file need not be read again."""

    rel_path: str
    size: int
    mtime_ns: int
    ino: int
    sha256: str


@dataclass(frozen=True)
class Judgement:
    """The model's view of one content (by hash), for one model version and way of looking."""

    sha256: str
    probs: tuple[float, float, float, float] | None
    error: str | None


@dataclass(frozen=True)
class Review:
    """An operator's decision: this content is upright after ``rotation_deg`` clockwise."""

    id: int
    sha256: str
    rel_path: str
    rotation_deg: int
    reviewer: str
    decided_at: str
    run_id: str | None
    suggested_deg: int | None
    confidence: float | None


@contextmanager
def _translated(path: Path) -> Iterator[None]:
    """SQLite's exceptions, as one line a user can act on."""
    try:
        yield
    except sqlite3.OperationalError as exc:
        if "locked" in str(exc) or "busy" in str(exc):
            raise JournalError(
                f"the journal {path} is locked by another process ({exc}); try again"
            ) from None
        raise JournalError(f"cannot use the journal {path}: {exc}") from None
    except sqlite3.DatabaseError as exc:
        raise JournalDamaged(
            f"the journal {path} is damaged ({exc}); undo from a run's report still works "
            "(orient undo REPORT.parquet), using the report and the backups"
        ) from None


class Journal:
    """The SQLite record of changes and runs in a state folder."""

    def __init__(self, path: str | os.PathLike[str], readonly: bool = False) -> None:
        self.path = Path(path)
        with _translated(self.path):
            if readonly:
                self.conn = sqlite3.connect(
                    f"file:{self.path}?mode=ro", uri=True, isolation_level=None, timeout=30
                )
            else:
                self.conn = sqlite3.connect(self.path, isolation_level=None, timeout=30)
                self.conn.execute("PRAGMA journal_mode=WAL")
                self.conn.execute("PRAGMA synchronous=FULL")
                self._create_or_migrate()
            self.conn.execute("SELECT count(*) FROM changes").fetchone()  # fails now if damaged
            if readonly and self.conn.execute("PRAGMA user_version").fetchone()[0] != SCHEMA_VERSION:
                raise JournalError(
                    f"the journal {self.path} is from another version of orient; run it once to update"
                )

    def _create_or_migrate(self) -> None:
        if self.conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION:
            return
        self.conn.execute("BEGIN IMMEDIATE")  # one process migrates; the others wait, then see it done
        try:
            if self.conn.execute("PRAGMA user_version").fetchone()[0] != SCHEMA_VERSION:
                columns = {r[1] for r in self.conn.execute("PRAGMA table_info(changes)")}
                script = (_MIGRATE_FROM_0 if "rotation_cw" in columns else "") + _SCHEMA
                for statement in filter(str.strip, script.split(";")):
                    self.conn.execute(statement)
                self.conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            self.conn.execute("COMMIT")
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise

    def close(self) -> None:
        self.conn.close()

    def _execute(self, sql: str, params: tuple = ()) -> sqlite3.Cursor:
        with _translated(self.path):
            return self.conn.execute(sql, params)

    # ---------------------------------------------------------------- changes

    def add_change(
        self,
        run_id: str,
        rel_path: str,
        target_root: Path | None,
        rotation_deg: int,
        method: str,
        source_sha256: str,
        sha256_before: str | None,
        sha256_after: str,
        note: str | None,
    ) -> int:
        """Insert a 'planned' row; committed (durably) before the file is touched."""
        now = now_utc()
        cur = self._execute(
            "INSERT INTO changes (run_id, rel_path, target_root, rotation_deg, method, source_sha256,"
            " sha256_before, sha256_after, state, created_at, updated_at, note)"
            " VALUES (?,?,?,?,?,?,?,?,'planned',?,?,?)",
            (
                run_id,
                os.fsencode(rel_path),
                None if target_root is None else os.fsencode(target_root),
                rotation_deg,
                method,
                source_sha256,
                sha256_before,
                sha256_after,
                now,
                now,
                note,
            ),
        )
        return int(cur.lastrowid)

    def set_state(self, change_id: int, state: str, note: str | None = None) -> None:
        if state not in STATES:
            raise ValueError(f"unknown change state {state!r}")
        self._execute(
            "UPDATE changes SET state = ?, updated_at = ?, note = COALESCE(?, note) WHERE id = ?",
            (state, now_utc(), note, change_id),
        )

    def _changes(self, where: str, params: tuple = ()) -> list[Change]:
        rows = self._execute(f"SELECT {_COLUMNS} FROM changes WHERE {where} ORDER BY id", params)
        return [_change(row) for row in rows]

    def changes(self, run_ids: Iterable[str] | None = None) -> list[Change]:
        """Every change, or those of the given runs, oldest first."""
        if run_ids is None:
            return self._changes("1")
        runs = tuple(run_ids)
        return self._changes(f"run_id IN ({','.join('?' * len(runs))})", runs)

    def planned(self) -> list[Change]:
        """Changes a killed run left between 'planned' and 'done'."""
        return self._changes("state = 'planned'")

    def done_in_place_producing(self, sha256: str, rel_path: str | None = None) -> Change | None:
        """The last done change in the archive that produced a file with this hash (at
        ``rel_path`` only, when given: copies of one photo each have their own change)."""
        found = self._changes("sha256_after = ? AND state = 'done' AND target_root IS NULL", (sha256,))
        if rel_path is not None:
            found = [c for c in found if c.rel_path == rel_path]
        return found[-1] if found else None

    def last_done_at(self, target_root: Path | None, rel_path: str) -> Change | None:
        """The last done change written at this path of this tree (to know a file is ours)."""
        if target_root is None:
            found = self._changes(
                "rel_path = ? AND target_root IS NULL AND state = 'done'", (os.fsencode(rel_path),)
            )
        else:
            found = self._changes(
                "rel_path = ? AND target_root = ? AND state = 'done'",
                (os.fsencode(rel_path), os.fsencode(target_root)),
            )
        return found[-1] if found else None

    # ---------------------------------------------------------------- runs

    def finish_run(self, run_id: str, adopted_by: str | None = None) -> None:
        """Mark a run finished (its report written), or adopted by the run that completed it."""
        self._execute(
            "INSERT OR REPLACE INTO runs (run_id, finished_at, adopted_by) VALUES (?,?,?)",
            (run_id, now_utc(), adopted_by),
        )

    def unfinished_runs(self) -> list[str]:
        """Runs that changed files, or adopted runs that did, but never finished (killed): no
        report will ever name them. A run killed before its own first change may still have
        adopted an earlier one; dropping it would cut that one out of every undo chain."""
        rows = self._execute(
            "SELECT run_id FROM changes WHERE run_id NOT IN (SELECT run_id FROM runs)"
            " GROUP BY run_id ORDER BY MIN(id)"
        ).fetchall()
        adopters = self._execute(
            "SELECT DISTINCT adopted_by FROM runs WHERE adopted_by IS NOT NULL"
            " AND adopted_by NOT IN (SELECT run_id FROM runs)"
        ).fetchall()
        unfinished = [r[0] for r in rows]
        return unfinished + [r[0] for r in adopters if r[0] not in unfinished]

    def is_finished(self, run_id: str) -> bool:
        return self._execute("SELECT 1 FROM runs WHERE run_id = ?", (run_id,)).fetchone() is not None

    def adopted_by(self, run_id: str) -> list[str]:
        rows = self._execute("SELECT run_id FROM runs WHERE adopted_by = ?", (run_id,)).fetchall()
        return [r[0] for r in rows]

    def run_ids(self) -> list[str]:
        rows = self._execute("SELECT run_id FROM changes GROUP BY run_id ORDER BY MIN(id)")
        return [r[0] for r in rows]

    def undone_originals(self) -> dict[str, str]:
        """Originals that an undo put back in the archive (content hash -> the run undone)."""
        rows = self._execute(
            "SELECT source_sha256, run_id FROM changes WHERE state = 'undone' AND target_root IS NULL ORDER BY id"
        )
        return {sha: run for sha, run in rows}

    def done_in_place(self) -> dict[str, str]:
        """Hashes of files an in-place change produced (content hash -> run id)."""
        rows = self._execute(
            "SELECT sha256_after, run_id FROM changes WHERE state = 'done' AND target_root IS NULL"
        )
        return {sha: run for sha, run in rows}

    # ---------------------------------------------------------------- what runs have seen and judged

    def _many(self, sql: str, rows: list[tuple]) -> None:
        if not rows:
            return
        with _translated(self.path):
            self.conn.execute("BEGIN")
            try:
                self.conn.executemany(sql, rows)
                self.conn.execute("COMMIT")
            except BaseException:
                self.conn.execute("ROLLBACK")
                raise

    def seen(self) -> dict[str, Seen]:
        rows = self._execute("SELECT rel_path, size, mtime_ns, ino, sha256 FROM seen")
        return {os.fsdecode(bytes(r[0])): Seen(os.fsdecode(bytes(r[0])), *r[1:]) for r in rows}

    def record_seen(self, seen: list[Seen], run_id: str) -> None:
        self._many(
            "INSERT OR REPLACE INTO seen (rel_path, size, mtime_ns, ino, sha256, run_id) VALUES (?,?,?,?,?,?)",
            [(os.fsencode(s.rel_path), s.size, s.mtime_ns, s.ino, s.sha256, run_id) for s in seen],
        )

    def judgements(self, model_version: str, view_key: str) -> dict[str, Judgement]:
        rows = self._execute(
            "SELECT sha256, prob_0, prob_90, prob_180, prob_270, error FROM judgements"
            " WHERE model_version = ? AND view_key = ?",
            (model_version, view_key),
        )
        return {r[0]: Judgement(r[0], None if r[1] is None else tuple(r[1:5]), r[5]) for r in rows}

    def record_judgements(
        self, judged: list[Judgement], model_version: str, view_key: str, run_id: str
    ) -> None:
        now = now_utc()
        self._many(
            "INSERT OR REPLACE INTO judgements (sha256, model_version, view_key, prob_0, prob_90, prob_180,"
            " prob_270, error, run_id, judged_at) VALUES (?,?,?,?,?,?,?,?,?,?)",
            [
                (j.sha256, model_version, view_key, *(j.probs or (None,) * 4), j.error, run_id, now)
                for j in judged
            ],
        )

    # ---------------------------------------------------------------- operator reviews

    def add_reviews(
        self, reviewer: str, decisions: list[tuple[str, str, int, str | None, int | None, float | None]]
    ) -> None:
        """Record one operator's batch of decisions in one transaction (all or none); each is
        ``(sha256, rel_path, rotation_deg, run_id, suggested_deg, confidence)`` of :class:`Review`."""
        now = now_utc()
        self._many(
            "INSERT INTO reviews (sha256, rel_path, rotation_deg, reviewer, decided_at, run_id, suggested_deg,"
            " confidence) VALUES (?,?,?,?,?,?,?,?)",
            [(sha, os.fsencode(rel), deg, reviewer, now, *rest) for sha, rel, deg, *rest in decisions],
        )

    def reviews(self) -> dict[str, Review]:
        """The latest decision for each reviewed content (by hash)."""
        rows = self._execute(
            "SELECT id, sha256, rel_path, rotation_deg, reviewer, decided_at, run_id, suggested_deg, confidence"
            " FROM reviews ORDER BY id"
        )
        return {r[1]: Review(r[0], r[1], os.fsdecode(bytes(r[2])), *r[3:]) for r in rows}


def _change(row: tuple) -> Change:
    values = list(row)
    values[2] = os.fsdecode(bytes(values[2]))
    values[3] = None if values[3] is None else os.fsdecode(bytes(values[3]))
    return Change(*values)
