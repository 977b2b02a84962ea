"""Undo a run: from its report (which names the archive and cross-checks the journal) or its id.

The report is the user's record of what a run did; the journal is the archive's. Both must
agree on every file before anything is restored. When the journal cannot be read at all, the
report and the content-addressed backups suffice, with the same hash checks.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from orient_model.archive.changes import Archive, UndoOutcome, archive_lock, state_dir, undo_from_report
from orient_model.archive.journal import JOURNAL_NAME, JournalDamaged
from orient_model.archive.state import default_state_dir
from orient_model.errors import OrientError
from orient_model.report import read_report, run_config_of


@dataclass
class UndoResult:
    run_id: str
    root: Path
    outcomes: list[UndoOutcome]
    from_report_only: bool = False

    @property
    def nothing_to_do(self) -> bool:
        return all(o.status == "already" for o in self.outcomes)

    @property
    def refused(self) -> list[UndoOutcome]:
        return [o for o in self.outcomes if not o.ok]


def _report_rows(path: Path) -> tuple[dict, list[dict]]:
    table = read_report(path)
    return run_config_of(table), table.select(
        ["path_bytes", "applied", "sha256_before", "sha256_after"]
    ).to_pylist()


def undo_run(
    target: str,
    archive: Path | None = None,
    paths: Iterable[str] | None = None,
    dry_run: bool = False,
    announce: Callable[[str], None] = print,
) -> UndoResult:
    """Undo the run named by ``target`` (a report file, or a run id with ``archive``)."""
    rows: list[dict] | None = None
    config: dict | None = None
    if target.endswith(".parquet") or os.path.isfile(target):
        if not os.path.isfile(target):
            raise OrientError(f"report not found: {target}")
        config, rows = _report_rows(Path(target))
        run_id, root = config.get("run_id"), Path(archive or config.get("archive") or "")
        if not run_id:
            raise OrientError(f"{target} names no run; is it an orient report?")
    else:
        if archive is None:
            raise OrientError(f"{target!r} is neither a report file nor (without --archive DIR) a run id")
        run_id, root = target, Path(archive)
        for folder in (state_dir(root), default_state_dir(root)):  # a mirror run's state is outside
            default_report = folder / "reports" / f"{run_id}.parquet"
            if default_report.is_file():
                config, rows = _report_rows(default_report)
                break
    if not root.is_dir():
        raise OrientError(f"archive directory not found: {root}")
    root = Path(os.path.realpath(root))
    state = _state_of(root, config)
    report = (
        None
        if rows is None
        else {
            os.fsdecode(r["path_bytes"]): (r["sha256_before"], r["sha256_after"])
            for r in rows
            if r["applied"]
        }
    )
    announce(f"{'checking' if dry_run else 'undoing'} run {run_id} in archive {root}")
    with archive_lock(root, f"undo-{run_id}", state):
        if rows is not None and not (state / JOURNAL_NAME).exists():
            announce(
                "warning: the archive's journal is missing; restoring from the report and the backups instead"
            )
            outcomes = undo_from_report(root, rows, state / "backup", paths, dry_run)
            return UndoResult(run_id, root, outcomes, from_report_only=True)
        try:
            with Archive(root, state) as arch:
                return UndoResult(run_id, root, arch.undo(run_id, report, paths, dry_run))
        except JournalDamaged as exc:
            if rows is None:
                raise
            announce(f"warning: {exc}; restoring from the report and the backups instead")
            outcomes = undo_from_report(root, rows, state / "backup", paths, dry_run)
            return UndoResult(run_id, root, outcomes, from_report_only=True)


def _state_of(root: Path, config: dict | None) -> Path:
    """The state folder holding a run's journal and backups: the archive's own, or, for a run
    that changed nothing in the archive (a mirror run), the one its report names."""
    named = (config or {}).get("state_dir")
    if (config or {}).get("out_dir") and named and Path(named).is_dir():
        return Path(named)
    return state_dir(root)
