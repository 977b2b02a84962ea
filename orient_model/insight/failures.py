"""Where the model fails: the photos it gets wrong, then those it is least sure of, each as the
review page shows a flagged photo (its four candidate orientations with their probabilities and
the Grad-CAM evidence for each), grouped by kind."""

from __future__ import annotations

import numpy as np

from orient_model import orientation
from orient_model.insight.behaviour import Judged, shown_four_ways
from orient_model.insight.page import Picture
from orient_model.model.evidence import EvidenceRenderer
from orient_model.model.registry import LoadedModel


def worst_decisions(judged: Judged, most: int = 12) -> list[tuple[int, int]]:
    """(photo, orientation shown) pairs: wrong answers, surest first, then the least sure right
    ones; one per photo, at most ``most``."""
    wrong = [(-judged.confidence[i, r], i, r) for i, r in zip(*np.nonzero(~judged.right))]
    unsure = [(judged.confidence[i, r], i, r) for i, r in zip(*np.nonzero(judged.right))]
    chosen, seen = [], set()
    for _, i, r in sorted(wrong) + sorted(unsure):
        if i not in seen and len(chosen) < most:
            chosen.append((int(i), int(r)))
            seen.add(i)
    return chosen


def gallery(loaded: LoadedModel, judged: Judged, most: int = 12, device: str = "cpu") -> list[Picture]:
    """One picture per chosen decision, ordered by the photo's kind."""
    chosen = sorted(worst_decisions(judged, most), key=lambda d: judged.photos[d[0]].kind)
    if not chosen:
        return []
    shown = [shown_four_ways(judged.photos[i].upright(loaded.input_size))[r] for i, r in chosen]
    answers = [orientation.ROTATIONS[int(judged.answers[i, r])] for i, r in chosen]
    sheets = EvidenceRenderer(loaded, "gradcam", device).render_many(
        shown, answers, [judged.probs[i, r] for i, r in chosen]
    )
    pictures = []
    for (i, r), answer, sheet in zip(chosen, answers, sheets):
        photo = judged.photos[i]
        verdict = "wrong" if not judged.right[i, r] else "right but unsure"
        pictures.append(
            Picture(
                f"{photo.kind}-{i}-{r}",
                sheet,
                f"{photo.kind}: {photo.path.rsplit('/', 1)[-1]} shown needing {orientation.ROTATIONS[r]}\u00b0; "
                f"answered {answer}\u00b0 at {judged.confidence[i, r]:.0%} ({verdict}"
                + (", automatic" if judged.automatic[i, r] else ", flagged for review")
                + ")",
            )
        )
    return pictures
