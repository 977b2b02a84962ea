"""Read-only looks at an archive for audits, crash drills and tests: never used to change it."""

from __future__ import annotations

import io
import os
import sqlite3
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from orient_model.archive.paths import STATE_DIRNAME


def read_journal(state: str | os.PathLike[str]) -> list[dict]:
    """A read-only snapshot of a state folder's journal, safe while a run is writing to it;
    ``[]`` before the first change. ``state`` is the state folder or the archive holding it."""
    state = Path(state)
    path = (state / "journal.sqlite") if (state / "journal.sqlite").exists() else state / STATE_DIRNAME / "journal.sqlite"
    if not path.exists():
        return []
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
        try:
            cur = conn.execute(
                "SELECT id, run_id, rel_path, target_root, rotation_deg, method, sha256_before, sha256_after, "
                "state FROM changes ORDER BY id"
            )
            names = [c[0] for c in cur.description]
            rows = [dict(zip(names, r, strict=True)) for r in cur]
        finally:
            conn.close()
    except sqlite3.Error:  # not created yet, or mid-creation
        return []
    for row in rows:
        row["rel_path"] = os.fsdecode(bytes(row["rel_path"]))
    return rows


def archive_contents(root: str | os.PathLike[str]) -> dict[str, bytes]:
    """Every file's bytes by relative path, state folders left out."""
    root = Path(root)
    return {
        path.relative_to(root).as_posix(): path.read_bytes()
        for path in sorted(root.rglob("*"))
        if path.is_file() and STATE_DIRNAME not in path.relative_to(root).parts
    }


def displayed_rotation_problem(original: bytes, now: bytes, rotation_deg: int) -> str | None:
    """None if ``now``, as a viewer shows it, is ``original`` as shown turned ``rotation_deg``
    degrees clockwise (JPEG within the decoders' rounding); otherwise what is wrong."""
    from orient_model.rotate.jpeg import JPEG_LOSSLESS_MEAN_TOLERANCE, JPEG_LOSSLESS_TOLERANCE

    def displayed(data: bytes) -> np.ndarray:
        with Image.open(io.BytesIO(data)) as img:
            img.load()
            return np.asarray(ImageOps.exif_transpose(img).convert("RGB"))

    try:
        actual = displayed(now)
    except Exception as exc:  # noqa: BLE001 - any decode failure is the finding
        return f"does not decode: {exc}"
    expected = np.rot90(displayed(original), k=-(rotation_deg // 90))
    if actual.shape != expected.shape:
        return f"shape {actual.shape}, expected {expected.shape}"
    diff = np.abs(actual.astype(np.int16) - expected.astype(np.int16))
    if diff.max(initial=0) > JPEG_LOSSLESS_TOLERANCE or diff.mean() > JPEG_LOSSLESS_MEAN_TOLERANCE:
        return f"pixels differ from the rotated original by up to {diff.max()} (mean {diff.mean():.2f})"
    return None
