"""Self-supervised training copies: every upright photo becomes four labelled copies.

The label must live only in the content. So each source is decoded and downscaled once,
cropped square (aspect ratio would betray a quarter turn), and only then rotated; all four
copies go through one encoder (JPEG 4:4:4, same quality), so block grid and chroma
artifacts are identical across classes.
"""

from __future__ import annotations

import io
import os
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image

from orient_model import orientation
from orient_model.config import TrainingSetConfig
from orient_model.files import atomic_write_bytes, sha256_file
from orient_model.imageio import ImageReadError, load_upright, open_image, square_views

# train: learnt from; val: early stopping; calib: temperature and the certified threshold;
# test: the held-out figures in the card. Copies are made for train and val only: calibration
# and test photos are judged whole, in all four orientations (orient_model.model.evaluate).
SPLITS = ("train", "val", "calib", "test")
COPIED_SPLITS = ("train", "val")

MANIFEST_SCHEMA = pa.schema(
    [
        pa.field("source_path", pa.string(), metadata={"doc": "upright source photo"}),
        pa.field("source_sha256", pa.string(), metadata={"doc": "sha256 of the source file"}),
        pa.field("split", pa.string(), metadata={"doc": "train, val, calib or test, by photo"}),
        pa.field(
            "kinds", pa.list_(pa.string()), metadata={"doc": "people, scene, greyscale, ... (provenance)"}
        ),
        pa.field(
            "label_source",
            pa.string(),
            metadata={
                "doc": "how the photo's upright is known: upright folder, "
                "operator review, pseudo-label round N"
            },
        ),
        pa.field(
            "source_rotation_deg",
            pa.int16(),
            metadata={"doc": "clockwise turn that makes the source upright"},
        ),
        pa.field(
            "rotation_deg",
            pa.int16(),
            metadata={
                "doc": "the copy is turned this much counter-clockwise "
                "(so it needs this much clockwise: its class)"
            },
        ),
        pa.field("crop", pa.int16(), metadata={"doc": "index of the square view along the long side"}),
        pa.field("copy_path", pa.string(), metadata={"doc": "copy, relative to the data directory"}),
        pa.field("error", pa.string(), metadata={"doc": "why the source could not be used"}),
    ]
)


@dataclass(frozen=True)
class ManifestRow:
    source_path: str
    source_sha256: str | None
    split: str | None
    kinds: list[str] | None
    label_source: str | None
    source_rotation_deg: int | None
    rotation_deg: int | None
    crop: int | None
    copy_path: str | None
    error: str | None = None


def split_of(sha256: str, cfg: TrainingSetConfig, held_out: bool = False) -> str:
    """Deterministic split by source photo (so all its copies land together), from its hash;
    photos from held-out folders are all test photos (sources the model never learns from)."""
    if held_out:
        return "test"
    u = int(sha256[:8], 16) / 0x1_0000_0000
    for split, fraction in (
        ("val", cfg.val_fraction),
        ("calib", cfg.calibration_fraction),
        ("test", cfg.test_fraction),
    ):
        if u < fraction:
            return split
        u -= fraction
    return "train"


def find_photos(dirs: Iterable[Path | str], skipped: list[str] | None = None) -> Iterator[Path]:
    """Every regular file below the given directories (hidden entries skipped), sorted.

    Links are not followed out of the folder: a photo that only a link puts in an upright folder
    was never chosen as upright there (each one skipped is added to ``skipped``, with why)."""
    for root in dirs:
        root = Path(root)
        if not root.is_dir():
            raise NotADirectoryError(f"not a directory: {root}")
        real_root = Path(os.path.realpath(root))
        found = []
        for here, folders, files in os.walk(root):  # never descends into linked folders
            folders[:] = [f for f in folders if not f.startswith(".")]
            found += [Path(here) / f for f in files if not f.startswith(".")]
        for path in sorted(found):
            if path.is_symlink() and not Path(os.path.realpath(path)).is_relative_to(real_root):
                if skipped is not None:
                    skipped.append(f"{path}: a link to {os.path.realpath(path)}, outside {root}; skipped")
                continue
            if path.is_file():
                yield path


SQUARE_ENOUGH = 1.1  # long side under 1.1 times the short: the square views along it are one view


def views_worth_copying(source: Path, cfg: TrainingSetConfig) -> int:
    """How many square views of a photo differ: one for a photo within 10% of square (its views
    along the long side would repeat the centre, costing three times the copies, the cached
    features and the training steps for nothing), ``crops_per_photo`` otherwise."""
    img = open_image(source, cfg.max_pixels)
    try:
        width, height = img.size
    finally:
        img.close()
    return 1 if max(width, height) < SQUARE_ENOUGH * min(width, height) else cfg.crops_per_photo


def copy_name(sha256: str, crop: int) -> str:
    return f"{sha256[:20]}_c{crop}.jpg"


def encode_copy(img, quality: int) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=quality, subsampling=0, optimize=False)
    return buf.getvalue()


