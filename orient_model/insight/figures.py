"""Drawing with matplotlib, shared by the insight report and the promotion page: a figure
to PNG bytes, the reliability diagram and the risk-coverage curve.

Figures are made with ``matplotlib.figure.Figure`` (no pyplot): no global state, so reports can
be drawn from several threads or flows at once, and no window ever opens.
"""

from __future__ import annotations

import io

import numpy as np
from matplotlib.figure import Figure

DPI = 100


def new_figure(width: float, height: float, columns: int = 1, rows: int = 1, **kw):
    """A figure and its axes (an array when several), sized in inches."""
    fig = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    return fig, fig.subplots(rows, columns, squeeze=rows * columns == 1, **kw)


def mosaic(rows: list[list[np.ndarray]], cell: int, gap: int = 4) -> np.ndarray:
    """Equal-sized RGB tiles (values 0..1) laid out in rows on white, as one image: a grid of many
    small pictures is one ``imshow``, not one axes each (which would take seconds to draw)."""
    cols = max(len(r) for r in rows)
    out = np.ones((len(rows) * (cell + gap) - gap, cols * (cell + gap) - gap, 3), np.float32)
    for r, row in enumerate(rows):
        for c, tile in enumerate(row):
            y, x = r * (cell + gap), c * (cell + gap)
            out[y : y + cell, x : x + cell] = tile[:cell, :cell]
    return out


def png(fig: Figure) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def draw_reliability(ax, bins: list[dict], label: str | None = None, color: str = "C0", counts: bool = True):
    """Observed accuracy against calibrated confidence, one point a confidence bin; on the
    diagonal, a confidence means what it says. ``counts`` writes each bin's decisions."""
    used = [b for b in bins if b["decisions"]]
    ax.plot([0.25, 1], [0.25, 1], color="grey", lw=1, ls="--")
    if used:
        mid = [b["confidence"] for b in used]
        acc = [b["accuracy"] for b in used]
        size = np.sqrt([b["decisions"] for b in used])
        ax.plot(mid, acc, color=color, lw=1.5, label=label)
        ax.scatter(mid, acc, s=12 + 60 * size / size.max(), color=color, zorder=3)
        if counts:
            for b in used:
                ax.annotate(
                    str(b["decisions"]),
                    (b["confidence"], b["accuracy"]),
                    textcoords="offset points",
                    xytext=(0, 7),
                    ha="center",
                    fontsize=8,
                    color=color,
                )
    ax.set(xlim=(0.23, 1.02), ylim=(0, 1.05), xlabel="calibrated confidence", ylabel="observed accuracy")
    ax.grid(alpha=0.3)


def at_threshold(curve: list[dict], threshold: float) -> dict | None:
    """The curve's row at ``threshold`` (the grid's nearest at or above it)."""
    rows = [r for r in curve if r["threshold"] >= threshold - 1e-12]
    return min(rows, key=lambda r: r["threshold"]) if rows else None


def draw_risk(ax, curve: list[dict], threshold: float | None, label: str = "", color: str = "C0"):
    """Error among automatic decisions against the share decided automatically, as the
    confidence threshold falls; the dashed line is the 95% upper bound, the dot the threshold used."""
    rows = [r for r in curve if r["automatic"]]
    cover = [r["coverage"] for r in rows]
    ax.plot(cover, [r["errors"] / r["automatic"] for r in rows], color=color, lw=1.5, label=label or None)
    ax.plot(cover, [r["upper_bound"] for r in rows], color=color, lw=1, ls="--")
    row = at_threshold(curve, threshold) if threshold is not None and threshold <= 1 else None
    if row and row["automatic"]:
        ax.scatter([row["coverage"]], [row["errors"] / row["automatic"]], color=color, s=40, zorder=3)
        ax.annotate(
            f"threshold {threshold:.3f}: {row['coverage']:.0%} automatic, {row['errors']} wrong",
            (row["coverage"], row["errors"] / row["automatic"]),
            textcoords="offset points",
            xytext=(-8, 10),
            ha="right",
            fontsize=8,
            color=color,
        )
    top = max([r["upper_bound"] for r in rows], default=0.05)
    ax.set(xlim=(0, 1.02), ylim=(0, min(1.0, 1.05 * top)), xlabel="share decided automatically")
    ax.set_ylabel("error among automatic")
    ax.grid(alpha=0.3)
