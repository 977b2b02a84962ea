"""Auto-rotate speed and memory on large scans, every variant side by side (a benchmark, not a test).

On N generated 6000x4000 JPEG scans (24 megapixels) prints photos/s for:
  the floor: only draft-decoding the files (threads = the machine's cores);
  naive: full decode, then the network in PyTorch, one photo at a time (centre view, no vote);
  `autorotate --apply none` (the Prefect flow, once running) for each engine x vote x glance x evidence,
  with how many photos were flagged and what evidence cost per flagged photo;
then the start-up (command to first photo) of the real command line, the peak RSS of autorotate
over 1,000 and 10,000 small files (it must not grow with the archive), and the time of a re-run
over the unchanged archive (nothing re-predicted).

    .venv/bin/python benchmarks/autorotate_throughput.py [--scans 300] [--workdir /tmp/orient-bench]
        [--model default] [--engines onnxruntime-int8] [--views 3 1] [--skip-rss]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")  # offline: no telemetry errors
os.environ.setdefault("PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL", "WARNING")  # the table, not the runs' chatter

from orient_model.config import AutorotateConfig  # noqa: E402
from orient_model.imageio import load_upright, square_views  # noqa: E402
from orient_model.model.predict import Predictor  # noqa: E402
from orient_model.model.registry import load_model, resolve_model_path  # noqa: E402
from orient_model.synthetic import scene, write_scenes  # noqa: E402

CAP = AutorotateConfig().max_pixels
VARIANTS = (  # engine, vote (four turns), glance first, views (None: the model's); the first is the defaults
    ("onnxruntime-int8", True, False, None),
    ("onnxruntime-int8", True, False, 2),
    ("onnxruntime-int8", True, False, 1),
    ("onnxruntime", True, False, None),
    ("onnxruntime-int8", True, True, None),
    ("onnxruntime-int8", False, False, None),
    ("onnxruntime", False, False, None),
    ("torch", True, True, None),
    ("torch", False, False, None),
)
REPO = Path(__file__).resolve().parents[1]


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
            img = img.convert("RGB")  # the full 24-megapixel decode
        predictor.probabilities([square_views(img, size, 1)[0]])
    return len(paths) / (time.perf_counter() - start)


def floor(paths: list[Path], size: int, threads: int) -> float:
    start = time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(lambda p: load_upright(p, size, CAP), paths))
    return len(paths) / (time.perf_counter() - start)


def flow_rate(folder: Path, cfg: AutorotateConfig) -> tuple[float, dict]:
    from flows.autorotate import autorotate

    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as state:  # a fresh state folder: nothing carried over
        summary = autorotate(str(folder), cfg, state_dir=state)
    return summary["files"] / (time.perf_counter() - start), summary


PEAK_RSS = """
import sys, time
from flows.autorotate import autorotate
from orient_model.config import AutorotateConfig
from prefect.testing.utilities import prefect_test_harness
def hwm():  # VmHWM, not ru_maxrss: the latter keeps the peak of the process this one was forked from
    return next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM:"))
cfg = AutorotateConfig(model=sys.argv[3], tta=False, views=1, saliency=sys.argv[4])
with prefect_test_harness(server_startup_timeout=None):
    start = time.perf_counter()
    autorotate(sys.argv[1], cfg, state_dir=sys.argv[2])
    first, peak = time.perf_counter() - start, hwm()
    start = time.perf_counter()
    again = autorotate(sys.argv[1], cfg, state_dir=sys.argv[2])  # unchanged archive, same state
    carried = sum(again["carried_counts"].values())
    print(first, peak, time.perf_counter() - start, f"{carried} of {again['files']} carried over")