def make_copies(
    source: Path,
    sha256: str,
    out_dir: Path,
    cfg: TrainingSetConfig,
    kinds: list[str] | None = None,
    held_out: bool = False,
    turn: int = 0,
    label_source: str = "upright folder",
) -> list[ManifestRow]:
    """Write the rotated copies of one source (``turn``: clockwise degrees that make it upright);
    existing copies are kept, not redone."""
    # A pseudo-label is the model's own guess: it may train a model, never judge one.
    split = "train" if label_source.startswith("pseudo-label") else split_of(sha256, cfg, held_out)
    about = (str(source), sha256, split, kinds, label_source, turn)
    if split not in COPIED_SPLITS:  # judged whole later: it must decode now, or it is an error row
        load_upright(source, cfg.copy_size, cfg.max_pixels)
        return [ManifestRow(*about, None, None, None)]
    rows: list[ManifestRow] = []
    pending = []
    views = views_worth_copying(source, cfg)
    for crop in range(views):
        for angle, name in zip(orientation.ROTATIONS, orientation.CLASS_NAMES, strict=True):
            rel = Path(split) / name / copy_name(sha256, crop)
            rows.append(ManifestRow(*about, angle, crop, rel.as_posix()))
            if not (out_dir / rel).exists():
                pending.append((crop, angle, rel))
    if pending:
        decoded = load_upright(source, cfg.copy_size, cfg.max_pixels)
        upright = isotropic_chroma(orientation.apply(decoded, orientation.CLOCKWISE[turn]), source)
        squares = square_views(upright, cfg.copy_size, views)
        for crop, angle, rel in pending:
            turned = orientation.apply(squares[crop], orientation.COUNTER_CLOCKWISE[angle])
            (out_dir / rel).parent.mkdir(parents=True, exist_ok=True)
            atomic_write_bytes(out_dir / rel, encode_copy(turned, cfg.jpeg_quality))
    return rows


def isotropic_chroma(img: Image.Image, source: Path) -> Image.Image:
    """Colour detail with no direction. A JPEG saved with 4:2:2 chroma (or 4:4:0) kept less colour
    detail across than down; a copy turned a quarter would carry that direction with its class,
    and the model could learn it instead of the content (the leak test measured 0.50 against a
    chance of 0.25). For such sources the colour planes go once more through the same
    subsampling, along the other axis (turned, saved 4:2:2 at quality 100, turned back), so both
    directions have lost the same detail (0.32 after); brightness keeps every detail. Other
    sources are left as they are."""
    direction = _anisotropic_chroma(source)
    if direction is None:
        return img
    turn = Image.Transpose.TRANSPOSE if direction == "across" else None
    shown = img.transpose(turn) if turn else img
    buf = io.BytesIO()
    shown.save(buf, "JPEG", quality=100, subsampling=1)  # 4:2:2: halves colour detail across
    buf.seek(0)
    again = Image.open(buf).convert("RGB")
    again = again.transpose(turn) if turn else again
    y = img.convert("YCbCr").split()[0]
    _, cb, cr = again.convert("YCbCr").split()
    return Image.merge("YCbCr", (y, cb, cr)).convert("RGB")


def _anisotropic_chroma(source: Path) -> str | None:
    """'across' when a JPEG's colour was subsampled more across than down (4:2:2), 'down' for
    the reverse (4:4:0), None when equally (4:4:4, 4:2:0) or not a JPEG."""
    try:
        with Image.open(source) as im:
            layers = getattr(im, "layer", None) if im.format in ("JPEG", "MPO") else None
    except OSError:
        return None
    if not layers or len(layers) < 3:
        return None
    (_, hy, vy, _), (_, hc, vc, _) = layers[0], layers[1]
    if hy * vc > vy * hc:
        return "across"
    if hy * vc < vy * hc:
        return "down"
    return None


def process_source(
    source: Path,
    out_dir: Path,
    cfg: TrainingSetConfig,
    kinds_by_sha: dict | None = None,
    held_out: bool = False,
    turn: int = 0,
    label_source: str = "upright folder",
) -> list[ManifestRow]:
    """Copies of one source, or a single row saying why it was unusable. ``kinds_by_sha`` gives
    a photo's kinds (people, scene, ...) from its provenance record."""
    try:
        sha = sha256_file(source)
    except OSError as exc:
        return [
            ManifestRow(
                str(source),
                None,
                None,
                [],
                label_source,
                turn,
                None,
                None,
                None,
                f"cannot read file: {exc.strerror}",
            )
        ]
    kinds = (kinds_by_sha or {}).get(sha, [])
    try:
        return make_copies(source, sha, out_dir, cfg, kinds, held_out, turn, label_source)
    except ImageReadError as exc:
        return [ManifestRow(str(source), sha, None, kinds, label_source, turn, None, None, None, str(exc))]


def write_manifest(rows: list[ManifestRow], path: Path) -> None:
    table = pa.Table.from_pylist([asdict(r) for r in rows], schema=MANIFEST_SCHEMA)
    buf = pa.BufferOutputStream()
    pq.write_table(table, buf)
    atomic_write_bytes(path, buf.getvalue().to_pybytes())


def read_manifest(path: Path) -> pa.Table:
    return pq.read_table(path, schema=MANIFEST_SCHEMA)


def manifest_path(data_dir: Path) -> Path:
    return Path(data_dir) / "manifest.parquet"


def whole_photos(data_dir: str | Path) -> dict[str, list[tuple[str, list[str]]]]:
    """The calibration and test photos a training set names (judged whole, never learnt from)."""
    table = read_manifest(manifest_path(Path(data_dir))).to_pylist()
    out: dict[str, list] = {"calib": [], "test": []}
    for row in table:
        if row["split"] in out and not row["error"]:
            out[row["split"]].append((row["source_path"], row["kinds"] or []))
    return out
