"""Walking an archive: every file becomes exactly one entry, usable or not.

Nothing outside the archive root is ever read: symbolic links are reported, never followed.
The state folder (journal, backups, lock) and our own temporary files are not photos.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from orient_model.atomic import is_temp_name
from orient_model.journal import STATE_DIRNAME


@dataclass(frozen=True)
class ArchiveEntry:
    rel_path: str  # os-native string (surrogateescape for non-UTF-8 names)
    skip_reason: str | None = None

    @property
    def path_bytes(self) -> bytes:
        return os.fsencode(self.rel_path)

    @property
    def display_path(self) -> str:
        return self.path_bytes.decode("utf-8", "backslashreplace")


def _link_reason(root: Path, path: Path) -> str:
    try:
        target = path.resolve(strict=True)
    except (OSError, RuntimeError):
        return "symbolic link to a missing target; not followed"
    if not target.is_relative_to(root):
        return f"symbolic link pointing outside the archive ({target}); not followed"
    return "symbolic link inside the archive; its target is handled on its own"


def walk_archive(root: Path | str) -> Iterator[ArchiveEntry]:
    """Entries in a stable (sorted) order; directory links are reported, not entered."""
    root = Path(root).resolve()
    if not root.is_dir():
        raise NotADirectoryError(f"archive directory not found: {root}")
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        here = Path(dirpath)
        dirnames[:] = sorted(d for d in dirnames if not (here == root and d == STATE_DIRNAME))
        for name in list(dirnames):
            if (here / name).is_symlink():
                dirnames.remove(name)
                rel = os.path.relpath(here / name, root)
                yield ArchiveEntry(rel, _link_reason(root, here / name))
        for name in sorted(filenames):
            if is_temp_name(name):
                continue
            path = here / name
            rel = os.path.relpath(path, root)
            if path.is_symlink():
                yield ArchiveEntry(rel, _link_reason(root, path))
            elif not path.is_file():
                yield ArchiveEntry(rel, "not a regular file")
            else:
                yield ArchiveEntry(rel)
