"""The review queue of an archive: built from its reports and journals on each call, filtered
for the page, and decided on."""

from __future__ import annotations

import os
import stat
import threading
from collections.abc import Iterable
from pathlib import Path

from orient_model import orientation
from orient_model.archive.journal import Journal, JournalError, Review, Seen
from orient_model.archive.layout import journal_path, reports_dir
from orient_model.archive.paths import OutsideArchive, Tree
from orient_model.archive.state import state_folders
from orient_model.files import is_temp_name
from orient_model.review.decisions import Origins, check_reviewer, decision_state_folder, latest_reviews
from orient_model.review.items import (
    ContentChanged,
    InvalidDecision,
    ReviewError,
    ReviewItem,
    UnknownItem,
    make_item_id,
    turned_probs,
)
from orient_model.review.reports import DECISION_ACTIONS, DecisionRow, QueueReport, read_report

KINDS = ("flagged", "automatic", "rotate", "keep", "all")
STATES = ("unreviewed", "decided", "applied")


class ReviewQueue:
    """The review queue of one archive, read afresh from its reports and journals on each call
    (cheaply: reports are cached by file identity, file hashes by ``stat`` identity)."""

    def __init__(
        self,
        root: str | os.PathLike[str],
        state_dir: str | os.PathLike[str] | None = None,
        reports: Iterable[str | os.PathLike[str]] = (),
    ) -> None:
        if not Path(root).is_dir():
            raise ReviewError(f"archive directory not found: {root}")
        self.root = Path(os.path.realpath(root))
        self.folders = state_folders(self.root, True, state_dir)
        self.extra_reports = [Path(p) for p in reports]
        for path in self.extra_reports:
            if not path.is_file():
                raise ReviewError(f"report not found: {path}")
        self._reports: dict[Path, tuple[tuple, QueueReport]] = {}
        self._hashes: dict[tuple, str | None] = {}
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ reading

    def journals(self) -> list[Journal]:
        """Read-only views of every journal of this archive that exists (caller closes them)."""
        out = []
        for folder in self.folders.all:
            if journal_path(folder).is_file():
                try:
                    out.append(Journal(journal_path(folder), readonly=True))
                except JournalError:
                    continue  # another version's, or damaged: the queue does without it
        return out

    def report_paths(self) -> list[Path]:
        found = []
        for folder in self.folders.all:
            reports = reports_dir(folder)
            if reports.is_dir():
                found += [p for p in reports.glob("*.parquet") if not is_temp_name(p.name)]
        return [*found, *self.extra_reports]

    def _report(self, path: Path) -> QueueReport | None:
        try:
            st = path.stat()
        except OSError:
            return None
        key = (st.st_size, st.st_mtime_ns, st.st_ino)
        cached = self._reports.get(path)
        if cached is not None and cached[0] == key:
            return cached[1]
        report = read_report(path, self.root, st.st_mtime_ns)
        if report is not None:
            self._reports[path] = (key, report)
        return report

    def current_hash(self, tree: Tree, rel_path: str, seen: dict[str, Seen]) -> str | None:
        """The sha256 the file holds now (None: gone, a link, not a regular file, outside)."""
        try:
            with tree.place(rel_path) as place:
                st = place.lstat()
                if st is None or not stat.S_ISREG(st.st_mode):
                    return None
                key = (rel_path, st.st_size, st.st_mtime_ns, st.st_ino, st.st_ctime_ns)
                if key in self._hashes:
                    return self._hashes[key]
                known = seen.get(rel_path)
                if known is not None and (known.size, known.mtime_ns, known.ino) == key[1:4]:
                    sha = known.sha256
                else:
                    sha = place.sha256()
                self._hashes[key] = sha
                return sha
        except (OutsideArchive, OSError):
            return None

    def items(self) -> list[ReviewItem]:
        """Every item, flagged ones first, least confident first within each action."""
        with self._lock:
            return self._items()

    def _items(self) -> list[ReviewItem]:
        reports = [r for r in (self._report(p) for p in self.report_paths()) if r is not None]
        reports.sort(key=lambda r: r.order)
        newest: dict[str, DecisionRow] = {}
        applied: dict[tuple[str, str], set[str | None]] = {}  # (path, after) -> befores
        for report in reports:
            for row in report.decisions:
                newest[row.rel_path] = row
            for rel, before, after in report.applied_reviews:
                applied.setdefault((rel, after), set()).add(before)
        journals = self.journals()
        try:
            reviews = latest_reviews(journals)
            seen: dict[str, Seen] = {}
            for journal in reversed(journals):
                try:
                    seen.update(journal.seen())
                except JournalError:
                    continue
            origins = Origins(journals)
            items = []
            with Tree(self.root) as tree:
                for rel, row in newest.items():
                    current = self.current_hash(tree, rel, seen)
                    if current is None:
                        continue
                    item = _item(row, current, reviews.get(row.content), applied, origins)
                    if item is not None:
                        items.append(item)
        finally:
            for journal in journals:
                journal.close()
        order = {"flag": 0, "rotate": 1, "keep": 2}
        items.sort(key=lambda i: (order[i.action], i.confidence, i.path))
        return items

    def item(self, item_id: str) -> ReviewItem:
        for item in self.items():
            if item.id == item_id:
                return item
        raise UnknownItem(
            f"no photo with id {item_id!r} in the review queue of {self.root} "
            "(its file may have changed since the run; run autorotate again)"
        )

    # ------------------------------------------------------------------ deciding

    def decision_journal(self) -> Journal:
        folder = decision_state_folder(self.folders, self.root)
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ReviewError(
                f"cannot create the state folder {folder} for decisions: {exc.strerror or exc}"
            ) from None
        return Journal(journal_path(folder))

    def decide(self, item_id: str, rotation_deg: int, reviewer: str) -> ReviewItem:
        """Record that the item's content is upright after ``rotation_deg`` clockwise."""
        return self.decide_many([item_id], [rotation_deg], reviewer)[0]

    def decide_many(self, item_ids: list[str], rotations: list[int], reviewer: str) -> list[ReviewItem]:
        """Record several decisions: all are checked, then written in one transaction."""
        reviewer = check_reviewer(reviewer)
        for rotation in rotations:
            if isinstance(rotation, bool) or rotation not in orientation.ROTATIONS:
                raise InvalidDecision(
                    f"a decision is a clockwise turn of 0, 90, 180 or 270 degrees, not {rotation!r}"
                )
        by_id = {item.id: item for item in self.items()}
        chosen = []
        for wanted, rotation in zip(item_ids, rotations, strict=True):
            item = by_id.get(wanted)
            if item is None:
                raise UnknownItem(f"no photo with id {wanted!r} in the review queue of {self.root}")
            if item.state == "applied":
                raise ContentChanged(
                    f"{item.path}: the decision was already applied (the file was turned); undo that "
                    "apply-review run first (orient undo REPORT) to decide again"
                )
            chosen.append((item, rotation))
        if not chosen:
            return []
        journal = self.decision_journal()
        try:
            journal.add_reviews(
                reviewer,
                [
                    (item.sha256, item.rel_path, rotation, item.run_id, item.suggested_deg, item.confidence)
                    for item, rotation in chosen
                ],
            )
        finally:
            journal.close()
        with self._lock:
            fresh = {i.id: i for i in self._items()}
        return [fresh.get(item.id, item) for item, _ in chosen]

    def accept_suggestions(self, items: Iterable[ReviewItem], reviewer: str) -> list[ReviewItem]:
        """Accept the run's suggestion for each unreviewed item given (a folder, all above a
        confidence, ...); items already decided keep their decision."""
        todo = [i for i in items if i.state == "unreviewed"]
        return self.decide_many([i.id for i in todo], [i.suggested_deg for i in todo], reviewer)


