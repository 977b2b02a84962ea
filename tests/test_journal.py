"""Changing files in an archive: backed up, journaled, undoable, safe to kill at any instant."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from orient_model.archive.changes import Archive, ReadOnlyFile, archive_lock
from orient_model.archive.journal import UnknownRun
from orient_model.archive.lock import ArchiveLocked, now_utc
from orient_model.archive.paths import STATE_DIRNAME, ChangedSinceRead, OutsideArchive
from orient_model.files import TMP_PREFIX, atomic_write_bytes, sha256_bytes, sha256_file

REPO = Path(__file__).resolve().parents[1]


def photo(path: Path, seed: int = 0) -> str:
    """A small JPEG with an asymmetric pattern; returns its hash."""
    arr = np.full((48, 64, 3), 60, np.uint8)
    arr[:12, :16] = 250
    arr[40:, 50:] = (seed * 37) % 256
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, "JPEG", quality=90)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(buf.getvalue())
    return sha256_bytes(buf.getvalue())


@pytest.fixture
def archive(tmp_path: Path) -> Archive:
    root = tmp_path / "archive"
    root.mkdir()
    with Archive(root) as arc:
        yield arc


def run_python(code: str, *args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(code), *args],
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )


def test_apply_rotates_backs_up_and_undo_restores_identical_bytes(archive: Archive) -> None:
    path = archive.root / "1961" / "wedding.jpg"
    sha = photo(path)
    original = path.read_bytes()
    result = archive.apply("1961/wedding.jpg", 90, "lossless", "run-a", sha)
    assert result.applied and result.method == "lossless"
    assert sha256_file(path) == result.sha256_after != sha
    assert Image.open(path).size == (48, 64)
    assert (archive.state_dir / "backup" / sha).read_bytes() == original
    [entry] = archive.entries("run-a")
    assert entry.state == "done" and entry.rel_path == "1961/wedding.jpg"
    outcomes = archive.undo("run-a")
    assert [o.status for o in outcomes] == ["restored"]
    assert sha256_file(path) == sha and path.read_bytes() == original
    assert archive.entries("run-a")[0].state == "undone"


def test_a_decision_applied_and_undone_within_one_second_reads_as_undone_after(archive: Archive) -> None:
    """The order of journal times is what tells apply-review not to redo an undone turn."""
    path = archive.root / "1961" / "wedding.jpg"
    sha = photo(path)
    archive.journal.add_reviews("ana", [(sha, "1961/wedding.jpg", 90, None, None, None)])
    archive.apply("1961/wedding.jpg", 90, "lossless", "run-a", sha)
    archive.undo("run-a")
    decided = archive.journal.reviews()[sha].decided_at
    [undone] = archive.entries("run-a")
    assert undone.state == "undone" and undone.updated_at > decided
    times = [now_utc() for _ in range(2000)]
    assert times == sorted(set(times))  # strictly increasing, however fast the calls


def test_rerun_never_rotates_twice(archive: Archive) -> None:
    path = archive.root / "a.jpg"
    sha = photo(path)
    first = archive.apply("a.jpg", 90, "lossless", "run-a", sha)
    assert archive.rotated_by(first.sha256_after).run_id == "run-a"
    assert archive.rotated_by(sha) is None
    second = archive.apply("a.jpg", 90, "lossless", "run-b", first.sha256_after)
    assert not second.applied and "run-a" in second.note
    assert sha256_file(path) == first.sha256_after


def test_undo_refuses_a_file_changed_after_rotation(archive: Archive) -> None:
    changed, kept = archive.root / "changed.jpg", archive.root / "kept.jpg"
    sha_c, sha_k = photo(changed, 1), photo(kept, 2)
    archive.apply("changed.jpg", 180, "lossless", "run-a", sha_c)
    archive.apply("kept.jpg", 180, "lossless", "run-a", sha_k)
    changed.write_bytes(changed.read_bytes() + b"edited in Photoshop")
    edited = changed.read_bytes()
    outcomes = {o.rel_path: o for o in archive.undo("run-a")}
    assert outcomes["changed.jpg"].status == "refused"
    assert "changed since run 'run-a' rotated it" in outcomes["changed.jpg"].message
    assert changed.read_bytes() == edited
    assert outcomes["kept.jpg"].status == "restored" and sha256_file(kept) == sha_k


def test_undo_of_unknown_run_says_so(archive: Archive) -> None:
    with pytest.raises(UnknownRun, match="no changes recorded for run 'nope'"):
        archive.undo("nope")


def test_file_changed_since_read_is_not_touched(archive: Archive) -> None:
    path = archive.root / "a.jpg"
    photo(path)
    before = path.read_bytes()
    with pytest.raises(ChangedSinceRead, match="changed since it was read"):
        archive.apply("a.jpg", 90, "lossless", "run-a", "0" * 64)
    assert path.read_bytes() == before and archive.entries() == []


def test_symlink_leading_outside_the_archive_is_refused(archive: Archive, tmp_path: Path) -> None:
    outside = tmp_path / "elsewhere" / "b.jpg"
    sha = photo(outside)
    (archive.root / "link.jpg").symlink_to(outside)
    (archive.root / "linkdir").symlink_to(outside.parent)
    for rel in ("link.jpg", "linkdir/b.jpg", "../elsewhere/b.jpg"):
        with pytest.raises(OutsideArchive, match="symbolic link|outside the archive"):
            archive.apply(rel, 90, "lossless", "run-a", sha)
    assert sha256_file(outside) == sha


def test_read_only_file_is_refused_and_untouched(archive: Archive) -> None:
    path = archive.root / "ro.jpg"
    sha = photo(path)
    path.chmod(0o444)
    with pytest.raises(ReadOnlyFile, match="read-only"):
        archive.apply("ro.jpg", 90, "lossless", "run-a", sha)
    assert sha256_file(path) == sha and archive.entries() == []


def test_permissions_and_odd_names_survive(archive: Archive) -> None:
    name = os.fsdecode(b"caf\xe9-\xff.jpg")  # not UTF-8: a Latin-1 name from an old disk
    path = archive.root / name
    sha = photo(path)
    path.chmod(0o640)
    archive.apply(name, 270, "lossless", "run-a", sha)
    assert (path.stat().st_mode & 0o777) == 0o640
    assert archive.entries("run-a")[0].rel_path == name
    assert archive.undo("run-a")[0].status == "restored" and sha256_file(path) == sha


def test_out_dir_writes_a_corrected_copy_and_leaves_the_original(archive: Archive, tmp_path: Path) -> None:
    path = archive.root / "sub" / "a.jpg"
    sha = photo(path)
    out = tmp_path / "corrected"
    result = archive.apply("sub/a.jpg", 90, "lossless", "run-a", sha, out_dir=out)
    assert result.applied and sha256_file(path) == sha
    assert sha256_file(out / "sub" / "a.jpg") == result.sha256_after
    assert not any((archive.state_dir / "backup").iterdir())


def test_archive_lock_names_the_holder_and_dies_with_it(tmp_path: Path) -> None:
    holder = run_python(
        """
        import sys, time
        from orient_model.archive.changes import archive_lock
        with archive_lock(sys.argv[1], "run-holder"):
            print("locked", flush=True)
            time.sleep(60)
        """,
        str(tmp_path),
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        expected = rf"run 'run-holder' \(pid {holder.pid} on"
        with pytest.raises(ArchiveLocked, match=expected), archive_lock(tmp_path, "run-second"):
            pass
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    with archive_lock(tmp_path, "run-third") as info:  # a killed holder never blocks the archive
        assert info["run_id"] == "run-third"


CRASH = """
import os, sys
from orient_model.archive.changes import Archive
root, rel, sha, where = sys.argv[1:]

