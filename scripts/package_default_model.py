"""Package a trained model version as the shipped default (float16 weights, under 30 MB).

    python scripts/package_default_model.py MODELS_DIR [--version V] [--views N]

The shipped weights are float16 (loaded as float32), so the card must describe those, not the
float32 model that was trained: this script calibrates the shipped copy again on the training
set's calibration photos (temperature and risk-coverage curve per way of looking) and judges it
again on the test photos, then writes the card next to it. It also writes the 8-bit network
the CPU runs by default (quantization ranges from training copies), calibrated and judged on its
own on the same photos (``int8`` in the card; see orient_model/model/int8.py).
"""

from __future__ import annotations

import argparse
import io
import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from orient_model.config import MAX_ERROR  # noqa: E402
from orient_model.model.card import CARD_FILE, read_card, training_sources, write_card  # noqa: E402
from orient_model.model.evaluate import calibrate_and_test, lookings_for  # noqa: E402
from orient_model.model.int8 import add_int8  # noqa: E402
from orient_model.model.predict import Predictor  # noqa: E402
from orient_model.model.promotion import quality_gate  # noqa: E402
from orient_model.model.registry import DEFAULT_MODEL_DIR, load_model  # noqa: E402
from orient_model.training_set import whole_photos  # noqa: E402

MAX_BYTES = 30 * 1024 * 1024


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("models_dir", type=Path)
    p.add_argument("--version", default=None, help="default: the newest version folder")
    p.add_argument("--max-error", type=float, default=MAX_ERROR)
    p.add_argument(
        "--views",
        type=int,
        choices=(1, 2, 3),
        default=None,
        help="the square views it looks with by default, each at four turns (default: as trained); "
        "every other way of looking is calibrated too",
    )
    args = p.parse_args()
    folder = (
        args.models_dir / args.version
        if args.version
        else sorted(f for f in args.models_dir.iterdir() if (f / "card.json").is_file())[-1]
    )
    checkpoint = torch.load(folder / "model.pt", map_location="cpu", weights_only=True)
    if args.views:
        checkpoint["views"] = args.views
    checkpoint["state_dict"] = {
        k: v.half() if v.is_floating_point() else v for k, v in checkpoint["state_dict"].items()
    }
    buf = io.BytesIO()
    torch.save(checkpoint, buf)
    if buf.tell() > MAX_BYTES:
        sys.exit(f"packaged model is {buf.tell() / 2**20:.1f} MB, over the {MAX_BYTES // 2**20} MB limit")
    DEFAULT_MODEL_DIR.mkdir(exist_ok=True)
    shipped_card = DEFAULT_MODEL_DIR / "card.json"
    # Benchmark figures added to the card by hand (the learning curve) outlive a repackaging.
    learning_curve = (
        json.loads(shipped_card.read_text()).get("learning_curve") if shipped_card.is_file() else None
    )
    (DEFAULT_MODEL_DIR / "model.pt").write_bytes(buf.getvalue())
    for stale in ("model.onnx", "model.int8.onnx"):
        (DEFAULT_MODEL_DIR / stale).unlink(missing_ok=True)

    card = read_card(folder / CARD_FILE).as_dict()
    card["training_sources"] = training_sources(card, folder)  # written beside the shipped card again
    card.pop("training_sources_file", None)
    shipped = load_model(DEFAULT_MODEL_DIR / "model.pt")
    data_dir = card["command"].split()[2]  # "orient train DATA_DIR ..."
    photos = whole_photos(data_dir)
    # The float network's own figures: ONNX Runtime in float32 (equal to PyTorch within 1e-3).
    predictor = Predictor(shipped, device="cpu", engine="onnxruntime")
    calibration, test = calibrate_and_test(predictor, photos, lookings_for(shipped.views), args.max_error)
    int8 = add_int8(shipped, data_dir, photos, args.max_error)
    card.update(
        version=f"default-{card['version']}",
        views=shipped.views,
        calibration=calibration,
        test=test,
        int8=int8,
        weights_dtype="float16 (loaded as float32); calibration and test figures are the shipped weights'",
        size_bytes=buf.tell(),
        reproduce="PHOTOS=/work/photos bash scripts/train_default_model.sh  (photos: scripts/gather_photos/)",
    )
    if learning_curve:
        card["learning_curve"] = learning_curve
    card["quality_gate"] = quality_gate(card)
    write_card(DEFAULT_MODEL_DIR, card)
    print(f"shipped {folder.name} as {DEFAULT_MODEL_DIR} ({buf.tell() / 2**20:.1f} MB); own test photos:")
    for name, figures in (("float", test), ("8-bit", int8["test"])):
        default = figures[f"views={shipped.views},tta=True"]
        print(
            f"  {name}: accuracy {default['accuracy']:.3f}, coverage {default['coverage']:.2f} at threshold "
            f"{default['threshold']:.4f}, wrong automatic {default['wrong_automatic']}/{default['automatic']}"
        )


if __name__ == "__main__":
    main()
