"""Undo a run: from its report (which names the archive and cross-checks the journal) or its id.

The report is the user's record of what a run did; the journal is the archive's. Both must
agree on every file before anything is restored. When the journal cannot be read at all, the
report and the content-addressed backups suffice, with the same hash checks.

Undo shares with the change protocol (:mod:`orient_model.archive.changes`) only the archive's
trees, journal and backups, so its own checks live here: the plan against the journal and the
report, each file against what the run wrote. ``Archive.undo`` hands over to :func:`undo_changes`.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from orient_model.archive.changes import Archive, archive_lock, check_mirror_folder, read_photo, state_dir
from orient_model.archive.journal import Change, JournalDamaged, JournalError, UnknownRun
from orient_model.archive.layout import JOURNAL_NAME, backup_dir, report_path
from orient_model.archive.paths import Tree, parts_of
from orient_model.archive.state import default_state_dir
from orient_model.errors import OrientError
from orient_model.files import sha256_bytes
from orient_model.report import read_report, run_config_of


@dataclass
class UndoOutcome:
    rel_path: str
    status: str  # 'restored' | 'removed' | 'already' | 'refused' | 'would restore' | 'would remove'
    message: str
    target_root: str | None = None

    @property
    def ok(self) -> bool:
        return self.status != "refused"


@dataclass
class UndoResult:
    run_id: str
    root: Path
    outcomes: list[UndoOutcome]
    from_report_only: bool = False

    @property
    def nothing_to_do(self) -> bool:
        return all(o.status == "already" for o in self.outcomes)

    @property
    def refused(self) -> list[UndoOutcome]:
        return [o for o in self.outcomes if not o.ok]


def undo_changes(
    archive: Archive,
    run_id: str,
    report: dict[str, tuple[str | None, str | None]] | None = None,
    paths: Iterable[str] | None = None,
    dry_run: bool = False,
) -> list[UndoOutcome]:
    """Put back what run ``run_id`` (and the interrupted runs it completed) changed.

    ``report`` maps each path the run's report says it changed to its (sha256 before, after);
    every journal row of that run must agree with it, or nothing is done. Every path is
    checked to lie inside its tree before anything is written. ``paths`` limits the undo
    to those files; ``dry_run`` only says what would be done.
    """
    runs = archive.runs_undone_with(run_id)
    changes = [c for c in archive.journal.changes(runs) if c.state in ("done", "undone", "planned")]
    if not changes and not archive.journal.is_finished(run_id) and run_id not in archive.journal.run_ids():
        known = ", ".join(archive.journal.run_ids()[-5:]) or "none"
        raise UnknownRun(f"no changes recorded for run {run_id!r} in {archive.root} (recent runs: {known})")
    if paths is not None:
        wanted = set(paths)
        changes = [c for c in changes if c.rel_path in wanted]
    _check_undo_plan(archive, run_id, changes, report)
    if not dry_run and any(c.state == "planned" for c in changes):
        archive.recover()
        ids = {c.id for c in changes}
        changes = [c for c in archive.journal.changes(runs) if c.id in ids]
    return [_undo_one(archive, c, dry_run) for c in reversed(changes) if c.state in ("done", "undone")]


def _check_undo_plan(
    archive: Archive,
    run_id: str,
    changes: list[Change],
    report: dict[str, tuple[str | None, str | None]] | None,
) -> None:
    """Refuse (before writing anything) a plan that leaves its tree, restores anything but
    what was there before the change, or contradicts the report."""
    written = None
    for change in changes:
        parts_of(change.rel_path)  # raises OutsideArchive: nothing has been written yet
        if not change.in_place:
            check_mirror_folder(archive.root, Path(change.target_root), archive.state_dir)
        recorded = report.get(change.rel_path) if report is not None else None
        expected = (change.source_sha256, change.sha256_after)
        if (
            report is not None
            and change.run_id == run_id
            and (recorded is None or tuple(recorded) != expected)
        ):
            raise JournalError(
                f"the journal and the report disagree about {change.rel_path} (journal: "
                f"{expected[0][:12]}->{expected[1][:12]}, report: "
                f"{'no change' if recorded is None else '->'.join(str(h)[:12] for h in recorded)}); "
                "nothing undone: the journal may have been tampered with"
            )
        if change.sha256_before is not None:
            if written is None:  # (target, path) -> every content orient wrote there
                written = {}
                for c in archive.journal.changes():
                    written.setdefault((c.target_root, c.rel_path), set()).add(c.sha256_after)
            # In place, what was there is the photo the turn was made from; in a mirror, a
            # copy orient wrote there earlier. Anything else would put another photo here.
            ok = (
                change.sha256_before == change.source_sha256
                if change.in_place
                else change.sha256_before in written.get((change.target_root, change.rel_path), ())
            )
            if not ok:
                raise JournalError(
                    f"the journal would restore {change.rel_path} to {change.sha256_before[:12]}, "
                    "which is not what was there before the change; nothing undone: the journal "
                    "may have been tampered with"
                )


def _undo_one(archive: Archive, change: Change, dry_run: bool) -> UndoOutcome:
    name, root = change.rel_path, change.target_root
    if change.state == "undone":
        return UndoOutcome(name, "already", "already undone", root)
    try:
        # A folder that got its own .orient after the run is entered: the change is this
        # archive's, and only the very bytes the run wrote are replaced.
        with archive.tree_of(change).place(change.rel_path, enter_nested=True) as place:
            if place.lstat() is None:
                current, state = None, None
            else:
                data, state = read_photo(place)
                current = sha256_bytes(data)
            if current == change.sha256_before:  # an undo killed after its replace
                if not dry_run:
                    archive.journal.set_state(change.id, "undone")
                return UndoOutcome(name, "already", "already as it was before the run", root)
            if current != change.sha256_after:
                verb, kept = (
                    ("rotated", f" (the original is kept in {archive.backup_dir / change.source_sha256})")
                    if change.in_place
                    else ("wrote", "")
                )
                return UndoOutcome(
                    name,
                    "refused",
                    f"changed since run {change.run_id!r} {verb} it; not restored{kept}",
                    root,
                )
            if change.sha256_before is None:  # a copy this run created in a mirror folder
                if dry_run:
                    return UndoOutcome(name, "would remove", "would remove the copy the run wrote", root)
                place.remove(state, current)
                archive.journal.set_state(change.id, "undone")
                return UndoOutcome(name, "removed", "removed the copy the run wrote", root)
            original = _backup_bytes(archive, change.sha256_before)
            if original is None:
                return UndoOutcome(
                    name,
                    "refused",
                    f"backup {archive.backup_dir / change.sha256_before} is missing or damaged; not restored",
                    root,
                )
            if dry_run:
                return UndoOutcome(
                    name,
                    "would restore",
                    f"would restore the original from before run {change.run_id!r}",
                    root,
                )
            place.replace(original, state, current)
            archive.on_stage("restored", name)
            restored = f"restored the original from before run {change.run_id!r}"
            try:
                archive.journal.set_state(change.id, "undone")
            except JournalError as exc:  # the file is restored: say so, and why the record waits
                return UndoOutcome(
                    name, "restored", f"{restored} (not yet recorded: {exc}; undo again to record it)", root
                )
            return UndoOutcome(name, "restored", restored, root)
    except (OrientError, OSError) as exc:
        return UndoOutcome(name, "refused", f"not restored: {exc}", root)


def _backup_bytes(archive: Archive, sha256: str) -> bytes | None:
    try:
        data = (archive.backup_dir / sha256).read_bytes()
    except OSError:
        return None
    return data if sha256_bytes(data) == sha256 else None


def undo_from_report(
    root: str | os.PathLike[str],
    rows: list[dict],
    backup_dir: Path,
    paths: Iterable[str] | None = None,
    dry_run: bool = False,
) -> list[UndoOutcome]:
    """Undo without a journal (it is damaged): each applied report row whose file still holds
    the hash the report recorded gets the backup with the report's original hash back."""
    wanted = None if paths is None else set(paths)
    outcomes = []
    with Tree(root) as tree:
        for row in rows:
            rel = os.fsdecode(row["path_bytes"])
            if not row["applied"] or (wanted is not None and rel not in wanted):
                continue
            parts_of(rel)
        for row in reversed(rows):
            rel = os.fsdecode(row["path_bytes"])
            if not row["applied"] or (wanted is not None and rel not in wanted):
                continue
            before, after = row["sha256_before"], row["sha256_after"]
            try:
                with tree.place(rel) as place:
                    data, state = read_photo(place)
                    current = sha256_bytes(data)
                    if current == before:
                        outcomes.append(UndoOutcome(rel, "already", "already the original"))
                        continue
                    if current != after:
                        outcomes.append(UndoOutcome(rel, "refused", "changed since the run; not restored"))
                        continue
                    try:
                        original = (backup_dir / before).read_bytes()
                    except OSError:
                        original = b""
                    if sha256_bytes(original) != before:
                        outcomes.append(
                            UndoOutcome(
                                rel,
                                "refused",
                                f"backup {backup_dir / before} is missing or damaged; not restored",
                            )
                        )
                        continue
                    if dry_run:
                        outcomes.append(UndoOutcome(rel, "would restore", "would restore the original"))
                        continue
                    place.replace(original, state, current)
                    outcomes.append(UndoOutcome(rel, "restored", "restored the original (from the report)"))
            except (OrientError, OSError) as exc:
                outcomes.append(UndoOutcome(rel, "refused", f"not restored: {exc}"))
    return outcomes


