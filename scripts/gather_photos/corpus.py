"""Shared helpers for gathering the training photo corpus (rounds 1 and 3).

Every photo is saved as an RGB JPEG (quality 92, longest side at most MAX_SIDE, LANCZOS,
downscale only) under PHOTOS/<source>/<source>__<stem>.jpg and described by one record in
PHOTOS/sources.json. The locations of the unpacked Debian packages and of the cloned GitHub
repositories come from the environment (see README.md).
"""
from __future__ import annotations

import argparse
import fnmatch
import hashlib
import importlib.util
import io
import json
import os
import re
import shutil
import subprocess
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageOps

HERE = Path(__file__).resolve().parent
PHOTOS = Path(os.environ.get("PHOTOS", "/work/photos"))
EVALPHOTOS = Path(os.environ.get("EVALPHOTOS", "/work/evalphotos"))
DEBS = Path(os.environ.get("DEBS", "/tmp/pt/debs"))     # <pkg>_<ver>_<arch>.deb, unpacked under DEBS/x/<pkg>
REPOS = Path(os.environ.get("REPOS", "/tmp/gh"))         # git clones as REPOS/<owner>+<name>
# 64-bit dHashes of photos held out for evaluation (one hex hash a line, see its header)
HOLDOUT_DHASH = Path(os.environ.get("HOLDOUT_DHASH", HERE.parents[1].parent / "shared" / "holdout-dhash.txt"))
HOLDOUT_MAX_DISTANCE = 6
MAX_SIDE = 768
QUALITY = 92
KINDS = ("people", "scene", "indoor", "animal", "object", "greyscale", "old-print")

Image.MAX_IMAGE_PIXELS = 200_000_000


