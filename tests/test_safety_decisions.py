"""Nothing lost, round two: the state folder, the journal's backups, the operator's decisions.

Each test names the hole it closes (the reliability issue's list); the protocol runs on real
files with the library's own run, journal and undo, as in test_safety.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import test_safety
from test_safety import _journal_sql, run_with_decisions

from orient_model.archive.audit import archive_contents
from orient_model.archive.journal import JournalError
from orient_model.archive.state import StateFolderConflict
from orient_model.archive.undo import undo_run

archive = test_safety.archive  # the same two-photo archive fixture as test_safety's


# 3 ------------------------------------------------------------------ the state folder


@pytest.mark.parametrize("where", ["same", "inside", "around"])
@pytest.mark.parametrize("apply", ["none", "lossless"])
def test_3_a_state_folder_overlapping_the_archive_is_refused_before_anything(
    archive: Path, where: str, apply: str
) -> None:
    (archive / "lock.json").write_text("the user's own notes\n")
    state = {"same": archive, "inside": archive / "sub", "around": archive.parent}[where]
    before = archive_contents(archive)
    with pytest.raises(StateFolderConflict, match="outside the archive"):
        run_with_decisions(archive, apply=apply, state_dir=state)
    assert archive_contents(archive) == before
    assert (archive / "lock.json").read_text() == "the user's own notes\n"


def test_3_a_lock_note_orient_did_not_write_is_never_overwritten_nor_deleted(tmp_path: Path) -> None:
    from orient_model.archive.lock import ArchiveLocked, state_lock

    folder = tmp_path / "state"
    folder.mkdir()
    (folder / "lock.json").write_text("not orient's")
    with pytest.raises(ArchiveLocked, match="not written by orient"):
        with state_lock(folder, "state folder", "run-1"):
            pass
    assert (folder / "lock.json").read_text() == "not orient's"
    (folder / "lock.json").unlink()
    with state_lock(folder, "state folder", "run-2"):
        (folder / "lock.json").write_text("replaced while the run held the lock")
    assert (folder / "lock.json").read_text() == "replaced while the run held the lock"


# 4 ------------------------------------------------------------------ what undo restores


def test_4_swapped_backups_in_the_journal_cannot_put_one_photo_in_another_ones_place(archive: Path) -> None:
    run = run_with_decisions(archive)
    rotated = archive_contents(archive)
    (a,), (b,) = _journal_sql(archive, "SELECT sha256_before FROM changes ORDER BY id", fetch=True)
    _journal_sql(
        archive, "UPDATE changes SET sha256_before = CASE sha256_before WHEN ? THEN ? ELSE ? END", (a, b, a)
    )
    with pytest.raises(JournalError, match="tampered"):
        undo_run(str(run.report_path), announce=lambda line: None)
    with pytest.raises(JournalError, match="tampered"):
        undo_run(run.run_id, archive, announce=lambda line: None)
    assert archive_contents(archive) == rotated


def test_4_a_mirror_copy_is_restored_only_to_what_orient_wrote_there(archive: Path, tmp_path: Path) -> None:
    import sqlite3

    out, state = tmp_path / "corrected", tmp_path / "state"
    run_with_decisions(archive, 90, out_dir=out, state_dir=state)
    second = run_with_decisions(archive, 180, out_dir=out, state_dir=state)
    mirrored = archive_contents(out)
    conn = sqlite3.connect(state / "journal.sqlite")
    with conn:
        (first_copy,) = conn.execute(
            "SELECT sha256_before FROM changes WHERE run_id = ? AND sha256_before IS NOT NULL LIMIT 1",
            (second.run_id,),
        ).fetchone()
        (other,) = conn.execute("SELECT source_sha256 FROM changes LIMIT 1").fetchone()
        conn.execute("UPDATE changes SET sha256_before = ? WHERE sha256_before = ?", (other, first_copy))
    conn.close()
    with pytest.raises(JournalError, match="tampered"):
        undo_run(str(second.report_path), announce=lambda line: None)
    assert archive_contents(out) == mirrored


# risks ------------------------------------------------------------------ the model that runs


@pytest.mark.parametrize("named", ["../elsewhere", "/tmp/elsewhere", "link-out"])
def test_a_current_record_naming_a_model_outside_the_registry_is_refused(tmp_path: Path, named: str) -> None:
    import json

    from orient_model.model.registry import CURRENT_FILE, ModelLoadError, current_version, resolve_model_path

    models, elsewhere = tmp_path / "models", tmp_path / "elsewhere"
    models.mkdir()
    elsewhere.mkdir()
    (elsewhere / "model.pt").write_bytes(b"someone else's network")
    (models / "link-out").symlink_to(elsewhere)
    (models / CURRENT_FILE).write_text(json.dumps({"version": named, "stack": [named], "log": []}))
    with pytest.raises(ModelLoadError, match="not a model of the registry"):
        current_version(models)
    with pytest.raises(ModelLoadError, match="current.json names"):
        resolve_model_path("current", models)


# risks ------------------------------------------------------------------ debris


@pytest.mark.parametrize("apply", ["none", "lossless"])
def test_an_aborted_runs_half_written_report_is_cleared_by_the_next_run(
    archive: Path, tmp_path: Path, apply: str
) -> None:
    state = tmp_path / "state"
    first = run_with_decisions(archive, apply=apply, state_dir=state)
    reports = first.report_path.parent
    leftover = reports / ".orient-tmp-20261206T010203-abcdef.parquet"
    leftover.write_bytes(b"PAR1 half a report")
    theirs = reports / "notes.txt"
    theirs.write_text("kept")
    run_with_decisions(archive, apply=apply, state_dir=state)
    assert not leftover.exists() and theirs.read_text() == "kept"


# risks ------------------------------------------------------------------ undo without a journal


def test_undo_with_the_journal_deleted_restores_from_the_report_and_the_backups(archive: Path) -> None:
    from orient_model.archive.paths import STATE_DIRNAME

    originals = archive_contents(archive)
    run = run_with_decisions(archive)
    journal = archive / STATE_DIRNAME / "journal.sqlite"
    for suffix in ("", "-wal", "-shm"):
        Path(f"{journal}{suffix}").unlink(missing_ok=True)
    said: list[str] = []
    result = undo_run(str(run.report_path), announce=said.append)
    assert result.from_report_only and any("journal is missing" in line for line in said)
    assert archive_contents(archive) == originals


def test_a_quality_gate_is_read_one_way_everywhere(tmp_path: Path) -> None:
    """A gate that does not say it passed is a failed gate, for promotion and for the listing."""
    import json

    import torch

    from orient_model.model.card import ModelCard
    from orient_model.model.registry import PromotionRefused, list_models, promote

    def passed(card: dict) -> bool:
        return ModelCard.model_validate(card).passed_gate

    assert passed({}) and passed({"quality_gate": {"passed": True}})
    assert not passed({"quality_gate": {"reasons": ["odd"]}}) and not passed({"quality_gate": "yes"})
    assert not passed({"quality_gate": {"passed": "yes"}}) and not passed({"quality_gate": {"passed": 1}})
    models = tmp_path / "models"
    (models / "v1").mkdir(parents=True)
    torch.save({}, models / "v1" / "model.pt")
    (models / "v1" / "card.json").write_text(json.dumps({"version": "v1", "quality_gate": {"reasons": []}}))
    with pytest.raises(PromotionRefused, match="quality gate"):
        promote("v1", models)
    assert [m["quality_gate"] for m in list_models(models)] == [False]


def test_a_file_restored_while_the_journal_is_locked_is_reported_restored(archive: Path) -> None:
    import sqlite3

    from orient_model.archive.changes import Archive
    from orient_model.archive.paths import STATE_DIRNAME

    originals = archive_contents(archive)
    run = run_with_decisions(archive)
    holder: list[sqlite3.Connection] = []

    def lock_the_journal(stage: str, rel: str) -> None:  # another process takes the journal
        if stage == "restored" and not holder:
            conn = sqlite3.connect(archive / STATE_DIRNAME / "journal.sqlite", isolation_level=None)
            conn.execute("BEGIN EXCLUSIVE")
            holder.append(conn)

    with Archive(archive, on_stage=lock_the_journal) as arch:
        arch.journal.conn.execute("PRAGMA busy_timeout = 50")
        outcomes = arch.undo(run.run_id)
    holder[0].execute("ROLLBACK")
    holder[0].close()
    assert archive_contents(archive) == originals
    assert all(o.status in ("restored", "already") for o in outcomes), outcomes
    assert any("not yet recorded" in o.message for o in outcomes)
    again = undo_run(run.run_id, archive, announce=lambda line: None)  # records it; nothing to write
    assert archive_contents(archive) == originals and not again.refused


def test_a_runs_change_in_a_folder_that_later_got_its_own_state_stays_undoable(archive: Path) -> None:
    originals = archive_contents(archive)
    run = run_with_decisions(archive)
    (archive / "sub" / ".orient").mkdir()  # sub/ became an archive of its own after the run
    result = undo_run(str(run.report_path), announce=lambda line: None)
    assert not result.refused, result.outcomes
    assert archive_contents(archive) == originals


def test_a_mirror_run_keeps_its_state_outside_the_archive_and_stays_undoable(
    archive: Path, tmp_path: Path
) -> None:
    """--out-dir changes nothing in the archive, so a read-only archive can be mirrored: its
    journal, backups and reports go to the state folder, and undo finds them there."""
    from orient_model.archive.paths import STATE_DIRNAME

    before = archive_contents(archive)
    out, state = tmp_path / "corrected", tmp_path / "state"
    first = run_with_decisions(archive, 90, out_dir=out, state_dir=state)
    copies = archive_contents(out)
    second = run_with_decisions(archive, 180, out_dir=out, state_dir=state)
    assert not (archive / STATE_DIRNAME).exists() and archive_contents(archive) == before
    assert (state / "journal.sqlite").is_file() and first.report_path.parent == state / "reports"
    undo_run(str(second.report_path), announce=lambda line: None)
    assert archive_contents(out) == copies
    undo_run(str(first.report_path), announce=lambda line: None)
    assert archive_contents(out) == {} and not (archive / STATE_DIRNAME).exists()
