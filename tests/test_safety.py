"""Nothing lost, even when things go wrong: each hole found by attacking an archive, closed.

Numbers refer to the list in the safety issue. The protocol runs in-process (the library's
run object, real files, real journal); races are staged at an exact point of the change
protocol with its stage hook, which is where a concurrent process would have to act.
"""

from __future__ import annotations

import io
import os
import re
import sqlite3
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from chosen_runs import decided_run
from PIL import Image

from orient_model.archive.audit import archive_contents, displayed_rotation_problem
from orient_model.archive.changes import Archive, MirrorConflict
from orient_model.archive.journal import JournalError
from orient_model.archive.paths import STATE_DIRNAME, ChangedSinceRead, OutsideArchive
from orient_model.archive.undo import undo_run
from orient_model.archive.walk import NESTED_ARCHIVE, walk_archive
from orient_model.config import AutorotateConfig
from orient_model.errors import OrientError
from orient_model.files import sha256_bytes, sha256_file
from orient_model.model.predict import Decision
from orient_model.report import ReportRow, ReportWriter, picture_name
from orient_model.rotate import RotateError, rotate_bytes
from orient_model.run import AutorotateRun, RunAborted

REPO = Path(__file__).resolve().parents[1]


def jpeg(path: Path, seed: int = 0, size: tuple[int, int] = (64, 48), **save) -> bytes:
    """A small JPEG with an asymmetric pattern, written to ``path``; returns its bytes."""
    w, h = size
    arr = np.full((h, w, 3), 60, np.uint8)
    arr[: h // 4, : w // 4] = 250
    arr[-h // 6 :, -w // 5 :] = (seed * 37) % 256
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, "JPEG", quality=90, **save)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(buf.getvalue())
    return buf.getvalue()


def run_with_decisions(root: Path, rotation_deg: int = 90, action: str = "rotate", **kwargs) -> AutorotateRun:
    """A real run over ``root`` where every photo gets the same decision instead of a model's."""
    cfg = AutorotateConfig(apply=kwargs.pop("apply", "lossless"))
    same = Decision(None, rotation_deg, 1.0, action)
    return decided_run(root, cfg, lambda rel: same, "test-model", "none", **kwargs)


@pytest.fixture
def archive(tmp_path: Path) -> Path:
    root = tmp_path / "archive"
    jpeg(root / "a.jpg", 1)
    jpeg(root / "sub" / "b.jpg", 2)
    return root


# 1 ------------------------------------------------------------------ --out-dir


@pytest.mark.parametrize("where", ["same", "inside", "around"])
def test_1_a_mirror_folder_overlapping_the_archive_is_refused_before_anything(
    archive: Path, where: str
) -> None:
    out = {"same": archive, "inside": archive / "sub", "around": archive.parent}[where]
    before = archive_contents(archive)
    with pytest.raises(MirrorConflict, match="choose a folder outside the archive"):
        run_with_decisions(archive, out_dir=out)
    assert archive_contents(archive) == before and not (archive / STATE_DIRNAME).exists()


def test_1_a_mirror_never_overwrites_a_file_it_did_not_create(archive: Path, tmp_path: Path) -> None:
    out = tmp_path / "corrected"
    theirs = jpeg(out / "a.jpg", 9)  # someone's own, different photo of the same name
    run = run_with_decisions(archive, out_dir=out)
    rows = {r["path"]: r for r in _report_rows(run)}
    assert rows["a.jpg"]["action"] == "error" and "not written by orient" in rows["a.jpg"]["error"]
    assert (out / "a.jpg").read_bytes() == theirs
    assert rows["sub/b.jpg"]["applied"] and (out / "sub" / "b.jpg").exists()


def test_1_a_copy_orient_wrote_is_backed_up_and_journaled_when_replaced(
    archive: Path, tmp_path: Path
) -> None:
    out = tmp_path / "corrected"
    originals = archive_contents(archive)
    first = run_with_decisions(archive, 90, out_dir=out)
    first_copies = archive_contents(out)
    second = run_with_decisions(archive, 180, out_dir=out)  # a later run decides otherwise
    assert archive_contents(archive) == originals  # the archive itself is never touched
    assert archive_contents(out) != first_copies
    undo_run(str(second.report_path), announce=lambda line: None)
    assert archive_contents(out) == first_copies  # the replaced copies came back from backup
    undo_run(str(first.report_path), announce=lambda line: None)
    assert archive_contents(out) == {}  # the copies the first run created are gone again


# 2 ------------------------------------------------------------------ hostile undo


@pytest.mark.parametrize("hostile", ["../victim.jpg", "/ABS/victim.jpg"])
def test_2_undo_never_writes_outside_the_archive(archive: Path, tmp_path: Path, hostile: str) -> None:
    run = run_with_decisions(archive)
    victim = tmp_path / "victim.jpg"
    victim.write_bytes((archive / "a.jpg").read_bytes())  # holds the hash the journal expects
    path = str(victim) if hostile.startswith("/") else hostile
    _journal_sql(archive, "UPDATE changes SET rel_path = ? WHERE rel_path = ?", (os.fsencode(path), b"a.jpg"))
    said, before = [], archive_contents(archive)
    with pytest.raises(OutsideArchive):
        undo_run(run.run_id, archive, announce=said.append)
    assert said == [f"undoing run {run.run_id} in archive {archive}"]  # named before anything changed
    assert victim.read_bytes() == (archive / "a.jpg").read_bytes()  # untouched
    assert archive_contents(archive) == before  # and nothing else was restored either


def test_2_a_tampered_journal_cannot_put_one_photo_in_another_ones_place(archive: Path) -> None:
    run = run_with_decisions(archive)
    rotated = archive_contents(archive)
    a, b = _journal_sql(archive, "SELECT source_sha256 FROM changes ORDER BY id", fetch=True)
    _journal_sql(archive, "UPDATE changes SET source_sha256 = ? WHERE source_sha256 = ?", (b[0], a[0]))
    with pytest.raises(JournalError, match="disagree"):
        undo_run(str(run.report_path), announce=lambda line: None)
    assert archive_contents(archive) == rotated


def test_2_a_damaged_journal_still_undoes_from_the_report_and_backups(archive: Path) -> None:
    originals = archive_contents(archive)
    run = run_with_decisions(archive)
    journal = archive / STATE_DIRNAME / "journal.sqlite"
    for extra in ("-wal", "-shm"):
        Path(f"{journal}{extra}").unlink(missing_ok=True)
    journal.write_bytes(b"this is not a database" * 100)
    said = []
    result = undo_run(str(run.report_path), announce=said.append)
    assert result.from_report_only and any("damaged" in line for line in said)
    assert archive_contents(archive) == originals


# 3, 4 ------------------------------------------------------------------ the apply window


def _swap_folder_for_link(root: Path, outside: Path, how: str):
    def hook(stage: str, rel: str) -> None:
        if stage != "planned":
            return
        if how == "renamed":  # folder renamed inside the archive, a link put in its place
            (root / "sub").rename(root / "sub-old")
        else:  # folder moved out of the archive, a link put in its place
            (root / "sub").rename(outside / "sub")
        (root / "sub").symlink_to(outside if how == "renamed" else outside / "sub")

    return hook


@pytest.mark.parametrize("how", ["renamed", "moved-out"])
def test_3_a_folder_swapped_for_a_link_during_the_apply_window_is_not_followed(
    archive: Path, tmp_path: Path, how: str
) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    bait = jpeg(outside / "b.jpg", 2)
    original = (archive / "sub" / "b.jpg").read_bytes()
    sha = sha256_bytes(original)
    with Archive(archive, on_stage=_swap_folder_for_link(archive, outside, how)) as arc:
        with pytest.raises((ChangedSinceRead, OutsideArchive), match="nothing written"):
            arc.apply("sub/b.jpg", 90, "lossless", "run-x", sha)
        assert [c.state for c in arc.entries()] == ["abandoned"]
    assert (outside / "b.jpg").read_bytes() == bait  # nothing landed outside the archive
    moved = archive / "sub-old" / "b.jpg" if how == "renamed" else outside / "sub" / "b.jpg"
    assert moved.read_bytes() == original  # and the photo itself was not replaced either


def test_3_a_folder_replaced_by_another_real_folder_is_noticed(archive: Path, tmp_path: Path) -> None:
    def hook(stage: str, rel: str) -> None:
        if stage == "planned":
            (archive / "sub").rename(tmp_path / "elsewhere")
            (archive / "sub").mkdir()

    sha = sha256_file(archive / "sub" / "b.jpg")
    with Archive(archive, on_stage=hook) as arc, pytest.raises(ChangedSinceRead, match="moved or replaced"):
        arc.apply("sub/b.jpg", 90, "lossless", "run-x", sha)
    assert list((archive / "sub").iterdir()) == []


@pytest.mark.parametrize("how", ["in-place", "atomic-save"])
def test_4_a_users_edit_saved_during_the_apply_window_is_kept(archive: Path, how: str) -> None:
    edited = b"\xff\xd8\xff" + b"retouched by hand" * 50

    def hook(stage: str, rel: str) -> None:
        if stage == "planned":
            if how == "in-place":
                with open(archive / rel, "r+b") as fh:  # an editor writing into the same file
                    fh.write(edited)
                    fh.truncate()
            else:  # an editor saving to a new file and renaming it over
                (archive / "new.tmp").write_bytes(edited)
                os.replace(archive / "new.tmp", archive / rel)

    sha = sha256_file(archive / "a.jpg")
    with Archive(archive, on_stage=hook) as arc:
        with pytest.raises(ChangedSinceRead, match="their version is kept"):
            arc.apply("a.jpg", 90, "lossless", "run-x", sha)
        [change] = arc.entries()
        assert change.state == "abandoned"
    assert (archive / "a.jpg").read_bytes() == edited


# 5 ------------------------------------------------------------------ nested archives


def test_5_a_nested_archive_is_skipped_and_its_own_undo_still_works(archive: Path) -> None:
    inner = archive / "box-7"
    inner_original = jpeg(inner / "c.jpg", 3)
    inner_run = run_with_decisions(inner)  # the inner archive has its own state, backups, reports
    inner_state = archive_contents(inner / STATE_DIRNAME)
    rows = _report_rows(run_with_decisions(archive))
    assert {r["path"]: r["note"] for r in rows if r["action"] == "skip"} == {"box-7": NESTED_ARCHIVE}
    assert not any(r["path"].startswith("box-7/") for r in rows)
    assert archive_contents(inner / STATE_DIRNAME).keys() >= inner_state.keys()
    undo_run(str(inner_run.report_path), announce=lambda line: None)
    assert (inner / "c.jpg").read_bytes() == inner_original
    assert [e.skip_reason for e in walk_archive(archive) if e.rel_path == "box-7"] == [NESTED_ARCHIVE]


def test_5_state_folders_are_never_a_write_target(archive: Path) -> None:
    run_with_decisions(archive)
    backup = next((archive / STATE_DIRNAME / "backup").iterdir())
    with Archive(archive) as arc, pytest.raises(OutsideArchive, match="state folder"):
        arc.apply(f"{STATE_DIRNAME}/backup/{backup.name}", 90, "lossless", "run-x", backup.name)


# 6 ------------------------------------------------------------------ multi-picture JPEG


def _mpo() -> bytes:
    rng = np.random.default_rng(0)
    first = np.clip(rng.normal(128, 40, (64, 96, 3)), 0, 255).astype(np.uint8)
    first[:16, :24] = 255
    second = first[::-1].copy()
    buf = io.BytesIO()
    Image.fromarray(first).save(
        buf, "MPO", save_all=True, append_images=[Image.fromarray(second)], quality=90
    )
    return buf.getvalue()


def test_6_every_picture_of_a_multi_picture_jpeg_is_turned_and_still_found() -> None:
    data = _mpo()
    out = rotate_bytes(data, 90, "lossless")
    before, after = Image.open(io.BytesIO(data)), Image.open(io.BytesIO(out.data))
    assert after.format == "MPO" and after.n_frames == 2
    for frame in range(2):
        before.seek(frame)
        after.seek(frame)
        expected = np.rot90(np.asarray(before.convert("RGB")), -1)
        actual = np.asarray(after.convert("RGB"))
        assert actual.shape == expected.shape
        assert np.abs(actual.astype(int) - expected.astype(int)).max() <= 6


def test_6_a_multi_picture_jpeg_is_never_turned_by_its_exif_tag() -> None:
    with pytest.raises(RotateError, match="multi-picture"):
        rotate_bytes(_mpo(), 90, "exif")


# 7, 8 ------------------------------------------------------------------ long names


def test_7_a_flagged_photo_deep_in_a_folder_tree_gets_a_picture_that_fits(tmp_path: Path) -> None:
    root = tmp_path / "archive"
    deep = Path(*[f"level-{i:02d}" for i in range(50)])
    jpeg(root / deep / "scan.jpg")
    run = run_with_decisions(root, 0, "flag")
    [row] = _report_rows(run)
    assert row["action"] == "flag" and row["error"] is None
    assert run.summary["flagged_dir"] is None  # a flag decided without a model has no picture...
    writer = ReportWriter(tmp_path / "r.parquet")
    long_row = ReportRow(
        path=str(deep / "scan.jpg"),
        path_bytes=os.fsencode(deep / "scan.jpg"),
        sha256_before="ab" * 32,
        action="flag",
        thumbnail_png=b"\x89PNG fake",
    )
    writer.add([long_row])  # ...so write one as a run with a model would
    writer.close()
    [picture] = (tmp_path / "r_flagged").iterdir()
    assert len(picture.name.encode()) <= 255 and picture.name == picture_name(long_row)
    assert picture.name.endswith("level-49__scan.jpg.png")


def test_7_a_picture_that_cannot_be_written_is_a_note_not_a_failed_run(tmp_path: Path) -> None:
    row = ReportRow(
        path="a.jpg",
        path_bytes=b"a.jpg",
        sha256_before="cd" * 32,
        action="flag",
        thumbnail_png=b"\x89PNG fake",
    )
    (tmp_path / "r_flagged" / picture_name(row)).mkdir(parents=True)  # something in the way
    with ReportWriter(tmp_path / "r.parquet") as writer:
        writer.add([row])
    assert "picture not saved" in row.note and (tmp_path / "r.parquet").is_file()


def test_8_a_file_whose_name_is_near_255_bytes_is_rotated(tmp_path: Path) -> None:
    root = tmp_path / "archive"
    name = "é" * 60 + "x" * 130 + ".jpg"  # 254 bytes in UTF-8
    assert len(name.encode()) == 254
    original = jpeg(root / name)
    run = run_with_decisions(root)
    [row] = _report_rows(run)
    assert row["applied"] and row["error"] is None
    assert displayed_rotation_problem(original, (root / name).read_bytes(), 90) is None


# 9 ------------------------------------------------------------------ repeated undo


def test_9_undoing_the_same_report_twice_is_a_success_with_nothing_left(
    archive: Path, tmp_path: Path
) -> None:
    originals = archive_contents(archive)
    run = run_with_decisions(archive)
    first, second = (
        subprocess.run(
            [sys.executable, "-m", "flows.cli", "undo", str(run.report_path)],
            capture_output=True,
            text=True,
            cwd=REPO,
            check=False,
        )
        for _ in range(2)
    )
    assert first.returncode == 0 and "restored 2 of 2" in first.stdout
    assert second.returncode == 0 and "nothing left to undo" in second.stdout
    assert "not restored" not in second.stderr and "error" not in second.stderr
    assert archive_contents(archive) == originals


# also ------------------------------------------------------------------


def test_an_aborted_run_names_itself_and_how_to_undo(archive: Path) -> None:
    def failing_journal(stage: str, rel: str) -> None:
        if stage == "planned" and rel == "sub/b.jpg":
            raise JournalError("disk I/O error")

    with pytest.raises(
        RunAborted, match=r"run \S+ stopped: disk I/O error.*orient undo \S+ --archive"
    ) as caught:
        run_with_decisions(archive, on_stage=failing_journal)
    run_id = str(caught.value).split()[1]
    assert undo_run(run_id, archive, announce=lambda line: None).outcomes  # a.jpg was done, and undoes


def test_a_thin_jpeg_is_verified_by_its_coefficients(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    arr = np.clip(rng.normal(128, 60, (48, 4000, 3)), 0, 255).astype(np.uint8)
    data = io.BytesIO()
    Image.fromarray(arr).save(data, "JPEG", quality=95)
    out = rotate_bytes(data.getvalue(), 90, "lossless")
    assert out.method == "lossless" and Image.open(io.BytesIO(out.data)).size == (48, 4000)


def test_the_exif_fallback_changes_only_the_orientation(tmp_path: Path) -> None:
    exif = Image.Exif()
    exif[0x0131] = "ScanSoft 5"  # Software, and no resolution
    odd = jpeg(tmp_path / "odd.jpg", size=(301, 227), exif=exif.tobytes())  # not a multiple of 8 or 16
    out = rotate_bytes(odd, 90, "lossless")
    assert out.method == "exif"
    tags = [_exiftool(tmp_path, odd), _exiftool(tmp_path, out.data)]
    changed = {k for k in tags[0].keys() | tags[1].keys() if tags[0].get(k) != tags[1].get(k)}
    assert changed == {"IFD0:Orientation"}
    plain = jpeg(tmp_path / "plain.jpg", size=(301, 227), dpi=(300, 300))  # no EXIF block at all
    out = rotate_bytes(plain, 90, "lossless")
    assert Image.open(io.BytesIO(out.data)).info["dpi"] == (300, 300)
    assert _exiftool(tmp_path, out.data)["IFD0:XResolution"] == "300"


def test_orient_undo_of_a_missing_report_says_so(tmp_path: Path) -> None:
    with pytest.raises(OrientError, match="report not found"):
        undo_run(str(tmp_path / "missing.parquet"))


# --------------------------------------------------------------------------- helpers


def _report_rows(run: AutorotateRun) -> list[dict]:
    import pyarrow.parquet as pq

    return pq.read_table(run.report_path).to_pylist()


def _journal_sql(root: Path, sql: str, params: tuple = (), fetch: bool = False):
    conn = sqlite3.connect(root / STATE_DIRNAME / "journal.sqlite")
    try:
        rows = conn.execute(sql, params).fetchall()
        conn.commit()
        return rows if fetch else None
    finally:
        conn.close()


def _exiftool(tmp: Path, data: bytes) -> dict[str, str]:
    path = tmp / "probe.jpg"
    path.write_bytes(data)
    out = subprocess.run(
        ["exiftool", "-s", "-G1", "-a", "-n", "-EXIF:all", str(path)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    found = (re.match(r"\[(\w+)\]\s+(\S+)\s*:\s*(.*)", line) for line in out.splitlines())
    return {f"{m[1]}:{m[2]}": m[3].strip() for m in found if m}


def test_the_commands_temporary_server_cannot_outlive_it(tmp_path):
    """Started as the CLI starts its Prefect server: kill -9 the parent, and the child goes too."""
    import signal

    parent = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time\nfrom flows.server import spawn_bound\n"
            "child = spawn_bound([sys.executable, '-c', 'import time; time.sleep(300)'])\n"
            "print(child.pid, flush=True)\ntime.sleep(300)\n",
        ],
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
    )
    child = int(parent.stdout.readline())
    os.kill(parent.pid, signal.SIGKILL)
    parent.wait()
    for _ in range(300):  # the kernel signals the child at once; allow a slow machine its time
        try:
            os.kill(child, 0)
        except ProcessLookupError:
            return
        with open(f"/proc/{child}/stat") as stat:
            if stat.read().split(")")[-1].split()[0] == "Z":  # exited, waiting to be reaped by init
                return
        __import__("time").sleep(0.1)
    os.kill(child, signal.SIGKILL)
    raise AssertionError("the child outlived its killed parent")


def test_flows_on_a_temporary_server_send_no_heartbeats():
    """Prefect's flow engine joins its heartbeat thread (up to a second) at the end of every flow
    run; a server that dies with the command never uses them."""
    from prefect.flow_engine import FlowRunEngine
    from prefect.settings import PREFECT_FLOWS_HEARTBEAT_FREQUENCY, temporary_settings

    from flows.server import temporary_server_settings

    with temporary_settings({PREFECT_FLOWS_HEARTBEAT_FREQUENCY: 180}):  # a lasting server's default
        assert FlowRunEngine(flow=lambda: None).heartbeat_seconds == 180
        with temporary_settings(temporary_server_settings()):
            assert FlowRunEngine(flow=lambda: None).heartbeat_seconds is None
