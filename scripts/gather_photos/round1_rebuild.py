"""Round 1 rebuilt: the default model's 529 training photos, from the same Debian packages, at 768 px.

The list comes from the first default model's card (`training_sources`, kept verbatim in
round1_card.json: the shipped card.json now lists the retrained model's photos): each record names
the package and version, the original path and the sha256 of the 512-px JPEG the model was trained
on. Each photo is rebuilt with the transform the first two rounds used (do_tux.py, do_stel.py,
do_gc.py, do_misc.py, do_more.py), encoded at 512 px to check it against the card, and saved at
768 px under PHOTOS/<source>/. round3.py calls rebuild() and writes sources.json after the review;
run on its own, this script only rebuilds the photos and checks them against the card.

    python round1_rebuild.py        # needs the packages unpacked by fetch_sources.sh
"""
from __future__ import annotations

import bz2
import configparser
import hashlib
import io
import json
import pickle
import random
import shutil
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
from corpus import PHOTOS, deb_version, encode, sha256_bytes, sha256_file, unpacked
from eet import get, read_eet
from PIL import Image, ImageFilter, ImageOps
from rcc import read_rcc

# training_sources of orient_model/default_model/card.json as shipped with the first default model
# (529 photos at 512 px, commit 7a4343d); the card has listed the retrained model's 3,073 since
CARD = Path(__file__).resolve().parent / "round1_card.json"
OLD_MAX_SIDE = 512


def tux_stamp(path: Path) -> Image.Image:
    """A tuxpaint stamp (photo cut-out with alpha) on a plain or softly blurred neutral background."""
    pal = [(200, 200, 200), (225, 222, 215), (180, 182, 185), (235, 235, 235),
           (210, 205, 195), (160, 165, 170), (228, 232, 236), (190, 185, 178)]
    im = Image.open(path).convert("RGBA")
    bb = im.getchannel("A").point(lambda a: 255 if a > 8 else 0).getbbox()
    if bb:
        im = im.crop(bb)
    h = int(hashlib.md5(str(Path("/") / path.relative_to(unpacked("tuxpaint-stamps-default"))).encode()).hexdigest(), 16)
    w, hh = im.size
    m = int(max(w, hh) * (0.06 + 0.08 * ((h >> 8) % 5) / 4))
    W, H = w + 2 * m, hh + 2 * m
    base = Image.new("RGBA", (W, H), pal[h % len(pal)] + (255,))
    if h % 3 == 0:
        ghost = Image.new("RGBA", (W, H), (0, 0, 0, 0))
        ghost.paste(im, (m, m))
        bl = ghost.filter(ImageFilter.GaussianBlur(max(W, H) / 10))
        bl.putalpha(bl.getchannel("A").point(lambda a: int(a * 0.5)))
        base.alpha_composite(bl)
    base.alpha_composite(im, (m, m))
    return base.convert("RGB")


def stellarium_crops() -> dict[str, Image.Image]:
    """Views cut from four stellarium landscape panoramas (real photos) above a plain sky gradient."""
    base = unpacked("stellarium-data") / "usr/share/stellarium/landscapes"

    def sky(W, H, horizon_row):
        y = np.arange(H, dtype=np.float32)[:, None]
        t = np.clip(y / max(1, horizon_row), 0, 1)
        top = np.array([70, 125, 195], np.float32)
        bot = np.array([185, 212, 235], np.float32)
        c = np.broadcast_to(top + (bot - top) * t[..., None], (H, W, 3)).astype(np.uint8)
        return Image.fromarray(np.ascontiguousarray(c), "RGB").convert("RGBA")

    def load_pano(name):
        d = base / name
        cp = configparser.ConfigParser(strict=False)
        cp.read(d / "landscape.ini")
        L = cp["landscape"]
        if L["type"] == "old_style":
            n = int(L["nbside"])
            ims = [Image.open(d / L[L[f"side{i}"].split(":")[0]]).convert("RGBA") for i in range(n)]
            S = Image.new("RGBA", (sum(i.width for i in ims), ims[0].height))
            x = 0
            for i in ims:
                S.paste(i, (x, 0))
                x += i.width
            top = float(L["decor_alt_angle"]) + float(L["decor_angle_shift"])
            span = float(L["decor_alt_angle"])
        else:
            S = Image.open(d / L["maptex"]).convert("RGBA")
            top = float(L["maptex_top"])
            span = top + 90.0
        return S, top, span

    out = {}
    rnd = random.Random(1)
    for name in ["garching", "guereins", "hurricane", "grossmugl"]:
        S, top, span = load_pano(name)
        W, H = S.size
        pxh, pxv = W / 360.0, H / span
        Hn = round(H * pxh / pxv)
        S = S.resize((W, Hn), Image.LANCZOS)
        p = pxh
        bottom = top - span if name != "grossmugl" else -35.0
        skytop = 60.0
        pad = round((skytop - top) * p)
        wide = Image.new("RGBA", (W * 2, Hn))
        wide.paste(S, (0, 0))
        wide.paste(S, (W, 0))
        az = rnd.uniform(0, 40)
        while az < 360:
            fov = rnd.uniform(50, 75)
            aspect = rnd.choice([4 / 3, 3 / 2, 4 / 3])
            hdeg = fov / aspect
            below = hdeg * rnd.uniform(0.38, 0.62)
            wb = max(-below, bottom)
            wt = wb + hdeg
            x0, cw = round(az * p), round(fov * p)
            y0, ch = round((skytop - wt) * p), round(hdeg * p)
            crop = sky(cw, ch, round(skytop * p) - y0)
            tex = wide.crop((x0, max(0, y0 - pad), x0 + cw, min(Hn, y0 - pad + ch)))
            crop.alpha_composite(tex, (0, max(0, pad - y0)))
            out[f"{name}_az{int(az):03d}"] = crop.convert("RGB")
            az += fov * rnd.uniform(0.75, 1.0)
    return out


