"""Crash-safe file writes and content hashes.

A photo in the archive must be either its original bytes or the complete new bytes, never a
half-written file, even if the process is killed or the machine loses power mid-write. The
recipe: write a temporary file in the *same* directory (``os.replace`` is only atomic within
one file system), fsync it, rename it over the target, then fsync the directory so the rename
itself is durable. Temporary files start with :data:`TMP_PREFIX` so ingest can skip them and
:func:`remove_stale_temp_files` can sweep leftovers of a killed run.
"""

from __future__ import annotations

import hashlib
import os
import stat
import time
from pathlib import Path

TMP_PREFIX = ".orient-tmp-"
_CHUNK = 1 << 20


def sha256_bytes(data: bytes) -> str:
    """Hex SHA-256 of a byte string."""
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: str | os.PathLike[str]) -> str:
    """Hex SHA-256 of a file's contents, read in chunks so large scans do not fill memory."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def fsync_dir(directory: str | os.PathLike[str]) -> None:
    """Make a rename or file creation inside ``directory`` durable.

    Some file systems (and all non-POSIX platforms) do not allow opening a directory; there
    the rename is as durable as the platform makes it, so failures are ignored.
    """
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def is_temp_name(name: str) -> bool:
    """Whether a file name is one of our temporary files (ingest skips these)."""
    return name.startswith(TMP_PREFIX)


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    """Replace ``path`` with ``data`` so a crash leaves either the old or the new file.

    Permission bits of an existing file are kept (a scan that was group-readable stays so).
    """
    target = Path(path)
    directory = target.parent
    mode = _existing_mode(target)
    tmp = directory / f"{TMP_PREFIX}{os.getpid()}-{time.monotonic_ns()}-{target.name}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(directory)


def _existing_mode(target: Path) -> int:
    try:
        return stat.S_IMODE(target.stat().st_mode)
    except FileNotFoundError:
        umask = os.umask(0)
        os.umask(umask)
        return 0o666 & ~umask


def remove_stale_temp_files(root: str | os.PathLike[str], min_age_s: float = 0.0) -> list[Path]:
    """Delete ``.orient-tmp-*`` leftovers under ``root`` (files a killed run never renamed).

    Only call this while holding the archive lock, so no live writer's temp file is removed;
    ``min_age_s`` adds a margin for callers that cannot be sure.
    """
    removed: list[Path] = []
    now = time.time()
    for dirpath, _dirnames, filenames in os.walk(root):
        for name in filenames:
            if not is_temp_name(name):
                continue
            path = Path(dirpath) / name
            try:
                if now - path.lstat().st_mtime >= min_age_s:
                    path.unlink()
                    removed.append(path)
            except FileNotFoundError:
                continue
    return removed
