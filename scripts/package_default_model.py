"""Package a trained model version as the shipped default (float16 weights, <= 20 MB).

    python scripts/package_default_model.py MODELS_DIR [--version V]

Re-evaluates the float16 copy on the validation split (single view and four-view voting) and
writes the figures into the shipped card, so the card describes exactly what ships.
"""

import argparse
import io
import json
import sys
from pathlib import Path

import torch
from PIL import Image

from orient_model.data import CopiesDataset
from orient_model.predict import Predictor
from orient_model.registry import DEFAULT_MODEL_DIR, load_model

MAX_BYTES = 20 * 1024 * 1024


def evaluate(model_file: Path, data_dir: Path) -> dict:
    loaded = load_model(model_file)
    results = {}
    for tta in (False, True):
        predictor = Predictor(loaded, device="cpu", tta=tta)
        val = CopiesDataset(data_dir, "val", loaded.input_size, loaded.mean, loaded.std, train=False)
        correct = 0
        for i in range(0, len(val.samples), 64):
            chunk = val.samples[i:i + 64]
            imgs = [Image.open(p).convert("RGB").resize((loaded.input_size,) * 2, Image.Resampling.BICUBIC)
                    for p, _ in chunk]
            probs = predictor.probabilities(imgs)
            correct += sum(int(p.argmax()) == label for p, (_, label) in zip(probs, chunk))
        results["val_accuracy_tta" if tta else "val_accuracy_shipped"] = correct / len(val.samples)
    return results


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("models_dir", type=Path)
    p.add_argument("--version", default=None, help="default: the newest version folder")
    args = p.parse_args()
    folder = args.models_dir / args.version if args.version else sorted(args.models_dir.iterdir())[-1]
    checkpoint = torch.load(folder / "model.pt", map_location="cpu", weights_only=True)
    checkpoint["state_dict"] = {k: v.half() if v.is_floating_point() else v
                                for k, v in checkpoint["state_dict"].items()}
    buf = io.BytesIO()
    torch.save(checkpoint, buf)
    if buf.tell() > MAX_BYTES:
        sys.exit(f"packaged model is {buf.tell() / 2**20:.1f} MB, over the 20 MB limit")
    DEFAULT_MODEL_DIR.mkdir(exist_ok=True)
    (DEFAULT_MODEL_DIR / "model.pt").write_bytes(buf.getvalue())
    card = json.loads((folder / "card.json").read_text())
    card.update(
        version=f"default-{card['version']}",
        weights_dtype="float16 (loaded as float32)",
        size_bytes=buf.tell(),
        reproduce="PHOTOS=/work/photos bash scripts/train_default_model.sh  (photos: scripts/gather_photos/)",
    )
    data_dir = Path(card["command"].split()[2]) if card.get("command", "").startswith("orient train") else None
    if data_dir and data_dir.is_dir():
        card.update(evaluate(DEFAULT_MODEL_DIR / "model.pt", data_dir))
    (DEFAULT_MODEL_DIR / "card.json").write_text(json.dumps(card, indent=2))
    print(f"shipped {folder.name} as {DEFAULT_MODEL_DIR} ({buf.tell() / 2**20:.1f} MB); "
          + ", ".join(f"{k} {v:.3f}" for k, v in card.items() if k.startswith("val_accuracy")))


if __name__ == "__main__":
    main()
