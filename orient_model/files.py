"""Crash-safe file writes and content hashes, for every package that writes files: the archive's
photos and state, reports, models and training sets alike (so none of them depends on another
for them).

A photo in the archive must be either its original bytes or the complete new bytes, never a
half-written file, even if the process is killed or the machine loses power mid-write. The
recipe: write a temporary file in the *same* directory (a rename is only atomic within one file
system), fsync it, rename it over the target, then fsync the directory so the rename itself is
durable. Temporary files are named :data:`TMP_PREFIX` plus a short unique tail, never the
target's name, so they fit whatever the target's length; the walk skips them and
recovery sweeps the leftovers of a killed run.

Writes inside an archive go through :mod:`orient_model.archive.paths`, which does the same
relative to a directory opened without following links; :func:`atomic_write_bytes` is for the
state folder, reports and models, whose paths we chose ourselves.
"""

from __future__ import annotations

import errno
import hashlib
import itertools
import os
import stat
import time
from pathlib import Path

TMP_PREFIX = ".orient-tmp-"
_CHUNK = 1 << 20
_counter = itertools.count()
# fsync on a directory fails with these where the file system or platform does not support it;
# anything else (EIO, ENOSPC) is a real failure and is raised.
_FSYNC_UNSUPPORTED = {errno.EINVAL, errno.ENOTSUP, errno.EBADF, errno.EACCES, errno.EISDIR}


def sha256_bytes(data: bytes) -> str:
    """Hex SHA-256 of a byte string."""
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: str | os.PathLike[str]) -> str:
    """Hex SHA-256 of a file's contents, read in chunks so large scans do not fill memory."""
    with open(path, "rb") as fh:
        return sha256_fd(fh.fileno())


def sha256_fd(fd: int) -> str:
    """Hex SHA-256 of an open file, from its start (the descriptor's position is moved)."""
    digest = hashlib.sha256()
    os.lseek(fd, 0, os.SEEK_SET)
    while chunk := os.read(fd, _CHUNK):
        digest.update(chunk)
    return digest.hexdigest()


def temp_name() -> str:
    """A fresh temporary file name: short, unique in this process, recognisable by its prefix."""
    return f"{TMP_PREFIX}{os.getpid()}-{time.monotonic_ns() % 10**12}-{next(_counter)}"


def is_temp_name(name: str) -> bool:
    """Whether a file name is one of our temporary files (the walk skips these)."""
    return name.startswith(TMP_PREFIX)


def fsync_dir_fd(fd: int) -> None:
    """Make a rename or file creation inside an open directory durable."""
    try:
        os.fsync(fd)
    except OSError as exc:
        if exc.errno not in _FSYNC_UNSUPPORTED:
            raise


def fsync_dir(directory: str | os.PathLike[str]) -> None:
    """:func:`fsync_dir_fd` for a directory path (platforms that cannot open one are skipped)."""
    try:
        fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError as exc:
        if exc.errno in _FSYNC_UNSUPPORTED:
            return
        raise
    try:
        fsync_dir_fd(fd)
    finally:
        os.close(fd)


def write_temp(dir_fd: int | None, directory: Path | None, data: bytes, mode: int) -> str:
    """Write ``data`` to a new, fsynced temporary file in a directory; returns its name."""
    name = temp_name()
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
    path = name if dir_fd is not None else str(Path(directory) / name)
    fd = os.open(path, flags, 0o600, dir_fd=dir_fd)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
        os.fchmod(fd, mode)
    except BaseException:
        os.close(fd)
        os.unlink(path, dir_fd=dir_fd)
        raise
    os.close(fd)
    return name


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    """Replace ``path`` with ``data`` so a crash leaves either the old or the new file.

    Permission bits of an existing file are kept (a report that was group-readable stays so).
    """
    target = Path(path)
    directory = target.parent
    name = write_temp(None, directory, data, existing_mode(target))
    try:
        os.replace(directory / name, target)
    except BaseException:
        (directory / name).unlink(missing_ok=True)
        raise
    fsync_dir(directory)


def existing_mode(target: Path, dir_fd: int | None = None) -> int:
    """Permission bits of ``target`` if it exists, else what a new file would get (umask)."""
    try:
        return stat.S_IMODE(os.stat(target, dir_fd=dir_fd, follow_symlinks=False).st_mode)
    except FileNotFoundError:
        umask = os.umask(0)
        os.umask(umask)
        return 0o666 & ~umask
