"""The model card: what a model is, what it learnt from, how well it does and how sure it may be.

One record (:class:`ModelCard`), read and written only here: a version folder's ``card.json``,
with the list of photos the model learnt from and was judged on beside it as a compressed
Parquet file (a 26,000-photo corpus made a 14 MB card). :func:`model_card_markdown` is the same
card as a person reads it.
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from pydantic import BaseModel, ConfigDict, Field, field_validator

from orient_model.config import MAX_ERROR
from orient_model.errors import ModelLoadError
from orient_model.files import atomic_write_bytes
from orient_model.model.calibration import certified_threshold

CARD_FILE = "card.json"
SOURCES_FILE = "training-sources.parquet"  # beside card.json: every photo learnt from or judged on


class QualityGate(BaseModel):
    """Whether a trained model may ever be promoted (see :func:`promotion.quality_gate`)."""

    model_config = ConfigDict(extra="allow")
    passed: bool = False
    reasons: list[str] = Field(default_factory=list)

    @field_validator("passed", mode="before")
    @classmethod
    def _only_true_passes(cls, value: Any) -> bool:
        return value is True  # "yes", 1 or a missing field: a gate that does not say it passed


class ModelCard(BaseModel):
    """``card.json``: the fields the code reads are typed; the rest (figures, history, provenance)
    are kept as written."""

    model_config = ConfigDict(extra="allow")
    version: str = ""
    architecture: str | None = None
    input_size: int | None = None
    views: int = 1
    temperature: float = 1.0
    tta_temperature: float = 1.0
    training_key: str | None = None
    trained_at: str | None = None
    quality_gate: QualityGate | None = None
    calibration: dict[str, dict] = Field(default_factory=dict)
    test: dict[str, dict] = Field(default_factory=dict)
    int8: dict | None = None
    insight: dict | None = None
    promotion: dict | None = None
    training_sources_file: str | None = None

    @field_validator("quality_gate", mode="before")
    @classmethod
    def _gate_of_any_shape(cls, value: Any) -> Any:
        return value if value is None or isinstance(value, dict) else {"passed": False}

    @property
    def passed_gate(self) -> bool:
        """A card from before gates (none) passed; a gate that does not say ``passed: true`` did not."""
        return self.quality_gate is None or self.quality_gate.passed

    def as_dict(self) -> dict:
        """The card as JSON holds it (fields never set are left out, as they were)."""
        return self.model_dump(mode="json", exclude_unset=True)


def read_card(path: Path | str) -> ModelCard:
    """A model card, or a :class:`ModelLoadError` naming the file when it is not a JSON object."""
    try:
        data = json.loads(Path(path).read_bytes())
    except (OSError, ValueError) as exc:
        raise ModelLoadError(
            f"model card {path} is unreadable ({exc}); restore it from the model's copy"
        ) from None
    if not isinstance(data, dict):
        raise ModelLoadError(f"model card {path} is not a JSON object; restore it from the model's copy")
    return ModelCard.model_validate(data)


def write_card(folder: Path | str, card: ModelCard | dict) -> ModelCard:
    """Write a version folder's card atomically; a ``training_sources`` list goes to the Parquet
    file beside it first (so a card always names a complete file)."""
    folder = Path(folder)
    data = card.as_dict() if isinstance(card, ModelCard) else dict(card)
    sources = data.pop("training_sources", None)
    if sources is not None:
        atomic_write_bytes(folder / SOURCES_FILE, _sources_parquet(sources))
        data["training_sources_file"] = SOURCES_FILE
    atomic_write_bytes(folder / CARD_FILE, json.dumps(data, indent=2).encode())
    return ModelCard.model_validate(data)


def amend_card(folder: Path | str, **fields: Any) -> ModelCard:
    """Set fields of a saved model's card (its 8-bit network, its insight page, a promotion)."""
    card = read_card(Path(folder) / CARD_FILE)
    for name, value in fields.items():
        setattr(card, name, value)
    return write_card(folder, card)


def training_sources(card: dict, folder: Path | str | None) -> list[dict]:
    """Every photo a model learnt from or was judged on (path, sha256, split, source, kinds, ...):
    from the card itself (older cards) or the Parquet file it names in ``folder``."""
    if card.get("training_sources") is not None:
        return card["training_sources"]
    name = card.get("training_sources_file")
    if not name or folder is None or not (Path(folder) / name).is_file():
        return []
    rows = pq.read_table(Path(folder) / name).to_pylist()
    return [{k: v for k, v in row.items() if v is not None} for row in rows]


