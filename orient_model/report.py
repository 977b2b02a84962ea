"""The run report: one row per file, one schema, defined here once.

Writer, reader, flows and tests all use :data:`REPORT_SCHEMA`; each field's description and
the run's configuration travel in the Parquet schema metadata.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from orient_model.archive.atomic import atomic_write_bytes

ACTIONS = ("rotate", "flag", "keep", "skip", "error")
METHODS = ("lossless", "exif", "reencode", "none")


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
    ("rotation_deg", pa.int16(), "clockwise rotation that makes the photo upright as displayed (0/90/180/270)"),
    ("confidence", pa.float32(), "calibrated probability of rotation_deg"),
    ("prob_0", pa.float32(), "probability the photo is upright"),
    ("prob_90", pa.float32(), "probability it needs 90 degrees clockwise"),
    ("prob_180", pa.float32(), "probability it is upside down"),
    ("prob_270", pa.float32(), "probability it needs 270 degrees clockwise (90 counter-clockwise)"),
    ("action", pa.string(), "decision: rotate / flag (operator review) / keep / skip / error"),
    ("applied", pa.bool_(), "whether the rotation was carried out on disk"),
    ("method", pa.string(), "how it was (or would be) applied: lossless / exif / reencode / none"),
    ("error", pa.string(), "why the file could not be handled; the run went on"),
    ("note", pa.string(), "anything else an operator should know (fallbacks, skips)"),
    ("model_version", pa.string(), "model that made the prediction"),
    ("run_id", pa.string(), "run that wrote this row (use it with `orient undo`)"),
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


def to_table(rows: list[ReportRow], run_config: dict | None = None) -> pa.Table:
    table = pa.Table.from_pylist([asdict(row) for row in rows], schema=REPORT_SCHEMA)
    meta = {b"orient.run_config": json.dumps(run_config or {}, default=str).encode()}
    return table.replace_schema_metadata({**(REPORT_SCHEMA.metadata or {}), **meta})


def write_report(rows: list[ReportRow], path: Path, run_config: dict | None = None) -> Path:
    """Atomically write the Parquet report (a reader never sees a half-written file)."""
    buf = pa.BufferOutputStream()
    pq.write_table(to_table(rows, run_config), buf, compression="zstd")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, buf.getvalue().to_pybytes())
    return path


def read_report(path: Path) -> pa.Table:
    """Read a report, checking it carries the declared schema."""
    table = pq.read_table(path)
    if not table.schema.remove_metadata().equals(REPORT_SCHEMA.remove_metadata()):
        raise ValueError(f"{path} is not an orient report (schema differs)")
    return table


def run_config_of(table: pa.Table) -> dict:
    return json.loads((table.schema.metadata or {}).get(b"orient.run_config", b"{}"))


def summarize(rows: list[ReportRow]) -> dict:
    counts = {action: 0 for action in ACTIONS}
    for row in rows:
        counts[row.action] += 1
    return {
        "files": len(rows),
        "counts": counts,
        "applied": sum(r.applied for r in rows),
        "flagged": [
            {"path": r.path, "rotation_deg": r.rotation_deg, "confidence": r.confidence}
            for r in rows if r.action == "flag"
        ],
        "errors": [{"path": r.path, "error": r.error} for r in rows if r.action == "error"],
    }


def summary_markdown(summary: dict, title: str = "orient run") -> str:
    lines = [f"# {title}", "", "| action | photos |", "|---|---|"]
    lines += [f"| {a} | {n} |" for a, n in summary["counts"].items()]
    lines += ["", f"Files: {summary['files']}, changes applied: {summary['applied']}", ""]
    if summary["flagged"]:
        lines += ["## Flagged for review", "", "| photo | suggested rotation | confidence |", "|---|---|---|"]
        lines += [
            f"| `{f['path']}` | {f['rotation_deg']}° | {f['confidence']:.0%} |" for f in summary["flagged"]
        ]
        lines.append("")
    if summary["errors"]:
        lines += ["## Errors", "", "| file | problem |", "|---|---|"]
        lines += [f"| `{e['path']}` | {e['error']} |" for e in summary["errors"]]
    return "\n".join(lines) + "\n"
