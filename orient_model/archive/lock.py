"""One run at a time per archive: an OS lock that dies with its holder, and a note naming it.

``lock`` is held with flock (filelock), so a killed run never leaves the archive locked;
``lock.json`` only exists to tell the next run who was holding it.
"""

from __future__ import annotations

import json
import os
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from pathlib import Path

from filelock import FileLock, Timeout

from orient_model.archive.layout import lock_paths
from orient_model.errors import OrientError
from orient_model.files import atomic_write_bytes


class ArchiveLocked(OrientError):
    """Another run holds the archive; the message names it."""


_last_now = datetime.min.replace(tzinfo=timezone.utc)
_now_lock = threading.Lock()


def now_utc() -> str:
    """The time to journal, to the microsecond and strictly increasing within a process.

    Journal times order events: a decision and the undo of the turn it caused can fall in one
    second, and the later must compare as later (``review.apply`` redoes a turn only when
    the decision is newer than its undo). Times written at whole seconds by older versions
    (``...:14+00:00``) still sort before those of the same second written now
    (``...:14.000001+00:00``)."""
    global _last_now
    with _now_lock:
        now = max(datetime.now(timezone.utc), _last_now + timedelta(microseconds=1))
        _last_now = now
    return now.isoformat(timespec="microseconds")


@contextmanager
def state_lock(state_dir: str | os.PathLike[str], what: str, run_id: str) -> Iterator[dict]:
    """Hold ``state_dir`` for one run; a second run fails fast with :class:`ArchiveLocked`."""
    folder = Path(state_dir)
    folder.mkdir(parents=True, exist_ok=True)
    lock_file, note = lock_paths(folder)
    lock = FileLock(lock_file, timeout=0)
    try:
        lock.acquire()
    except Timeout:
        raise ArchiveLocked(_locked_message(what, note)) from None
    holder = {"pid": os.getpid(), "host": socket.gethostname(), "run_id": run_id, "started": now_utc()}
    written = json.dumps(holder).encode()
    try:
        if note.exists() and _holder(note) is None:
            raise ArchiveLocked(
                f"{note} was not written by orient; {folder} is not a state folder of orient's "
                "(move that file, or choose another state folder)"
            )
        atomic_write_bytes(note, written)
        yield holder
    finally:
        try:
            if note.read_bytes() == written:  # only the note this run wrote, never anyone else's file
                note.unlink()
        except OSError:
            pass
        lock.release()


def _holder(note: Path) -> dict | None:
    """The run a lock note names, or None when the file is not an orient lock note."""
    try:
        holder = json.loads(note.read_bytes())
    except (OSError, ValueError):
        return None
    if isinstance(holder, dict) and {"pid", "host", "run_id", "started"} <= holder.keys():
        return holder
    return None


def _locked_message(what: str, info_path: Path) -> str:
    holder = _holder(info_path)
    who = (
        "another run"
        if holder is None
        else (
            f"run {holder.get('run_id')!r} (pid {holder.get('pid')} on {holder.get('host')}, "
            f"started {holder.get('started')})"
        )
    )
    return f"archive {what} is in use by {who}; wait for it to finish or stop that process"
