"""Training throughput of the default architecture on this machine (a benchmark, not a test).

Prints images/s for (1) bare optimisation steps on random batches and (2) the real training
loop (data loading, augmentation, AMP on a GPU) over generated training copies.

    .venv/bin/python benchmarks/train_throughput.py [--input-size 224] [--steps 20] [--device auto]
"""

import argparse
import tempfile
import time
from pathlib import Path

import torch

from orient_model.config import TrainConfig, TrainingSetConfig
from orient_model.model.architectures import ARCHS, build_model
from orient_model.model.device import resolve_device
from orient_model.model.train import fit
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


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--arch", default="efficientnet_lite0")
    p.add_argument("--input-size", type=int, default=None, help="default: the architecture's")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--device", default="auto")
    p.add_argument("--workers", type=int, default=2)
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


if __name__ == "__main__":
    main()