def sanitize(s: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", s).strip("_.")[:120]


def sha256_bytes(b: bytes) -> str:
    return hashlib.sha256(b).hexdigest()


def sha256_file(p: str | Path) -> str:
    return sha256_bytes(Path(p).read_bytes())


def deb_version(pkg: str, debs: Path = DEBS) -> str:
    """Version from the downloaded .deb's control field."""
    found = sorted(debs.glob(f"{pkg}_*.deb"))
    if not found:
        raise FileNotFoundError(f"no {pkg}_*.deb in {debs}: run fetch_sources.sh first")
    return subprocess.check_output(["dpkg-deb", "-f", str(found[0]), "Version"], text=True).strip()


def unpacked(pkg: str, debs: Path = DEBS) -> Path:
    return debs / "x" / pkg


def repo_dir(repo: str) -> Path:
    return REPOS / repo.replace("/", "+")


def repo_commit(repo: str, pins: Path) -> str:
    """The pinned commit of a GitHub repository, checked against the clone when it is a git clone."""
    pinned = json.loads(pins.read_text())[repo]
    d = repo_dir(repo)
    if (d / ".git").exists():
        head = subprocess.check_output(["git", "-C", str(d), "rev-parse", "HEAD"], text=True).strip()
        if head != pinned:
            raise RuntimeError(f"{d} is at {head}, expected {pinned} (git -C {d} checkout {pinned})")
    return pinned


def demo_photo_files() -> list[Path]:
    """The demo's photos (scikit-image data, scikit-learn sample images, matplotlib sample_data):
    never used for training or evaluation, so the demo stays a held-out check."""
    out = []
    for mod, sub in (("skimage", "data"), ("sklearn", "datasets/images"), ("matplotlib", "mpl-data/sample_data")):
        spec = importlib.util.find_spec(mod)
        if spec is None or not spec.submodule_search_locations:
            raise SystemExit(f"{mod} is not installed here: run with the project's .venv/bin/python")
        d = Path(list(spec.submodule_search_locations)[0]) / sub
        out += sorted(p for p in d.rglob("*") if p.suffix.lower() in (".png", ".jpg", ".jpeg", ".tif", ".gif"))
    return out


def to_rgb(im: Image.Image, bg: tuple[int, int, int] = (200, 200, 200)) -> Image.Image:
    """RGB, with any transparency flattened onto a neutral grey."""
    if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
        im = im.convert("RGBA")
        b = Image.new("RGBA", im.size, bg + (255,))
        b.alpha_composite(im)
        im = b
    elif im.mode in ("I;16", "I;16B", "I;16L", "I"):
        a = np.asarray(im, dtype=np.float64)
        im = Image.fromarray(np.clip(a / max(1.0, a.max()) * 255, 0, 255).astype(np.uint8))
    return im.convert("RGB")


def encode(im: Image.Image, max_side: int = MAX_SIDE) -> tuple[bytes, Image.Image]:
    """JPEG bytes of an upright image (already EXIF-transposed), downscaled to max_side."""
    im = to_rgb(im)
    if max(im.size) > max_side:
        s = max_side / max(im.size)
        im = im.resize((max(1, round(im.width * s)), max(1, round(im.height * s))), Image.LANCZOS)
    buf = io.BytesIO()
    im.save(buf, "JPEG", quality=QUALITY)
    return buf.getvalue(), im


def open_upright(data: bytes | str | Path) -> Image.Image:
    """Open an image from bytes or a path, decode it and apply its EXIF orientation."""
    im = Image.open(io.BytesIO(data) if isinstance(data, bytes) else data)
    im.load()
    return ImageOps.exif_transpose(im)


def dhash(im: Image.Image) -> np.ndarray:
    """8x8 difference hash (64 booleans)."""
    g = np.asarray(im.convert("L").resize((9, 8), Image.LANCZOS), dtype=np.int16)
    return (g[:, 1:] > g[:, :-1]).flatten()


def dhash64(im: Image.Image) -> int:
    """The holdout list's 64-bit dHash: greyscale, 9x8 with LANCZOS, bit = (pixel < its right
    neighbour), row by row, most significant bit first."""
    g = np.asarray(im.convert("L").resize((9, 8), Image.LANCZOS), dtype=np.int16)
    return int.from_bytes(np.packbits(g[:, :-1] < g[:, 1:]).tobytes(), "big")


class Holdout:
    """Photos held out for evaluation, by 64-bit dHash: a training candidate within Hamming distance
    HOLDOUT_MAX_DISTANCE of any of them, in any of its four turns, is dropped."""

    def __init__(self, path: Path = HOLDOUT_DHASH, max_distance: int = HOLDOUT_MAX_DISTANCE):
        if not path.exists():
            raise SystemExit(f"{path} is missing: the holdout's dHash list (set HOLDOUT_DHASH to its path)")
        lines = [x.split("#")[0].strip() for x in path.read_text().splitlines()]
        self.hashes = np.array([int(x, 16) for x in lines if x], dtype=np.uint64)
        self.max_distance = max_distance
        self.path = path

    def matches(self, im: Image.Image) -> bool:
        """`im`: the candidate upright as stored (EXIF orientation applied), before any other change."""
        for turn in (None, Image.Transpose.ROTATE_90, Image.Transpose.ROTATE_180, Image.Transpose.ROTATE_270):
            h = np.uint64(dhash64(im if turn is None else im.transpose(turn)))
            if len(self.hashes) and int(np.bitwise_count(self.hashes ^ h).min()) <= self.max_distance:
                return True
        return False


def greyscale(im: Image.Image) -> bool:
    """True when the chroma is nearly zero everywhere (black-and-white, even if stored as RGB)."""
    a = np.asarray(to_rgb(im).resize((128, 128)), dtype=np.int16)
    chroma = a.max(axis=2) - a.min(axis=2)
    return float(chroma.mean()) < 4.0 and float(np.percentile(chroma, 99)) < 16.0


class Deduper:
    """Exact duplicates (sha256 of the file as found) and near ones: 8x8 dHash within Hamming 4,
    confirmed by a small thumbnail (a mean absolute difference under 24 of 255), since flat,
    low-contrast images share dHashes without being alike."""

    def __init__(self, max_distance: int = 4, max_thumb_diff: float = 24.0):
        self.max_distance = max_distance
        self.max_thumb_diff = max_thumb_diff
        self.shas: dict[str, str] = {}
        self.hashes: list[np.ndarray] = []
        self.thumbs: list[np.ndarray] = []
        self.names: list[str] = []

    @staticmethod
    def _thumb(im: Image.Image) -> np.ndarray:
        return np.asarray(to_rgb(im).resize((16, 16), Image.BOX), dtype=np.float32)

    def find(self, shas: list[str], im: Image.Image) -> str | None:
        for s in shas:
            if s in self.shas:
                return self.shas[s]
        if not self.hashes:
            return None
        d = (np.stack(self.hashes) != dhash(im)).sum(axis=1)
        t = self._thumb(im)
        for i in np.flatnonzero(d <= self.max_distance):
            if float(np.abs(self.thumbs[i] - t).mean()) < self.max_thumb_diff:
                return self.names[i]
        return None

    def add(self, name: str, shas: list[str], im: Image.Image) -> None:
        for s in shas:
            self.shas.setdefault(s, name)
        self.hashes.append(dhash(im))
        self.thumbs.append(self._thumb(im))
        self.names.append(name)


def dep5_license(copyright_file: Path, path: str) -> str | None:
    """Licence of `path` from a machine-readable debian/copyright (the last matching Files stanza wins).

    Patterns are matched against the end of the installed path, since packages install files
    under a prefix that the source tree's paths lack."""
    found = None
    for stanza in re.split(r"\n\s*\n", copyright_file.read_text(errors="replace")):
        files = re.search(r"^Files:(.*?)(?=^\S|\Z)", stanza, re.M | re.S)
        lic = re.search(r"^License:\s*(.+)$", stanza, re.M)
        if not (files and lic):
            continue
        for pat in files.group(1).split():
            if pat == "*" or fnmatch.fnmatch(path, "*/" + pat) or fnmatch.fnmatch(path, pat):
                found = lic.group(1).strip()
    return found


IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".tif", ".tiff", ".bmp", ".gif", ".ppm", ".pgm")


