"""Which network, at which input size: held-out accuracy against CPU speed, side by side.

    python benchmarks/backbones.py DATA_DIR [--candidates efficientnet_lite0:160 efficientnet_lite0:224 ...]

Each candidate is trained with the same recipe (first stages frozen, later stages trained on
cached features) on the same training photos, calibrated on the same calibration photos and
judged on the same test photos; the speed is photos per second for the full default way of
looking (3 views x 4 quarter turns), PyTorch on this machine's CPU threads.
"""

from __future__ import annotations

import argparse
import time

import torch
from PIL import Image
from training_runs import cpu_recipe, figure_line, train_and_judge

from orient_model.model.predict import Predictor


def photos_per_second(predictor: Predictor, n: int = 32) -> float:
    photos = [Image.new("RGB", (640, 480), (i * 7 % 255, 90, 160)) for i in range(n)]
    predictor.probabilities(photos[:4])
    start = time.perf_counter()
    for i in range(0, n, 8):
        predictor.probabilities(photos[i : i + 8])
    return n / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data_dir")
    parser.add_argument(
        "--candidates",
        nargs="+",
        default=[
            "efficientnet_lite0:160",
            "efficientnet_lite0:224",
            "efficientnet_lite2:224",
            "efficientnet_lite2:260",
        ],
    )
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--cache-passes", type=int, default=1)
    parser.add_argument("--n-train", type=int, default=0, help="training photos (0: all)")
    parser.add_argument("--max-judged", type=int, default=0, help="calibration and test photos each (0: all)")
    args = parser.parse_args()
    print(
        f"backbones: {torch.get_num_threads()} CPU threads; freeze early, {args.epochs} epochs, "
        f"{args.cache_passes} cached pass(es)"
    )
    for candidate in args.candidates:
        arch, size = candidate.split(":")
        cfg = cpu_recipe(arch, int(size), args.epochs, args.cache_passes)
        run = train_and_judge(
            args.data_dir,
            cfg,
            args.n_train or None,
            log=lambda line: None,
            max_judged=args.max_judged or None,
        )
        speed = photos_per_second(Predictor(run["loaded"], device="cpu"))
        print(f"{figure_line(candidate, run)}  | {speed:.1f} photos/s", flush=True)


if __name__ == "__main__":
    main()