def kill_at(stage, _rel):  # a real kill -9 at an exact point of the change protocol
    if stage == where:
        os.kill(os.getpid(), 9)

Archive(root, on_stage=kill_at).apply(rel, 90, "lossless", "run-crash", sha)
"""


@pytest.mark.parametrize("where", ["planned", "replaced"])
def test_recover_after_kill_then_rerun_finishes_the_job(tmp_path: Path, where: str) -> None:
    root = tmp_path / "archive"
    path = root / "a.jpg"
    sha = photo(path)
    proc = run_python(CRASH, str(root), "a.jpg", sha, where)
    assert proc.wait() == -9
    (root / f"{TMP_PREFIX}123-leftover").write_bytes(b"half")
    with Archive(root) as arc:
        assert [e.state for e in arc.entries()] == ["planned"]
        messages = arc.recover()
        assert not (root / f"{TMP_PREFIX}123-leftover").exists()
        [entry] = arc.entries()
        if where == "planned":  # killed after 'planned' is committed, before the replace
            assert entry.state == "abandoned" and sha256_file(path) == sha
            assert any("never happened" in m for m in messages)
            assert arc.apply("a.jpg", 90, "lossless", "run-again", sha).applied
        else:  # killed after the replace, before 'done' is committed
            assert entry.state == "done" and sha256_file(path) == entry.sha256_after
            again = arc.apply("a.jpg", 90, "lossless", "run-again", entry.sha256_after)
            assert not again.applied
        assert Image.open(path).size == (48, 64)
        assert (root / STATE_DIRNAME / "backup" / sha).exists()


def test_atomic_write_leaves_no_temp_and_keeps_mode(tmp_path: Path) -> None:
    target = tmp_path / "f.bin"
    target.write_bytes(b"old")
    target.chmod(0o604)
    atomic_write_bytes(target, b"new")
    assert target.read_bytes() == b"new" and (target.stat().st_mode & 0o777) == 0o604
    assert [p.name for p in tmp_path.iterdir()] == ["f.bin"]


def test_a_run_that_finishes_a_killed_run_undoes_its_work_too(archive: Archive) -> None:
    sha_a = photo(archive.root / "a.jpg", 1)
    sha_b = photo(archive.root / "b.jpg", 2)
    archive.apply("a.jpg", 90, "lossless", "killed", sha_a)  # then killed: never finished
    archive.adopt_unfinished("resumed")
    archive.apply("b.jpg", 180, "lossless", "resumed", sha_b)
    archive.finish("resumed")
    assert archive.runs_undone_with("resumed") == ["resumed", "killed"]
    assert archive.adopt_unfinished("later") == []  # adopted once, by the run that finished it
    assert all(o.status == "restored" for o in archive.undo("resumed"))
    assert sha256_file(archive.root / "a.jpg") == sha_a and sha256_file(archive.root / "b.jpg") == sha_b


def test_a_killed_run_that_only_adopted_is_adopted_in_turn(archive: Archive) -> None:
    """Killed twice: the second run adopted the first and was killed before its own first change.
    The run that finishes must adopt it too, or undoing it would leave the first run's turn."""
    sha_a = photo(archive.root / "a.jpg", 1)
    archive.apply("a.jpg", 90, "lossless", "killed-1", sha_a)  # killed after this
    archive.adopt_unfinished("killed-2")  # killed before changing anything
    assert archive.adopt_unfinished("final") == ["killed-2"]
    archive.finish("final")
    assert archive.runs_undone_with("final") == ["final", "killed-2", "killed-1"]
    assert all(o.status == "restored" for o in archive.undo("final"))
    assert sha256_file(archive.root / "a.jpg") == sha_a


def test_undo_of_a_finished_run_that_changed_nothing_is_empty(archive: Archive) -> None:
    archive.finish("idle")
    assert archive.undo("idle") == []
