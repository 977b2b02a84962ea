"""Read-only looks at an archive for audits, crash drills and tests: never used to change it."""

from __future__ import annotations

import io
import os
import sqlite3
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from orient_model.archive.layout import journal_path
from orient_model.archive.paths import STATE_DIRNAME


def read_journal(state: str | os.PathLike[str]) -> list[dict]:
    """A read-only snapshot of a state folder's journal, safe while a run is writing to it;
    ``[]`` before the first change. ``state`` is the state folder or the archive holding it."""
    state = Path(state)
    path = journal_path(state) if journal_path(state).exists() else journal_path(state / STATE_DIRNAME)
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


# --------------------------------------------------------------------------- crash drills

DRILL_SIZES = [(320, 240), (256, 192), (301, 227), (250, 187)]  # MCU-aligned, and not


def scrambled_archive(root: Path, n: int, seed: int) -> tuple[dict[str, bytes], dict[str, int]]:
    """Synthetic scans turned at random: mostly JPEG (aligned and odd sizes, some progressive,
    some shown through an EXIF Orientation), some PNG and TIFF, a third in a subfolder.
    Returns ({relative path: bytes}, {relative path: rotation_deg that makes it upright})."""
    from orient_model import orientation
    from orient_model.synthetic import scene

    rng = np.random.default_rng(seed)
    originals, truth = {}, {}
    for i in range(n):
        w, h = DRILL_SIZES[i % len(DRILL_SIZES)]
        turn = orientation.ROTATIONS[int(rng.integers(4))]
        shown = orientation.apply(scene(rng, w, h), orientation.COUNTER_CLOCKWISE[turn])
        kind, buf = i % 8, io.BytesIO()
        if kind == 6:
            rel, fmt, kwargs = f"p{i:03d}.png", "PNG", {}
        elif kind == 7:
            rel, fmt, kwargs = f"p{i:03d}.tif", "TIFF", {"compression": "tiff_lzw"}
        else:
            rel, fmt, kwargs = f"p{i:03d}.jpg", "JPEG", {"quality": 90, "progressive": kind == 4}
            if kind == 5:  # stored turned, displayed right through its tag
                tag = int(rng.choice([3, 6, 8]))
                shown = orientation.apply(shown, orientation.inverse(orientation.EXIF_TRANSFORMS[tag]))
                exif = Image.Exif()
                exif[orientation.EXIF_ORIENTATION_TAG] = tag
                kwargs["exif"] = exif.tobytes()
        if i % 3 == 0:
            rel = f"1962/{rel}"
        shown.save(buf, fmt, **kwargs)
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(buf.getvalue())
        originals[rel], truth[rel] = buf.getvalue(), turn
    return originals, truth


def audit(root: Path, originals: dict[str, bytes], final: bool = True) -> dict[str, list[str]]:
    """Every file original or verified rotated, none lost, none rotated twice.

    Right after a kill (``final=False``) a temporary file may be left and the change being made
    may still be 'planned' (its file either original or already replaced); the next run settles
    both. After a completed run neither may remain.
    """
    from orient_model.files import TMP_PREFIX, sha256_bytes

    problems: dict[str, list[str]] = {"corrupt": [], "lost": [], "double": [], "journal": []}
    files = archive_contents(root)
    problems["lost"] = sorted(set(originals) - set(files))
    temps = {rel for rel in files if Path(rel).name.startswith(TMP_PREFIX)}
    extra = sorted(set(files) - set(originals) - (set() if final else temps))
    problems["corrupt"] += [f"{p}: unexpected file" for p in extra]
    rows = read_journal(root)
    if final:
        problems["journal"] += [
            f"{r['rel_path']}: left {r['state']!r}" for r in rows if r["state"] == "planned"
        ]
    by_path: dict[str, list[dict]] = {}
    for r in rows:
        by_path.setdefault(r["rel_path"], []).append(r)
    for rel, original in originals.items():
        if rel not in files:
            continue
        now = sha256_bytes(files[rel])
        done = [
            r
            for r in by_path.get(rel, [])
            if r["state"] == "done" or (not final and r["state"] == "planned" and r["sha256_after"] == now)
        ]
        if len(done) > 1:
            problems["double"].append(f"{rel}: {len(done)} done changes (runs {[r['run_id'] for r in done]})")
            continue
        if now == sha256_bytes(original):
            if done:
                problems["journal"].append(
                    f"{rel}: journal says rotated by {done[0]['run_id']}, file is original"
                )
            continue
        if not done:
            problems["corrupt"].append(f"{rel}: changed, but no done change in the journal")
            continue
        change = done[0]
        if change["sha256_before"] != sha256_bytes(original):
            problems["double"].append(f"{rel}: rotated from a non-original state (run {change['run_id']})")
        elif change["sha256_after"] != now:
            problems["corrupt"].append(f"{rel}: hash is not the journal's sha256_after")
        elif why := displayed_rotation_problem(original, files[rel], change["rotation_deg"]):
            problems["corrupt"].append(f"{rel}: {why}")
    return problems


def clean(problems: dict[str, list[str]]) -> bool:
    return not any(problems.values())


def drill_autorotate_args(root, model, report=None, extra: tuple[str, ...] = ()) -> list[str]:
    """The `orient` arguments of a drill run: turn everything it can (threshold 0), losslessly,
    without evidence maps, quietly; ``extra`` adds options (the test's faster way of looking)."""
    args = ["autorotate", str(root), "--apply", "lossless", "--model", str(model), "--threshold", "0"]
    args += ["--saliency", "off", "--quiet", *extra]
    return args + (["--report", str(report)] if report else [])
