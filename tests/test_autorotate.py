"""The main job end to end: real files, a real trained model, a real Prefect run, a real report."""

import io
import os
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from PIL import Image, ImageOps

from orient_model import orientation as ori
from orient_model.config import AutorotateConfig
from orient_model.report import REPORT_SCHEMA, read_report
from orient_model.synthetic import scene

pytestmark = pytest.mark.slow


def save_jpeg(img: Image.Image, path: Path, exif_tag: int = 1) -> None:
    exif = Image.Exif()
    if exif_tag != 1:
        exif[0x0112] = exif_tag
    img.save(path, "JPEG", quality=92, exif=exif.tobytes())


@pytest.fixture()
def archive(tmp_path) -> tuple[Path, dict[str, int]]:
    """Scenes turned by known angles (the truth: clockwise turn needed), plus trouble."""
    root = tmp_path / "archive"
    (root / "box").mkdir(parents=True)
    rng = np.random.default_rng(2024)
    truth = {}
    for i in range(16):
        angle = ori.ROTATIONS[i % 4]
        turned = ori.apply(scene(rng, 320, 240), ori.COUNTER_CLOCKWISE[angle])
        rel = f"box/scan {i:02d}." + ("png" if i % 7 == 3 else "tif" if i % 7 == 5 else "jpg")
        if rel.endswith("jpg"):
            save_jpeg(turned, root / rel)
        else:
            turned.save(root / rel)
        truth[rel] = angle
    # EXIF-tagged scans: stored sideways, the tag says how to show them.
    upright = scene(rng, 320, 240)
    save_jpeg(ori.apply(upright, ori.inverse(ori.EXIF_TRANSFORMS[6])), root / "box/tagged-upright.jpg", 6)
    truth["box/tagged-upright.jpg"] = 0
    shown = ori.apply(scene(rng, 320, 240), ori.COUNTER_CLOCKWISE[90])
    save_jpeg(ori.apply(shown, ori.inverse(ori.EXIF_TRANSFORMS[8])), root / "box/tagged-sideways.jpg", 8)
    truth["box/tagged-sideways.jpg"] = 90
    # No orientation cue at all: the four votes cancel out, an operator must look.
    save_jpeg(Image.new("RGB", (200, 200), (128, 128, 128)), root / "blank.jpg")
    (root / "notes.jpg").write_text("not a photo")
    good = (root / "box/scan 00.jpg").read_bytes()
    (root / "cut.jpg").write_bytes(good[: len(good) // 2])
    outside = tmp_path / "elsewhere.jpg"
    outside.write_bytes(good)
    os.symlink(outside, root / "link.jpg")
    return root, truth


def rows_by_path(report: Path) -> dict[str, dict]:
    return {r["path"]: r for r in read_report(report).to_pylist()}


def test_autorotate_reports_every_file_and_recovers_known_rotations(prefect_server, tiny_model, archive):
    from flows.autorotate import autorotate

    root, truth = archive
    cfg = AutorotateConfig(model=str(tiny_model), threshold=0.6, apply="none")
    summary = autorotate(str(root), cfg, report=str(root.parent / "report.parquet"))
    rows = rows_by_path(Path(summary["report"]))
    assert len(rows) == len(truth) + 4
    assert pq.read_schema(summary["report"]).remove_metadata().equals(REPORT_SCHEMA.remove_metadata())

    correct = sum(rows[p]["rotation_deg"] == angle for p, angle in truth.items())
    assert correct / len(truth) >= 0.9, {p: rows[p]["rotation_deg"] for p in truth}
    assert rows["box/tagged-upright.jpg"]["exif_orientation"] == 6
    assert {rows[p]["action"] for p in truth} <= {"keep", "rotate", "flag"}
    assert {r["action"] for r in rows.values()} == {"keep", "rotate", "flag", "skip", "error"}

    assert rows["blank.jpg"]["action"] == "flag" and rows["blank.jpg"]["confidence"] == pytest.approx(0.25)
    assert "not an image" in rows["notes.jpg"]["error"]
    assert "truncated" in rows["cut.jpg"]["error"]
    assert rows["link.jpg"]["action"] == "skip" and "outside the archive" in rows["link.jpg"]["note"]

    for row in rows.values():
        if row["action"] == "flag":
            thumb = Image.open(io.BytesIO(row["thumbnail_png"]))
            sal = Image.open(io.BytesIO(row["saliency_png"]))
            assert thumb.format == sal.format == "PNG" and max(thumb.size) <= 256
        if row["confidence"] is not None:
            probs = [row[f"prob_{a}"] for a in ori.ROTATIONS]
            assert sum(probs) == pytest.approx(1, abs=1e-4) and row["confidence"] == max(probs)
    assert not any(r["applied"] for r in rows.values())
    assert summary["counts"]["error"] == 2
    assert Path(summary["report"]).with_suffix(".md").read_text().count("blank.jpg") == 1


def test_apply_lossless_makes_photos_upright_and_never_twice(prefect_server, tiny_model, archive):
    from flows.autorotate import autorotate

    root, truth = archive
    cfg = AutorotateConfig(model=str(tiny_model), threshold=0.6, apply="lossless")
    first = rows_by_path(Path(autorotate(str(root), cfg)["report"]))
    rotated = [p for p, r in first.items() if r["applied"]]
    assert rotated
    for path in rotated:
        row = first[path]
        assert row["sha256_after"] != row["sha256_before"]
        assert row["method"] in ("lossless", "exif", "reencode")
        if row["rotation_deg"] == truth.get(path):
            shown = ImageOps.exif_transpose(Image.open(root / path))
            assert shown.width > shown.height  # every scene was landscape when upright
    second = rows_by_path(Path(autorotate(str(root), cfg)["report"]))
    assert not any(r["applied"] for r in second.values())
    for path in rotated:
        assert second[path]["action"] in ("skip", "keep")
        assert second[path]["sha256_before"] == first[path]["sha256_after"]


def test_out_dir_writes_a_corrected_mirror_and_leaves_the_archive_alone(prefect_server, tiny_model, archive):
    from flows.autorotate import autorotate

    root, truth = archive
    before = {p: p.read_bytes() for p in root.rglob("*") if p.is_file() and ".orient" not in p.parts}
    mirror = root.parent / "mirror"
    cfg = AutorotateConfig(model=str(tiny_model), threshold=0.6, apply="lossless")
    rows = rows_by_path(Path(autorotate(str(root), cfg, out_dir=str(mirror))["report"]))
    assert {p: p.read_bytes() for p in before} == before  # not a byte changed in the archive
    for path, row in rows.items():
        if row["action"] in ("keep", "flag", "rotate"):
            assert (mirror / path).is_file(), path
        if row["action"] == "rotate" and row["rotation_deg"] == truth.get(path):
            shown = ImageOps.exif_transpose(Image.open(mirror / path))
            assert shown.width > shown.height, path
    assert not (mirror / "notes.jpg").exists() and not (mirror / "link.jpg").exists()
