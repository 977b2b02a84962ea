"""Containment: every read and write inside a tree goes through here, and cannot leave it.

A path from a report, a journal or a walk is only a name. To act on it we open the tree's root
once, then each folder on the way relative to the one before with ``O_NOFOLLOW``, so a symbolic
link anywhere on the way is refused rather than followed, and the final file is named relative
to the folder we hold open. A folder swapped for a link after we opened it cannot redirect the
write: we hold the real folder. And right before a replace, :meth:`Place.check_in_place` walks
the path again from the root and checks it still reaches the very folder we hold, so a folder
moved out of the tree between the check and the replace is caught too.

Rejected outright: absolute paths, ``..``, empty or ``.`` parts, NUL bytes, and any part named
like a state folder (``.orient``) at any depth, which also keeps writes out of nested archives.
"""

from __future__ import annotations

import errno
import os
import stat
from dataclasses import dataclass
from pathlib import Path

from orient_model.errors import OrientError
from orient_model.files import (
    existing_mode,
    fsync_dir_fd,
    sha256_fd,
    write_temp,
)

STATE_DIRNAME = ".orient"
_DIR_FLAGS = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | getattr(os, "O_NOFOLLOW", 0)
_FILE_FLAGS = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0)


class OutsideArchive(OrientError):
    """A path that is not a plain path inside the tree, or leads out of it; nothing was touched."""


class ChangedSinceRead(OrientError):
    """The file (or a folder on its way) changed after it was read; the user's version is kept."""


def parts_of(rel_path: str) -> list[str]:
    """The parts of a path relative to a tree's root, refusing any that could leave it."""
    if "\0" in rel_path:
        raise OutsideArchive(f"{rel_path!r}: a path with a NUL byte is not a file name")
    if os.path.isabs(rel_path) or rel_path.startswith(("/", "\\")):
        raise OutsideArchive(f"{rel_path}: an absolute path; only paths inside the archive are used")
    parts = rel_path.split(os.sep)
    for part in parts:
        if part in ("", ".", ".."):
            raise OutsideArchive(f"{rel_path}: leads outside the archive (a '{part or '/'}' part)")
        if part == STATE_DIRNAME:
            raise OutsideArchive(f"{rel_path}: inside a {STATE_DIRNAME} state folder; never touched")
    return parts


def relation(a: Path, b: Path) -> str | None:
    """How two resolved folders overlap: 'same', 'inside' (a in b), 'contains', or None."""
    a, b = Path(os.path.realpath(a)), Path(os.path.realpath(b))
    if a == b:
        return "same"
    if a.is_relative_to(b):
        return "inside"
    if b.is_relative_to(a):
        return "contains"
    return None


@dataclass(frozen=True)
class FileState:
    """What identifies a file's content cheaply, to notice a change between two looks."""

    ino: int
    dev: int
    size: int
    mtime_ns: int
    ctime_ns: int
    mode: int

    @staticmethod
    def of(st: os.stat_result) -> FileState:
        return FileState(st.st_ino, st.st_dev, st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_mode)