def _report_rows(path: Path) -> tuple[dict, list[dict]]:
    table = read_report(path)
    return run_config_of(table), table.select(
        ["path_bytes", "applied", "sha256_before", "sha256_after"]
    ).to_pylist()


def undo_run(
    target: str,
    archive: Path | None = None,
    paths: Iterable[str] | None = None,
    dry_run: bool = False,
    announce: Callable[[str], None] = print,
) -> UndoResult:
    """Undo the run named by ``target`` (a report file, or a run id with ``archive``)."""
    rows: list[dict] | None = None
    config: dict | None = None
    if target.endswith(".parquet") or os.path.isfile(target):
        if not os.path.isfile(target):
            raise OrientError(f"report not found: {target}")
        config, rows = _report_rows(Path(target))
        run_id, root = config.get("run_id"), Path(archive or config.get("archive") or "")
        if not run_id:
            raise OrientError(f"{target} names no run; is it an orient report?")
    else:
        if archive is None:
            raise OrientError(f"{target!r} is neither a report file nor (without --archive DIR) a run id")
        run_id, root = target, Path(archive)
        for folder in (state_dir(root), default_state_dir(root)):  # a mirror run's state is outside
            default_report = report_path(folder, run_id)
            if default_report.is_file():
                config, rows = _report_rows(default_report)
                break
    if not root.is_dir():
        raise OrientError(f"archive directory not found: {root}")
    root = Path(os.path.realpath(root))
    state = _state_of(root, config)
    report = (
        None
        if rows is None
        else {
            os.fsdecode(r["path_bytes"]): (r["sha256_before"], r["sha256_after"])
            for r in rows
            if r["applied"]
        }
    )
    announce(f"{'checking' if dry_run else 'undoing'} run {run_id} in archive {root}")
    with archive_lock(root, f"undo-{run_id}", state):
        if rows is not None and not (state / JOURNAL_NAME).exists():
            announce(
                "warning: the archive's journal is missing; restoring from the report and the backups instead"
            )
            outcomes = undo_from_report(root, rows, backup_dir(state), paths, dry_run)
            return UndoResult(run_id, root, outcomes, from_report_only=True)
        try:
            with Archive(root, state) as arch:
                return UndoResult(run_id, root, arch.undo(run_id, report, paths, dry_run))
        except JournalDamaged as exc:
            if rows is None:
                raise
            announce(f"warning: {exc}; restoring from the report and the backups instead")
            outcomes = undo_from_report(root, rows, backup_dir(state), paths, dry_run)
            return UndoResult(run_id, root, outcomes, from_report_only=True)


def _state_of(root: Path, config: dict | None) -> Path:
    """The state folder holding a run's journal and backups: the archive's own, or, for a run
    that changed nothing in the archive (a mirror run), the one its report names."""
    named = (config or {}).get("state_dir")
    if (config or {}).get("out_dir") and named and Path(named).is_dir():
        return Path(named)
    return state_dir(root)
