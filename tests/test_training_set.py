"""Training copies: right labels, split by photo, no label leaking through artifacts."""

import io
import os
import time

import numpy as np
import pytest
from PIL import Image, ImageFilter
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import cross_val_score

from orient_model import orientation as ori
from orient_model.config import TrainingSetConfig
from orient_model.model.augment import CHANCES, scan_look
from orient_model.synthetic import write_scenes
from orient_model.training_set import find_photos, process_source, read_manifest, split_of, write_manifest

CFG = TrainingSetConfig(
    copy_size=64, crops_per_photo=1, val_fraction=0.3, calibration_fraction=0.0, test_fraction=0.0
)


def make_all(src, out, cfg=CFG):
    return [row for p in find_photos([src]) for row in process_source(p, out, cfg)]


def test_copies_are_the_upright_photo_turned_counter_clockwise(tmp_path):
    write_scenes(tmp_path / "src", 3, seed=5)
    rows = make_all(tmp_path / "src", tmp_path / "data")
    assert len(rows) == 12
    for sha in {r.source_sha256 for r in rows}:
        copies = {
            r.rotation_deg: np.asarray(Image.open(tmp_path / "data" / r.copy_path), float)
            for r in rows
            if r.source_sha256 == sha
        }
        upright = copies[0]
        for angle in (90, 180, 270):
            assert (
                os.path.basename(
                    os.path.dirname(
                        tmp_path
                        / "data"
                        / next(
                            r.copy_path for r in rows if r.source_sha256 == sha and r.rotation_deg == angle
                        )
                    )
                )
                == f"{angle:03d}"
            )
            expected = np.rot90(upright, angle // 90)  # numpy rot90 turns counter-clockwise
            assert np.abs(copies[angle] - expected).mean() < 4  # same picture, only re-encoded


def test_split_is_by_photo_and_deterministic(tmp_path):
    write_scenes(tmp_path / "src", 20, seed=6)
    rows = make_all(tmp_path / "src", tmp_path / "data")
    by_photo = {}
    for r in rows:
        by_photo.setdefault(r.source_sha256, set()).add(r.split)
        assert r.copy_path.startswith(r.split + "/")
    assert all(len(splits) == 1 for splits in by_photo.values())
    assert {s.pop() for s in by_photo.values()} == {"train", "val"}
    assert all(split_of(sha, CFG) == split_of(sha, CFG) for sha in by_photo)


def test_exif_orientation_of_sources_is_applied_first(tmp_path):
    src = tmp_path / "src"
    (path,) = write_scenes(src, 1, seed=7)
    upright = Image.open(path).convert("RGB")
    exif = Image.Exif()
    exif[0x0112] = 8  # display = stored turned 90 degrees counter-clockwise
    stored = ori.apply(upright, ori.inverse(ori.EXIF_TRANSFORMS[8]))
    stored.save(src / "tagged.jpg", quality=95, exif=exif.tobytes())
    rows = make_all(src, tmp_path / "data")
    zero = {r.source_path: r for r in rows if r.rotation_deg == 0}
    a = np.asarray(Image.open(tmp_path / "data" / zero[str(path)].copy_path), float)
    b = np.asarray(Image.open(tmp_path / "data" / zero[str(src / "tagged.jpg")].copy_path), float)
    assert np.abs(a - b).mean() < 6


def test_bad_sources_are_listed_with_the_reason(tmp_path):
    src = tmp_path / "src"
    write_scenes(src, 2, seed=8)
    (src / "notes.jpg").write_text("not a photo")
    (src / "empty.png").write_bytes(b"")
    good = (src / "scene_0000.jpg").read_bytes()
    (src / "cut.jpg").write_bytes(good[: len(good) // 3])
    rows = make_all(src, tmp_path / "data")
    errors = {os.path.basename(r.source_path): r.error for r in rows if r.error}
    assert set(errors) == {"notes.jpg", "empty.png", "cut.jpg"}
    assert "not an image" in errors["notes.jpg"] and "empty" in errors["empty.png"]
    assert "truncated" in errors["cut.jpg"]
    write_manifest(rows, tmp_path / "manifest.parquet")
    table = read_manifest(tmp_path / "manifest.parquet")
    assert table.num_rows == len(rows) and table.column("error").null_count == 8


def test_rerun_does_no_work_twice(tmp_path):
    write_scenes(tmp_path / "src", 4, seed=9)
    make_all(tmp_path / "src", tmp_path / "data")
    copies = sorted((tmp_path / "data").rglob("*.jpg"))
    stamps = [p.stat().st_mtime_ns for p in copies]
    time.sleep(0.05)
    make_all(tmp_path / "src", tmp_path / "data")
    assert [p.stat().st_mtime_ns for p in sorted((tmp_path / "data").rglob("*.jpg"))] == stamps


# --- No label leak through artifacts ---------------------------------------------------------


def isotropic_texture(rng, size=384) -> Image.Image:
    """Content with no up: blurred colour noise looks the same at every quarter turn."""
    noise = Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8))
    return noise.filter(ImageFilter.GaussianBlur(float(rng.uniform(1.0, 3.0))))


def artifact_features(img: Image.Image) -> list[float]:
    """Direction-sensitive artifact measures: 8x8 block edges, 1-px gradients, chroma detail."""
    ycc = np.asarray(img.convert("YCbCr"), float)
    feats = []
    for c in range(3):
        ch = ycc[..., c]
        dx, dy = np.abs(np.diff(ch, axis=1)), np.abs(np.diff(ch, axis=0))
        feats += [
            dx.mean() - dy.mean(),
            dx[:, 7::8].mean() - dx.mean() - (dy[7::8].mean() - dy.mean()),
            np.log(dx.var() + 1) - np.log(dy.var() + 1),
        ]
    return feats


def leak_score(copies: list[tuple[Image.Image, int]]) -> float:
    x = np.array([artifact_features(img) for img, _ in copies])
    y = np.array([label for _, label in copies])
    x = (x - x.mean(0)) / (x.std(0) + 1e-9)
    return cross_val_score(LogisticRegression(max_iter=2000), x, y, cv=5).mean()


@pytest.fixture(scope="module")
def textured_sources(tmp_path_factory):
    folder = tmp_path_factory.mktemp("textures")
    rng = np.random.default_rng(0)
    for i in range(50):  # half 4:2:0, half 4:2:2 (chroma blurrier across than down: a direction)
        isotropic_texture(rng).save(folder / f"t{i:02d}.jpg", quality=75, subsampling=2 if i % 2 else 1)
    return folder


LEAK_CFG = TrainingSetConfig(
    copy_size=96, crops_per_photo=1, val_fraction=0.0, calibration_fraction=0.0, test_fraction=0.0
)


@pytest.fixture(scope="module")
def texture_copies(textured_sources, tmp_path_factory) -> list[tuple[Image.Image, int]]:
    out = tmp_path_factory.mktemp("texture-copies")
    rows = make_all(textured_sources, out, LEAK_CFG)
    return [(Image.open(out / r.copy_path).convert("RGB"), r.rotation_deg) for r in rows]


def test_artifacts_do_not_leak_the_label(texture_copies):
    assert len(texture_copies) == 200
    assert leak_score(texture_copies) < 0.36  # chance is 0.25


@pytest.mark.parametrize("effect", sorted(CHANCES))
def test_no_scanned_print_effect_leaks_the_label(texture_copies, effect):
    """Each effect as the training data loader applies it, to copies already turned to their class."""
    rng = np.random.default_rng(1)
    only = {name: (1.0 if name == effect else 0.0) for name in CHANCES}
    with _chances(only):
        looked = [(scan_look(img, rng), label) for img, label in texture_copies]
    assert leak_score(looked) < 0.36


def test_the_leak_detector_catches_an_effect_applied_before_the_turn(textured_sources):
    """A scanner-bed margin drawn on the upright photo, then turned with it, lies on the side the
    class says: the check above fails for such an effect."""
    copies = []
    for path in sorted(textured_sources.glob("*.jpg")):
        small = Image.open(path).convert("RGB").resize((96, 96), Image.Resampling.BICUBIC)
        arr = np.asarray(small).copy()
        arr[:10] = 235  # always the top of the upright photo
        marked = Image.fromarray(arr)
        copies += [(ori.apply(marked, ori.COUNTER_CLOCKWISE[a]), ori.class_index(a)) for a in ori.ROTATIONS]
    assert leak_score(copies) > 0.45


class _chances:
    """Temporarily set the effects' chances (the augmentation reads them on every call)."""

    def __init__(self, chances: dict) -> None:
        self.new, self.old = chances, dict(CHANCES)

    def __enter__(self):
        CHANCES.update(self.new)

    def __exit__(self, *exc):
        CHANCES.update(self.old)


def test_the_leak_detector_catches_a_naive_pipeline(textured_sources):
    """Encoding first (4:2:2) and rotating after, as a lossless JPEG rotation would, leaks the
    label through the chroma subsampling direction: the check above can fail."""
    copies = []
    for path in sorted(textured_sources.glob("*.jpg")):
        small = Image.open(path).convert("RGB").resize((96, 96), Image.Resampling.BICUBIC)
        buf = io.BytesIO()
        small.save(buf, "JPEG", quality=75, subsampling=1)
        encoded = Image.open(buf).convert("RGB")
        copies += [(ori.apply(encoded, ori.COUNTER_CLOCKWISE[a]), ori.class_index(a)) for a in ori.ROTATIONS]
    assert leak_score(copies) > 0.45


def test_links_out_of_an_upright_folder_and_unreadable_files_never_reach_a_split(tmp_path):
    """Retraining trusts the upright folders: a link to a photo elsewhere was never put there,
    and a file that does not decode (not an image, a bomb header) is an error row in every
    split, the calibration and test splits too, where photos are not copied but judged whole."""
    import struct
    import zlib

    up = tmp_path / "upright"
    write_scenes(up, 2, seed=1)
    elsewhere = tmp_path / "elsewhere"
    write_scenes(elsewhere, 1, seed=2)
    (up / "link.jpg").symlink_to(next(elsewhere.iterdir()))
    (up / "linked-folder").symlink_to(elsewhere)
    (up / "notes.jpg").write_text("not a photo")

    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))

    header = struct.pack(">IIBBBBB", 100_000, 100_000, 8, 2, 0, 0, 0)
    (up / "bomb.png").write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IEND", b""))
    skipped: list[str] = []
    found = sorted(p.name for p in find_photos([up], skipped))
    assert found == ["bomb.png", "notes.jpg", "scene_0000.jpg", "scene_0001.jpg"]
    assert len(skipped) == 1 and "link.jpg" in skipped[0] and "outside" in skipped[0]
    for name in ("bomb.png", "notes.jpg"):
        for held_out in (False, True):  # a copied split, and the test split (judged whole)
            (row,) = process_source(up / name, tmp_path / "out", CFG, held_out=held_out)
            assert row.error and row.copy_path is None, (name, row)


def test_a_square_photo_gives_one_view_and_a_wide_one_three(tmp_path):
    """Three square views of a square photo would be one view three times over."""
    src = tmp_path / "src"
    src.mkdir()
    rng = np.random.default_rng(3)
    for name, size in (("square.png", (200, 190)), ("wide.png", (300, 200))):
        Image.fromarray(rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)).save(src / name)
    cfg = CFG.model_copy(update={"crops_per_photo": 3, "val_fraction": 0.0})
    rows = make_all(src, tmp_path / "data", cfg)
    by_photo = {}
    for r in rows:
        by_photo.setdefault(os.path.basename(r.source_path), set()).add((r.crop, r.rotation_deg))
    assert len(by_photo["square.png"]) == 4 and {c for c, _ in by_photo["square.png"]} == {0}
    assert len(by_photo["wide.png"]) == 12 and {c for c, _ in by_photo["wide.png"]} == {0, 1, 2}
    assert all((tmp_path / "data" / r.copy_path).exists() for r in rows)
