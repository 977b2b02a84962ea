"""The demo archive: openly licensed photos that ship with installed packages, scrambled.

None of these photos is in the default model's training set, so the demo's accuracy is an
honest (if small) held-out figure.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from orient_model import orientation


@dataclass(frozen=True)
class DemoPhoto:
    name: str
    package: str
    license: str
    loader: str  # "skimage:<fn>", "sklearn:<file>" or "matplotlib:<file>"

    def load(self) -> Image.Image:
        kind, what = self.loader.split(":")
        if kind == "skimage":
            import skimage.data

            return Image.fromarray(getattr(skimage.data, what)()).convert("RGB")
        if kind == "sklearn":
            import sklearn.datasets

            return Image.open(Path(sklearn.datasets.__file__).parent / "images" / what).convert("RGB")
        import matplotlib

        return Image.open(Path(matplotlib.get_data_path()) / "sample_data" / what).convert("RGB")


DEMO_PHOTOS = (
    DemoPhoto("astronaut", "scikit-image", "public domain (NASA)", "skimage:astronaut"),
    DemoPhoto("camera", "scikit-image", "CC0 (Lav Varshney)", "skimage:camera"),
    DemoPhoto("chelsea", "scikit-image", "CC0 (Stefan van der Walt)", "skimage:chelsea"),
    DemoPhoto("coffee", "scikit-image", "CC0 (Rachel Michetti)", "skimage:coffee"),
    DemoPhoto("rocket", "scikit-image", "public domain (SpaceX)", "skimage:rocket"),
    DemoPhoto("china", "scikit-learn", "CC-BY-2.0 (danielbuechele)", "sklearn:china.jpg"),
    DemoPhoto("flower", "scikit-learn", "CC-BY-2.0 (vultilion)", "sklearn:flower.jpg"),
    DemoPhoto("grace_hopper", "matplotlib", "public domain (US Navy)", "matplotlib:grace_hopper.jpg"),
)


def _jpeg(img: Image.Image, exif_orientation: int = 1) -> bytes:
    exif = Image.Exif()
    if exif_orientation != 1:
        exif[orientation.EXIF_ORIENTATION_TAG] = exif_orientation
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=90, exif=exif.tobytes(), dpi=(300, 300))
    return buf.getvalue()


def build_demo_archive(folder: Path | str, seed: int = 7) -> dict[str, int]:
    """Write every demo photo at every rotation, in several formats, plus a few bad files.

    Returns ``{relative path: rotation_deg that makes it upright}`` and saves it as
    ``truth.json`` next to (not inside) the archive.
    """
    folder = Path(folder)
    archive = folder / "archive"
    archive.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    truth: dict[str, int] = {}
    for photo in DEMO_PHOTOS:
        upright = photo.load()
        for n, angle in enumerate(int(a) for a in rng.permutation(orientation.ROTATIONS)):
            name = f"{photo.name}_{n + 1}"
            shown = orientation.apply(upright, orientation.COUNTER_CLOCKWISE[angle])
            box = "box-1" if rng.random() < 0.5 else "box-2"
            style = int(rng.integers(0, 5))
            if style == 3:  # a scan whose EXIF tag already says how to show it
                tag = int(rng.choice([3, 6, 8]))
                stored = orientation.apply(shown, orientation.inverse(orientation.EXIF_TRANSFORMS[tag]))
                rel, data = f"{box}/{name}_tagged.jpg", _jpeg(stored, tag)
            elif style == 4:
                rel = f"{box}/{name}.png" if angle % 180 else f"{box}/{name}.tif"
                buf = io.BytesIO()
                shown.save(buf, "PNG" if rel.endswith(".png") else "TIFF", dpi=(300, 300))
                data = buf.getvalue()
            else:
                rel, data = f"{box}/{name}.jpg", _jpeg(shown)
            (archive / rel).parent.mkdir(exist_ok=True)
            (archive / rel).write_bytes(data)
            truth[rel] = angle
    good = next(rel for rel in truth if rel.endswith(".jpg"))
    (archive / "problems").mkdir(exist_ok=True)
    (archive / "problems/truncated.jpg").write_bytes((archive / good).read_bytes()[:3000])
    (archive / "problems/notes.jpg").write_text("scanner log: batch 14, operator JM\n")
    (archive / "problems/empty.jpg").write_bytes(b"")
    (folder / "truth.json").write_text(json.dumps(truth, indent=1))
    return truth
