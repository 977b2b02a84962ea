"""The report rows a review queue is built from: each run's decisions (``flag``, ``rotate``,
``keep``) and the turns apply-review runs carried out, read from the run's Parquet report."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import pyarrow.parquet as pq

from orient_model.errors import OrientError
from orient_model.report import REPORT_SCHEMA

# apply-review runs write reports too; their rows carry operator decisions, not a model's.
REVIEW_MODEL_VERSION = "operator-review"
REVIEW_VIEW_KEY = "operator-review"
DECISION_ACTIONS = ("flag", "rotate", "keep")
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


@dataclass(frozen=True)
class DecisionRow:
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
class QueueReport:
    decisions: list[DecisionRow]
    applied_reviews: list[tuple[str, str | None, str]]  # apply-review rows: (rel path, before, after)
    order: tuple[str, int]


def _run_config(schema) -> dict:
    try:
        return json.loads((schema.metadata or {}).get(b"orient.run_config", b"{}"))
    except ValueError:
        return {}


def model_of_run(config: dict) -> str | None:
    """The model file that judged a run's photos, from the run's configuration: its version in
    the registry, else the run's model setting if that is still the same version."""
    from orient_model.model.card import CARD_FILE, read_card
    from orient_model.model.registry import resolve_model_path

    version = config.get("model_version")
    models_dir = Path(config["models_dir"]) if config.get("models_dir") else None
    for ref in (version, config.get("model")):
        if not ref or ref == REVIEW_MODEL_VERSION:
            continue
        try:
            path = resolve_model_path(ref, models_dir)
            card = path.parent / CARD_FILE
            found = (read_card(card).version or path.parent.name) if card.is_file() else path.parent.name
        except (OrientError, OSError, ValueError):
            continue
        if version is None or found == version:
            return str(path)
    return None


def read_report(path: Path, root: Path, mtime_ns: int) -> QueueReport | None:
    """What one report file says for the queue of the archive at ``root`` (resolved); None when
    it is not an orient report of that archive or cannot be read."""
    try:
        schema = pq.read_schema(path)
        if not schema.remove_metadata().equals(REPORT_SCHEMA.remove_metadata()):
            return None
        config = _run_config(schema)
        if os.path.realpath(config.get("archive") or "") != str(root):
            return None
        table = pq.read_table(path, columns=_REPORT_COLUMNS)
    except (OSError, ValueError):
        return None
    return _read_rows(table.to_pylist(), config, mtime_ns)


def _read_rows(rows: list[dict], config: dict, mtime_ns: int) -> QueueReport:
    run_id = config.get("run_id") or ""
    order = (run_id[:15], mtime_ns)  # the run's start, to the second (the id's time stamp), then when written
    if config.get("model_version") == REVIEW_MODEL_VERSION:
        done = [
            (os.fsdecode(r["path_bytes"]), r["sha256_before"], r["sha256_after"])
            for r in rows
            if r["sha256_after"] and r["action"] in ("rotate", "keep")
        ]
        return QueueReport([], done, order)
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
            DecisionRow(
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
    return QueueReport(decisions, [], order)
