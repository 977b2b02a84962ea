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

The package, one concern a module: :mod:`~orient_model.review.queue` (the queue and its
filters), :mod:`~orient_model.review.items` (an item and the errors),
:mod:`~orient_model.review.reports` (the report rows it is built from),
:mod:`~orient_model.review.decisions` (the journal side), :mod:`~orient_model.review.pictures`,
:mod:`~orient_model.review.pool` (the training pool) and :mod:`~orient_model.review.apply`
(apply-review's rows).
"""

from orient_model.review.apply import review_rows
from orient_model.review.decisions import decision_state_folder, default_reviewer, latest_reviews
from orient_model.review.items import (
    ContentChanged,
    InvalidDecision,
    ReviewError,
    ReviewItem,
    UnknownItem,
    make_item_id,
    turned_probs,
)
from orient_model.review.pictures import FULL_SIDE, PICTURE_SIDE, ItemPictures, Pictures, full_view
from orient_model.review.pool import HOW_KNOWN, PoolEntry, training_pool
from orient_model.review.queue import KINDS, STATES, ReviewQueue, progress, review_markdown, select
from orient_model.review.reports import DECISION_ACTIONS, REVIEW_MODEL_VERSION, REVIEW_VIEW_KEY, model_of_run

__all__ = [
    "DECISION_ACTIONS",
    "FULL_SIDE",
    "HOW_KNOWN",
    "KINDS",
    "PICTURE_SIDE",
    "REVIEW_MODEL_VERSION",
    "REVIEW_VIEW_KEY",
    "STATES",
    "ContentChanged",
    "InvalidDecision",
    "ItemPictures",
    "Pictures",
    "PoolEntry",
    "ReviewError",
    "ReviewItem",
    "ReviewQueue",
    "UnknownItem",
    "decision_state_folder",
    "default_reviewer",
    "full_view",
    "latest_reviews",
    "make_item_id",
    "model_of_run",
    "progress",
    "review_markdown",
    "review_rows",
    "select",
    "training_pool",
    "turned_probs",
]
