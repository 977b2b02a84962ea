"""What the model looks at: the seed lecture's saliency (the plain input gradient) and guided
backpropagation beside Grad-CAM, for the turn the model answers and for upright; and Grad-CAM
averaged over many photos, per answer (where in the frame it looks when it says "upright").

All maps come from :class:`orient_model.model.evidence.EvidenceRenderer`, the review page's own.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from orient_model import orientation
from orient_model.imageio import center_square
from orient_model.insight.behaviour import Judged, shown_four_ways
from orient_model.insight.figures import mosaic, new_figure, png
from orient_model.model.evidence import PANEL, EvidenceRenderer, overlay
from orient_model.model.registry import LoadedModel

SHOWN_NEEDING = 1  # the samples are shown needing 90 degrees: the answer and upright then differ
METHOD_NAMES = {"gradient": "gradient", "guided": "guided backprop", "gradcam": "Grad-CAM"}
CELL = 160  # side of each picture in the comparison
FRAME = 64  # side of the square frame average maps are drawn in


def samples_by_kind(judged: Judged, per_kind: int = 1, most: int = 6) -> list[int]:
    """Photos to compare maps on: the first few of each kind, at most ``most``."""
    chosen, taken = [], {}
    for i, photo in enumerate(judged.photos):
        if taken.get(photo.kind, 0) < per_kind and len(chosen) < most:
            chosen.append(i)
            taken[photo.kind] = taken.get(photo.kind, 0) + 1
    return chosen


def _correlation(a: np.ndarray, b: np.ndarray) -> float | None:
    if a.std() == 0 or b.std() == 0:
        return None
    return float(np.corrcoef(a.ravel(), b.ravel())[0, 1])


def compare_methods(loaded: LoadedModel, judged: Judged, chosen: list[int], device: str = "cpu"):
    """PNG of the maps side by side, and per method the mean correlation between the map for the
    answer and the map for upright (where the two differ): 1 means the map ignores the class."""
    side = loaded.input_size
    shown = [
        center_square(shown_four_ways(judged.photos[i].upright(side))[SHOWN_NEEDING], side) for i in chosen
    ]
    answers = [int(judged.answers[i, SHOWN_NEEDING]) for i in chosen]
    # The centre square the model sees, one view: gradients through the whole network cost a
    # backward pass per class and view, and one view shows the methods as well as three.
    maps = {m: EvidenceRenderer(loaded, m, device, views=1).photo_maps(shown) for m in METHOD_NAMES}
    alike: dict[str, list[float]] = {m: [] for m in METHOD_NAMES}
    rows, labels = [], []
    for row, (img, answer) in enumerate(zip(shown, answers)):
        thumb = img.resize((CELL, CELL), Image.Resampling.BICUBIC)
        tiles = [thumb] + [
            overlay(thumb, np.asarray(Image.fromarray(maps[method][row][cls]).resize((CELL, CELL))))
            for cls in (answer, 0)
            for method in METHOD_NAMES
        ]
        rows.append([np.asarray(t, np.float32) / 255 for t in tiles])
        labels.append(f"answer {orientation.ROTATIONS[answer]}\u00b0")
        if answer != 0:
            for method in METHOD_NAMES:
                r = _correlation(maps[method][row][answer], maps[method][row][0])
                if r is not None:
                    alike[method].append(r)
    fig, ax = new_figure(14, 0.9 + 1.9 * len(rows))
    ax.imshow(mosaic(rows, CELL))
    columns = ["needs 90\u00b0"] + [
        f"{name}:\n{who}" for who in ("answer", "upright") for name in METHOD_NAMES.values()
    ]
    ax.set_xticks([c * (CELL + 4) + CELL / 2 for c in range(7)], columns, fontsize=9)
    ax.xaxis.tick_top()
    ax.set_yticks([r * (CELL + 4) + CELL / 2 for r in range(len(rows))], labels, fontsize=9)
    return png(fig), {m: (float(np.mean(v)) if v else None) for m, v in alike.items()}


def reading(alike: dict[str, float | None]) -> str:
    """One line on what the comparison shows, from the measured likeness of the maps."""
    guided, cam, grad = alike["guided"], alike["gradcam"], alike["gradient"]
    if guided is None or cam is None:
        return (
            "The model answered upright for every sample shown needing 90\u00b0, so the maps for its "
            "answer and for upright are the same here; read the columns as where it looks."
        )
    told_apart = cam < guided
    return (
        f"Each row is the centre of a photo shown needing 90\u00b0: its maps for the model's answer (left three) and for "
        f"upright (right three). The two maps correlate {guided:.2f} on average for guided backpropagation, "
        f"{grad:.2f} for the plain gradient and {cam:.2f} for Grad-CAM: "
        + (
            "guided backpropagation is sharp but draws much the same edges whatever the class, while "
            "Grad-CAM tells the turns apart."
            if told_apart
            else "here Grad-CAM does not tell the turns apart better than guided backpropagation does."
        )
    )


def average_maps(loaded: LoadedModel, judged: Judged, chosen: list[int], device: str = "cpu", chunk: int = 8):
    """Per answered class, the mean Grad-CAM map for that answer over every photo of ``chosen``
    in all four orientations, in the frame as shown to the model (squared): ``4 x FRAME x FRAME``
    and how many decisions each mean holds."""
    renderer = EvidenceRenderer(loaded, "gradcam", device)
    total = np.zeros((4, FRAME, FRAME), np.float32)
    count = np.zeros(4, int)
    for start in range(0, len(chosen), chunk):
        part = chosen[start : start + chunk]
        shown = [view for i in part for view in shown_four_ways(judged.photos[i].upright(loaded.input_size))]
        for k, maps in enumerate(renderer.photo_maps(shown, size=PANEL // 2)):
            answer = int(judged.answers[part[k // 4], k % 4])
            total[answer] += np.asarray(Image.fromarray(maps[answer]).resize((FRAME, FRAME), Image.BILINEAR))
            count[answer] += 1
    return total / np.maximum(count, 1)[:, None, None], count


def average_figure(means: np.ndarray, count: np.ndarray) -> bytes:
    fig, axes = new_figure(12, 3.4, columns=4)
    for k, ax in enumerate(axes[0]):
        ax.imshow(means[k], cmap="inferno", vmin=0, vmax=max(float(means.max()), 1e-6))
        what = "upright" if k == 0 else f"needs {orientation.ROTATIONS[k]}\u00b0"
        ax.set_title(f'says "{what}" ({count[k]} decisions)', fontsize=10)
        ax.set_xticks([])
        ax.set_yticks([])
    return png(fig)
