"""Training throughput of the default architecture on this machine (a benchmark, not a test).

Prints images/s for (1) bare optimisation steps on random batches and (2) the real training
loop (data loading, augmentation, AMP on a GPU) over generated training copies, and (3) the
validation an epoch costs with frozen early stages: the whole network on every validation copy,
against the later stages on features cached once (with ``--data``, a real training set's copies).

    .venv/bin/python benchmarks/train_throughput.py [--input-size 224] [--steps 20] [--device auto]
        [--data DIR]
"""

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from orient_model.config import TrainConfig, TrainingSetConfig
from orient_model.model.architectures import ARCHS, build_model, split_stages
from orient_model.model.device import resolve_device
from orient_model.model.feature_cache import CachedBatches, write_cache
from orient_model.model.train import evaluate, fit, load_data
from orient_model.synthetic import write_scenes
from orient_model.training_set import find_photos, process_source


def bare_steps(arch: str, size: int, batch: int, steps: int, device: torch.device) -> float:
    model = build_model(arch, weights="none").to(device).to(memory_format=torch.channels_last).train()
    opt = torch.optim.AdamW(model.parameters(), 1e-3)
    scaler = torch.amp.GradScaler(device.type, enabled=device.type == "cuda")
    x = torch.randn(batch, 3, size, size, device=device).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 4, (batch,), device=device)
    for i in range(steps + 3):
        if i == 3:  # warm-up done
            if device.type == "cuda":
                torch.cuda.synchronize()
            start = time.perf_counter()
        with torch.autocast(device.type, enabled=device.type == "cuda"):
            loss = torch.nn.functional.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return steps * batch / (time.perf_counter() - start)


def validation_epoch(data: Path, cfg: TrainConfig, device: torch.device) -> None:
    """Seconds of validation an epoch: the whole network, against the later stages on cached features."""
    spec = ARCHS[cfg.arch]
    _, val = load_data(data, cfg, cfg.input_size or spec.input_size, spec.mean, spec.std)
    model = build_model(cfg.arch, weights=cfg.weights).to(device).to(memory_format=torch.channels_last)
    early, late = split_stages(model, cfg.frozen_stages)
    loss = torch.nn.CrossEntropyLoss()
    start = time.perf_counter()
    whole = evaluate(model, val, loss, device)
    whole_s, start = time.perf_counter() - start, time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        features = write_cache(Path(tmp), {}, early, val, 1, device, dtype=np.float32)
        cache_s, start = time.perf_counter() - start, time.perf_counter()
        cached = evaluate(late, CachedBatches(features, val.batch_size), loss, device)
        cached_s = time.perf_counter() - start
    same = whole.accuracy == cached.accuracy and abs(whole.loss - cached.loss) < 1e-5
    print(
        f"validation, {len(val.dataset)} copies: whole network {whole_s:.1f} s an epoch; "
        f"cached features {cached_s:.1f} s an epoch after {cache_s:.1f} s once "
        f"({features.features.nbytes / 1e6:.0f} MB); same accuracy and loss: {same}"
    )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--arch", default="efficientnet_lite0")
    p.add_argument("--input-size", type=int, default=None, help="default: the architecture's")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--device", default="auto")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--data", type=Path, help="a training set (make-training-set) to time validation on")
    args = p.parse_args()
    device = resolve_device(args.device)
    size = args.input_size or ARCHS[args.arch].input_size
    print(
        f"device {device}, torch threads {torch.get_num_threads()}, {args.arch} at {size} px, batch {args.batch_size}"
    )
    print(
        f"bare training steps: {bare_steps(args.arch, size, args.batch_size, args.steps, device):.1f} images/s"
    )

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        write_scenes(tmp / "src", 60, seed=0)
        cfg = TrainingSetConfig(copy_size=256, val_fraction=0.2)
        for path in find_photos([tmp / "src"]):
            process_source(path, tmp / "data", cfg)
        train_cfg = TrainConfig(
            arch=args.arch,
            weights="none",
            input_size=size,
            epochs=1,
            batch_size=args.batch_size,
            device=args.device,
            workers=args.workers,
            max_steps_per_epoch=args.steps,
        )
        result = fit(tmp / "data", train_cfg)
        print(
            f"training loop with data loading and augmentation: "
            f"{result.history[0]['images_per_s']:.1f} images/s"
        )
        weights = "package" if args.data else "none"
        validation_epoch(args.data or tmp / "data", train_cfg.model_copy(update={"weights": weights}), device)


if __name__ == "__main__":
    main()