"""


def peak_rss_and_rerun(folder: Path, model: str, evidence: str = "off") -> tuple[float, float, float, str]:
    """Peak RSS (MB) and seconds of a first run, then seconds of a re-run over the unchanged archive."""
    with tempfile.TemporaryDirectory() as state:
        out = subprocess.run(
            [sys.executable, "-c", PEAK_RSS, str(folder), state, model, evidence],
            capture_output=True,
            text=True,
            check=True,
            cwd=REPO,
        ).stdout
    first, peak, again, counts = out.strip().splitlines()[-1].split(" ", 3)
    return float(first), int(peak) / 1024, float(again), counts


def startup_seconds(folder: Path, model: str, env: dict) -> float:
    """Wall time of `orient autorotate` on a one-photo archive: mostly start-up."""
    start = time.perf_counter()
    subprocess.run(
        [
            sys.executable,
            "-m",
            "flows.cli",
            "autorotate",
            str(folder),
            "--model",
            model,
            "--quiet",
            "--state-dir",
            tempfile.mkdtemp(),
        ],
        cwd=REPO,
        env=env,
        check=True,
        capture_output=True,
    )
    return time.perf_counter() - start


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--scans", type=int, default=300)
    p.add_argument("--workdir", type=Path, default=Path("/tmp/orient-bench"))
    p.add_argument("--model", default="default")
    p.add_argument("--skip-rss", action="store_true")
    p.add_argument("--engines", nargs="*", default=None, help="only the variants with these engines")
    p.add_argument("--views", nargs="*", type=int, default=None, help="only the variants with these views")
    args = p.parse_args()
    model = str(resolve_model_path(args.model))
    cfg = AutorotateConfig(model=model, threshold=None)
    paths = make_scans(args.workdir / "scans", args.scans)
    loaded = load_model(model)
    threads = os.cpu_count() or 2
    print(
        f"{len(paths)} scans of 6000x4000 JPEG; model {loaded.version} ({loaded.arch}, {loaded.input_size} px, "
        f"{loaded.views} views); {threads} cores"
    )
    rate_floor = floor(paths, loaded.input_size, threads)
    print(f"floor, draft-decode only ({threads} threads): {rate_floor:.2f} photos/s")
    rate_naive = naive(
        paths[: min(len(paths), 30)], Predictor(loaded, device="cpu", tta=False, views=1, engine="torch")
    )
    print(f"naive (full decode, PyTorch, one photo at a time): {rate_naive:.2f} photos/s")

    from prefect.settings import temporary_settings
    from prefect.testing.utilities import prefect_test_harness

    from flows.server import temporary_server_settings

    # the flow as `orient autorotate` runs it with its own temporary server
    with prefect_test_harness(server_startup_timeout=None), temporary_settings(temporary_server_settings()):
        warm = args.workdir / "warm"
        write_scenes(warm, 4, seed=1)
        print(
            f"{'engine':<18}{'views':<6}{'vote':<6}{'glance':<8}{'evidence':<10}{'photos/s':>9}{'x naive':>9}"
            f"{'floor/x':>9}"
            f"{'flagged':>9}{'evidence s/flagged':>20}"
        )
        for engine, tta, glance, views in VARIANTS:
            if args.engines and engine not in args.engines:
                continue
            if args.views and (views or loaded.views) not in args.views:
                continue
            rates = {}
            for evidence in ("gradcam", "off"):
                variant = cfg.model_copy(
                    update={
                        "engine": engine,
                        "tta": tta,
                        "glance": glance,
                        "views": views,
                        "saliency": evidence,
                    }
                )
                flow_rate(warm, variant)  # loads this variant once
                rate, summary = flow_rate(paths[0].parent, variant)
                rates[evidence] = (rate, summary["counts"]["flag"])
            for evidence, (rate, flagged) in rates.items():
                cost = ""
                if evidence != "off" and flagged:
                    extra = len(paths) / rate - len(paths) / rates["off"][0]
                    cost = f"{extra / flagged:.2f}"
                print(
                    f"{engine:<18}{views or loaded.views:<6}{'on' if tta else 'off':<6}{'on' if glance else 'off':<8}"
                    f"{evidence:<10}"
                    f"{rate:9.2f}{rate / rate_naive:9.1f}{rate_floor / rate:9.2f}{flagged:9d}{cost:>20}",
                    flush=True,
                )
        print(
            "targets (defaults: onnxruntime-int8 where calibrated, vote on, glance off, gradcam): "
            "at least 5x naive, floor/x at most 2"
        )

        one = args.workdir / "one-photo"
        write_scenes(one, 1, seed=2)
        env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_API_URL")}
        own = startup_seconds(one, model, env)
        from prefect.settings import PREFECT_API_URL

        running = startup_seconds(one, model, {**env, "PREFECT_API_URL": PREFECT_API_URL.value()})
        print(
            f"start-up, `orient autorotate` on a one-photo archive: {own:.1f} s with its own temporary Prefect "
            f"server (started while the model loads), {running:.1f} s against a running one (PREFECT_API_URL)"
        )
    if not args.skip_rss:
        for n in (1000, 10000):
            folder = args.workdir / f"small-{n}"
            if not folder.exists():
                write_scenes(folder, n, seed=n, size=(160, 120))
            first, peak, again, counts = peak_rss_and_rerun(folder, model)
            print(
                f"autorotate (--no-tta --views 1 --saliency off) on {n} small files: peak RSS {peak:.0f} MB, {first:.0f} s; "
                f"re-run over the unchanged archive {again:.1f} s ({counts})",
                flush=True,
            )


if __name__ == "__main__":
    main()
