"""One auto-rotate run, from lock to report: the protocol that keeps an archive safe.

::

    with AutorotateRun(archive, cfg, model_version, view_key) as run:
        for chunk in run.chunks():
            predicted = predict_entries(run.root, chunk, ..., memory=run.memory_for(chunk))
            run.finish_chunk(predicted)      # apply, journal, report: in this one process
    summary = run.summary

On entry the run checks its inputs (the archive exists; a mirror folder does not overlap it),
takes the lock of its state folder, settles what a killed run left half done, adopts killed
runs (so undoing this run's report undoes theirs too) and reads what the journals remember.
Prediction needs none of that and may run anywhere. Applying stays with the run: it holds the
lock and the journal. On a clean exit the report is put in place and the run is marked
finished; on any failure the run stays unfinished (the next run adopts it) and
:class:`RunAborted` says which run it was and how to undo what it did.
"""

from __future__ import annotations

import os
import secrets
import time
from collections.abc import Callable
from pathlib import Path

from orient_model.archive.changes import Archive, check_mirror_folder
from orient_model.archive.journal import Journal, JournalError
from orient_model.archive.layout import report_path, reports_dir
from orient_model.archive.lock import state_lock
from orient_model.archive.state import Memory, open_journals, remember, state_folders
from orient_model.archive.walk import ArchiveEntry, walk_archive
from orient_model.config import AutorotateConfig
from orient_model.errors import OrientError
from orient_model.files import TMP_PREFIX
from orient_model.pipeline import Predicted, batched
from orient_model.report import ReportRow, ReportWriter

Log = Callable[[str], None]


class RunAborted(OrientError):
    """A run stopped part-way; the message names it and says how to undo what it changed."""


def new_run_id() -> str:
    return time.strftime("%Y%m%d-%H%M%S-") + secrets.token_hex(3)


