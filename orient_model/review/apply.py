"""apply-review's rows: the operator's decisions turned into a run's 'rotate' rows, with the turns
orient made before put back first."""

from __future__ import annotations

from collections.abc import Callable

from orient_model.archive.journal import Journal, JournalError, Review
from orient_model.archive.paths import Tree
from orient_model.archive.state import Memory
from orient_model.pipeline import Predicted, read_entry
from orient_model.review.decisions import Origins, latest_reviews
from orient_model.review.items import ReviewError, ReviewItem
from orient_model.review.queue import ReviewQueue


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
    origins = Origins(journals)
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
                and (change := run.archive.rotated_by(row.sha256_before, entry.rel_path)) is not None
                and change.in_place
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
    origins: Origins, reviews: dict[str, Review], rel_path: str, original: str
) -> tuple[Review, int] | None:
    """The newest decision to turn a content that a run's turn made of ``original`` at this
    path, with that turn; None when no such decision exists."""
    found = []
    for (path, result), sources in origins.turns().items():
        if path == rel_path and original in sources:
            review = reviews.get(result)
            if review is not None and review.rotation_deg != 0:
                found.append((review.decided_at, review.id, review, sources[original]))
    if not found:
        return None
    *_, review, turn = max(found, key=lambda f: (f[0], f[1]))
    return review, turn
