"""The operator's review: what the runs left for a person to decide, their decisions, and what
those decisions teach.

The queue of an archive is built from its reports, never from a separate list that could drift:
for each path, the newest report row that carries a decision (``flag``, ``rotate``, ``keep``),
kept only while the file still holds the content that row judged. A row whose file changed
since is stale: the next run judges the file again. Each item has a stable opaque id (from its
path and content), so two browser tabs, a restarted server and the journal all name it alike.

A decision ("this content is upright after ``r`` degrees clockwise") goes into the archive's
journal at once, keyed by the content's sha256, so every later run sees it
(:meth:`~orient_model.archive.state.Memory.leave_alone`): a reviewed photo is never flagged
again while its content is unchanged, and one confirmed upright is never turned automatically.
``orient apply-review`` carries the decisions out through the same safe writer as auto-rotate
(:func:`review_rows` prepares that run's rows), and :func:`training_pool` lists every reviewed
photo, with the turn that makes it upright, for retraining.
"""

from __future__ import annotations

import getpass
import hashlib
import io
import json
import os
import stat
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
from PIL import Image

from orient_model import orientation
from orient_model.archive.journal import Journal, JournalError, Review, Seen
from orient_model.archive.paths import STATE_DIRNAME, OutsideArchive, Tree
from orient_model.archive.state import Memory, StateFolders, state_folders
from orient_model.errors import OrientError
from orient_model.files import is_temp_name
from orient_model.imageio import ImageReadError, load_upright
from orient_model.pipeline import Predicted, read_entry
from orient_model.report import REPORT_SCHEMA

# apply-review runs write reports too; their rows carry operator decisions, not a model's.
REVIEW_MODEL_VERSION = "operator-review"
REVIEW_VIEW_KEY = "operator-review"
HOW_KNOWN = "operator review"
DECISION_ACTIONS = ("flag", "rotate", "keep")
KINDS = ("flagged", "automatic", "rotate", "keep", "all")
STATES = ("unreviewed", "decided", "applied")
PICTURE_SIDE = 400  # long side of each candidate picture, in px
FULL_SIDE = 1600  # long side of the full-size view
_REPORT_COLUMNS = [
    "path",
    "path_bytes",
    "sha256_before",
    "sha256_after",
    "rotation_deg",
    "confidence",
    "prob_0",
    "prob_90",
    "prob_180",
    "prob_270",
    "action",
    "applied",
    "run_id",
]


class ReviewError(OrientError):
    """A review request that cannot be carried out; the message says why and what to do."""


class UnknownItem(ReviewError):
    """No item of the queue has this id (a typo, or its file changed since the run)."""


class InvalidDecision(ReviewError):
    """A decision that is not one of the four quarter turns, or from nobody."""


class ContentChanged(ReviewError):
    """The file no longer holds the content the decision would be about."""


def default_reviewer() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no user name in a container
        return "operator"


def make_item_id(path_bytes: bytes, sha256: str) -> str:
    """A stable, opaque id for a photo's content at a path (the same in every tab and restart)."""
    return hashlib.sha256(path_bytes + b"\0" + sha256.encode()).hexdigest()[:20]


def turned_probs(probs: tuple[float, ...], turned_deg: int) -> tuple[float, float, float, float]:
    """Probabilities for content already turned ``turned_deg`` clockwise: it needs ``r`` more
    exactly when the original needed ``turned_deg + r``."""
    shift = turned_deg // 90
    return tuple(float(probs[(k + shift) % 4]) for k in range(4))


