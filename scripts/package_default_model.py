"""Package a trained model version as the shipped default (float16 weights, <= 20 MB).

    python scripts/package_default_model.py MODELS_DIR [--version V]

Re-evaluates the float16 copy on the validation split, single view and with four-view voting,
fits the voting temperature when the checkpoint predates it, and writes the figures into the
shipped card, so the card describes exactly what ships.
"""

import argparse
import io
import json
import sys
from pathlib import Path

import torch
from torch.utils.data import DataLoader

from orient_model.model.calibration import fit_temperature
from orient_model.model.data import CopiesDataset
from orient_model.model.registry import DEFAULT_MODEL_DIR, load_model
from orient_model.model.train import evaluate, evaluate_voted, validation_metrics

MAX_BYTES = 20 * 1024 * 1024


def evaluate_shipped(model_file: Path, data_dir: Path) -> tuple[float, dict]:
    loaded = load_model(model_file)
    val = CopiesDataset(data_dir, "val", loaded.input_size, loaded.mean, loaded.std, train=False)
    loader = DataLoader(val, batch_size=64, num_workers=2)
    single = evaluate(loaded.model, loader, torch.nn.CrossEntropyLoss(), torch.device("cpu"))
    voted = evaluate_voted(loaded.model, loader, torch.device("cpu"))
    tta_temperature = fit_temperature(voted.logits, voted.labels)
    figures = {"val_accuracy_shipped": validation_metrics(single, loaded.temperature)["val_accuracy"]}
    figures.update({f"{k}_tta": v for k, v in validation_metrics(voted, tta_temperature).items()
                    if k in ("val_accuracy", "val_nll", "val_nll_before_calibration", "ece",
                             "ece_before_calibration", "confusion_matrix")})
    return tta_temperature, figures


def save(checkpoint: dict) -> bytes:
    buf = io.BytesIO()
    torch.save(checkpoint, buf)
    if buf.tell() > MAX_BYTES:
        sys.exit(f"packaged model is {buf.tell() / 2**20:.1f} MB, over the 20 MB limit")
    (DEFAULT_MODEL_DIR / "model.pt").write_bytes(buf.getvalue())
    return buf.getvalue()


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("models_dir", type=Path)
    p.add_argument("--version", default=None, help="default: the newest version folder")
    args = p.parse_args()
    folder = args.models_dir / args.version if args.version else sorted(args.models_dir.iterdir())[-1]
    checkpoint = torch.load(folder / "model.pt", map_location="cpu", weights_only=True)
    checkpoint["state_dict"] = {k: v.half() if v.is_floating_point() else v
                                for k, v in checkpoint["state_dict"].items()}
    DEFAULT_MODEL_DIR.mkdir(exist_ok=True)
    save(checkpoint)
    card = json.loads((folder / "card.json").read_text())
    data_dir = Path(card["command"].split()[2])  # "orient train DATA_DIR ..."
    tta_temperature, figures = evaluate_shipped(DEFAULT_MODEL_DIR / "model.pt", data_dir)
    checkpoint["tta_temperature"] = tta_temperature
    size = len(save(checkpoint))
    card.update(
        figures,
        version=f"default-{card['version']}",
        tta_temperature=tta_temperature,
        weights_dtype="float16 (loaded as float32)",
        size_bytes=size,
        reproduce="PHOTOS=/work/photos bash scripts/train_default_model.sh  (photos: scripts/gather_photos/)",
    )
    (DEFAULT_MODEL_DIR / "card.json").write_text(json.dumps(card, indent=2))
    print(f"shipped {folder.name} as {DEFAULT_MODEL_DIR} ({size / 2**20:.1f} MB): "
          + ", ".join(f"{k} {v:.3f}" for k, v in card.items() if k.startswith(("val_accuracy", "ece", "val_nll"))))


if __name__ == "__main__":
    main()