def evenly(items: list, n: int) -> list:
    """n items spread evenly over a sorted list (first and last included)."""
    if len(items) <= n:
        return list(items)
    return [items[round(i * (len(items) - 1) / (n - 1))] for i in range(n)] if n > 1 else [items[0]]


@dataclass
class Candidate:
    """One photo as found in a package or repository, before the review."""

    source: str
    rel: str                      # path inside the package or repository; the id is "source:rel"
    path: Path                    # the file to read
    origin_path: str              # as recorded (installed path for packages, repository path for git)
    license: str
    version: str                  # Debian package version, or the repository commit
    kinds: tuple[str, ...] = ()   # default kinds; the review adds or removes, greyscale is computed
    group: str = ""               # evaluation set
    note: str = ""
    min_side: int = 96
    prebuilt: Path | None = None  # already saved (round 1): kept as it is, not re-encoded
    original_sha256: str = ""
    rotated_deg: int = 0          # clockwise turn already applied to `prebuilt`
    derived: bool = False         # one of several photos cut from one original: compare the photo, not the original

    @property
    def id(self) -> str:
        return f"{self.source}:{self.rel}"


@dataclass
class Review:
    """Decisions taken by eye on the contact sheets (a JSON file next to the script)."""

    drop: dict[str, str] = field(default_factory=dict)         # id -> reason
    rotate: dict[str, int] = field(default_factory=dict)       # id -> clockwise degrees that make it upright
    add: dict[str, set[str]] = field(default_factory=dict)     # id -> kinds to add
    remove: dict[str, set[str]] = field(default_factory=dict)  # id -> kinds to remove
    group: dict[str, str] = field(default_factory=dict)        # id -> evaluation set
    note: dict[str, str] = field(default_factory=dict)
    seen: set[str] = field(default_factory=set)                # every id looked at on the sheets

    @classmethod
    def load(cls, path: Path) -> Review:
        r = cls()
        if not path.exists():
            return r
        j = json.loads(path.read_text())
        for reason, ids in j.get("drop", {}).items():
            r.drop.update({i: reason for i in ids})
        r.rotate = {i: int(d) for i, d in j.get("rotate", {}).items()}
        for kind, ids in j.get("add", {}).items():
            for i in ids:
                r.add.setdefault(i, set()).add(kind)
        for kind, ids in j.get("remove", {}).items():
            for i in ids:
                r.remove.setdefault(i, set()).add(kind)
        for g, ids in j.get("set", {}).items():
            r.group.update({i: g for i in ids})
        r.note = dict(j.get("note", {}))
        r.seen = set(j.get("seen", []))
        return r

    def ids(self) -> set[str]:
        return (set(self.drop) | set(self.rotate) | set(self.add) | set(self.remove) | set(self.group)
                | set(self.note) | self.seen)


