"""Round 4: more people, indoor scenes and old photographs for the training corpus.

Adds photos from GitHub repositories to the corpus that round3.py built: historical photographs
(DeOldify's and DDColor's test images), COCO images (coco128: the first 128 images of COCO
train2017 and of val2017), people from pose-estimation and face-analysis test data (mmpose,
OpenPose, deepface, face-api.js, Ultra-Light face detector), Depth-Anything's example photos,
and a sample of Labeled Faces in the Wild (one photo per person, as the greyscale 350-px copies
in muxspace/facial_expressions). Every candidate was looked at on contact sheets; the decisions
are in review4.json. Exact and near duplicates are dropped against every photo already in
PHOTOS, the independent evaluation photos (EVALPHOTOS), the demo photos and each other; photos
of people who appear in the evaluation set are dropped by name and by eye.

Run it after round3.py (which rewrites PHOTOS/sources.json with rounds 1-3 only): it removes any
earlier round-4 records and folders, saves PHOTOS/<source>/<source>__<stem>.jpg, appends the new
records to PHOTOS/sources.json and writes PHOTOS/dropped4.json.

    bash fetch_sources.sh                            # packages and repositories (see README.md)
    python round4.py --sheets /tmp/sheets4 --unseen  # contact sheets of candidates not reviewed yet
    python round4.py                                 # add round 4 to PHOTOS
"""
from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from corpus import (
    HERE,
    IMAGE_SUFFIXES,
    MAX_SIDE,
    PHOTOS,
    Candidate,
    Deduper,
    Holdout,
    Review,
    build,
    corpus_before,
    demo_photo_files,
    evenly,
    kinds,
    repo_commit,
    repo_dir,
    review_arguments,
    seed_deduper,
    summary,
)
from round3 import seed_evaluation, source_name

PINS = HERE / "repos.json"
REVIEW = HERE / "review4.json"

COCO = ("COCO 2017 image (Flickr photo under the licence listed for it in the COCO annotations; "
        "COCO terms of use): training only, never redistributed")
LFW_SAMPLE = 150   # people taken from Labeled Faces in the Wild, one photo each

# People who appear in the independent evaluation set (dlib's LFW "johns" and faces, CodeFormer's
# named faces, the Solvay conference): never used here. Matched against file names, case-insensitive;
# photos of them without a name in the file were dropped by eye.
EVALUATION_PEOPLE = (
    "einstein", "hepburn", "marilyn", "monroe", "lennon", "beckham", "tom_cruise", "cruise", "miley",
    "downey", "efron", "alexa_chung", "fallon", "john_salley", "john_shimkus", "john_simm",
    "john_schneider", "john_savage", "solvay",
)


def lfw_one_per_person(files: list[Path]) -> list[Path]:
    """The first photo of each person named in LFW's style (First_Last_0001.jpg), a sample spread
    evenly over the alphabet; the set's other photos (not from LFW) are left out."""
    first: dict[str, Path] = {}
    for p in files:
        m = re.fullmatch(r"(.+)_(\d{4})\.jpg", p.name)
        if m and m.group(1) not in first:
            first[m.group(1)] = p
    people = sorted(n for n in first if not any(t in n.lower() for t in EVALUATION_PEOPLE))
    return [first[n] for n in evenly(people, LFW_SAMPLE)]


def coco_kinds(root: Path, rel: Path) -> tuple[str, ...]:
    """Default kinds of a coco128 image from its YOLO boxes (the review corrects them): people when
    a person box is at least a fifth of the image high, animal for an animal box of that size."""
    labels = root / "object_detection" / "labels" / rel.parent.name / (rel.stem + ".txt")
    kinds = set()
    if labels.exists():
        for line in labels.read_text().splitlines():
            cls, _x, _y, _w, h = (float(v) for v in line.split()[:5])
            if cls == 0 and h >= 0.2:
                kinds.add("people")
            elif 14 <= cls <= 23 and h >= 0.2:
                kinds.add("animal")
    return tuple(sorted(kinds)) or ("object",)


@dataclass
class Source:
    repo: str
    folders: tuple[str, ...]
    license: str
    kinds: tuple[str, ...] | Callable[[Path, Path], tuple[str, ...]]
    select: Callable[[list[Path]], list[Path]] | None = None
    min_side: int = 96
    note: str = ""