def _sources_parquet(sources: list[dict]) -> bytes:
    records = [_json_values(s) for s in sources]
    keys = dict.fromkeys(k for r in records for k in r)  # every record's fields, not the first's
    table = pa.table({k: [r.get(k) for r in records] for k in keys})
    buf = io.BytesIO()
    pq.write_table(table, buf, compression="zstd")
    return buf.getvalue()


def _json_values(record: dict) -> dict:
    """Nested values (a note's dict) as JSON text, so that every record fits one Parquet schema."""
    return {k: json.dumps(v) if isinstance(v, dict) else v for k, v in record.items()}


def model_card_markdown(card: dict, max_error: float = MAX_ERROR) -> str:
    lines = [f"# Model {card.get('version', '?')}", ""]
    lines.append(
        f"{card.get('architecture')} at {card.get('input_size')} px, {card.get('views', 1)} view(s) per photo; "
        f"trained {card.get('training_seconds', 0):.0f} s on {card.get('device')}, best epoch "
        f"{card.get('best_epoch')} of {card.get('epochs_run')}."
    )
    for stop in card.get("interruptions") or []:
        lines.append(
            f"Stopped after epoch {stop['stopped_after_epoch']} (its checkpoint written "
            f"{stop['last_checkpoint_at']}), resumed {stop['resumed_at']}."
        )
    if "val_accuracy" in card:
        voted = card.get("val_accuracy_tta")  # only without calibration photos
        lines.append(
            f"Validation copies: accuracy {card['val_accuracy']:.1%} (single view)"
            + (f", {voted:.1%} (four turns voted)." if voted is not None else ".")
        )
    if card.get("insight"):
        lines.append(
            f"How it sees (behaviour, failures, saliency, units, on {card['insight']['photos']} test and "
            f"calibration photos): `{card['insight']['page']}` in its version folder."
        )
    lines += _figures(card, max_error)
    int8 = card.get("int8") or {}
    if int8.get("calibration"):
        lines += [
            "",
            "# The 8-bit network (what a CPU runs by default)",
            "",
            f"`{int8['file']}` ({int8.get('size_bytes', 0) / 2**20:.1f} MB), quantized on "
            f"{int8.get('quantized_on', 'training copies')}; calibrated and certified on its own, on the "
            "same photos:",
        ]
        lines += _figures(int8, max_error)
    return "\n".join(lines) + "\n"


def _figures(card: dict, max_error: float) -> list[str]:
    """The calibration table and the held-out test tables of one network."""
    lines: list[str] = []
    calibration = card.get("calibration") or {}
    if calibration:
        lines += [
            "",
            f"## Automatic decisions, error at most {max_error:.0%} (95% confidence)",
            "",
            "| way of looking | temperature | certified threshold | coverage on calibration photos |",
            "|---|---|---|---|",
        ]
        for key, entry in calibration.items():
            threshold, row = certified_threshold(entry["risk_curve"], max_error)
            decided = entry.get("decisions", entry["photos"])
            cover = (
                f"{row['coverage']:.0%} ({row['automatic']} of {decided}, {row['errors']} wrong)"
                if row
                else "none"
            )
            shown = f"{threshold:.4f}" if row else "none (all flagged)"
            lines.append(f"| {key} | {entry['temperature']:.2f} | {shown} | {cover} |")
    test = card.get("test") or {}
    if test:
        lines += [
            "",
            "## Held-out test photos (never trained or calibrated on)",
            "",
            "| way of looking | photos | accuracy | coverage | wrong automatic |",
            "|---|---|---|---|---|",
        ]
        for key, m in test.items():
            lines.append(
                f"| {key} | {m['photos']} | {m['accuracy']:.1%} | {m['coverage']:.0%} | "
                f"{m['wrong_automatic']} of {m['automatic']} |"
            )
        first = next(iter(test.values()))
        if first.get("by_kind"):
            lines += [
                "",
                f"By kind ({first['looking']}):",
                "",
                "| kind | photos | accuracy | coverage | wrong automatic |",
                "|---|---|---|---|---|",
            ]
            for kind, m in first["by_kind"].items():
                lines.append(
                    f"| {kind} | {m['photos']} | {m['accuracy']:.1%} | {m['coverage']:.0%} | "
                    f"{m['wrong_automatic']} of {m['automatic']} |"
                )
    return lines