def seed_deduper(dedupe: Deduper, files: list[Path], label: str) -> None:
    for f in files:
        try:
            im = open_upright(f)
        except OSError:   # not an image Pillow reads (e.g. a multi-page TIFF variant): nothing to compare
            continue
        dedupe.add(f"{label}:{f.name}", [sha256_file(f)], im)


def corpus_before(own_sources: set[str], dedupe: Deduper) -> list[dict]:
    """The records of the corpus's earlier rounds (``own_sources`` are this round's, made afresh),
    each seeded into ``dedupe`` by its saved file and by its original's sha256."""
    earlier = [r for r in json.loads((PHOTOS / "sources.json").read_text()) if r["source"] not in own_sources]
    seed_deduper(dedupe, [PHOTOS / r["file"] for r in earlier], "corpus")
    for r in earlier:
        dedupe.shas.setdefault(r["original_sha256"], "corpus:" + r["file"])
    return earlier


def review_arguments(doc: str) -> argparse.Namespace:
    """The gathering scripts' command line: contact sheets to review, or nothing to gather."""
    ap = argparse.ArgumentParser(description=doc.split("\n")[0])
    ap.add_argument("--sheets", type=Path, help="write contact sheets of the candidates here and stop")
    ap.add_argument("--unseen", action="store_true", help="with --sheets: only the candidates not reviewed yet")
    return ap.parse_args()


def build(cands: list[Candidate], review: Review, out_root: Path, max_side: int, dedupe: Deduper,
          sheets: Path | None = None, unseen_only: bool = False, layout=lambda c: c.source,
          holdout: Holdout | None = None) -> tuple[list[dict], list[dict]]:
    """Read, orient, de-duplicate, review and save the candidates, in the order given.

    With `holdout` (training corpora, never the evaluation set), a candidate that is a near
    duplicate of a held-out photo is dropped first, as "holdout near-duplicate".

    Returns the records of the kept photos and one {id, reason[, duplicate_of]} per dropped one.
    Candidates nobody has looked at yet (not in the review's `seen`) are not saved. With `sheets`,
    writes contact sheets of the candidates that survived the technical checks and the
    de-duplication (all of them, or only the unseen ones; dropped-by-review ones marked X) and
    their index.tsv instead of saving anything."""
    records, dropped = [], []
    thumbs, labels, ids = [], [], []
    unknown = review.ids() - {c.id for c in cands}
    if unknown:
        raise SystemExit(f"review names {len(unknown)} unknown ids, e.g. {sorted(unknown)[:3]}")

    def drop(c: Candidate, reason: str, **extra) -> None:
        dropped.append(dict(id=c.id, source=c.source, reason=reason, **extra))
        if c.prebuilt and not sheets:
            c.prebuilt.unlink(missing_ok=True)

    if not sheets:   # start each source afresh (round 1's prebuilt photos stay)
        for c in cands:
            if not c.prebuilt:
                for g in {c.group, review.group.get(c.id, c.group)}:
                    shutil.rmtree(out_root / g / layout(c), ignore_errors=True)
    for c in cands:
        try:
            raw = c.path.read_bytes()
            stored = open_upright(raw)
            im = to_rgb(stored)
        except Exception as e:  # noqa: BLE001 - any undecodable file is simply not a candidate
            drop(c, f"unreadable ({type(e).__name__})")
            continue
        if holdout is not None and holdout.matches(stored):
            drop(c, "holdout near-duplicate")
            continue
        if min(im.size) < c.min_side:
            drop(c, f"smaller than {c.min_side} px")
            continue
        deg = review.rotate.get(c.id, 0)
        if deg:
            im = im.rotate(-deg, expand=True)
        osha = c.original_sha256 or sha256_bytes(raw)
        key = sha256_bytes(raw) if c.derived else osha
        dup = dedupe.find([key], im)
        if dup:
            other = dup.split(":")[0]
            drop(c, "duplicate" if other == c.source else f"duplicate of {other}", duplicate_of=dup)
            continue
        dedupe.add(c.id, [key], im)
        reason = review.drop.get(c.id)
        if sheets:
            if unseen_only and c.id in review.seen:
                continue
            t = im.copy()
            t.thumbnail((156, 156))
            thumbs.append(t)
            labels.append(f"{len(ids)}" + (f" X {reason[:18]}" if reason else "") + (f" r{deg}" if deg else ""))
            ids.append(c.id)
            continue
        if c.id not in review.seen:
            reason = "not reviewed yet"
        if reason:
            drop(c, reason)
            continue
        group = review.group.get(c.id, c.group)
        kinds = (set(c.kinds) | review.add.get(c.id, set())) - review.remove.get(c.id, set())
        kinds.discard("greyscale")
        if greyscale(im):
            kinds.add("greyscale")
        bad = kinds - set(KINDS)
        if bad:
            raise SystemExit(f"{c.id}: unknown kinds {bad}")
        rel_dir = Path(group) / layout(c) if group else Path(layout(c))
        if c.prebuilt:
            f = c.prebuilt
            data = f.read_bytes()
            small = Image.open(f)
        else:
            data, small = encode(im, max_side)
            f = out_root / rel_dir / f"{c.source}__{sanitize(os.path.splitext(c.rel)[0])}.jpg"
            if f.exists():
                raise SystemExit(f"two candidates save to {f}")
            f.parent.mkdir(parents=True, exist_ok=True)
            f.write_bytes(data)
        rec = dict(file=str(f.relative_to(out_root)), source=c.source, license=c.license)
        rec["package_version" if not re.fullmatch(r"[0-9a-f]{40}", c.version) else "repo_commit"] = c.version
        rec.update(origin_path=c.origin_path, original_sha256=osha, sha256=sha256_bytes(data),
                   width=small.width, height=small.height, kinds=sorted(kinds), rotated_deg=c.rotated_deg + deg,
                   note="; ".join(x for x in (c.note, review.note.get(c.id, "")) if x))
        if group:
            rec["set"] = group
        records.append(rec)
    if sheets:
        write_sheets(thumbs, labels, sheets)
        (sheets / "index.tsv").write_text("".join(f"{i}\t{x}\n" for i, x in enumerate(ids)))
    return records, dropped