class AutorotateRun:
    """One run of auto-rotate over one archive (see the module doc for the protocol)."""

    def __init__(
        self,
        archive_dir: str | os.PathLike[str],
        cfg: AutorotateConfig,
        model_version: str,
        view_key: str,
        *,
        threshold: float | None = None,
        decision_note: str | None = None,
        report: str | os.PathLike[str] | None = None,
        out_dir: str | os.PathLike[str] | None = None,
        state_dir: str | os.PathLike[str] | None = None,
        run_id: str | None = None,
        rejudge: bool = False,
        model_path: str | None = None,
        on_stage=None,
        log: Log = print,
    ) -> None:
        if not Path(archive_dir).is_dir():
            raise NotADirectoryError(f"archive directory not found: {archive_dir}")
        self.root = Path(os.path.realpath(archive_dir))
        self.cfg, self.model_version, self.view_key = cfg, model_version, view_key
        self.threshold = cfg.threshold if threshold is None else threshold
        self.decision_note = decision_note
        self.out_dir = None if out_dir is None else Path(os.path.realpath(out_dir))
        self.applies = cfg.apply != "none"
        if self.out_dir is not None and not self.applies:
            raise OrientError(
                "--out-dir writes corrected copies, so it needs --apply lossless or --apply exif"
            )
        # A mirror run changes nothing in the archive, so it keeps its state outside it too (a
        # read-only archive can be mirrored).
        self.folders = state_folders(self.root, self.applies and self.out_dir is None, state_dir)
        if self.out_dir is not None:
            check_mirror_folder(self.root, self.out_dir, self.folders.primary)
        self.run_id = run_id or new_run_id()
        self.report_path = Path(report) if report else report_path(self.folders.primary, self.run_id)
        self.rejudge, self.model_path, self.on_stage, self.log = rejudge, model_path, on_stage, log
        self.archive: Archive | None = None
        self.journal: Journal | None = None
        self.others: list[Journal] = []
        self.adopted: list[str] = []
        self.summary: dict | None = None

    # ---------------------------------------------------------------- entry and exit

    def __enter__(self) -> AutorotateRun:
        self._lock = state_lock(self.folders.primary, str(self.root), self.run_id)
        self._lock.__enter__()
        try:
            self._start()
        except BaseException as exc:
            self._close()
            if isinstance(exc, OrientError | OSError):
                raise RunAborted(f"run {self.run_id} could not start: {exc}") from exc
            raise
        return self

    def _start(self) -> None:
        self._clear_abandoned_reports()
        if self.applies:
            self.archive = Archive(self.root, self.folders.primary, on_stage=self.on_stage)
            self.journal = self.archive.journal
            for message in self.archive.recover():
                self.log(f"recovered from an interrupted run: {message}")
            self.archive.adopt_unfinished(self.run_id)
            self.adopted = self.archive.runs_undone_with(self.run_id)[1:]  # with the runs those had adopted
            if self.adopted:
                self.log(
                    f"finishing the work of interrupted run(s) {', '.join(self.adopted)}; "
                    "undoing this run undoes theirs too"
                )
            _, self.others = open_journals(self.folders, create_primary=False)
        else:
            self.journal, self.others = open_journals(self.folders)
        self.memory = remember(
            [self.journal, *self.others], self.model_version, self.view_key, carry_over=not self.rejudge
        )
        self.entries: list[ArchiveEntry] = list(walk_archive(self.root))
        self.writer = ReportWriter(self.report_path, self.run_config())

    def _clear_abandoned_reports(self) -> None:
        """Remove the half-written reports of runs killed before their end (``.orient-tmp-*``, a
        name only orient gives): safe while this run holds the state folder's lock."""
        for leftover in reports_dir(self.folders.primary).glob(f"{TMP_PREFIX}*.parquet"):
            leftover.unlink(missing_ok=True)

    def run_config(self) -> dict:
        return {
            **self.cfg.model_dump(),
            "run_id": self.run_id,
            "archive": str(self.root),
            "out_dir": str(self.out_dir or "") or None,
            "model": self.model_path or self.cfg.model,
            "model_version": self.model_version,
            "view_key": self.view_key,
            "threshold": self.threshold,
            "decisions": self.decision_note,
            "state_dir": str(self.folders.primary),
            "rejudge": self.rejudge,
            "resumed_runs": self.adopted,
        }

    def __exit__(self, exc_type, exc, tb) -> None:
        try:
            if exc_type is None:
                self.summary = self.writer.close()
                self.journal.finish_run(self.run_id)
                return
            if hasattr(self, "writer"):
                self.writer.abandon()
        finally:
            self._close()
        if isinstance(exc, OrientError | OSError | KeyboardInterrupt) and not isinstance(exc, RunAborted):
            undo = (
                (
                    f"; the changes it made are journaled: undo them with `orient undo {self.run_id} "
                    f"--archive {self.root}`, or run again to finish the job"
                )
                if self.applies
                else ""
            )
            what = "was interrupted" if isinstance(exc, KeyboardInterrupt) else f"stopped: {exc}"
            raise RunAborted(f"run {self.run_id} {what}{undo}") from exc

    def _close(self) -> None:
        for journal in self.others:
            journal.close()
        if self.archive is not None:
            self.archive.close()
        elif self.journal is not None:
            self.journal.close()
        self._lock.__exit__(None, None, None)

    # ---------------------------------------------------------------- the work

    def chunks(self, size: int) -> list[list[ArchiveEntry]]:
        return list(batched(self.entries, size))

    def memory_for(self, chunk: list[ArchiveEntry]) -> Memory:
        return self.memory.for_paths([e.rel_path for e in chunk])

    def finish_chunk(
        self, predicted: Predicted, progress: Callable[[int], None] | None = None
    ) -> list[ReportRow]:
        """Apply a chunk's decisions, remember what was seen and judged, report its rows."""
        rows = self.apply(predicted.rows, progress)
        for row in rows:
            row.model_version, row.run_id = row.model_version or self.model_version, self.run_id
        self.journal.record_seen(predicted.seen, self.run_id)
        self.journal.record_judgements(predicted.judged, self.model_version, self.view_key, self.run_id)
        self.writer.add(rows)
        return rows

    def apply(self, rows: list[ReportRow], progress: Callable[[int], None] | None = None) -> list[ReportRow]:
        """Carry out each 'rotate' decision (journaled, verified, atomic); copy the rest to a mirror."""
        if not self.applies:
            return rows
        for row in rows:
            if row.action == "rotate" or (
                self.out_dir and row.sha256_before and row.action in ("keep", "flag", "skip")
            ):
                self._apply_one(row)
                if progress:
                    progress(1)
        return rows

    def _apply_one(self, row: ReportRow) -> None:
        start = time.perf_counter()
        rel = os.fsdecode(row.path_bytes)
        try:
            if row.action == "rotate":
                result = self.archive.apply(
                    rel,
                    row.rotation_deg,
                    self.cfg.apply,
                    self.run_id,
                    row.sha256_before,
                    self.out_dir,
                    exif_orientation=row.exif_orientation,
                )
            else:
                result = self.archive.mirror(rel, self.out_dir, row.sha256_before, self.run_id)
            row.applied, row.method, row.sha256_after = result.applied, result.method, result.sha256_after
            row.note = result.note or row.note
        except JournalError:
            raise
        except (OrientError, OSError) as exc:
            row.action, row.error = "error", f"not changed: {exc}"
            self.log(f"{row.path}: {row.error}")
        row.apply_ms = (time.perf_counter() - start) * 1000


def apply_decisions(
    archive_dir: str | os.PathLike[str],
    decisions: dict[str, int],
    cfg: AutorotateConfig,
    source: str,
    **run_options,
) -> AutorotateRun:
    """A whole run whose decisions are known, not predicted (an operator's, or a drill's truth):
    each listed file is turned by its ``rotation_deg`` (0: kept) through the same protocol, with
    the same journal, report and undo. Files not listed are reported unchanged."""
    from orient_model.archive.paths import Tree
    from orient_model.pipeline import read_entry

    with AutorotateRun(archive_dir, cfg, source, "decided", **run_options) as run:
        predicted = Predicted()
        with Tree(run.root) as tree:
            for entry in run.entries:
                rotation = decisions.get(entry.rel_path)
                read = read_entry(tree, entry, 32, cfg, run.memory) if rotation is not None else None
                row = read.row if read is not None else None
                if row is None:
                    continue
                if row.action != "skip" and row.error is None:
                    row.rotation_deg, row.confidence = rotation, 1.0
                    row.action = "keep" if rotation == 0 else "rotate"
                predicted.rows.append(row)
                if read.seen is not None:
                    predicted.seen.append(read.seen)
        run.finish_chunk(predicted)
    return run
