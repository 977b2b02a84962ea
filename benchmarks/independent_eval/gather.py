"""Gather the independent evaluation photos into EVALPHOTOS/<set>/<source>/ (default /work/evalphotos).

These sources are reserved for evaluation: never train or tune on them (see README.md).
Two sets: `scenes` (natural scene photographs) and `people` (people, groups, old scanned prints).

    bash fetch_sources.sh                    # apt-get download + dpkg -x, git clone at the pinned commits
    python gather.py --sheets /tmp/evalsheets  # contact sheets of every candidate, for the review by eye
    python gather.py                         # apply review.json, write the photos and sources.json

Run it with the project's .venv/bin/python (it needs scikit-image, scikit-learn and matplotlib to
find the demo photos, which are kept out of this set too).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1] / "scripts" / "gather_photos"))

from corpus import (  # noqa: E402
    EVALPHOTOS,
    IMAGE_SUFFIXES,
    Candidate,
    Deduper,
    Review,
    build,
    deb_version,
    demo_photo_files,
    dep5_license,
    evenly,
    repo_commit,
    repo_dir,
    review_arguments,
    seed_deduper,
    summary,
    unpacked,
)

DEBS = Path(os.environ.get("EVAL_DEBS", "/tmp/evaldebs"))
MAX_SIDE = 1024
FRAMES_PER_SEQUENCE = 3  # video and camera sequences: a few evenly spaced frames, not hundreds of near-copies

# (package, folder inside the package, default set)
PACKAGES = [
    ("plasma-workspace-wallpapers", "usr/share/wallpapers", "scenes"),
    ("mate-backgrounds", "usr/share/backgrounds/mate", "scenes"),
    ("lomiri-wallpapers-20.04", "usr/share/backgrounds", "scenes"),
    ("visp-images-data", "usr/share/visp-images-data/ViSP-images", "scenes"),
    ("opencv-doc", "usr/share/doc/opencv-doc", "scenes"),
    ("libdlib19.1", "usr/share/doc/libdlib19.1/examples", "scenes"),
]
SEQUENCES = {  # folders holding numbered frames of one camera run
    "visp-images-data": [
        "mire-2",
        "cube",
        "mbt/cube",
        "ellipse-1",
        "line",
        "warp",
        "mbt-depth/castel/castel",
        "mbt-depth/Castle-simu/Images",
        "AprilTag/benchmark/640x480",
        "AprilTag/benchmark/1920x1080",
    ],
    "libdlib19.1": ["video_frames"],
}
# (repository, folder, default set, licence)
REPOS = [
    ("vladmandic/human", "samples/in", "people", "MIT (repository licence; sample photos as shipped there)"),
    ("microsoft/Bringing-Old-Photos-Back-to-Life", "test_images", "people", "MIT (repository licence)"),
    ("sczhou/CodeFormer", "inputs", "people", "S-Lab License 1.0 (non-commercial)"),
]


def package_license(pkg: str, root: Path, rel: str) -> str:
    if pkg == "plasma-workspace-wallpapers":
        meta = root / "usr/share/wallpapers" / rel.split("/")[0] / "metadata.json"
        if meta.exists():
            lic = json.loads(meta.read_text())["KPlugin"].get("License")
            if lic:
                return lic
    lic = dep5_license(root / f"usr/share/doc/{pkg}/copyright", rel) or "see the package copyright file"
    if pkg == "libdlib19.1":
        lic += " (debian/copyright, examples/*); the photos come from PASCAL VOC, LFW and others"
    if pkg == "opencv-doc":
        lic += "; sample images of mixed origin"
    return lic


def image_files(base: Path, sequences: list[str]) -> list[Path]:
    files = sorted(
        p
        for p in base.rglob("*")
        if p.is_file() and not p.is_symlink() and p.suffix.lower() in IMAGE_SUFFIXES
    )
    for folder in sequences:
        frames = [p for p in files if p.parent == base / folder]
        files = [p for p in files if p.parent != base / folder] + evenly(frames, FRAMES_PER_SEQUENCE)
    return sorted(files)


def candidates() -> list[Candidate]:
    out = []
    for pkg, folder, group in PACKAGES:
        root = unpacked(pkg, DEBS)
        version = deb_version(pkg, DEBS)
        base = root / folder
        for p in image_files(base, SEQUENCES.get(pkg, [])):
            rel = str(p.relative_to(base))
            out.append(
                Candidate(
                    pkg,
                    rel,
                    p,
                    "/" + str(p.relative_to(root)),
                    package_license(pkg, root, str(p.relative_to(root))),
                    version,
                    ("scene",) if group == "scenes" else ("people",),
                    group,
                    min_side=200 if pkg == "opencv-doc" else 96,
                )
            )
    for repo, folder, group, lic in REPOS:
        root = repo_dir(repo)
        commit = repo_commit(repo, HERE / "repos.json")
        source = repo.replace("/", "-")
        for p in image_files(root / folder, []):
            rel = str(p.relative_to(root))
            out.append(Candidate(source, rel, p, rel, lic, commit, ("people",), group))
    # the largest copy of a photo wins the de-duplication
    return sorted(out, key=lambda c: (c.source, -c.path.stat().st_size, c.rel))


def main() -> None:
    args = review_arguments(__doc__)
    dedupe = Deduper()
    seed_deduper(dedupe, demo_photo_files(), "demo")
    review = Review.load(HERE / "review.json")
    records, dropped = build(
        candidates(), review, EVALPHOTOS, MAX_SIDE, dedupe, sheets=args.sheets, unseen_only=args.unseen
    )
    if args.sheets:
        print("sheets in", args.sheets)
        return
    (EVALPHOTOS / "sources.json").write_text(json.dumps(records, indent=1))
    (EVALPHOTOS / "dropped.json").write_text(json.dumps(dropped, indent=1))
    print(f"{len(records)} photos in {EVALPHOTOS}")
    print(summary(records, dropped, key=lambda r: f"{r['set']}/{r['source']}"))


if __name__ == "__main__":
    main()
