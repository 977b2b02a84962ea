"""The run report: one row per file, one schema, defined here once.

Writer, reader, flows and tests all use :data:`REPORT_SCHEMA`; each field's description and
the run's configuration travel in the Parquet schema metadata.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from orient_model.files import TMP_PREFIX, atomic_write_bytes, fsync_dir

ACTIONS = ("rotate", "flag", "keep", "skip", "error")
METHODS = ("lossless", "exif", "reencode", "copy", "none")


@dataclass
class ReportRow:
    path: str
    path_bytes: bytes
    sha256_before: str | None = None
    sha256_after: str | None = None
    format: str | None = None
    width: int | None = None
    height: int | None = None
    mode: str | None = None
    exif_orientation: int | None = None
    dpi: float | None = None
    has_icc: bool | None = None
    n_frames: int | None = None
    rotation_deg: int | None = None
    confidence: float | None = None
    prob_0: float | None = None
    prob_90: float | None = None
    prob_180: float | None = None
    prob_270: float | None = None
    action: str = "error"
    applied: bool = False
    method: str = "none"
    error: str | None = None
    note: str | None = None
    model_version: str | None = None
    run_id: str | None = None
    carried: bool = False
    thumbnail_png: bytes | None = None
    saliency_png: bytes | None = None
    read_ms: float | None = None
    predict_ms: float | None = None
    apply_ms: float | None = None


_FIELDS: list[tuple[str, pa.DataType, str]] = [
    ("path", pa.string(), "path relative to the archive root (undecodable bytes shown as \\x escapes)"),
    ("path_bytes", pa.binary(), "the exact relative path as bytes, for file names that are not UTF-8"),
    ("sha256_before", pa.string(), "sha256 of the file as found"),
    ("sha256_after", pa.string(), "sha256 after the change (equal to before when nothing changed)"),
    ("format", pa.string(), "image format recognised from the content"),
    ("width", pa.int32(), "stored width in pixels"),
    ("height", pa.int32(), "stored height in pixels"),
    ("mode", pa.string(), "Pillow mode (bit depth and channels)"),
    ("exif_orientation", pa.int8(), "EXIF Orientation tag as found (1 = none)"),
    ("dpi", pa.float32(), "horizontal resolution in dots per inch, when recorded"),
    ("has_icc", pa.bool_(), "whether an ICC colour profile is embedded"),
    ("n_frames", pa.int32(), "pages or frames in the file"),
    (
        "rotation_deg",
        pa.int16(),
        "clockwise rotation that makes the photo upright as displayed (0/90/180/270)",
    ),
    ("confidence", pa.float32(), "calibrated probability of rotation_deg"),
    ("prob_0", pa.float32(), "probability the photo is upright"),
    ("prob_90", pa.float32(), "probability it needs 90 degrees clockwise"),
    ("prob_180", pa.float32(), "probability it is upside down"),
    ("prob_270", pa.float32(), "probability it needs 270 degrees clockwise (90 counter-clockwise)"),
    ("action", pa.string(), "decision: rotate / flag (operator review) / keep / skip / error"),
    ("applied", pa.bool_(), "whether the rotation was carried out on disk"),
    (
        "method",
        pa.string(),
        "how it was (or would be) applied: lossless / exif / reencode / copy (mirror) / none",
    ),
    ("error", pa.string(), "why the file could not be handled; the run went on"),
    ("note", pa.string(), "anything else an operator should know (fallbacks, skips)"),
    ("model_version", pa.string(), "model that made the prediction"),
    ("run_id", pa.string(), "run that wrote this row (use it with `orient undo`)"),
    (
        "carried",
        pa.bool_(),
        "judged by an earlier run: content, model and settings unchanged, so not read again",
    ),
    ("thumbnail_png", pa.binary(), "about 256 px PNG of the photo as displayed (flagged photos)"),
    ("saliency_png", pa.binary(), "guided-backprop evidence maps over the photo, PNG (flagged photos)"),
    ("read_ms", pa.float32(), "time to hash, inspect and decode"),
    ("predict_ms", pa.float32(), "model time per photo (batch time shared out)"),
    ("apply_ms", pa.float32(), "time to rotate, verify and replace"),
]

REPORT_SCHEMA = pa.schema(
    [pa.field(name, dtype, metadata={"description": doc}) for name, dtype, doc in _FIELDS]
)
FIELD_DOCS = {name: doc for name, _, doc in _FIELDS}
assert [f.name for f in fields(ReportRow)] == REPORT_SCHEMA.names, "ReportRow and REPORT_SCHEMA differ"


def _schema_with(run_config: dict | None) -> pa.Schema:
    meta = {b"orient.run_config": json.dumps(run_config or {}, default=str).encode()}
    return REPORT_SCHEMA.with_metadata({**(REPORT_SCHEMA.metadata or {}), **meta})


def to_table(rows: list[ReportRow], run_config: dict | None = None) -> pa.Table:
    return pa.Table.from_pylist([asdict(row) for row in rows], schema=_schema_with(run_config))


def write_report(rows: list[ReportRow], path: Path, run_config: dict | None = None) -> Path:
    """Write a whole report at once (see :class:`ReportWriter` for a run's streaming one)."""
    with ReportWriter(path, run_config) as writer:
        writer.add(rows)
    return Path(path)


def picture_name(row: ReportRow) -> str:
    """A file name for a photo's picture that always fits (255 bytes), however deep its path:
    its content hash first (unique), then as much of its path as is readable and fits."""
    readable = row.path_bytes.decode("utf-8", "replace").replace("/", "__").replace("\\", "__")
    readable = "".join(c if c.isalnum() or c in "._-" else "_" for c in readable)
    head = (row.sha256_before or "nohash")[:12]
    budget = 200 - len(head)
    while len(readable.encode()) > budget:
        readable = readable[1:]  # keep the end: the file name says most
    return f"{head}-{readable}.png"


class ReportWriter:
    """A run's report, written as the run goes: rows stream into Parquet row groups (memory does
    not grow with the archive), flagged photos' pictures into ``<run>_flagged/``. The Parquet file
    appears under its name only when complete (:meth:`close`), with a JSON and Markdown summary.

    Rows carried over from earlier runs unchanged are counted in the summary, not listed.
    A picture that cannot be written is noted on its row; it never fails the run.
    """

    def __init__(self, path: Path, run_config: dict | None = None) -> None:
        # Absolute: the summary, the event and the report link name it for readers elsewhere.
        self.path = Path(os.path.abspath(path))
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.run_config = run_config or {}
        self.flagged_dir = self.path.with_name(self.path.stem + "_flagged")
        self.tmp = self.path.with_name(f"{TMP_PREFIX}{self.path.name}")
        self.writer = pq.ParquetWriter(self.tmp, _schema_with(run_config), compression="zstd")
        self.counts = {action: 0 for action in ACTIONS}
        self.carried = {action: 0 for action in ACTIONS}
        self.files = self.applied = 0
        self.flagged: list[dict] = []
        self.errors: list[dict] = []

    def add(self, rows: list[ReportRow]) -> None:
        listed = []
        for row in rows:
            self.files += 1
            self.counts[row.action] += 1
            self.applied += row.applied
            if row.carried and not row.applied:
                self.carried[row.action] += 1
                continue
            if row.action == "flag":
                self._picture(row)
                self.flagged.append(
                    {"path": row.path, "rotation_deg": row.rotation_deg, "confidence": row.confidence}
                )
            if row.action == "error":
                self.errors.append({"path": row.path, "error": row.error})
            listed.append(row)
        if listed:
            self.writer.write_table(to_table(listed, self.run_config))

    def _picture(self, row: ReportRow) -> None:
        picture = row.saliency_png or row.thumbnail_png
        if not picture:
            return
        try:
            self.flagged_dir.mkdir(exist_ok=True)
            atomic_write_bytes(self.flagged_dir / picture_name(row), picture)
        except OSError as exc:
            row.note = ((row.note + "; ") if row.note else "") + f"picture not saved: {exc.strerror or exc}"

    def summary(self) -> dict:
        return {
            "run_id": self.run_config.get("run_id"),
            "archive": self.run_config.get("archive"),
            "report": str(self.path),
            "files": self.files,
            "counts": self.counts,
            "carried_over": sum(self.carried.values()),
            "carried_counts": self.carried,
            "applied": self.applied,
            "automatic": self.counts["rotate"] + self.counts["keep"],
            "decisions": self.run_config.get("decisions"),
            "flagged": self.flagged,
            "errors": self.errors,
            "flagged_dir": str(self.flagged_dir) if self.flagged_dir.exists() else None,
        }

    def close(self) -> dict:
        """Finish the Parquet file, put it in place, write the summaries; returns the summary."""
        self.writer.close()
        os.replace(self.tmp, self.path)
        fsync_dir(self.path.parent)
        summary = self.summary()
        atomic_write_bytes(self.path.with_suffix(".json"), json.dumps(summary, indent=2).encode())
        title = f"orient run {summary['run_id']}" if summary["run_id"] else "orient run"
        atomic_write_bytes(self.path.with_suffix(".md"), summary_markdown(summary, title).encode())
        return summary

    def abandon(self) -> None:
        self.writer.close()
        self.tmp.unlink(missing_ok=True)

    def __enter__(self) -> ReportWriter:
        return self

    def __exit__(self, exc_type, *exc: object) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abandon()


def read_report(path: Path) -> pa.Table:
    """Read a report, checking it carries the declared schema."""
    table = pq.read_table(path)
    if not table.schema.remove_metadata().equals(REPORT_SCHEMA.remove_metadata()):
        raise ValueError(f"{path} is not an orient report (schema differs)")
    return table


def run_config_of(table: pa.Table) -> dict:
    return json.loads((table.schema.metadata or {}).get(b"orient.run_config", b"{}"))


MARKDOWN_LIST_LIMIT = 200  # the Parquet report and the JSON summary hold every row


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{value:.0%}"  # the Parquet report and the JSON summary hold every row


def summary_markdown(summary: dict, title: str = "orient run") -> str:
    carried = summary.get("carried_counts") or {}
    lines = [f"# {title}", "", "| action | photos | of which carried over unchanged |", "|---|---|---|"]
    lines += [f"| {a} | {n} | {carried.get(a, 0)} |" for a, n in summary["counts"].items()]
    lines += [
        "",
        f"Files: {summary['files']}, changes applied: {summary['applied']}, carried over from "
        f"earlier runs: {summary.get('carried_over', 0)}",
        "",
    ]
    if summary.get("decisions"):
        lines += [
            f"{summary.get('automatic', 0)} automatic decisions (rotate or keep); {summary['decisions']}.",
            "",
        ]
    for key, heading, header, fmt in (
        (
            "flagged",
            "Newly flagged for review",
            "| photo | suggested rotation | confidence |\n|---|---|---|",
            lambda f: f"| `{f['path']}` | {f['rotation_deg']}° | {_percent(f['confidence'])} |",
        ),
        ("errors", "Errors", "| file | problem |\n|---|---|", lambda e: f"| `{e['path']}` | {e['error']} |"),
    ):
        items = summary.get(key) or []
        if items:
            lines += [f"## {heading}", "", header]
            lines += [fmt(item) for item in items[:MARKDOWN_LIST_LIMIT]]
            if len(items) > MARKDOWN_LIST_LIMIT:
                lines.append(f"\n... and {len(items) - MARKDOWN_LIST_LIMIT} more (see the JSON summary)")
            lines.append("")
    return "\n".join(lines) + "\n"