@dataclass(frozen=True)
class ReviewItem:
    """One photo an operator may decide about."""

    id: str
    path: str  # for display (undecodable bytes as escapes)
    rel_path: str  # os form (surrogateescape), for the file system and the journal
    folder: str  # '' at the archive's top
    sha256: str  # the content the run judged and a decision is about
    current_sha256: str  # what the file holds now (the same, or the result of the decision)
    probs: tuple[float, float, float, float]  # for the content ``sha256``: upright after 0/90/180/270
    suggested_deg: int
    confidence: float
    action: str  # flag | rotate | keep, as the run decided
    applied_by_run: bool  # a 'rotate' the run carried out: the content is the turned photo
    run_id: str
    model: str | None  # the model file that judged it (for evidence)
    state: str  # unreviewed | decided | applied
    decision_deg: int | None = None
    reviewer: str | None = None
    decided_at: str | None = None
    # How far the file on disk is turned clockwise from the judged content: the decision once
    # applied, or back by the run's own turn when that turn was put back and the decision is pending.
    on_disk_deg: int = 0

    @property
    def shown_offset(self) -> int:
        """How far the file on disk is turned from the judged content."""
        return self.on_disk_deg

    def as_json(self) -> dict:
        out = asdict(self)
        out.pop("rel_path")
        out["probs"] = {str(r): p for r, p in zip(orientation.ROTATIONS, self.probs)}
        return out


@dataclass(frozen=True)
class PoolEntry:
    """A reviewed photo for training: the file at ``path`` (absolute) with content ``sha256`` is
    upright after ``rotation_deg`` clockwise (0 once the decision was applied)."""

    path: str
    sha256: str
    rotation_deg: int
    how_known: str
    reviewer: str
    decided_at: str
    rel_path: str  # inside the archive, for display


@dataclass(frozen=True)
class _Row:
    """A report row that carries a decision, as far as the queue needs it."""

    rel_path: str
    path: str
    path_bytes: bytes
    content: str  # the sha256 the row's decision is about
    probs: tuple[float, float, float, float]
    rotation_deg: int
    confidence: float
    action: str
    applied_by_run: bool
    run_id: str
    model: str | None


@dataclass
class _Report:
    decisions: list[_Row]
    applied_reviews: list[tuple[str, str | None, str]]  # apply-review rows: (rel path, before, after)
    order: tuple[str, int]


# ----------------------------------------------------------------------------------- journals


def latest_reviews(journals: Iterable[Journal]) -> dict[str, Review]:
    """The newest decision for each content, across journals (ties: the first journal's)."""
    latest: dict[str, Review] = {}
    for journal in journals:
        try:
            found = journal.reviews()
        except JournalError:
            continue
        for sha, review in found.items():
            if sha not in latest or review.decided_at > latest[sha].decided_at:
                latest[sha] = review
    return latest


def decision_state_folder(folders: StateFolders, root: Path) -> Path:
    """Where decisions are written: the archive's own ``.orient`` when it exists and is writable
    (the decisions travel with the archive), else the per-archive folder report-only runs use."""
    inside = root / STATE_DIRNAME
    journal = inside / "journal.sqlite"
    if (
        inside.is_dir()
        and os.access(inside, os.W_OK)
        and (not journal.exists() or os.access(journal, os.W_OK))
    ):
        return inside
    outside = next(f for f in folders.all if f != inside)
    return outside


