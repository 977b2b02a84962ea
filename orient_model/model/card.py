"""A model card as a person reads it: what the model is, how well it does and how sure it may be."""

from __future__ import annotations

from orient_model.config import MAX_ERROR
from orient_model.model.calibration import certified_threshold


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
