"""Retraining that only ever improves the model: a quality gate for every new model, and a
champion/challenger comparison on the same photos before a challenger may become current."""

from __future__ import annotations

from dataclasses import dataclass, field

from orient_model.config import MARGIN
from orient_model.model.calibration import certified_threshold
from orient_model.model.evaluate import PhotoScores, calibrate, metrics
from orient_model.model.predict import Looking
from orient_model.model.registry import LoadedModel

MAX_DROP = 0.01  # no class or kind of photo may get worse by more than a point

CHANCE = 0.25


def quality_gate(card: dict, min_accuracy: float = 0.5) -> dict:
    """A model far from chance and sanely calibrated; a model failing this is registered with a
    loud warning and can never be promoted."""
    reasons = []
    accuracy = card.get("val_accuracy")
    if accuracy is None or accuracy < min_accuracy:
        reasons.append(
            f"validation accuracy {accuracy if accuracy is None else f'{accuracy:.1%}'} is below "
            f"{min_accuracy:.0%} (chance is {CHANCE:.0%})"
        )
    temperatures = [card.get("temperature", 1.0)] + [
        e["temperature"] for e in (card.get("calibration") or {}).values()
    ]
    if any(not 0.05 <= t <= 20 for t in temperatures):
        reasons.append(
            f"calibration temperature {max(temperatures, key=lambda t: abs(t - 1)):.3g} is absurd "
            "(the model's confidences mean nothing)"
        )
    return {"passed": not reasons, "reasons": reasons}


@dataclass
class Verdict:
    promote: bool
    reasons: list[str]
    table: list[dict] = field(default_factory=list)
    champion: dict = field(default_factory=dict)
    challenger: dict = field(default_factory=dict)
    calibration: dict = field(
        default_factory=dict
    )  # each one's, as the rule fitted it: {name: {looking: ...}}


def judge_pair(
    champion: LoadedModel,
    champion_calib: PhotoScores,
    champion_test: PhotoScores,
    challenger: LoadedModel,
    challenger_calib: PhotoScores,
    challenger_test: PhotoScores,
    looking: Looking,
    max_error: float,
    margin: float = MARGIN,
    max_drop: float = MAX_DROP,
) -> Verdict:
    """Promote the challenger only if, on the same calibration and test photos, it is better
    overall by ``margin``, no class and no kind of photo is worse by more than ``max_drop``, and
    it certifies at least the champion's coverage at ``max_error``."""
    figures, calibrations = {}, {}
    for name, calib, test in (
        ("champion", champion_calib, champion_test),
        ("challenger", challenger_calib, challenger_test),
    ):
        calibration = calibrations[name] = calibrate(calib, [looking])
        threshold, row = certified_threshold(calibration[looking.key]["risk_curve"], max_error)
        m = metrics(test, looking, calibration, threshold)
        m["certified_coverage"] = row["coverage"] if row else 0.0
        figures[name] = m
    a, b = figures["champion"], figures["challenger"]
    reasons, promote = [], True
    table = [
        {"figure": "accuracy", "champion": a["accuracy"], "challenger": b["accuracy"]},
        {
            "figure": f"certified coverage at {max_error:.1%} error",
            "champion": a["certified_coverage"],
            "challenger": b["certified_coverage"],
        },
    ]
    if b["accuracy"] < a["accuracy"] + margin:
        promote = False
        reasons.append(
            f"accuracy {b['accuracy']:.1%} is not better than the champion's {a['accuracy']:.1%} by "
            f"{margin:.1%}"
        )
    for cls, acc in a["per_class_accuracy"].items():
        table.append({"figure": f"class {cls}", "champion": acc, "challenger": b["per_class_accuracy"][cls]})
        if b["per_class_accuracy"][cls] < acc - max_drop:
            promote = False
            reasons.append(f"class {cls}: {b['per_class_accuracy'][cls]:.1%} is worse than {acc:.1%}")
    for kind, km in a["by_kind"].items():
        other = b["by_kind"].get(kind)
        if other is None:
            continue
        table.append({"figure": f"kind {kind}", "champion": km["accuracy"], "challenger": other["accuracy"]})
        if other["accuracy"] < km["accuracy"] - max_drop:
            promote = False
            reasons.append(f"{kind} photos: {other['accuracy']:.1%} is worse than {km['accuracy']:.1%}")
    if b["certified_coverage"] < a["certified_coverage"]:
        promote = False
        reasons.append(
            f"certified coverage {b['certified_coverage']:.0%} is below the champion's "
            f"{a['certified_coverage']:.0%}"
        )
    if promote:
        reasons.append(
            f"better overall ({b['accuracy']:.1%} against {a['accuracy']:.1%}), no class or kind worse "
            f"by more than {max_drop:.0%}, certified coverage {b['certified_coverage']:.0%} against "
            f"{a['certified_coverage']:.0%}"
        )
    return Verdict(promote, reasons, table, a, b, calibrations)