def _item(
    row: DecisionRow, current: str, review: Review | None, applied: dict, origins: Origins
) -> ReviewItem | None:
    state, on_disk = "unreviewed", 0
    if current == row.content:
        state = "decided" if review is not None else "unreviewed"
    elif review is not None and review.rotation_deg != 0:
        befores = applied.get((row.rel_path, current), set())
        put_back = origins.turn(row.rel_path, current, row.content)
        if befores & ({row.content} | origins.of(row.rel_path, row.content)) or origins.carried_out(
            row.rel_path, row.content, review.rotation_deg, current
        ):
            state, on_disk = "applied", review.rotation_deg
        elif put_back is not None:  # the run's turn was put back; the decision is not carried out yet
            state, on_disk = "decided", -put_back % 360
        else:
            return None  # changed by something else: stale until the next run
    else:
        return None
    probs = turned_probs(row.probs, row.rotation_deg) if row.applied_by_run else row.probs
    suggested = 0 if row.applied_by_run else row.rotation_deg
    return ReviewItem(
        id=make_item_id(row.path_bytes, row.content),
        path=row.path,
        rel_path=row.rel_path,
        folder=os.path.dirname(row.path),
        sha256=row.content,
        current_sha256=current,
        probs=probs,
        suggested_deg=suggested,
        confidence=row.confidence,
        action=row.action,
        applied_by_run=row.applied_by_run,
        run_id=row.run_id,
        model=row.model,
        state=state,
        decision_deg=None if review is None else review.rotation_deg,
        reviewer=None if review is None else review.reviewer,
        decided_at=None if review is None else review.decided_at,
        on_disk_deg=on_disk,
    )


