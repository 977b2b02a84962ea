"""What a state folder holds, named once: the journal, the run reports, the backups, the lock.

A state folder is ``ARCHIVE/.orient`` for runs that change the archive, or a folder outside it
for report-only and mirror runs (:func:`orient_model.archive.state.state_folders` says which).
"""

from __future__ import annotations

from pathlib import Path

JOURNAL_NAME = "journal.sqlite"
REPORTS = "reports"
BACKUP = "backup"
LOCK_NAME = "lock"  # held by the running run (a file lock)
LOCK_NOTE_NAME = "lock.json"  # who holds it: for the next run's message


def journal_path(state: Path) -> Path:
    return Path(state) / JOURNAL_NAME


def reports_dir(state: Path) -> Path:
    return Path(state) / REPORTS


def report_path(state: Path, run_id: str) -> Path:
    """Where a run's report goes unless the user names another place (``--report``)."""
    return reports_dir(state) / f"{run_id}.parquet"


def backup_dir(state: Path) -> Path:
    """The content-addressed originals (named by their sha256)."""
    return Path(state) / BACKUP


def lock_paths(state: Path) -> tuple[Path, Path]:
    """The lock a run holds, and the note that says who holds it."""
    return Path(state) / LOCK_NAME, Path(state) / LOCK_NOTE_NAME
