"""Round 5: natural outdoor scenes (landscapes, coasts, skies, cities at a distance) for the training corpus.

Adds photos to the corpus that rounds 3 and 4 built: the content and style photos of Luan et al.'s
Deep Photo Style Transfer examples (city skylines, landscapes, sunsets), the DICM and LIME low-light
test photos carried by Zero-DCE, the nighttime hazy Flickr photos carried by MRP (nighttime
dehazing), every wallpaper photo found in elementary OS's wallpaper repository over its history
(Unsplash and Pexels photos; the newest version of each file name that the snapshot holds, listed
with its commit in elementary_history.json), and the photographs among ukui-wallpapers (Debian).
Every candidate was looked at on contact sheets; the decisions are in review5.json. Exact and near
duplicates are dropped against every photo already in PHOTOS, the independent evaluation photos
(EVALPHOTOS), the demo photos and each other.

Run it after round4.py: it removes any earlier round-5 records and folders, saves
PHOTOS/<source>/<source>__<stem>.jpg, appends the new records to PHOTOS/sources.json and writes
PHOTOS/dropped5.json.

    bash fetch_sources.sh                            # packages and repositories (see README.md)
    python round5.py --sheets /tmp/sheets5 --unseen  # contact sheets of candidates not reviewed yet
    python round5.py                                 # add round 5 to PHOTOS
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from corpus import (
    HERE,
    IMAGE_SUFFIXES,
    MAX_SIDE,
    PHOTOS,
    REPOS,
    Candidate,
    Deduper,
    Holdout,
    Review,
    build,
    corpus_before,
    deb_version,
    demo_photo_files,
    kinds,
    repo_commit,
    repo_dir,
    review_arguments,
    seed_deduper,
    summary,
    unpacked,
)
from round3 import seed_evaluation, source_name

PINS = HERE / "repos.json"
REVIEW = HERE / "review5.json"
ELEMENTARY = "elementary/wallpapers"
# (commit, path) of each wallpaper photo taken from elementary's history; fetch_sources.sh writes
# each one to REPOS/elementary+wallpapers.history/<commit[:12]>/<path>
ELEMENTARY_HISTORY = HERE / "elementary_history.json"
ELEMENTARY_LICENSE = (
    "elementary OS wallpaper photo: Unsplash (CC0 for photos published before 2017-06-08, the Unsplash "
    "License after) or Pexels License, as listed in the debian/copyright of the release that shipped it"
)
UKUI = "ukui-wallpapers"


@dataclass
class Source:
    repo: str
    folders: tuple[str, ...]
    license: str
    kinds: tuple[str, ...] = ("scene",)
    pattern: str = ""  # regular expression the file name must match (all images when empty)
    note: str = ""


SOURCES = [
    Source(
        "luanfujun/deep-photo-styletransfer",
        ("examples/input", "examples/style"),
        "photos of the Deep Photo Style Transfer examples (Luan et al. 2017; web photos, no licence stated "
        "for the photos): training only, never redistributed; repository has no licence file",
    ),
    Source(
        "Li-Chongyi/Zero-DCE",
        ("Zero-DCE_code/data/test_data",),
        "low-light test photos DICM (Lee et al. 2012) and LIME (Guo et al. 2017) as carried by Zero-DCE: "
        "research use, training only, never redistributed; repository CC BY-NC 4.0 (code)",
    ),
    Source(
        "chaimi2013/MRP",
        ("MRP/data",),
        "nighttime hazy Flickr photos used as MRP's test images (Zhang et al. 2017; no licence stated): "
        "training only, never redistributed",
        pattern=r"flickr\d+\.bmp",
    ),
]


def repo_candidates() -> list[Candidate]:
    cands = []
    for s in SOURCES:
        root = repo_dir(s.repo)
        commit = repo_commit(s.repo, PINS)
        files = sorted(
            p
            for f in s.folders
            for p in (root / f).rglob("*")
            if p.is_file() and not p.is_symlink() and p.suffix.lower() in IMAGE_SUFFIXES
        )
        for p in files:
            if s.pattern and not re.fullmatch(s.pattern, p.name):
                continue
            rel = str(p.relative_to(root))
            cands.append(Candidate(source_name(s.repo), rel, p, rel, s.license, commit, s.kinds, note=s.note))
    return cands


def elementary_candidates() -> list[Candidate]:
    """Each listed photo at its commit; a blob the snapshot lacked was left out of the list."""
    root = Path(str(repo_dir(ELEMENTARY)) + ".history")
    cands = []
    for commit, path in json.loads(ELEMENTARY_HISTORY.read_text()):
        rel = f"{commit[:7]}/{path}"
        p = root / commit[:12] / path
        cands.append(
            Candidate(
                source_name(ELEMENTARY),
                rel,
                p,
                path,
                ELEMENTARY_LICENSE,
                commit,
                ("scene",),
                note=f"{path} as of commit {commit}",
            )
        )
    return cands


def ukui_candidates() -> list[Candidate]:
    root = unpacked(UKUI)
    version = deb_version(UKUI)
    files = sorted(
        p for p in (root / "usr/share/backgrounds").iterdir() if p.suffix.lower() in IMAGE_SUFFIXES
    )
    return [
        Candidate(UKUI, p.name, p, "/" + str(p.relative_to(root)), "CC-BY-SA-3.0", version, ("scene",))
        for p in files
    ]


def candidates() -> list[Candidate]:
    return repo_candidates() + elementary_candidates() + ukui_candidates()


def main() -> None:
    args = review_arguments(__doc__)
    ours = {source_name(s.repo) for s in SOURCES} | {source_name(ELEMENTARY), UKUI}
    recs_file = PHOTOS / "sources.json"
    dedupe = Deduper()
    seed_deduper(dedupe, demo_photo_files(), "demo")
    seed_evaluation(dedupe)
    earlier = corpus_before(ours, dedupe)
    review = Review.load(REVIEW)
    cands = candidates()
    records, dropped = build(
        cands, review, PHOTOS, MAX_SIDE, dedupe, sheets=args.sheets, unseen_only=args.unseen,
        holdout=Holdout(),
    )
    if args.sheets:
        print(f"{len(cands)} candidates; sheets in {args.sheets}")
        return
    recs_file.write_text(json.dumps(earlier + records, indent=1))
    (PHOTOS / "dropped5.json").write_text(json.dumps(dropped, indent=1))
    print(f"{len(records)} photos added; {len(earlier) + len(records)} photos in {PHOTOS} (REPOS={REPOS})")
    print(summary(records, dropped))
    print("whole corpus " + kinds(earlier + records))


if __name__ == "__main__":
    main()