def select(
    items: Iterable[ReviewItem],
    kind: str = "flagged",
    folder: str | None = None,
    min_confidence: float | None = None,
    max_confidence: float | None = None,
    state: str | None = None,
) -> list[ReviewItem]:
    """The items an operator filtered to: kind (flagged / automatic / rotate / keep / all), a
    folder (with its subfolders), a confidence range, a state."""
    if kind not in KINDS:
        raise ReviewError(f"unknown kind {kind!r}; choose one of {', '.join(KINDS)}")
    if state not in (None, "any", *STATES):
        raise ReviewError(f"unknown state {state!r}; choose one of any, {', '.join(STATES)}")
    actions = {
        "flagged": {"flag"},
        "automatic": {"rotate", "keep"},
        "rotate": {"rotate"},
        "keep": {"keep"},
        "all": set(DECISION_ACTIONS),
    }[kind]
    folder = (folder or "").strip("/")
    out = []
    for item in items:
        if item.action not in actions:
            continue
        if folder and not (item.folder == folder or item.folder.startswith(folder + "/")):
            continue
        if min_confidence is not None and item.confidence < min_confidence:
            continue
        if max_confidence is not None and item.confidence > max_confidence:
            continue
        if state not in (None, "any") and item.state != state:
            continue
        out.append(item)
    return out


def progress(items: Iterable[ReviewItem]) -> dict:
    items = list(items)
    reviewed = sum(i.state != "unreviewed" for i in items)
    return {"reviewed": reviewed, "total": len(items), "applied": sum(i.state == "applied" for i in items)}


def review_markdown(summary: dict, port: int = 8765) -> str:
    """How an operator opens the review of a run's flagged photos (for the run's artifacts)."""
    flagged = summary["counts"].get("flag", 0)
    lines = [
        f"# Review {flagged} flagged photo{'s' if flagged != 1 else ''}",
        "",
        "Open the review page (the four ways each photo could be turned, with the evidence; "
        "keys 1-4 choose, decisions are saved at once):",
        "",
        f"```\norient review '{summary['archive']}'\n```",
        "",
        f"then [http://127.0.0.1:{port}/](http://127.0.0.1:{port}/). Apply the decisions with "
        f"`orient apply-review '{summary['archive']}'`.",
        "",
    ]
    if summary.get("flagged_dir"):
        lines += [
            f"Pictures of the flagged photos: [{summary['flagged_dir']}]({Path(summary['flagged_dir']).as_uri()})",
            "",
        ]
    return "\n".join(lines)