class Loader:
    """Rebuilds one card record's image (upright, before scaling)."""

    def __init__(self):
        self._rcc: dict[str, dict[str, bytes]] = {}
        self._stel: dict[str, Image.Image] | None = None
        self._kpa_angle: dict[str, int] | None = None

    def kphotoalbum_angle(self, origin: str) -> int:
        """The clockwise turn kphotoalbum's demo index.xml gives a photo (stored sideways without a tag)."""
        if self._kpa_angle is None:
            idx = unpacked("kphotoalbum") / "usr/share/kphotoalbum/demo/index.xml"
            self._kpa_angle = {e.get("file"): int(e.get("angle") or 0) for e in ET.parse(idx).getroot().iter("image")}
        return self._kpa_angle[Path(origin).name]

    def __call__(self, rec: dict) -> Image.Image:
        src, origin = rec["source"], rec["origin_path"]
        root = unpacked(src)
        if src == "tuxpaint-stamps-default":
            return tux_stamp(root / origin.lstrip("/"))
        if src == "stellarium-data":
            if self._stel is None:
                self._stel = stellarium_crops()
            return self._stel[rec["file"].split("__", 1)[1][:-4]]
        if src == "gcompris-qt-data":
            rcc, key = origin.split(":", 1)
            if rcc not in self._rcc:
                self._rcc[rcc] = read_rcc(str(root / rcc.lstrip("/")))
            return ImageOps.exif_transpose(Image.open(io.BytesIO(self._rcc[rcc][key])))
        if src == "enlightenment-data":
            edj, key = origin.split(":", 1)
            f, ents = read_eet(str(root / edj.lstrip("/")))
            return ImageOps.exif_transpose(Image.open(io.BytesIO(get(f, ents[key]))))
        if src == "kphotoalbum":
            im = ImageOps.exif_transpose(Image.open(root / origin.lstrip("/")))
            a = self.kphotoalbum_angle(origin)
            return im.rotate(-a, expand=True) if a else im
        if src == "python3-scipy":
            data = (root / origin.lstrip("/")).read_bytes()
            if origin.endswith("face.dat"):
                return Image.fromarray(np.frombuffer(bz2.decompress(data), dtype=np.uint8).reshape(768, 1024, 3))
            return Image.fromarray(np.asarray(pickle.loads(data)).astype(np.uint8))
        return ImageOps.exif_transpose(Image.open(root / origin.lstrip("/")))


def original_sha(rec: dict) -> str:
    """sha256 of the file as found (for rcc/edj members: of the member's bytes)."""
    root = unpacked(rec["source"])
    origin = rec["origin_path"]
    if rec["source"] == "stellarium-data":
        return hashlib.sha256(b"".join((root / p.lstrip("/")).read_bytes() for p in origin.split(","))).hexdigest()
    if ".rcc:" in origin:
        rcc, key = origin.split(":", 1)
        return sha256_bytes(read_rcc(str(root / rcc.lstrip("/")))[key])
    if ".edj:" in origin:
        edj, key = origin.split(":", 1)
        f, ents = read_eet(str(root / edj.lstrip("/")))
        return sha256_bytes(get(f, ents[key]))
    return sha256_file(root / origin.lstrip("/"))


def rebuild() -> list[dict]:
    """Rebuild round 1's photos; one record per photo (as in sources.json, plus card_sha256_512 and
    card_match: whether the 512-px JPEG is byte-identical to the one the default model was trained on)."""
    card = json.loads(CARD.read_text())
    load = Loader()
    versions = {}
    recs, matched, mismatched = [], 0, []
    for src in sorted({r["source"] for r in card}):
        shutil.rmtree(PHOTOS / src, ignore_errors=True)
        versions[src] = deb_version(src)
    rcc_sha: dict[str, str] = {}
    for r in card:
        if versions[r["source"]] != r["package_version"]:
            raise SystemExit(f"{r['source']}: have {versions[r['source']]}, the card used {r['package_version']}")
        im = load(r)
        old, _ = encode(im, OLD_MAX_SIDE)
        if sha256_bytes(old) == r["sha256"]:
            matched += 1
        else:
            mismatched.append(r["file"])
        data, small = encode(im)
        out = PHOTOS / r["file"]
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_bytes(data)
        key = r["origin_path"]
        if key not in rcc_sha:
            rcc_sha[key] = original_sha(r)
        rotated = load.kphotoalbum_angle(r["origin_path"]) if r["source"] == "kphotoalbum" else 0
        recs.append(dict(file=r["file"], source=r["source"], license=r["license"],
                         package_version=r["package_version"], origin_path=r["origin_path"],
                         original_sha256=rcc_sha[key], sha256=sha256_bytes(data),
                         width=small.width, height=small.height, rotated_deg=rotated,
                         card_sha256_512=r["sha256"], card_match=sha256_bytes(old) == r["sha256"]))
    print(f"round 1: rebuilt {len(recs)} photos; 512-px sha256 matching the card: {matched}/{len(card)}")
    for f in mismatched:
        print("  no match:", f)
    return recs


def main() -> None:
    rebuild()


if __name__ == "__main__":
    main()
