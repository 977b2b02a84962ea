"""Round 3: the training corpus at 768 px, from round 1's packages plus new photo sources.

Rebuilds round 1 (round1_rebuild.py: the default model's 529 photos), then adds ImageNet samples,
scratch's backgrounds, openly licensed wallpaper photos and image-restoration test sets. Every
candidate was looked at on contact sheets; the decisions (drops with their reason, turns, kinds)
are in review3.json. Near and exact duplicates are dropped across all sources, and against the
independent evaluation photos (EVALPHOTOS, gathered first by benchmarks/independent_eval) and the
demo photos. Writes PHOTOS/<source>/..., PHOTOS/sources.json and PHOTOS/dropped.json.

    bash fetch_sources.sh                      # packages and repositories (see README.md)
    python round3.py --sheets /tmp/sheets --unseen   # contact sheets of candidates not reviewed yet
    python round3.py                           # build the corpus

Run it with the project's .venv/bin/python (the demo photos are found through scikit-image,
scikit-learn and matplotlib).
"""
from __future__ import annotations

import json

import round1_rebuild
from corpus import (
    EVALPHOTOS,
    HERE,
    IMAGE_SUFFIXES,
    MAX_SIDE,
    PHOTOS,
    Candidate,
    Deduper,
    Holdout,
    Review,
    build,
    deb_version,
    demo_photo_files,
    repo_commit,
    repo_dir,
    review_arguments,
    seed_deduper,
    summary,
    unpacked,
)

PINS = HERE / "repos.json"
IMAGENET = "ImageNet terms of access: non-commercial research and education; training only, never redistributed"

# ImageNet classes whose photos are mostly landscapes, buildings or street scenes (kinds "scene"),
# or shop and room interiors ("indoor"); animals are classes 0-397 (kinds "animal"), the rest "object".
SCENE_CLASSES = {
    "alp", "cliff", "coral_reef", "geyser", "lakeside", "promontory", "sandbar", "seashore", "valley", "volcano",
    "barn", "boathouse", "castle", "church", "cinema", "cliff_dwelling", "dam", "dock", "dome", "monastery",
    "mosque", "palace", "planetarium", "prison", "stupa", "suspension_bridge", "steel_arch_bridge", "viaduct",
    "triumphal_arch", "water_tower", "yurt", "thatch", "megalith", "obelisk", "pier", "breakwater",
    "lumbermill", "apiary", "bell_cote", "beacon", "patio", "greenhouse", "mobile_home", "drilling_platform",
    "fountain", "maze", "worm_fence", "picket_fence", "stone_wall", "totem_pole", "radio_telescope",
    "solar_dish", "tile_roof", "wreck", "container_ship", "liner", "aircraft_carrier",
}
INDOOR_CLASSES = {
    "bakery", "barbershop", "bookshop", "butcher_shop", "confectionery", "grocery_store", "shoe_shop",
    "tobacco_shop", "toyshop", "library", "restaurant", "home_theater", "altar", "stage", "throne",
}
IMAGEN_ANIMALS = {
    "ant", "antelope", "armadillo", "bear", "bee", "bird", "butterfly", "camel", "cattle", "centipede", "dog",
    "domestic_cat", "dragonfly", "elephant", "fox", "frog", "giant_panda", "goldfish", "hamster",
    "hippopotamus", "horse", "isopod", "jellyfish", "koala_bear", "ladybug", "lion", "lizard", "lobster",
    "monkey", "otter", "porcupine", "rabbit", "ray", "red_panda", "scorpion", "seal", "sheep", "skunk",
    "snail", "snake", "squirrel", "starfish", "swine", "tick", "tiger", "turtle", "whale", "zebra",
}

# Licences by repository (and folder, where a repository mixes sets)
REPO_SOURCES = [
    # (repository, folder, file names to take (None: every image), licence, default kinds)
    ("EliSchwartz/imagenet-sample-images", "", None, IMAGENET, None),
    ("ajschumacher/imagen", "imagen", None, IMAGENET, None),
    ("BuddiesOfBudgie/budgie-backgrounds", "backgrounds", None, "CC0-1.0", ("scene",)),
    ("pop-os/wallpapers", "original", [   # the Unsplash photos listed in the repository README
        "ahmadreza-sajadi-10140-edit.jpg", "benjamin-voros-250200.jpg", "ferdinand-stohr-149422.jpg",
        "galen-crout-175291.jpg", "jad-limcaco-183877.jpg", "jake-hills-36605.jpg", "jared-evans-119758.jpg",
        "jasper-van-der-meij-97274-edit.jpg", "kait-herzog-8242.jpg", "nasa-45068.jpg", "nasa-53884.jpg",
        "nasa-89125.jpg", "nasa-89127.jpg", "ng-32703.jpg", "ricardo-gomez-angel-180819-blue.jpg",
        "samuel-zeller-337041.jpg", "sean-afnan-244576.jpg", "sebastien-gabriel-232361.jpg", "spacex-81773.jpg",
        "tim-mccartney-39907.jpg", "tony-webster-97532.jpg"],
     "Unsplash photo, public domain per the repository README (Unsplash licence of the time)", ("scene",)),
    ("linuxdeepin/deepin-wallpapers", "nonfree/unsplash.com", None,
     "Unsplash License (LICENSES/LicenseRef-UnsplashLicense.txt)", ("scene",)),
    ("cszn/FFDNet", "testsets/Kodak24", None,
     "Kodak Lossless True Color Image Suite (released by Eastman Kodak for unrestricted use)", ("scene",)),
    ("cszn/FFDNet", "testsets/CBSD68", None,
     "Berkeley Segmentation Dataset (BSDS500) test images: non-commercial research and education", ("scene",)),
    ("cszn/FFDNet", "testsets/McMaster", None,
     "McMaster colour demosaicking set (Zhang et al. 2011): research use", ("object",)),
    ("majedelhelou/denoising_datasets", "CSun_Hays80", None,
     "SUN database scene images (Hays & Efros 2008): research use", ("scene",)),
    ("majedelhelou/denoising_datasets", "CUrban100", None,
     "Urban100 (Huang et al. 2015, Flickr photos): research use", ("scene",)),
    ("majedelhelou/denoising_datasets", "CSet14", None, "Set14 super-resolution test images: research use", ("object",)),
    ("majedelhelou/denoising_datasets", "CSet5", None, "Set5 super-resolution test images: research use", ("object",)),
]

