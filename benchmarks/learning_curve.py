"""How accuracy grows with training photos: one recipe, 30 / 100 / 300 / 1000 / all photos.

    python benchmarks/learning_curve.py DATA_DIR [--sizes 30 100 300 1000 0] [--epochs 4]

DATA_DIR is a training set made by ``orient make-training-set`` (with --provenance, so photos
carry their kinds). Every run is judged on the same held-out test photos (whole photos, all four
orientations), broken down by kind; "coverage" and "wrong auto" are at the certified threshold
for at most 1% error (fitted on the same calibration photos for every run). Prints one line per
size; a size of 0 means all training photos.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from training_runs import cpu_recipe, figure_line, train_and_judge


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data_dir", type=Path)
    parser.add_argument("--sizes", type=int, nargs="+", default=[30, 100, 300, 1000, 0])
    parser.add_argument("--arch", default="efficientnet_lite0")
    parser.add_argument("--input-size", type=int, default=224)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--cache-passes", type=int, default=2)
    parser.add_argument("--max-judged", type=int, default=0, help="calibration and test photos each (0: all)")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    cfg = cpu_recipe(args.arch, args.input_size, args.epochs, args.cache_passes)
    rows = []
    print(
        f"learning curve: {args.arch} at {args.input_size} px, freeze early, {args.epochs} epochs, "
        f"{args.cache_passes} cached passes"
    )
    for size in args.sizes:
        run = train_and_judge(
            args.data_dir, cfg, size or None, log=lambda line: None, max_judged=args.max_judged or None
        )
        print(figure_line(f"{size or 'all'} photos", run), flush=True)
        rows.append({"photos": run["photos"], "train_seconds": run["train_seconds"], **run["figures"]})
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