def write_sheets(thumbs: list[Image.Image], labels: list[str], out: Path, cell: int = 160,
                 cols: int = 8, rows: int = 6) -> None:
    out.mkdir(parents=True, exist_ok=True)
    for old in out.glob("sheet_*.png"):
        old.unlink()
    per = cols * rows
    for s in range(0, len(thumbs), per):
        chunk = thumbs[s:s + per]
        nrows = -(-len(chunk) // cols)
        sheet = Image.new("RGB", (cols * cell, nrows * (cell + 14)), (255, 255, 255))
        draw = ImageDraw.Draw(sheet)
        for j, t in enumerate(chunk):
            x, y = (j % cols) * cell, (j // cols) * (cell + 14)
            sheet.paste(t, (x + 2, y + 2))
            lab = labels[s + j]
            draw.text((x + 2, y + cell), lab, fill=(200, 0, 0) if " X " in lab else (0, 0, 0))
        sheet.save(out / f"sheet_{s // per:03d}.png")


def kinds(records: list[dict]) -> str:
    return "kinds: " + ", ".join(f"{k} {n}" for k, n in sorted(Counter(x for r in records for x in r["kinds"]).items()))


def summary(records: list[dict], dropped: list[dict], key=lambda r: r["source"]) -> str:
    lines = []
    for k, n in sorted(Counter(key(r) for r in records).items()):
        lines.append(f"  {k}: {n}")
    lines.append(kinds(records))
    lines.append("dropped:")
    by_source: dict[str, Counter] = {}
    for d in dropped:
        by_source.setdefault(d["source"], Counter())[d["reason"]] += 1
    for src, reasons in sorted(by_source.items()):
        lines.append(f"  {src}: " + ", ".join(f"{r} {n}" for r, n in sorted(reasons.items())))
    return "\n".join(lines)
