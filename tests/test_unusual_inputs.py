"""Unusual but valid scans are predicted and rotated with nothing lost; bad ones are reported."""

import hashlib
import io
import os
from pathlib import Path

import numpy as np
import pytest
import tifffile
from PIL import Image, ImageOps

from orient_model import orientation as ori
from orient_model.config import AutorotateConfig
from orient_model.report import read_report
from orient_model.synthetic import scene

pytestmark = pytest.mark.slow


def sideways_scene(seed: int) -> Image.Image:
    """A scene turned 90 degrees counter-clockwise: it needs a 90-degree clockwise turn."""
    return ori.apply(scene(np.random.default_rng(seed), 320, 240), ori.COUNTER_CLOCKWISE[90])


def build(root: Path) -> None:
    root.mkdir()
    img = sideways_scene(1)
    arr = np.asarray(img)
    gray16 = np.asarray(img.convert("L"), np.uint16) * 257
    tifffile.imwrite(root / "gray16.tif", gray16)
    tifffile.imwrite(root / "rgb48.tif", arr.astype(np.uint16) * 257, photometric="rgb")
    with tifffile.TiffWriter(root / "pages.tif") as tif:
        tif.write(arr, photometric="rgb")
        tif.write(np.asarray(sideways_scene(2)), photometric="rgb")
    img.convert("CMYK").save(root / "cmyk.jpg", quality=90)
    img.save(root / "progressive.jpg", quality=90, progressive=True)
    img.convert("L").save(root / "gray.jpg", quality=90)
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=90)
    (root / "trailing.jpg").write_bytes(buf.getvalue() + b"SCANNER-TRAILER-DATA")
    pal = img.convert("P", palette=Image.Palette.ADAPTIVE, colors=64)
    pal.info["transparency"] = 0
    pal.save(root / "palette.png", transparency=0)
    img.save(root / "with spaces.jpg", quality=90)
    img.save(root / "überschrift-写真.jpg", quality=90)
    with open(os.path.join(os.fsencode(root), b"latin1-\xe9t\xe9.jpg"), "wb") as f:
        img.save(f, "JPEG", quality=90)


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_unusual_valid_scans_are_rotated_and_undo_restores_every_byte(prefect_server, tiny_model, tmp_path):
    from flows.autorotate import autorotate
    from orient_model.archive.changes import Archive

    root = tmp_path / "archive"
    build(root)
    before = {p: sha(p) for p in root.iterdir()}
    cfg = AutorotateConfig(model=str(tiny_model), threshold=0.0, apply="lossless")
    summary = autorotate(str(root), cfg)
    rows = read_report(Path(summary["report"])).to_pylist()
    assert len(rows) == len(before) == 11
    for row in rows:
        assert row["error"] is None, row
        assert row["rotation_deg"] == 90, (row["path"], row["rotation_deg"])
        assert row["applied"], row["path"]
    for path in before:
        with Image.open(path) as shown:
            shown = ImageOps.exif_transpose(shown)
            assert shown.width > shown.height, path.name  # upright scenes are landscape
    assert tifffile.imread(root / "rgb48.tif").dtype == np.uint16
    assert tifffile.imread(root / "gray16.tif").dtype == np.uint16
    assert len(tifffile.TiffFile(root / "pages.tif").pages) == 2
    assert (root / "trailing.jpg").read_bytes().endswith(b"SCANNER-TRAILER-DATA")
    assert Image.open(root / "palette.png").mode == "P"

    with Archive(root) as archive:
        outcomes = archive.undo(summary["run_id"])
    assert all(o.status == "restored" for o in outcomes) and len(outcomes) == 11
    assert {p: sha(p) for p in before} == before


def test_bad_scans_are_reported_and_left_untouched(prefect_server, tiny_model, tmp_path):
    from flows.autorotate import autorotate

    root = tmp_path / "archive"
    root.mkdir()
    img = sideways_scene(3)
    img.save(root / "good.jpg", quality=90)
    (root / "zero.jpg").write_bytes(b"")
    data = (root / "good.jpg").read_bytes()
    (root / "truncated.jpg").write_bytes(data[: len(data) // 2])
    (root / "readme.jpg").write_text("hello")
    Image.new("L", (4000, 4000)).save(root / "bomb.png")
    exif = Image.Exif()
    exif[0x0112] = 11
    img.save(root / "bogus-exif.jpg", quality=90, exif=exif.tobytes())
    before = {p.name: sha(p) for p in root.iterdir()}
    cfg = AutorotateConfig(model=str(tiny_model), threshold=0.0, apply="lossless", max_pixels=10_000_000)
    rows = {r["path"]: r for r in read_report(Path(autorotate(str(root), cfg)["report"])).to_pylist()}
    expected = {
        "zero.jpg": "empty file",
        "truncated.jpg": "truncated",
        "readme.jpg": "not an image",
        "bomb.png": "too large",
        "bogus-exif.jpg": "bogus EXIF orientation",
    }
    for name, message in expected.items():
        assert rows[name]["action"] == "error" and message in rows[name]["error"], rows[name]
        assert sha(root / name) == before[name]
    assert rows["good.jpg"]["applied"]
