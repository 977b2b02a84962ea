"""Walking an archive: every file becomes exactly one entry, usable or not.

Nothing outside the archive root is ever read: symbolic links are reported, never followed.
State folders (``.orient``: journal, backups, lock) are never entered at any depth, and a folder
that holds one is another archive, nested in this one: it is reported as one skipped entry and
left to its own runs, so its journal and backups stay true. Our temporary files are not photos.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from orient_model.archive.paths import STATE_DIRNAME
from orient_model.files import is_temp_name

NESTED_ARCHIVE = (
    f"nested archive (it has its own {STATE_DIRNAME} state folder): skipped; run orient on it separately"
)


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


def is_nested_archive(folder: Path) -> bool:
    return os.path.lexists(folder / STATE_DIRNAME)


def _folders(root: Path) -> Iterator[tuple[Path, list[str], list[str], list[ArchiveEntry]]]:
    """os.walk over the archive's own folders, with the entries for what is not entered."""
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        here = Path(dirpath)
        skipped: list[ArchiveEntry] = []
        keep = []
        for name in sorted(dirnames):
            path = here / name
            rel = os.path.relpath(path, root)
            if name == STATE_DIRNAME:
                continue
            if path.is_symlink():
                skipped.append(ArchiveEntry(rel, _link_reason(root, path)))
            elif is_nested_archive(path):
                skipped.append(ArchiveEntry(rel, NESTED_ARCHIVE))
            else:
                keep.append(name)
        dirnames[:] = keep
        yield here, dirnames, sorted(filenames), skipped


def walk_archive(root: Path | str) -> Iterator[ArchiveEntry]:
    """Entries in a stable (sorted) order; folder links and nested archives are reported, not entered."""
    root = Path(root).resolve()
    if not root.is_dir():
        raise NotADirectoryError(f"archive directory not found: {root}")
    for here, _dirnames, filenames, skipped in _folders(root):
        yield from skipped
        for name in filenames:
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


def remove_stale_temp_files(root: str | os.PathLike[str], min_age_s: float = 0.0) -> list[Path]:
    """Delete ``.orient-tmp-*`` leftovers in the archive's own folders (a killed run's files
    that were never renamed); nested archives are left to their own runs.

    Only call this while holding the archive lock, so no live writer's temp file is removed;
    ``min_age_s`` adds a margin for callers that cannot be sure. Links are not followed.
    """
    removed: list[Path] = []
    now = time.time()
    for here, _dirnames, filenames, _skipped in _folders(Path(root)):
        for name in filenames:
            if not is_temp_name(name):
                continue
            path = here / name
            try:
                if now - path.lstat().st_mtime >= min_age_s:
                    path.unlink()
                    removed.append(path)
            except FileNotFoundError:
                continue
    return removed