# ----------------------------------------------------------------------------------- the queue


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
        self._reports: dict[Path, tuple[tuple, _Report]] = {}
        self._hashes: dict[tuple, str | None] = {}
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ reading

    def journals(self) -> list[Journal]:
        """Read-only views of every journal of this archive that exists (caller closes them)."""
        out = []
        for folder in self.folders.all:
            if (folder / "journal.sqlite").is_file():
                try:
                    out.append(Journal(folder / "journal.sqlite", readonly=True))
                except JournalError:
                    continue  # another version's, or damaged: the queue does without it
        return out

    def report_paths(self) -> list[Path]:
        found = []
        for folder in self.folders.all:
            reports = folder / "reports"
            if reports.is_dir():
                found += [p for p in reports.glob("*.parquet") if not is_temp_name(p.name)]
        return [*found, *self.extra_reports]

    def _report(self, path: Path) -> _Report | None:
        try:
            st = path.stat()
        except OSError:
            return None
        key = (st.st_size, st.st_mtime_ns, st.st_ino)
        cached = self._reports.get(path)
        if cached is not None and cached[0] == key:
            return cached[1]
        try:
            schema = pq.read_schema(path)
            if not schema.remove_metadata().equals(REPORT_SCHEMA.remove_metadata()):
                return None
            config = _run_config(schema)
            if os.path.realpath(config.get("archive") or "") != str(self.root):
                return None
            table = pq.read_table(path, columns=_REPORT_COLUMNS)
        except (OSError, ValueError):
            return None
        report = _read_rows(table.to_pylist(), config, st.st_mtime_ns)
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
        newest: dict[str, _Row] = {}
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
            origins = _Origins(journals)
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
        return Journal(folder / "journal.sqlite")

    def decide(self, item_id: str, rotation_deg: int, reviewer: str) -> ReviewItem:
        """Record that the item's content is upright after ``rotation_deg`` clockwise."""
        return self.decide_many([item_id], [rotation_deg], reviewer)[0]

    def decide_many(self, item_ids: list[str], rotations: list[int], reviewer: str) -> list[ReviewItem]:
        """Record several decisions: all are checked, then written in one transaction."""
        reviewer = _check_reviewer(reviewer)
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


def _check_reviewer(reviewer: str) -> str:
    if not isinstance(reviewer, str) or not reviewer.strip() or len(reviewer) > 100:
        raise InvalidDecision("a decision needs a reviewer's name (1 to 100 characters)")
    return reviewer.strip()


class _Origins:
    """Which content an in-place change turned into which, and by how much, from the journals
    (for knowing that a file now holds a decision's result, or the original of a turn that was
    put back)."""

    def __init__(self, journals: list[Journal]) -> None:
        self.journals = journals
        self._map: dict[tuple[str, str], dict[str, int]] | None = None

    def _turns(self) -> dict[tuple[str, str], dict[str, int]]:
        if self._map is None:
            self._map = {}
            for journal in self.journals:
                try:
                    changes = journal.changes()
                except JournalError:
                    continue
                for c in changes:  # 'planned': written or not; looked up by what a file holds now
                    if c.in_place and c.state in ("planned", "done", "undone"):
                        turns = self._map.setdefault((c.rel_path, c.sha256_after), {})
                        turns[c.source_sha256] = c.rotation_deg
        return self._map

    def of(self, rel_path: str, sha256: str) -> set[str]:
        """The contents a change at ``rel_path`` turned into ``sha256``."""
        return set(self._turns().get((rel_path, sha256), {}))

    def turn(self, rel_path: str, source: str, result: str) -> int | None:
        """The clockwise turn a change at ``rel_path`` made of ``source`` to give ``result``."""
        return self._turns().get((rel_path, result), {}).get(source)

    def carried_out(self, rel_path: str, judged: str, decided_deg: int, current: str) -> bool:
        """Whether a journaled turn made ``current`` the judged content turned as decided: from
        the judged content itself, or from the original of a run's turn that was put back (the
        proof when the apply-review that did it was stopped before writing its report)."""
        if self.turn(rel_path, judged, current) == decided_deg:
            return True
        return any(
            self.turn(rel_path, original, current)
            == (decided_deg + self.turn(rel_path, original, judged)) % 360
            for original in self.of(rel_path, judged)
        )


