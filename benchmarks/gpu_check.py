"""The GPU path, checked in one sitting on one CUDA GPU (a benchmark, not a test).

Prints one table: training steps/s of the shipped recipe's network with mixed precision (AMP),
decoding 24-megapixel scans on the CPU (Pillow, reduced-size) against on the GPU (torchvision's
``decode_jpeg`` on CUDA), network passes/s and photos/s of the shipped model on the GPU, how far
the GPU's probabilities are from the CPU engine's on the same photos, the decode share of a
photo's time, the peak GPU memory, and `orient autorotate --device cuda` end to end on the scans.
On a machine without a CUDA GPU it says so and exits 0. Meant to finish in under 8 minutes.

    .venv/bin/python benchmarks/gpu_check.py [--scans 64] [--steps 300] [--workdir /tmp/orient-gpu]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")

from autorotate_throughput import make_scans  # noqa: E402  (the throughput benchmark's 24 MP scans)

from orient_model.imageio import load_upright  # noqa: E402
from orient_model.model.architectures import build_model  # noqa: E402
from orient_model.model.predict import Predictor  # noqa: E402
from orient_model.model.registry import load_model  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def amp_training(steps: int, size: int = 224, batch: int = 64) -> dict:
    """The shipped recipe's network trained ``steps`` steps with AMP on random batches."""
    model = build_model("efficientnet_lite0", weights="package").cuda().to(memory_format=torch.channels_last)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    scaler = torch.amp.GradScaler("cuda")
    x = torch.randn(batch, 3, size, size, device="cuda").to(memory_format=torch.channels_last)
    y = torch.randint(0, 4, (batch,), device="cuda")
    torch.cuda.reset_peak_memory_stats()
    for step in range(steps + 10):  # 10 to warm up
        if step == 10:
            torch.cuda.synchronize()
            start = time.perf_counter()
        with torch.autocast("cuda", dtype=torch.float16):
            loss = torch.nn.functional.cross_entropy(model(x), y)
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
    torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    return {"steps/s": steps / seconds, "images/s": steps * batch / seconds, "peak GB": _peak_gb()}


def decode_times(paths: list[Path], side: int) -> dict:
    """Seconds a scan to decode: Pillow at reduced size on the CPU, torchvision on the GPU."""
    from torchvision.io import decode_jpeg, read_file

    start = time.perf_counter()
    for p in paths:
        load_upright(p, side, 250_000_000)
    cpu = (time.perf_counter() - start) / len(paths)
    data = [read_file(str(p)) for p in paths]
    decode_jpeg(data[:2], device="cuda")  # warm up
    torch.cuda.synchronize()
    start = time.perf_counter()
    for i in range(0, len(data), 16):
        decode_jpeg(data[i : i + 16], device="cuda")
    torch.cuda.synchronize()
    return {"cpu s/scan": cpu, "gpu s/scan": (time.perf_counter() - start) / len(paths)}


def prediction(paths: list[Path]) -> dict:
    """The shipped model on the GPU against the CPU engine, on the same decoded photos."""
    loaded = load_model("default")
    gpu = Predictor(loaded, device="cuda")
    photos = [load_upright(p, gpu.decode_size, 250_000_000) for p in paths]
    gpu.probabilities(photos[:4])  # warm up
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    on_gpu = gpu.probabilities(photos)
    torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    passes = len(photos) * gpu.looking.views * 4
    on_cpu = Predictor(load_model("default"), device="cpu", engine="onnxruntime").probabilities(photos[:16])
    return {
        "passes/s": passes / seconds,
        "photos/s": len(photos) / seconds,
        "max |p_gpu - p_cpu|": float(np.abs(on_gpu[:16] - on_cpu).max()),
        "peak GB": _peak_gb(),
    }


def command_line(folder: Path) -> dict:
    """`orient autorotate --device cuda` on the scans, end to end (report only)."""
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "flows.cli", "autorotate", str(folder), "--device", "cuda", "--json"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=400,
    )
    seconds = time.perf_counter() - start
    return {
        "exit": done.returncode,
        "seconds": seconds,
        "photos/s": len(list(folder.glob("*.jpg"))) / seconds,
    }


def _peak_gb() -> float:
    return torch.cuda.max_memory_allocated() / 2**30


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scans", type=int, default=64)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "orient-gpu")
    args = parser.parse_args()
    if not torch.cuda.is_available():
        print("no CUDA GPU on this machine: nothing to check (the GPU path runs where one is)")
        return 0
    print(f"device: {torch.cuda.get_device_name(0)}, torch {torch.__version__}")
    paths = make_scans(args.workdir / "scans", args.scans)
    train = amp_training(args.steps)
    decode = decode_times(paths[:32], 224)
    predict = prediction(paths)
    cli = command_line(args.workdir / "scans")
    share = decode["cpu s/scan"] / (decode["cpu s/scan"] + 1 / predict["photos/s"])
    rows = [
        (
            "training, AMP (lite0, 224 px, batch 64)",
            f"{train['steps/s']:.1f} steps/s",
            f"{train['images/s']:.0f} images/s",
            f"{train['peak GB']:.2f} GB",
        ),
        (
            "decode a 24 MP scan: CPU reduced-size / GPU",
            f"{decode['cpu s/scan'] * 1000:.0f} ms",
            f"{decode['gpu s/scan'] * 1000:.0f} ms",
            "",
        ),
        (
            "prediction, shipped model (12 passes a photo)",
            f"{predict['passes/s']:.0f} passes/s",
            f"{predict['photos/s']:.1f} photos/s",
            f"{predict['peak GB']:.2f} GB",
        ),
        ("GPU against the CPU engine", f"max diff {predict['max |p_gpu - p_cpu|']:.1e}", "", ""),
        ("decode share of a photo (CPU decode)", f"{share:.0%}", "", ""),
        (
            "orient autorotate --device cuda",
            f"exit {cli['exit']}",
            f"{cli['photos/s']:.1f} photos/s",
            f"{cli['seconds']:.0f} s",
        ),
    ]
    width = max(len(r[0]) for r in rows)
    for row in rows:
        print(f"{row[0]:<{width}}  {row[1]:>18}  {row[2]:>18}  {row[3]:>9}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