ROUND1_KINDS = {   # default kinds of round 1's photos, by source (the review adjusts single photos)
    "tuxpaint-stamps-default": ("object",), "stellarium-data": ("scene",), "gcompris-qt-data": ("object",),
    "kphotoalbum": ("people",), "enlightenment-data": ("scene",), "lomiri-wallpapers-16.04": ("scene",),
    "tuxpaint-data": ("scene",), "lxqt-themes": ("scene",), "libjxl-testdata": ("scene",),
    "palapeli-data": ("scene",), "python3-scipy": ("object",),
}


def source_name(repo: str) -> str:
    return repo.replace("/", "-")


def imagenet_kinds(repo: str, name: str, index: int) -> tuple[str, ...]:
    if repo == "EliSchwartz/imagenet-sample-images":
        label = name.split("_", 1)[1].rsplit(".", 1)[0]
        if index < 398:
            return ("animal",)
    else:
        label = name.rsplit(".", 1)[0].split("_", 2)[2]
        if label == "person":
            return ("people",)
        if label in IMAGEN_ANIMALS:
            return ("animal",)
    if label in SCENE_CLASSES:
        return ("scene",)
    if label in INDOOR_CLASSES:
        return ("indoor",)
    return ("object",)


def round1_candidates() -> list[Candidate]:
    out = []
    for r in round1_rebuild.rebuild():
        note = f"round 1 photo (the default model's card lists its 512-px sha256 {r['card_sha256_512']})"
        if r["source"] == "tuxpaint-stamps-default":
            note += "; a photo cut-out on a plain background"
        if r["source"] == "stellarium-data":
            note += "; a view cut from a landscape panorama photo, above a plain sky gradient"
        kinds = ROUND1_KINDS[r["source"]]
        if r["source"] == "tuxpaint-stamps-default" and "/animals/" in r["origin_path"]:
            kinds = ("animal",)
        c = Candidate(r["source"], r["origin_path"], PHOTOS / r["file"], r["origin_path"], r["license"],
                      r["package_version"], kinds, note=note, prebuilt=PHOTOS / r["file"],
                      original_sha256=r["original_sha256"], rotated_deg=r["rotated_deg"],
                      derived=r["source"] == "stellarium-data")
        out.append(c)
    return out


def scratch_candidates() -> list[Candidate]:
    pkg = "scratch"
    root = unpacked(pkg)
    base = root / "usr/share/scratch/Media/Backgrounds"
    version = deb_version(pkg)
    out = []
    for p in sorted(base.rglob("*")):
        if p.suffix.lower() not in IMAGE_SUFFIXES or p.is_symlink():
            continue
        rel = str(p.relative_to(base))
        kinds = ("indoor",) if rel.startswith("Indoors/") else ("scene",)
        out.append(Candidate(pkg, rel, p, "/" + str(p.relative_to(root)),
                             "CC-BY-SA-3.0 (debian/copyright: Media/*, MIT Scratch team)", version, kinds))
    return out


def repo_candidates() -> list[Candidate]:
    out = []
    for repo, folder, names, lic, kinds in REPO_SOURCES:
        root = repo_dir(repo)
        commit = repo_commit(repo, PINS)
        files = sorted(p for p in (root / folder).iterdir()
                       if p.is_file() and not p.is_symlink() and p.suffix.lower() in IMAGE_SUFFIXES)
        if names is not None:
            files = [p for p in files if p.name in names]
        for i, p in enumerate(files):
            rel = str(p.relative_to(root))
            out.append(Candidate(source_name(repo), rel, p, rel, lic, commit,
                                 kinds or imagenet_kinds(repo, p.name, i)))
    return out


def seed_evaluation(dedupe: Deduper) -> None:
    """The independent evaluation photos (saved JPEGs and their originals' sha256) must not reappear here."""
    recs = EVALPHOTOS / "sources.json"
    if not recs.exists():
        raise SystemExit(f"{recs} is missing: gather the evaluation photos first (benchmarks/independent_eval)")
    recs = json.loads(recs.read_text())
    seed_deduper(dedupe, [EVALPHOTOS / r["file"] for r in recs], "evaluation")
    for r in recs:
        dedupe.shas.setdefault(r["original_sha256"], "evaluation:" + r["file"])


def main() -> None:
    args = review_arguments(__doc__)
    dedupe = Deduper()
    seed_deduper(dedupe, demo_photo_files(), "demo")
    seed_evaluation(dedupe)
    review = Review.load(HERE / "review3.json")
    cands = round1_candidates() + scratch_candidates() + repo_candidates()
    records, dropped = build(cands, review, PHOTOS, MAX_SIDE, dedupe, sheets=args.sheets, unseen_only=args.unseen,
                             holdout=Holdout())
    if args.sheets:
        print("sheets in", args.sheets)
        return
    (PHOTOS / "sources.json").write_text(json.dumps(records, indent=1))
    (PHOTOS / "dropped.json").write_text(json.dumps(dropped, indent=1))
    print(f"{len(records)} photos in {PHOTOS}")
    print(summary(records, dropped))


if __name__ == "__main__":
    main()
