"""Round 6: tens of thousands of ordinary scenes, rooms, objects and animals for the training corpus.

Adds a balanced selection from five class-labelled image sets carried by GitHub repositories:
MiniPlaces (100 Places scene types, 128x128), imagenette (ten ImageNet classes, 224x224), the Intel
scene classification set (150x150), a cats-and-dogs set (own sizes) and the 15-scene set (greyscale,
200x200). Kinds come from the class folders (``scene``, ``indoor``, ``object``, ``animal``;
``greyscale`` computed as in corpus.py). Classes with no clear upright are left out up front
(``LEFT_OUT``). Every photo is kept at its stored size: a JPEG that is already an RGB baseline JPEG
is saved as its original bytes, anything else is re-encoded as corpus.py does.

Too many photos to look at one by one: the shipped model triages them (``--triage FILE``: the
centre view seen upright and upside down). The photos it calls turned with high confidence (a
quarter turn other than 0 at 0.9 or more) and a random sample of all candidates are put on contact sheets (``--sheets DIR``) and decided by eye
in review6.json; the rest are kept unseen, and the random sample's measured bad share says how
many bad ones that leaves (README.md, "Round 6").

Exact and near duplicates are dropped against every photo already in PHOTOS (rounds 1-5), the
independent evaluation photos (EVALPHOTOS), the demo photos, the held-out hashes (HOLDOUT_DHASH: a
64-bit dHash within Hamming distance 6 of a listed one, in any of the four quarter turns) and
each other.

Run it after round5.py: it removes any earlier round-6 records and folders, saves
PHOTOS/<source>/<source>__<path>.jpg, appends the new records to PHOTOS/sources.json and writes
PHOTOS/dropped6.json.

    bash fetch_sources.sh                                        # repositories (see README.md)
    python round6.py --triage /tmp/triage6.tsv --triage-only     # the model's triage (resumable)
    python round6.py --triage /tmp/triage6.tsv --sheets /tmp/s6 --unseen  # contact sheets to review
    python round6.py                                             # add round 6 to PHOTOS

Decisions go into review6.json as in rounds 3-5 (``drop`` by reason, ``seen``). With
ROUND6_WITHOUT_EARLIER=1 the de-duplication leaves out the earlier corpus and the evaluation
photos (a trial on the new sources alone; never for the corpus itself).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from corpus import (
    Holdout,
    dhash64,
    HERE,
    MAX_SIDE,
    PHOTOS,
    REPOS,
    Candidate,
    Deduper,
    Review,
    corpus_before,
    demo_photo_files,
    dhash,
    encode,
    evenly,
    greyscale,
    kinds,
    open_upright,
    repo_commit,
    repo_dir,
    sanitize,
    seed_deduper,
    sha256_bytes,
    summary,
    to_rgb,
    write_sheets,
)
from round3 import seed_evaluation

PINS = HERE / "repos.json"
REVIEW = HERE / "review6.json"
SAMPLE = 300           # random sample of the photos the triage did not flag, looked at by eye
SAMPLE_SEED = "round6-sample"
TURNED = 0.9           # the triage flags a photo when a quarter turn other than 0 gets at least this

RESEARCH = "training only, never redistributed"
MINIPLACES_TERMS = (
    "MiniPlaces (MIT 6.819 challenge subset of the Places database, Zhou et al.): Places terms, "
    f"non-commercial research and education only: {RESEARCH}"
)
IMAGENETTE_TERMS = f"imagenette (fast.ai subset of ImageNet): ImageNet terms, non-commercial research: {RESEARCH}"
INTEL_TERMS = (
    "Intel Image Classification (Analytics Vidhya / Kaggle scene set; terms unclear, offered for "
    f"research use): {RESEARCH}"
)
CATSDOGS_TERMS = (
    "cats-and-dogs photos: Kaggle Dogs vs. Cats (Asirra, Microsoft Research: research use), Kaggle Dog "
    f"Breed Identification (Stanford Dogs, ImageNet images: ImageNet terms), cat breed photos of unstated origin: {RESEARCH}"
)
SCENE15_TERMS = (
    "15-scene categories (Oliva & Torralba 2001, Fei-Fei & Perona 2005, Lazebnik et al. 2006; "
    f"research data set, no licence stated): {RESEARCH}"
)

# MiniPlaces classes that are rooms and other interiors; the rest are outdoor scenes.
MINIPLACES_INDOOR = {
    "airport_terminal", "aquarium", "art_gallery", "assembly_line", "auditorium", "bakery/shop", "ballroom",
    "banquet_hall", "bar", "bathroom", "beauty_salon", "bedroom", "bookstore", "bowling_alley",
    "boxing_ring", "bus_interior", "butchers_shop", "candy_store", "classroom", "clothing_store",
    "cockpit", "coffee_shop", "conference_room", "corridor", "dining_room", "food_court",
    "hospital_room", "kindergarden_classroom", "kitchen", "laundromat",
    "living_room", "lobby", "locker_room", "martial_arts_gym", "museum/indoor", "office", "restaurant",
    "shower", "stage/indoor", "staircase", "subway_station/platform", "supermarket",
}
IMAGENETTE = {  # wnid -> (class, kinds)
    "n01440764": ("tench", ("animal",)),
    "n02102040": ("English_springer", ("animal",)),
    "n02979186": ("cassette_player", ("object",)),
    "n03000684": ("chain_saw", ("object",)),
    "n03028079": ("church", ("scene",)),
    "n03394916": ("French_horn", ("object",)),
    "n03417042": ("garbage_truck", ("object",)),
    "n03425413": ("gas_pump", ("object",)),
    "n03445777": ("golf_ball", ("object",)),
    "n03888257": ("parachute", ("object",)),
}
SCENE15_INDOOR = {"bedroom", "kitchen", "livingroom", "office", "store"}

# Classes left out up front: no clear upright for many of their photos (the MiniPlaces ones judged
# on contact sheets of 20 photos each; see README.md).
LEFT_OUT = {
    "imagenette:golf_ball": "balls, mostly close-ups with no upright",
    "imagenette:parachute": "canopies against the sky, mostly looked up at with no ground",
    "miniplaces:aquarium": "underwater close-ups of fish and coral, no upright",
    "miniplaces:bamboo_forest": "vertical stalks looked up at or filling the frame, the same upside down",
    "miniplaces:rainforest": "plant close-ups and canopies looked up at",
    "miniplaces:trench": "digs seen from above",
    "miniplaces:canyon": "canyons looked down into from above, no sky",
    "miniplaces:badlands": "eroded rock filling the frame, seen from above",
}

# How many photos each class gives (spread evenly over its sorted files); None: all of them.
PER_CLASS = {"miniplaces": 110, "imagenette": 450, "intel": 500, "catsdogs": 2000, "scene15": None}


@dataclass(frozen=True)
class Source:
    key: str
    repo: str
    license: str
    aspect: str   # what is known about the stored shape (see README.md)


SOURCES = {
    "miniplaces": Source(
        "miniplaces", "rathull/CTFs", MINIPLACES_TERMS,
        "stored 128x128: Places' images were resized to squares whatever their shape, so proportions may be squashed",
    ),
    "imagenette": Source(
        "imagenette", "thunderInfy/imagenette", IMAGENETTE_TERMS,
        "stored 224x224: resized to squares from ImageNet's photos of other shapes, so proportions are squashed",
    ),
    "intel": Source(
        "intel", "afroozsheikh/Intel-Image-Classifier", INTEL_TERMS,
        "stored 150x150 as published by the set; original shapes unknown, proportions may be squashed",
    ),
    "catsdogs": Source("catsdogs", "chanakya2734/Image-classification-using-CNN", CATSDOGS_TERMS, "stored at its own size"),
    "scene15": Source(
        "scene15", "jaaumeadrover/Landscape-Image-Classification", SCENE15_TERMS,
        "stored 200x200: resized to squares from the set's photos (about 256 px, not all square), so "
        "proportions may be squashed",
    ),
}


def _files(d: Path) -> list[Path]:
    return sorted(p for p in d.iterdir() if p.is_file() and p.suffix.lower() in (".jpg", ".jpeg", ".png"))


def classes() -> list[tuple[str, str, tuple[str, ...], list[Path]]]:
    """(source key, class, default kinds, files) for every class of the five sets, left-out ones included."""
    out = []
    root = repo_dir(SOURCES["miniplaces"].repo) / "data/images/train"
    for letter in sorted(p for p in root.iterdir() if p.is_dir()):
        for d in sorted(p for p in letter.iterdir() if p.is_dir()):
            # a few classes sit one folder deeper, named by their Places subtype (church/outdoor, ...)
            for c in [x for x in sorted(d.iterdir()) if x.is_dir()] or [d]:
                name = str(c.relative_to(letter))
                out.append(("miniplaces", name, ("indoor",) if name in MINIPLACES_INDOOR else ("scene",), _files(c)))
    root = repo_dir(SOURCES["imagenette"].repo)
    for wnid, (name, k) in IMAGENETTE.items():
        out.append(("imagenette", name, k, sorted(_files(root / "train" / wnid) + _files(root / "val" / wnid))))
    root = repo_dir(SOURCES["intel"].repo)
    for name in ("buildings", "forest", "glacier", "mountain", "sea", "street"):
        out.append(("intel", name, ("scene",), sorted(_files(root / "train" / name) + _files(root / "test" / name))))
    root = repo_dir(SOURCES["catsdogs"].repo) / "dataset"
    files = sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in (".jpg", ".jpeg", ".png"))
    out.append(("catsdogs", "cats_and_dogs", ("animal",), files))
    root = repo_dir(SOURCES["scene15"].repo) / "data"
    by_class: dict[str, list[Path]] = {}
    for split in ("train", "test"):
        for d in sorted(p for p in (root / split).iterdir() if p.is_dir()):
            by_class.setdefault(d.name.lower(), []).extend(_files(d))
    for name, files in sorted(by_class.items()):
        out.append(("scene15", name, ("indoor",) if name in SCENE15_INDOOR else ("scene",), sorted(files)))
    return out


def candidates(left_out: bool = False) -> list[Candidate]:
    """The selected photos, in a fixed order (source by source, class by class); with ``left_out``,
    those of the classes left out instead."""
    cands = []
    for key, name, k, files in classes():
        if (f"{key}:{name}" in LEFT_OUT) != left_out:
            continue
        s = SOURCES[key]
        root = repo_dir(s.repo)
        commit = repo_commit(s.repo, PINS)
        n = PER_CLASS[key]
        for p in evenly(files, n) if n else files:
            rel = str(p.relative_to(root))
            note = f"{key} class {name}; from {s.repo}; {s.aspect}"
            cands.append(Candidate(f"{key}", rel, p, rel, s.license, commit, k, note=note))
    return cands


def class_of(c: Candidate) -> str:
    return c.note.split(";")[0].replace(" class ", ":")


# --- de-duplication at this scale ---------------------------------------------------------------

class FastDeduper(Deduper):
    """corpus.Deduper's rule (sha256, then dHash within 4 confirmed by a 16x16 thumbnail), with the
    hashes kept packed so that tens of thousands of photos compare quickly."""

    def __init__(self, max_distance: int = 4, max_thumb_diff: float = 24.0):
        super().__init__(max_distance, max_thumb_diff)
        self._packed = np.zeros(1024, dtype=np.uint64)
        self._thumbs = np.zeros((1024, 16, 16, 3), dtype=np.float32)
        self._n = 0

    def find(self, shas: list[str], im: Image.Image) -> str | None:
        for s in shas:
            if s in self.shas:
                return self.shas[s]
        if not self._n:
            return None
        d = np.bitwise_count(self._packed[: self._n] ^ np.uint64(dhash64(im)))
        near = np.flatnonzero(d <= self.max_distance)
        if len(near):
            t = self._thumb(im)
            for i in near:
                if float(np.abs(self._thumbs[i] - t).mean()) < self.max_thumb_diff:
                    return self.names[i]
        return None

    def add(self, name: str, shas: list[str], im: Image.Image) -> None:
        for s in shas:
            self.shas.setdefault(s, name)
        if self._n == len(self._packed):
            self._packed = np.concatenate([self._packed, np.zeros_like(self._packed)])
            self._thumbs = np.concatenate([self._thumbs, np.zeros_like(self._thumbs)])
        self._packed[self._n] = dhash64(im)
        self._thumbs[self._n] = self._thumb(im)
        self._n += 1
        self.names.append(name)


# --- the model's triage --------------------------------------------------------------------------

def triage(cands: list[Candidate], out: Path, batch: int = 256) -> dict[str, np.ndarray]:
    """Probabilities of 0/90/180/270 for each candidate from the shipped model: the centre view
    seen upright and upside down (two passes: the mean of their log-probabilities, each shifted
    back to speak of the photo's own class, scaled by the model's temperature for the centre view
    at four turns). Appended to ``out`` (id and four probabilities a line): a run can be resumed."""
    done = read_triage(out)
    todo = [c for c in cands if c.id not in done]
    if todo:
        import torch
        from orient_model.imageio import center_square
        from orient_model.model.predict import GLANCE, Predictor, softmax
        from orient_model.model.registry import DEFAULT_MODEL_DIR, load_model

        torch.set_num_threads(int(os.environ.get("TRIAGE_THREADS", "2")))
        predictor = Predictor(load_model(DEFAULT_MODEL_DIR / "model.pt"), device="cpu", views=1, engine="auto")
        size, temperature = predictor.loaded.input_size, predictor.loaded.temperature_for(GLANCE)
        print(f"triage of {len(todo)} photos with {predictor.engine.name}, centre view at 0 and 180 degrees")
        t0 = time.time()
        with out.open("a") as f:
            for s in range(0, len(todo), batch):
                part = todo[s : s + batch]
                views = []
                for c in part:
                    try:
                        im = to_rgb(open_upright(c.path))
                    except Exception:  # noqa: BLE001 - the build reports unreadable files
                        im = Image.new("RGB", (size, size))
                    views.append(predictor.tensor(center_square(im, size)))
                x = torch.stack(views)
                logp = []
                with torch.inference_mode():
                    for i in range(0, len(x), 16):
                        b = x[i : i + 16]
                        both = predictor.engine(torch.cat([b, torch.rot90(b, 2, dims=(2, 3))])).float().log_softmax(1)
                        logp.append((both[: len(b)] + torch.roll(both[len(b) :], shifts=-2, dims=1)) / 2)
                probs = softmax(torch.cat(logp).numpy() / temperature)
                for c, p in zip(part, probs):
                    f.write(c.id + "\t" + "\t".join(f"{x:.4f}" for x in p) + "\n")
                    done[c.id] = p
                f.flush()
                print(f"  {s + len(part)} of {len(todo)} in {time.time() - t0:.0f} s", flush=True)
    return done


def read_triage(path: Path) -> dict[str, np.ndarray]:
    out = {}
    if path.exists():
        for line in path.read_text().splitlines():
            i, *p = line.split("\t")
            out[i] = np.array([float(x) for x in p])
    return out


def flagged(probs: np.ndarray) -> bool:
    return float(probs[1:].max()) >= TURNED


# --- the build -----------------------------------------------------------------------------------

def is_baseline_rgb_jpeg(raw: bytes) -> bool:
    """A JPEG that can be saved as it is: baseline (not progressive), three-channel, and with no
    EXIF orientation to apply."""
    im = Image.open(io.BytesIO(raw))
    if im.format != "JPEG" or im.mode != "RGB" or im.info.get("progressive") or im.info.get("progression"):
        return False
    return im.getexif().get(0x0112, 1) == 1


def survivors(cands: list[Candidate], dedupe: Deduper, holdout: Holdout,
              dropped: list[dict]) -> list[tuple[Candidate, bytes, Image.Image]]:
    """The candidates that pass the technical checks, the held-out hashes and the de-duplication."""
    out = []

    def drop(c: Candidate, reason: str, **extra) -> None:
        dropped.append(dict(id=c.id, source=c.source, reason=reason, **extra))

    for c in cands:
        try:
            raw = c.path.read_bytes()
            stored = open_upright(raw)
            im = to_rgb(stored)
        except Exception as e:  # noqa: BLE001 - any undecodable file is simply not a candidate
            drop(c, f"unreadable ({type(e).__name__})")
            continue
        if holdout.matches(stored):
            drop(c, "holdout near-duplicate")
            continue
        if min(im.size) < c.min_side:
            drop(c, f"smaller than {c.min_side} px")
            continue
        key = sha256_bytes(raw)
        dup = dedupe.find([key], im)
        if dup:
            other = dup.split(":")[0]
            drop(c, "duplicate" if other == c.source else f"duplicate of {other}", duplicate_of=dup)
            continue
        dedupe.add(c.id, [key], im)
        out.append((c, raw, im))
    return out


def sample_ids(cands: list[Candidate]) -> list[str]:
    """A random sample of the candidates, looked at by eye: the SAMPLE whose salted sha256 of the id
    is smallest (the same every run, and nearly the same if the selection changes a little). Its
    photos that the triage did not flag measure the bad share of the photos kept unseen."""
    return sorted(sorted((c.id for c in cands), key=lambda i: sha256_bytes(f"{SAMPLE_SEED}:{i}".encode()))[:SAMPLE])


def save(kept: list[tuple[Candidate, bytes, Image.Image]], review: Review, out_root: Path,
         dropped: list[dict]) -> list[dict]:
    records = []
    for s in SOURCES:
        shutil.rmtree(out_root / s, ignore_errors=True)
    for c, raw, im in kept:
        reason = review.drop.get(c.id)
        if reason:
            dropped.append(dict(id=c.id, source=c.source, reason=reason))
            continue
        k = (set(c.kinds) | review.add.get(c.id, set())) - review.remove.get(c.id, set())
        k.discard("greyscale")
        if greyscale(im):
            k.add("greyscale")
        if max(im.size) <= MAX_SIDE and is_baseline_rgb_jpeg(raw):
            data, small = raw, im
        else:
            data, small = encode(im, MAX_SIDE)
        f = out_root / c.source / f"{c.source}__{sanitize(os.path.splitext(c.rel)[0])}.jpg"
        if f.exists():
            raise SystemExit(f"two candidates save to {f}")
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_bytes(data)
        seen = "looked at on a contact sheet" if c.id in review.seen else "kept without being looked at (see README: Round 6)"
        rec = dict(file=str(f.relative_to(out_root)), source=c.source, license=c.license, repo_commit=c.version,
                   origin_path=c.origin_path, original_sha256=sha256_bytes(raw), sha256=sha256_bytes(data),
                   width=small.width, height=small.height, kinds=sorted(k), rotated_deg=0,
                   note="; ".join(x for x in (c.note, seen, review.note.get(c.id, "")) if x))
        records.append(rec)
    return records


def write_review_sheets(cands: list[Candidate], triaged: dict[str, np.ndarray], review: Review, out: Path,
                        unseen_only: bool) -> None:
    """Contact sheets of the random sample and of the photos the triage flagged so far (by class),
    each group with an index.tsv that maps the sheet labels to candidate ids."""
    by_id = {c.id: c for c in cands}
    flag = sorted((class_of(c), c.id) for c in cands if c.id in triaged and flagged(triaged[c.id]))
    groups = {"sample": sample_ids(cands), "flagged": [i for _, i in flag]}
    for g, ids in groups.items():
        if unseen_only:
            ids = [i for i in ids if i not in review.seen]
        thumbs, labels = [], []
        for n, i in enumerate(ids):
            c = by_id[i]
            t = to_rgb(open_upright(c.path))
            t.thumbnail((156, 156))
            thumbs.append(t)
            p = triaged.get(i)
            lab = f"{n} {class_of(c).split(':')[1][:12]}"
            if p is not None:
                lab += f" {int(np.argmax(p)) * 90}:{p.max():.2f}"
            if i in review.drop:
                lab += " X"
            labels.append(lab)
        write_sheets(thumbs, labels, out / g, cols=10, rows=8)
        (out / g / "index.tsv").write_text("".join(f"{n}\t{i}\n" for n, i in enumerate(ids)))
        print(f"{g}: {len(ids)} photos on sheets in {out / g}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--triage", type=Path, help="the model's triage of the candidates (written if missing, resumed)")
    ap.add_argument("--sheets", type=Path, help="write contact sheets of the photos to review here and stop")
    ap.add_argument("--unseen", action="store_true", help="with --sheets: only the photos not reviewed yet")
    ap.add_argument("--triage-only", action="store_true", help="with --triage: stop after the triage")
    args = ap.parse_args()
    t0 = time.time()
    cands = candidates()
    print(f"{len(cands)} candidates ({time.time() - t0:.0f} s)")
    triaged = {}
    review = Review.load(REVIEW)
    unknown = review.ids() - {c.id for c in cands}
    if unknown:
        raise SystemExit(f"review names {len(unknown)} unknown ids, e.g. {sorted(unknown)[:3]}")
    if args.sheets:   # with the triage so far (TRIAGE_PARTIAL=1) or made complete first
        if args.triage and os.environ.get("TRIAGE_PARTIAL") != "1":
            triaged = triage(cands, args.triage)
        elif args.triage:
            triaged = read_triage(args.triage)
        write_review_sheets(cands, triaged, review, args.sheets, args.unseen)
        return
    if args.triage:
        triaged = triage(cands, args.triage)
        if args.triage_only:
            return
    dedupe = FastDeduper()
    seed_deduper(dedupe, demo_photo_files(), "demo")
    if os.environ.get("ROUND6_WITHOUT_EARLIER") == "1":   # a trial on the new sources alone
        print("WITHOUT the evaluation photos and the earlier corpus (ROUND6_WITHOUT_EARLIER=1)")
        earlier = []
    else:
        seed_evaluation(dedupe)
        earlier = corpus_before(set(SOURCES), dedupe)
    print(f"de-duplicator seeded ({time.time() - t0:.0f} s)")
    dropped = [dict(id=c.id, source=c.source, reason="class left out: " + LEFT_OUT[class_of(c)])
               for c in candidates(left_out=True)]
    kept = survivors(cands, dedupe, Holdout(), dropped)
    print(f"{len(kept)} candidates left after the checks ({time.time() - t0:.0f} s)")
    records = save(kept, review, PHOTOS, dropped)
    recs_file = PHOTOS / "sources.json"
    recs_file.write_text(json.dumps(earlier + records, indent=1))
    (PHOTOS / "dropped6.json").write_text(json.dumps(dropped, indent=1))
    print(f"{len(records)} photos added; {len(earlier) + len(records)} photos in {PHOTOS} (REPOS={REPOS}) "
          f"in {time.time() - t0:.0f} s")
    print(summary(records, dropped))
    print("whole corpus " + kinds(earlier + records))


if __name__ == "__main__":
    main()
