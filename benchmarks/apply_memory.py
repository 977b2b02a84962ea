"""Peak memory of rotating the largest JPEG an archive may hold (a benchmark, not a test).

Writes a JPEG of about ``--megapixels`` (default: the 250-megapixel cap less a little), then
turns it 90 degrees through the archive's safe writer (read, jpegtran, coefficient check, backup,
journal, atomic replace) in a child process, and prints the child's peak RSS and that of the
jpegtran processes it ran. Verification compares DCT coefficients (jpegtran's own arrays), never
decoded pixels, so Python's share stays near a few copies of the file's bytes.

    .venv/bin/python benchmarks/apply_memory.py [--megapixels 240]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

MAKE = """
import sys
import numpy as np
from PIL import Image
root, width, height = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
tile = (np.random.default_rng(0).random((256, 256, 3)) * 255).astype(np.uint8)
canvas = np.tile(tile, (height // 256 + 1, width // 256 + 1, 1))[:height, :width]
Image.fromarray(canvas).save(f"{root}/big.jpg", quality=85)
"""

CHILD = """
import resource, sys
from orient_model.files import sha256_file
from orient_model.archive.changes import Archive
root = sys.argv[1]
with Archive(root) as archive:
    result = archive.apply("big.jpg", 90, "lossless", "bench", sha256_file(f"{root}/big.jpg"))
own = next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM:"))
print(result.method, own, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
"""


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--megapixels", type=float, default=240)
    args = p.parse_args()
    side = int((args.megapixels * 1e6 / 1.5) ** 0.5) // 16 * 16
    width, height = int(side * 1.5) // 16 * 16, side
    with tempfile.TemporaryDirectory() as root:
        # Made in its own process: a child's peak RSS (ru_maxrss) counts what it inherited at fork,
        # so the writer (and its jpegtran children) must not start from one that held the canvas.
        subprocess.run([sys.executable, "-c", MAKE, root, str(width), str(height)], check=True)
        size_mb = (Path(root) / "big.jpg").stat().st_size / 1e6
        start = time.perf_counter()
        out = subprocess.run(
            [sys.executable, "-c", CHILD, root], cwd=REPO, capture_output=True, text=True, check=True
        ).stdout.split()
        seconds = time.perf_counter() - start
    method, own, children = out[0], int(out[1]) / 1024, int(out[2]) / 1024
    print(
        f"{width}x{height} JPEG ({width * height / 1e6:.0f} megapixels, {size_mb:.0f} MB): turned {method} in "
        f"{seconds:.0f} s; peak RSS {own:.0f} MB in the writer, {children:.0f} MB in jpegtran"
    )


if __name__ == "__main__":
    main()