SOURCES = [
    Source("jantic/DeOldify", ("test_images",),
           "historical photographs collected as DeOldify's test images (mostly public domain by age; "
           "per-photo provenance not recorded); repository MIT", ("old-print", "people"),
           note="DeOldify test image, taken at the last commit before they moved to Git LFS"),
    Source("piddnad/DDColor", ("assets/test_images",),
           "historical photographs used as DDColor's test images (Library of Congress and others, mostly "
           "public domain by age); repository Apache-2.0", ("old-print",)),
    Source("lightly-ai/coco128_yolo", ("images/train2017", "images/val2017"), COCO, coco_kinds),
    Source("CMU-Perceptual-Computing-Lab/openpose", ("examples/media",),
           COCO.replace("COCO 2017", "COCO 2014") + "; repository: OpenPose academic non-commercial licence",
           ("people",)),
    Source("open-mmlab/mmpose", ("tests/data",),
           "samples of pose-estimation data sets (COCO, MPII, CrowdPose, OCHuman, AI Challenger, 300W, COFW, "
           "DeepFashion, ...) kept as mmpose test data: research use, training only; repository Apache-2.0",
           ("people",)),
    Source("serengil/deepface", ("tests/unit/dataset",),
           "deepface's test photos of public figures (web images, no licence stated): training only; "
           "repository MIT", ("people",), min_side=128),
    Source("justadudewhohacks/face-api.js", ("examples/images", "test/images"),
           "face-api.js example and test photos (TV stills and web images, no licence stated): training "
           "only; repository MIT", ("people",), min_side=128),
    Source("Linzaer/Ultra-Light-Fast-Generic-Face-Detector-1MB", ("imgs",),
           "the face detector's demo photos (web images, no licence stated): training only; repository MIT",
           ("people",)),
    Source("DepthAnything/Depth-Anything-V2", ("assets/examples",),
           "Depth-Anything-V2's example photos (no licence stated for the photos): training only; "
           "repository Apache-2.0", ("scene",)),
    Source("muxspace/facial_expressions", ("images",),
           "Labeled Faces in the Wild (news photos; research use, no licence) as greyscale 350-px copies "
           "in this repository (Apache-2.0): training only", ("people",), select=lfw_one_per_person,
           min_side=128, note="LFW photo, one per person"),
]


def candidates() -> tuple[list[Candidate], list[dict]]:
    cands, dropped = [], []
    for s in SOURCES:
        root = repo_dir(s.repo)
        commit = repo_commit(s.repo, PINS)
        files = sorted(p for f in s.folders for p in (root / f).rglob("*")
                       if p.is_file() and not p.is_symlink() and p.suffix.lower() in IMAGE_SUFFIXES)
        if s.select:
            files = s.select(files)
        for p in files:
            rel = p.relative_to(root)
            kinds = s.kinds(root, rel) if callable(s.kinds) else s.kinds
            c = Candidate(source_name(s.repo), str(rel), p, str(rel), s.license, commit, kinds,
                          note=s.note, min_side=s.min_side)
            if any(t in str(rel).lower() for t in EVALUATION_PEOPLE):
                dropped.append(dict(id=c.id, source=c.source, reason="person in the evaluation set"))
                continue
            cands.append(c)
    return cands, dropped


def main() -> None:
    args = review_arguments(__doc__)
    ours = {source_name(s.repo) for s in SOURCES}
    recs_file = PHOTOS / "sources.json"
    dedupe = Deduper()
    seed_deduper(dedupe, demo_photo_files(), "demo")
    seed_evaluation(dedupe)
    earlier = corpus_before(ours, dedupe)
    review = Review.load(REVIEW)
    cands, dropped = candidates()
    records, dropped_now = build(cands, review, PHOTOS, MAX_SIDE, dedupe, sheets=args.sheets,
                                 unseen_only=args.unseen, holdout=Holdout())
    if args.sheets:
        print(f"{len(cands)} candidates; sheets in {args.sheets}")
        return
    dropped += dropped_now
    recs_file.write_text(json.dumps(earlier + records, indent=1))
    (PHOTOS / "dropped4.json").write_text(json.dumps(dropped, indent=1))
    print(f"{len(records)} photos added; {len(earlier) + len(records)} photos in {PHOTOS}")
    print(summary(records, dropped))
    print("whole corpus " + kinds(earlier + records))


if __name__ == "__main__":
    main()