class Tree:
    """A folder tree (an archive, or a mirror of one) we read and write only inside of."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(os.path.realpath(root))
        try:
            self.fd = os.open(self.root, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
        except FileNotFoundError:
            raise OutsideArchive(f"folder not found: {root}") from None
        except NotADirectoryError:
            raise OutsideArchive(f"not a folder: {root}") from None

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def __enter__(self) -> Tree:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def place(self, rel_path: str, create_folders: bool = False, enter_nested: bool = False) -> Place:
        """The folder holding ``rel_path``, opened without following links, and the file's name.

        With ``create_folders`` missing folders are made (a mirror tree); otherwise a missing
        folder raises ``FileNotFoundError``. A nested archive on the way is refused, unless
        ``enter_nested`` (undo putting back what this archive's own run changed there before the
        folder got its own state).
        """
        parts = parts_of(rel_path)
        fd = os.dup(self.fd)
        for part in parts[:-1]:
            fd = _open_child_dir(fd, part, rel_path, create_folders, enter_nested)  # consumes fd
        place = Place(self, rel_path, fd, parts[-1])
        place.enter_nested = enter_nested
        return place


def _open_child_dir(
    parent_fd: int, name: str, rel_path: str, create: bool, enter_nested: bool = False
) -> int:
    """Open folder ``name`` inside ``parent_fd`` without following a link; closes ``parent_fd``."""
    try:
        try:
            child = os.open(name, _DIR_FLAGS, dir_fd=parent_fd)
        except FileNotFoundError:
            if not create:
                raise
            try:
                os.mkdir(name, 0o777, dir_fd=parent_fd)
            except FileExistsError:
                pass
            child = os.open(name, _DIR_FLAGS, dir_fd=parent_fd)
        except OSError as exc:
            if exc.errno in (errno.ELOOP, errno.ENOTDIR):
                raise OutsideArchive(
                    f"{rel_path}: '{name}' on the way is a symbolic link or not a folder; not followed"
                ) from None
            raise
    finally:
        os.close(parent_fd)
    if enter_nested:
        return child
    try:
        os.stat(STATE_DIRNAME, dir_fd=child, follow_symlinks=False)
    except FileNotFoundError:
        return child
    os.close(child)
    raise OutsideArchive(
        f"{rel_path}: '{name}' is a nested archive (it has its own {STATE_DIRNAME}); not touched"
    )


class Place:
    """One file's name inside a folder we hold open: read, check and replace it safely."""

    def __init__(self, tree: Tree, rel_path: str, dir_fd: int, name: str) -> None:
        self.tree, self.rel_path, self.dir_fd, self.name = tree, rel_path, dir_fd, name
        self.enter_nested = False
        self.folder_identity = _identity(os.fstat(dir_fd))

    def close(self) -> None:
        if self.dir_fd >= 0:
            os.close(self.dir_fd)
            self.dir_fd = -1

    def __enter__(self) -> Place:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---------------------------------------------------------------- reading

    def lstat(self) -> os.stat_result | None:
        """The entry's own status (a link is not followed), or None when there is none."""
        try:
            return os.stat(self.name, dir_fd=self.dir_fd, follow_symlinks=False)
        except FileNotFoundError:
            return None

    def read(self) -> tuple[bytes, FileState]:
        """The file's bytes and state; a link or anything but a regular file is refused."""
        fd = self._open_regular()
        try:
            st = os.fstat(fd)
            chunks, remaining = [], st.st_size
            while True:
                chunk = os.read(fd, max(remaining, 1 << 20))
                if not chunk:
                    break
                chunks.append(chunk)
                remaining -= len(chunk)
            return b"".join(chunks), FileState.of(st)
        finally:
            os.close(fd)

    def sha256(self) -> str | None:
        """Hash of the file, or None when there is no file."""
        try:
            fd = self._open_regular()
        except FileNotFoundError:
            return None
        try:
            return sha256_fd(fd)
        finally:
            os.close(fd)

    def _open_regular(self) -> int:
        try:
            fd = os.open(self.name, _FILE_FLAGS, dir_fd=self.dir_fd)
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise OutsideArchive(f"{self.rel_path}: is a symbolic link; not followed") from None
            raise
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            raise OutsideArchive(f"{self.rel_path}: is not a regular file")
        return fd

    # ---------------------------------------------------------------- checks

    def check_in_place(self) -> None:
        """The path, walked again from the root now, still leads to the folder we hold."""
        try:
            with self.tree.place(self.rel_path, enter_nested=self.enter_nested) as again:
                if again.folder_identity != self.folder_identity:
                    raise ChangedSinceRead(
                        f"{self.rel_path}: a folder on its way was moved or replaced during the run; "
                        "nothing written"
                    )
        except (FileNotFoundError, NotADirectoryError):
            raise ChangedSinceRead(
                f"{self.rel_path}: a folder on its way disappeared during the run; nothing written"
            ) from None
        except OutsideArchive as exc:
            raise ChangedSinceRead(f"{exc} (changed during the run); nothing written") from None

    def check_unchanged(self, state: FileState | None, sha256: str | None) -> None:
        """The file is still exactly what was read (``None``: still absent); else the user's
        version is kept and :class:`ChangedSinceRead` says so."""
        st = self.lstat()
        if state is None and sha256 is None:
            if st is not None:
                raise ChangedSinceRead(f"{self.rel_path}: a file appeared there during the run; kept as is")
            return
        if st is None:
            raise ChangedSinceRead(f"{self.rel_path}: the file disappeared during the run; nothing written")
        if FileState.of(st) != state or self.sha256() != sha256:
            raise ChangedSinceRead(
                f"{self.rel_path}: the file was changed by someone else during the run; "
                "their version is kept and nothing was written over it"
            )

    # ---------------------------------------------------------------- writing

    def replace(self, data: bytes, expect_state: FileState | None, expect_sha256: str | None) -> None:
        """Atomically put ``data`` at this name, if the file there is still what was read.

        The temporary file is written and synced first; then, right before the rename, the
        folder is checked to be still in place and the file unchanged, so the window for a
        concurrent change is as short as it can be without help from the file system.
        """
        mode = existing_mode(Path(self.name), self.dir_fd)
        tmp = write_temp(self.dir_fd, None, data, mode)
        try:
            self.check_in_place()
            self.check_unchanged(expect_state, expect_sha256)
            os.replace(tmp, self.name, src_dir_fd=self.dir_fd, dst_dir_fd=self.dir_fd)
        except BaseException:
            try:
                os.unlink(tmp, dir_fd=self.dir_fd)
            except FileNotFoundError:
                pass
            raise
        fsync_dir_fd(self.dir_fd)

    def remove(self, expect_state: FileState | None, expect_sha256: str) -> None:
        """Delete the file, if it is still what was read (undoing a mirror copy we created)."""
        self.check_in_place()
        self.check_unchanged(expect_state, expect_sha256)
        os.unlink(self.name, dir_fd=self.dir_fd)
        fsync_dir_fd(self.dir_fd)


def _identity(st: os.stat_result) -> tuple[int, int]:
    return st.st_dev, st.st_ino
