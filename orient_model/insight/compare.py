"""The promotion, reviewable: champion and challenger side by side on the photos the rule judged
them on, under the rule's own verdict.

Nothing here decides anything: the verdict is the promotion's (passed in as it was recorded),
and the curves are those the rule fitted (:attr:`~orient_model.model.promotion.Verdict.calibration`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from orient_model import orientation
from orient_model.imageio import ImageReadError, load_upright
from orient_model.insight.behaviour import reliability
from orient_model.insight.figures import draw_reliability, draw_risk, new_figure, png
from orient_model.insight.page import Picture, Section, write_page
from orient_model.model.evaluate import PhotoScores
from orient_model.model.predict import Looking
from orient_model.model.promotion import Verdict

NAMES = ("champion", "challenger")
COLOURS = {"champion": "C0", "challenger": "C1"}
MAX_PIXELS = 250_000_000


def verdict_line(challenger: str, champion: str, promoted: bool, reasons: list[str]) -> str:
    """The promotion's decision in one sentence, from what it recorded."""
    verb = "promoted: it replaces" if promoted else "not promoted: it does not replace"
    return f"Challenger {challenger} {verb} champion {champion} ({'; '.join(reasons)})."


def disagreements(probs: dict[str, np.ndarray], most: int = 12) -> list[tuple[int, int]]:
    """(photo, orientation shown) where the two answer differently, one per photo, the ones where
    either is surest first."""
    a, b = (probs[name] for name in NAMES)
    differ = a.argmax(-1) != b.argmax(-1)
    order = sorted(zip(*np.nonzero(differ)), key=lambda d: -max(a[d].max(), b[d].max()))
    chosen, seen = [], set()
    for i, r in order:
        if i not in seen and len(chosen) < most:
            chosen.append((int(i), int(r)))
            seen.add(i)
    return chosen


def disagreement_figure(
    names: list[str], probs: dict[str, np.ndarray], chosen: list[tuple[int, int]]
) -> bytes:
    cols = min(4, len(chosen))
    rows = -(-len(chosen) // cols)
    fig, axes = new_figure(3.2 * cols, 3.3 * rows, columns=cols, rows=rows)
    for ax in np.ravel(axes):
        ax.axis("off")
    for ax, (i, r) in zip(np.ravel(axes), chosen):
        try:
            img = load_upright(names[i], 160, MAX_PIXELS)
        except (ImageReadError, OSError):
            continue
        img.thumbnail((200, 200), Image.Resampling.BICUBIC)
        ax.imshow(orientation.apply(img, orientation.COUNTER_CLOCKWISE[orientation.ROTATIONS[r]]))
        answers = [
            f"{name} {orientation.ROTATIONS[int(probs[name][i, r].argmax())]}\u00b0 "
            f"({probs[name][i, r].max():.0%})"
            for name in NAMES
        ]
        ax.set_title(f"needs {orientation.ROTATIONS[r]}\u00b0\n" + "\n".join(answers), fontsize=9)
    return png(fig)


def comparison_page(
    out_dir: Path,
    champion: str,
    challenger: str,
    verdict: Verdict,
    promoted: bool,
    reasons: list[str],
    test: dict[str, PhotoScores],
    looking: Looking,
) -> Path:
    """Write the page into ``out_dir``: ``test`` holds each one's scores on the same test photos,
    ``promoted`` and ``reasons`` the decision as the promotion recorded it."""
    if test["champion"].names != test["challenger"].names:
        raise ValueError("champion and challenger must be compared on the same photos")
    figures = {"champion": verdict.champion, "challenger": verdict.challenger}
    probs = {
        name: test[name].probabilities(looking, verdict.calibration[name], figures[name]["threshold"])
        for name in NAMES
    }
    labels = np.tile(np.arange(4), (len(test["champion"].names), 1))
    sections = []

    fig, axes = new_figure(11, 4, columns=2)
    for name in NAMES:
        entry = verdict.calibration[name][looking.key]
        draw_risk(axes[0][0], entry["risk_curve"], figures[name]["threshold"], name, COLOURS[name])
        bins = reliability(probs[name], labels)
        draw_reliability(axes[0][1], bins, name, COLOURS[name], counts=False)
    axes[0][0].set_title("calibration photos: risk and coverage")
    axes[0][1].set_title("test photos: reliability")
    for ax in axes[0]:
        ax.legend(fontsize=8)
    sections.append(
        Section(
            "Risk, coverage and reliability",
            [Picture("curves", png(fig))],
            "Left, as the rule fitted them on the calibration photos: the curve lower and further right "
            "decides more photos alone with fewer errors, and each dot is that model's certified threshold; "
            "right, on the test photos: the curve nearer the diagonal has the more honest confidences "
            "(bigger dots hold more decisions).",
        )
    )

    kinds = sorted(set(figures["champion"]["by_kind"]) | set(figures["challenger"]["by_kind"]))
    groups = ["all photos", *kinds]
    fig, ax = new_figure(8, 1.0 + 0.5 * len(groups))
    y = np.arange(len(groups))
    for k, name in enumerate(NAMES):
        accuracy = [figures[name]["accuracy"]] + [
            figures[name]["by_kind"].get(g, {}).get("accuracy", 0) for g in kinds
        ]
        ax.barh(y + (k - 0.5) * 0.4, accuracy, 0.4, label=name, color=COLOURS[name])
    ax.set_yticks(y, groups)
    ax.invert_yaxis()
    ax.set(xlim=(0, 1), xlabel="accuracy on the test photos (every orientation)")
    ax.legend(fontsize=8, loc="lower right")
    ax.grid(axis="x", alpha=0.3)
    sections.append(
        Section(
            "Accuracy by kind",
            [Picture("by-kind", png(fig))],
            "The same test photos for both: a kind where the challenger's bar is shorter is one it does worse "
            "on (the rule refuses a drop of more than its allowed margin in any kind).",
        )
    )

    chosen = disagreements(probs)
    sections.append(
        Section(
            "Where they disagree",
            [Picture("disagreements", disagreement_figure(test["champion"].names, probs, chosen))]
            if chosen
            else [],
            f"Photos shown as an archive would receive them, with the turn each needed and both answers "
            f"with their confidence: {int((probs['champion'].argmax(-1) != probs['challenger'].argmax(-1)).sum())} "
            f"of {labels.size} test decisions differ, {len(chosen)} shown.",
        )
    )
    compared = "; ".join(
        f"{row['figure']} {row['champion']:.1%} against {row['challenger']:.1%}" for row in verdict.table
    )
    lead = [
        f"Both judged on the same {len(test['champion'].names)} test photos in all four orientations, "
        f"looking {looking.key}. What the rule compared (champion against challenger): {compared}."
    ]
    return write_page(
        out_dir,
        f"Champion {champion} against challenger {challenger}",
        lead,
        sections,
        verdict=verdict_line(challenger, champion, promoted, reasons),
    )
