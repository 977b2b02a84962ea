"""An archive on disk: containment, the lock, the journal, walking, undo.

What the flows may use is named here; the rest of the package is its own business."""

from orient_model.archive.layout import reports_dir
from orient_model.archive.paths import OutsideArchive
from orient_model.archive.state import Memory, archive_slug, open_journals, state_folders
from orient_model.archive.undo import undo_run
from orient_model.archive.walk import ArchiveEntry, walk_archive

__all__ = [
    "ArchiveEntry",
    "Memory",
    "OutsideArchive",
    "archive_slug",
    "open_journals",
    "reports_dir",
    "state_folders",
    "undo_run",
    "walk_archive",
]