def _item(
    row: _Row, current: str, review: Review | None, applied: dict, origins: _Origins
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


def _run_config(schema) -> dict:
    try:
        return json.loads((schema.metadata or {}).get(b"orient.run_config", b"{}"))
    except ValueError:
        return {}


def model_of_run(config: dict) -> str | None:
    """The model file that judged a run's photos, from the run's configuration: its version in
    the registry, else the run's model setting if that is still the same version."""
    from orient_model.model.registry import resolve_model_path

    version = config.get("model_version")
    models_dir = Path(config["models_dir"]) if config.get("models_dir") else None
    for ref in (version, config.get("model")):
        if not ref or ref == REVIEW_MODEL_VERSION:
            continue
        try:
            path = resolve_model_path(ref, models_dir)
            card = path.parent / "card.json"
            found = (
                json.loads(card.read_text()).get("version", path.parent.name)
                if card.is_file()
                else path.parent.name
            )
        except (OrientError, OSError, ValueError):
            continue
        if version is None or found == version:
            return str(path)
    return None


def _read_rows(rows: list[dict], config: dict, mtime_ns: int) -> _Report:
    run_id = config.get("run_id") or ""
    order = (run_id[:15], mtime_ns)  # the run's start, to the second (the id's time stamp), then when written
    if config.get("model_version") == REVIEW_MODEL_VERSION:
        done = [
            (os.fsdecode(r["path_bytes"]), r["sha256_before"], r["sha256_after"])
            for r in rows
            if r["sha256_after"] and r["action"] in ("rotate", "keep")
        ]
        return _Report([], done, order)
    mirror = bool(config.get("out_dir"))  # a mirror run leaves the archive's files as they were
    decisions = []
    model = model_of_run(config) if any(r["action"] in DECISION_ACTIONS for r in rows) else None
    for r in rows:
        probs = (r["prob_0"], r["prob_90"], r["prob_180"], r["prob_270"])
        if (
            r["action"] not in DECISION_ACTIONS
            or r["rotation_deg"] is None
            or None in probs
            or not r["sha256_before"]
        ):
            continue
        turned = bool(r["applied"]) and r["action"] == "rotate" and not mirror
        decisions.append(
            _Row(
                rel_path=os.fsdecode(r["path_bytes"]),
                path=r["path"],
                path_bytes=r["path_bytes"],
                content=r["sha256_after"] if turned else r["sha256_before"],
                probs=tuple(float(p) for p in probs),
                rotation_deg=int(r["rotation_deg"]),
                confidence=float(r["confidence"] if r["confidence"] is not None else max(probs)),
                action=r["action"],
                applied_by_run=turned,
                run_id=r["run_id"] or run_id,
                model=model,
            )
        )
    return _Report(decisions, [], order)


# ----------------------------------------------------------------------------------- selections


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


# ----------------------------------------------------------------------------------- the training pool


def training_pool(
    root: str | os.PathLike[str], state_dir: str | os.PathLike[str] | None = None
) -> list[PoolEntry]:
    """Every reviewed photo still in the archive, with the clockwise turn that makes the file
    as it is now upright: the decision while it is pending, 0 once it was applied."""
    queue = ReviewQueue(root, state_dir)
    items = queue.items()
    entries: dict[tuple[str, str], PoolEntry] = {}

    def entry(rel_path: str, sha256: str, rotation_deg: int, reviewer: str, decided_at: str) -> PoolEntry:
        return PoolEntry(
            str(queue.root / rel_path),
            sha256,
            rotation_deg,
            HOW_KNOWN,
            reviewer,
            decided_at,
            _display(rel_path),
        )

    for item in items:
        if item.state in ("decided", "applied"):
            turn = item.decision_deg if item.state == "decided" else 0
            entries[(item.rel_path, item.current_sha256)] = entry(
                item.rel_path, item.current_sha256, turn, item.reviewer, item.decided_at
            )
    # Decisions whose report is gone still count while the file holds the decided content.
    journals = queue.journals()
    try:
        reviews = latest_reviews(journals)
    finally:
        for journal in journals:
            journal.close()
    known = {(i.rel_path, i.sha256) for i in items}
    with Tree(queue.root) as tree:
        for sha, review in reviews.items():
            if (review.rel_path, sha) in known:
                continue
            if queue.current_hash(tree, review.rel_path, {}) == sha:
                entries.setdefault(
                    (review.rel_path, sha),
                    entry(review.rel_path, sha, review.rotation_deg, review.reviewer, review.decided_at),
                )
    return sorted(entries.values(), key=lambda e: (e.rel_path, e.sha256))


def _display(rel_path: str) -> str:
    return os.fsencode(rel_path).decode("utf-8", "backslashreplace")


# ----------------------------------------------------------------------------------- apply-review


def review_rows(run, log: Callable[[str], None] = print) -> Predicted:
    """The rows of an apply-review run (an :class:`~orient_model.run.AutorotateRun` that applies,
    holding the archive's lock): each file whose content an operator decided needs turning gets
    that turn as a 'rotate' decision; the run then applies it like any other (journaled, backed
    up, verified, undoable). A file that orient itself turned before (an automatic decision the
    operator overturned) first gets its original back, and the two turns are applied as one.
    """
    if run.archive is None:
        raise ReviewError("apply-review changes files: it needs --apply lossless or --apply exif")
    cfg = run.cfg
    journals = [run.journal, *run.others]
    reviews = latest_reviews(journals)
    undone_after = _turns_undone(journals)
    origins = _Origins(journals)
    queue = ReviewQueue(run.root, run.folders.others[0] if run.folders.others else None)
    # Only files that hold a decided turn now: applied decisions are not read again.
    queued = queue.items()
    wanted = {i.rel_path for i in queued if i.state == "decided" and i.decision_deg}
    dropped = _decisions_on_edited_photos(queued, reviews)
    out = Predicted()
    with Tree(run.root) as tree:
        for sha, review in reviews.items():  # decisions whose report is gone
            if (
                review.rotation_deg
                and review.rel_path not in wanted
                and queue.current_hash(tree, review.rel_path, {}) == sha
            ):
                wanted.add(review.rel_path)
        for entry in run.entries:
            if entry.rel_path in dropped and entry.rel_path not in wanted and not entry.skip_reason:
                read = read_entry(tree, entry, 32, cfg, Memory())
                review, now = dropped[entry.rel_path], read.row.sha256_before
                if now not in (None, review.sha256) and not (
                    origins.carried_out(entry.rel_path, review.sha256, review.rotation_deg, now)
                    or origins.turn(entry.rel_path, now, review.sha256) is not None
                ):
                    read.row.action, read.row.confidence = "skip", None
                    read.row.note = (
                        f"decision dropped: the photo changed since {review.reviewer} reviewed it on "
                        f"{review.decided_at[:10]}; the next auto-rotate run judges it again"
                    )
                    out.rows.append(read.row)
                continue
            if entry.rel_path not in wanted or entry.skip_reason:
                continue
            read = read_entry(tree, entry, 32, cfg, Memory())
            row = read.row
            if read.seen is not None:
                out.seen.append(read.seen)
            out.rows.append(row)
            if row.error or row.sha256_before is None:  # unreadable, or not a plain file inside
                continue
            row.action, row.confidence = "skip", None
            review, rotation, notes = reviews.get(row.sha256_before), 0, []
            if review is not None:
                rotation = review.rotation_deg
            elif (
                pending := _decision_put_back(origins, reviews, entry.rel_path, row.sha256_before)
            ) is not None:
                # A run's turn was put back for this decision (by an apply-review that stopped
                # before it turned the photo as decided): the decision holds for the original.
                review, turn = pending
                rotation = (review.rotation_deg + turn) % 360
                notes.append("the automatic turn was put back by an earlier apply-review")
            if review is None:
                previous = run.archive.rotated_by(row.sha256_before)
                row.note = (
                    f"decision already applied (run {previous.run_id})"
                    if previous is not None
                    else "no operator decision for this content (changed since it was reviewed?); review it again"
                )
                continue
            who = f"{review.reviewer} on {review.decided_at[:10]}"
            if review.rotation_deg == 0:
                row.note = f"confirmed upright by {who}; nothing to do"
                continue
            undone = undone_after.get((entry.rel_path, row.sha256_before, rotation))
            if undone is not None and undone > review.decided_at:
                row.note = (
                    f"the turn decided by {who} was applied and undone since; decide again on the "
                    "review page to turn it"
                )
                continue
            while (
                len(notes) < 8
                and (change := run.archive.rotated_by(row.sha256_before)) is not None
                and change.in_place
                and change.rel_path == entry.rel_path
            ):
                outcomes = run.archive.undo(change.run_id, None, [entry.rel_path])
                refused = [o.message for o in outcomes if not o.ok]
                if refused:
                    row.action, row.error = (
                        "error",
                        f"not changed: cannot put back the original: {refused[0]}",
                    )
                    break
                rotation = (rotation + change.rotation_deg) % 360
                notes.append(f"put back the original from before run {change.run_id}")
                fresh = read_entry(tree, entry, 32, cfg, Memory())
                if fresh.row.error or fresh.row.sha256_before is None:
                    row.action, row.error = "error", fresh.row.error or "cannot read the original back"
                    break
                out.rows[-1] = row = fresh.row
                row.action = "skip"
                if fresh.seen is not None:
                    out.seen.append(fresh.seen)
            if row.action == "error":
                continue
            if rotation == 0:
                row.action, row.rotation_deg = "keep", 0
                row.note = "; ".join([*notes, f"upright as decided by {who}"])
                continue
            row.action, row.rotation_deg, row.confidence = "rotate", rotation, None
            row.note = "; ".join(
                [*notes, f"turned {review.rotation_deg}\u00b0 clockwise as decided by {who}"]
            )
    for note in (r.note for r in out.rows if r.note and "put back" in r.note):
        log(note)
    return out


def _decisions_on_edited_photos(queued: list[ReviewItem], reviews: dict[str, Review]) -> dict[str, Review]:
    """Path -> the newest turn decided for it, where that decision is in no queue item any more:
    if the file holds neither the reviewed content, nor its original, nor the decided result,
    the photo was edited or replaced since, and the decision cannot be carried out."""
    in_queue = {i.rel_path for i in queued}
    newest: dict[str, Review] = {}
    for review in reviews.values():
        known = newest.get(review.rel_path)
        if known is None or (review.decided_at, review.id) > (known.decided_at, known.id):
            newest[review.rel_path] = review
    return {rel: review for rel, review in newest.items() if review.rotation_deg and rel not in in_queue}


def _turns_undone(journals: list[Journal]) -> dict[tuple[str, str, int], str]:
    """(path, content, turn) -> when that turn of that content at that path was last undone.

    Keyed by the turn too: putting back a run's own turn (rotation r) to carry out a decision
    (turning the original by d + r, d != 0) must not read as the decided turn being undone."""
    out: dict[tuple[str, str, int], str] = {}
    for journal in journals:
        try:
            changes = journal.changes()
        except JournalError:
            continue
        for c in changes:
            if c.in_place and c.state == "undone":
                key = (c.rel_path, c.source_sha256, c.rotation_deg % 360)
                out[key] = max(out.get(key, ""), c.updated_at)
    return out


def _decision_put_back(
    origins: _Origins, reviews: dict[str, Review], rel_path: str, original: str
) -> tuple[Review, int] | None:
    """The newest decision to turn a content that a run's turn made of ``original`` at this
    path, with that turn; None when no such decision exists."""
    found = []
    for (path, result), sources in origins._turns().items():
        if path == rel_path and original in sources:
            review = reviews.get(result)
            if review is not None and review.rotation_deg != 0:
                found.append((review.decided_at, review.id, review, sources[original]))
    if not found:
        return None
    *_, review, turn = max(found, key=lambda f: (f[0], f[1]))
    return review, turn


# ----------------------------------------------------------------------------------- pictures


@dataclass(frozen=True)
class ItemPictures:
    """An item's four candidates (JPEG) and the evidence for each (None without a model)."""

    candidates: tuple[bytes, bytes, bytes, bytes]
    evidence: tuple[bytes, bytes, bytes, bytes] | None
    note: str | None


class Pictures:
    """Pictures for the review page, made on demand: the photo turned each of the four ways,
    and Grad-CAM evidence for each turn (class-discriminative: the maps differ where the
    model's reasons differ). Each model is loaded once; recent pictures are kept."""

    def __init__(
        self, root: Path, max_pixels: int = 250_000_000, keep: int = 48, side: int = PICTURE_SIDE
    ) -> None:
        self.root, self.max_pixels, self.keep, self.side = Path(root), max_pixels, keep, side
        self._renderers: dict[str, object] = {}
        self._cache: OrderedDict[tuple[str, str], ItemPictures] = OrderedDict()
        self._lock = threading.Lock()  # one rendering at a time: the attribution hooks are not thread-safe

    def _photo(self, rel_path: str, expected_sha256: str, min_side: int) -> Image.Image:
        with Tree(self.root) as tree, tree.place(rel_path) as place:
            data, _ = place.read()
        if hashlib.sha256(data).hexdigest() != expected_sha256:
            raise ContentChanged(
                f"{_display(rel_path)}: the file changed since the queue was read; reload the page"
            )
        return load_upright(data, min_side, self.max_pixels)

    def _renderer(self, model: str | None):
        if not model:
            return None, "no model recorded in the report: no evidence"
        if model not in self._renderers:
            from orient_model.model.evidence import EvidenceRenderer
            from orient_model.model.registry import load_model

            try:
                self._renderers[model] = EvidenceRenderer(load_model(model), "gradcam")
            except (OrientError, OSError) as exc:
                self._renderers[model] = exc
        renderer = self._renderers[model]
        if isinstance(renderer, Exception):
            return None, f"no evidence: the model {model} cannot be loaded ({renderer})"
        return renderer, None

    def of(self, item: ReviewItem) -> ItemPictures:
        key = (item.id, item.current_sha256)
        with self._lock:
            if key in self._cache:
                self._cache.move_to_end(key)
                return self._cache[key]
            pictures = self._render(item)
            self._cache[key] = pictures
            while len(self._cache) > self.keep:
                self._cache.popitem(last=False)
            return pictures

    def _render(self, item: ReviewItem) -> ItemPictures:
        from orient_model.model.evidence import overlay

        try:
            photo = self._photo(item.rel_path, item.current_sha256, self.side)
        except ImageReadError as exc:
            raise ReviewError(f"{item.path}: {exc}") from None
        photo.thumbnail((self.side, self.side), Image.Resampling.BICUBIC)
        renderer, note = self._renderer(item.model)
        maps = renderer.photo_maps([photo], size=max(photo.size))[0] if renderer is not None else None
        candidates, evidence = [], []
        for rotation in orientation.ROTATIONS:
            turn = (rotation - item.shown_offset) % 360  # the file may already be turned
            transform = orientation.CLOCKWISE[turn]
            candidates.append(_jpeg(orientation.apply(photo, transform)))
            if maps is not None:
                amap = maps[orientation.class_index(turn)]
                amap = np.asarray(
                    Image.fromarray(amap.astype(np.float32), mode="F").resize(photo.size), np.float32
                )
                evidence.append(_jpeg(orientation.apply(overlay(photo, np.clip(amap, 0, 1)), transform)))
        return ItemPictures(tuple(candidates), tuple(evidence) if maps is not None else None, note)


def full_view(root: Path, rel_path: str, max_pixels: int = 250_000_000, side: int = FULL_SIDE) -> bytes:
    """A JPEG of one archive photo as displayed (long side at most ``side``), read through the
    archive's containment layer: a path that leaves the archive raises :class:`OutsideArchive`."""
    with Tree(root) as tree, tree.place(rel_path) as place:
        data, _ = place.read()
    photo = load_upright(data, side // 2, max_pixels)
    photo.thumbnail((side, side), Image.Resampling.BICUBIC)
    return _jpeg(photo, quality=90)


def _jpeg(img: Image.Image, quality: int = 85) -> bytes:
    buf = io.BytesIO()
    img.convert("RGB").save(buf, "JPEG", quality=quality)
    return buf.getvalue()


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
