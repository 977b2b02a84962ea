"""Auto-rotate speed and memory on large scans (a benchmark, not a test).

On N generated 6000x4000 JPEG scans prints photos/s for:
  (a) a naive pipeline: full decode, resize, predict one photo at a time;
  (b) `autorotate --apply none` (the Prefect flow, default config, server already warm);
  the floor: only draft-decoding the same files (sequential, and with the flow's thread count);
and the peak RSS of autorotate on 60 and on 600 small files (it must not grow with the archive).

    .venv/bin/python benchmarks/autorotate_throughput.py [--scans 60] [--workdir /tmp/orient-bench]
"""

import argparse
import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image

from orient_model.config import AutorotateConfig
from orient_model.imageio import center_square, load_upright
from orient_model.model.predict import Predictor
from orient_model.model.registry import load_model
from orient_model.synthetic import scene, write_scenes

CAP = AutorotateConfig().max_pixels


def make_scans(folder: Path, n: int) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    paths = []
    for i in range(n):
        path = folder / f"scan_{i:03d}.jpg"
        if not path.exists():
            big = scene(rng, 750, 500).resize((6000, 4000), Image.Resampling.BICUBIC)
            grain = Image.effect_noise((6000, 4000), 12).convert("RGB")
            Image.blend(big, grain, 0.08).rotate(90 * (i % 4), expand=True).save(path, quality=90)
        paths.append(path)
    return paths


def naive(paths: list[Path], predictor: Predictor) -> float:
    size = predictor.loaded.input_size
    start = time.perf_counter()
    for path in paths:
        with Image.open(path) as img:
            img = img.convert("RGB")  # full 24-megapixel decode
        predictor.probabilities([center_square(img, size)])
    return len(paths) / (time.perf_counter() - start)


def floor(paths: list[Path], size: int, threads: int) -> float:
    start = time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(lambda p: load_upright(p, size, CAP), paths))
    return len(paths) / (time.perf_counter() - start)


def flow_rate(folder: Path, cfg: AutorotateConfig) -> tuple[float, dict]:
    from flows.autorotate import autorotate

    start = time.perf_counter()
    summary = autorotate(str(folder), cfg, report=str(folder.parent / f"{folder.name}-report.parquet"))
    return summary["files"] / (time.perf_counter() - start), summary


PEAK_RSS = """
import resource, sys
from flows.autorotate import autorotate
from orient_model.config import AutorotateConfig
autorotate(sys.argv[1], AutorotateConfig(), report=sys.argv[2])
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


def peak_rss_mb(folder: Path) -> float:
    env = {**os.environ, "PREFECT_LOGGING_LEVEL": "WARNING"}
    out = subprocess.run([sys.executable, "-c", PEAK_RSS, str(folder), str(folder) + "-report.parquet"],
                         capture_output=True, text=True, env=env, check=True).stdout
    return int(out.strip().splitlines()[-1]) / 1024


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--scans", type=int, default=60)
    p.add_argument("--workdir", type=Path, default=Path("/tmp/orient-bench"))
    p.add_argument("--model", default="default")
    p.add_argument("--skip-rss", action="store_true")
    args = p.parse_args()
    cfg = AutorotateConfig(model=args.model)
    paths = make_scans(args.workdir / "scans", args.scans)
    loaded = load_model(cfg.model)
    predictor = Predictor(loaded, device=cfg.device, tta=cfg.tta)
    size = loaded.input_size
    print(f"{len(paths)} scans of 6000x4000 JPEG; model {loaded.version} ({loaded.arch}, {size} px), "
          f"tta={cfg.tta}, batch {cfg.batch_size}, device {predictor.device}")

    floor_seq = floor(paths, size, 1)
    floor_par = floor(paths, size, cfg.read_workers)
    print(f"floor, draft-decode only: {floor_seq:.2f} photos/s (1 thread), "
          f"{floor_par:.2f} photos/s ({cfg.read_workers} threads)")
    rate_naive = naive(paths[: min(len(paths), 20)], predictor)
    print(f"(a) naive (full decode, one at a time): {rate_naive:.2f} photos/s")

    warm = args.workdir / "warm"
    write_scenes(warm, 4, seed=1)
    flow_rate(warm, cfg)  # starts Prefect's temporary server and loads the model once
    rate_flow, summary = flow_rate(paths[0].parent, cfg)
    print(f"(b) autorotate --apply none: {rate_flow:.2f} photos/s "
          f"(actions: {json.dumps(summary['counts'])})")
    print(f"(b)/(a) = {rate_flow / rate_naive:.1f}x faster than naive (target >= 5x); "
          f"floor/(b) = {floor_seq / rate_flow:.2f} (1-thread floor), {floor_par / rate_flow:.2f} "
          f"({cfg.read_workers}-thread floor) (target <= 2)")
    for label, variant in (("--no-tta", dict(tta=False)), ("--saliency off", dict(saliency="off")),
                           ("--no-tta --saliency off", dict(tta=False, saliency="off"))):
        flow_rate(warm, cfg.model_copy(update=variant))  # load this variant once
        rate, _ = flow_rate(paths[0].parent, cfg.model_copy(update=variant))
        print(f"(b) with {label}: {rate:.2f} photos/s ({rate / rate_naive:.1f}x naive, "
              f"{floor_seq / rate:.2f}x the 1-thread floor)")

    if not args.skip_rss:
        for n in (60, 600):
            folder = args.workdir / f"small-{n}"
            if not folder.exists():
                write_scenes(folder, n, seed=n, size=(640, 480))
            print(f"peak RSS, autorotate on {n} small files: {peak_rss_mb(folder):.0f} MB")


if __name__ == "__main__":
    main()
