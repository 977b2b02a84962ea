"""The insight report of one model: how it behaves, where it fails, what it looks at and what
its units respond to, computed on labelled photos and written as one page (see :mod:`.page`).

Every figure is drawn from a computation on the photos given; nothing is taken on trust from
the card except the calibration an archive run would use (so the figures show what it would do).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from orient_model.config import MAX_ERROR
from orient_model.files import atomic_write_bytes
from orient_model.insight import behaviour, failures, saliency, units
from orient_model.insight.page import Picture, Section, write_page
from orient_model.insight.photos import LabelledPhoto
from orient_model.model.registry import LoadedModel

NUMBERS = "insight.json"


@dataclass(frozen=True)
class Caps:
    """How many photos each part works on: the cost of a report grows with these, not with the
    photos given (the behaviour figures use every photo up to ``photos``)."""

    photos: int = 1200
    gallery: int = 12
    saliency: int = 6
    average: int = 48
    units: int = 64


def spread(n: int, most: int) -> list[int]:
    """At most ``most`` indices spread evenly over ``n`` (all of them when they fit)."""
    return list(range(n)) if n <= most else np.linspace(0, n - 1, most).round().astype(int).tolist()


def build_report(
    loaded: LoadedModel,
    photos: list[LabelledPhoto],
    out_dir: Path,
    caps: Caps = Caps(),
    max_error: float = MAX_ERROR,
    device: str = "cpu",
    say: Callable[[str], None] | None = None,
) -> Path:
    """Write the report into ``out_dir`` (``index.html``, its PNGs, and ``insight.json`` with the
    numbers behind the behaviour figures); returns the page."""
    say = say or (lambda text: None)
    judged_photos = [photos[i] for i in spread(len(photos), caps.photos)]
    say(f"judging {len(judged_photos)} photos in all four orientations")
    judged = behaviour.judge(loaded, judged_photos, max_error, device)
    if not judged.photos:
        raise behaviour.NoJudgedPhotos(f"none of the {len(judged_photos)} photos could be read")
    numbers = behaviour.summary(judged)
    sections = behaviour_sections(numbers)

    say("drawing the failures gallery")
    sections.append(
        Section(
            "Where it fails",
            failures.gallery(loaded, judged, caps.gallery, device),
            "Each picture is a photo it got wrong (surest mistakes first) or was least sure of: its four "
            "orientations with their probabilities, the answer framed in red, and below each the Grad-CAM "
            "evidence for that orientation.",
        )
    )

    say("comparing saliency methods")
    chosen = saliency.samples_by_kind(judged, most=caps.saliency)
    comparison, alike = saliency.compare_methods(loaded, judged, chosen, device)
    numbers["saliency_likeness"] = alike
    sections.append(Section("What it looks at", [Picture("methods", comparison)], saliency.reading(alike)))
    averaged = spread(len(judged.photos), caps.average)
    means, count = saliency.average_maps(loaded, judged, averaged, device)
    numbers["average_map_decisions"] = count.tolist()
    sections.append(
        Section(
            "Where in the frame it looks, per answer",
            [Picture("average", saliency.average_figure(means, count))],
            f"Grad-CAM for the answer given, averaged over {len(averaged)} photos in all four orientations "
            "and drawn in the frame as the model sees it: brighter is where it takes more of its evidence "
            "from when it gives that answer.",
        )
    )

    say("finding the patches that excite its units")
    found = units.top_patches(loaded, judged, spread(len(judged.photos), caps.units))
    sections.append(
        Section(
            "Units",
            [Picture(stage["stage"], units.patches_figure(stage)) for stage in found],
            "Each row is one channel of a stage, and its patches are the parts of the photos that excite it "
            "most, strongest first; early stages see small patches, later ones large parts of the view, and "
            "what a row's patches share is what that unit responds to.",
        )
    )
    weights = units.first_filters(loaded.model)
    if weights is not None:
        sections.append(
            Section(
                "First layer filters",
                [Picture("filters", units.filters_figure(weights))],
                "Each square is one filter of the first layer drawn as an image (grey is zero): a unit "
                "responds where the photo locally looks like its filter, the lecture's templates.",
            )
        )
    lead = [
        f"{loaded.arch} at {loaded.input_size} px, {loaded.views} view(s) a photo. Judged on "
        f"{numbers['photos']} labelled photos ("
        + ", ".join(f"{name}: {g['photos']}" for name, g in numbers["by_set"].items())
        + f"), each in all four orientations: {numbers['decisions']} decisions, "
        f"{numbers['accuracy']:.1%} right, {numbers['automatic_share']:.0%} decided automatically.",
        f"Answers by {judged.engine}, as an archive run here would answer; {judged.how}. The maps and units "
        "come from the PyTorch network.",
    ]
    if judged.failed:
        lead.append(f"{len(judged.failed)} photo(s) could not be read and are left out.")
    if len(judged_photos) < len(photos):
        lead.append(f"{len(judged_photos)} of the {len(photos)} photos given were judged (spread evenly).")
    out_dir = Path(out_dir)
    page = write_page(out_dir, f"How model {loaded.version} sees", lead, sections)
    atomic_write_bytes(out_dir / NUMBERS, json.dumps(numbers, indent=1).encode())
    return page


def behaviour_sections(numbers: dict) -> list[Section]:
    wrong = numbers["decisions"] - int(np.trace(np.array(numbers["confusion"])))
    threshold = numbers["threshold"]
    shown = f"{threshold:.4f}" if threshold <= 1 else "none (every photo goes to review)"
    return [
        Section(
            "Behaviour by kind and source",
            [Picture("groups", behaviour.groups_figure(numbers))],
            "Blue is the share of decisions answered right, orange the share decided without review at the "
            f"certified threshold {shown}; a kind with a short orange bar goes to review more often (the "
            "number beside each name is its photos, each judged in four orientations).",
        ),
        Section(
            "Confusion matrix",
            [Picture("confusion", behaviour.confusion_figure(np.array(numbers["confusion"])))],
            f"Rows are the turn each photo needed, columns the turn answered: the diagonal holds the right "
            f"answers, the {wrong} decisions off it (of {numbers['decisions']}) the mistakes, by which turn "
            "was taken for which.",
        ),
        Section(
            "Reliability",
            [Picture("reliability", behaviour.reliability_figure(numbers["reliability"]))],
            "Each point is the decisions in one band of calibrated confidence (how many is written above "
            "it): on the dashed diagonal a confidence of 90% is right 90% of the time, below it the model "
            "is surer than it should be.",
        ),
        Section(
            "Risk and coverage",
            [Picture("risk-coverage", behaviour.risk_figure(numbers))],
            "Moving right lowers the confidence threshold: more photos are decided automatically and more of "
            "them wrongly; the dashed line is the 95% upper bound on that error, the dot the threshold in "
            "use, and the right panel counts one orientation per photo, the stricter curve whose bound holds "
            "as stated.",
        ),
    ]
