"""The review page with a big queue (a benchmark, not a test): an archive of N small photos, all
flagged by one real run whose judgements are drawn at random, served by the real app and opened
in headless chromium.

Prints the time to build the queue, the size and time of the page's listing, the time until the
page shows its first photo, and the time a step to the next photo takes (arrow key, 20 steps).

    .venv/bin/python benchmarks/review_queue.py [--photos 20000]
"""

from __future__ import annotations

import argparse
import socket
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from flows.review import MAX_PAGE, create_app  # noqa: E402
from orient_model.review import ReviewQueue  # noqa: E402
from tests.test_review import judged_run  # noqa: E402  (a real run with given judgements)


def make_archive(root: Path, n: int) -> dict:
    rng = np.random.default_rng(0)
    probs = {}
    for i in range(n):
        rel = f"box-{i // 1000:03d}/scan-{i:06d}.jpg"
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (32, 24), tuple(int(c) for c in rng.integers(0, 255, 3))).save(
            root / rel, quality=80
        )
        p = rng.dirichlet([1, 1, 1, 1])
        probs[rel] = tuple(float(x) for x in 0.85 * p / p.sum() + 0.0375)  # all below 0.9: flagged
    return probs


def serve(app) -> tuple[str, object]:
    import uvicorn

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    threading.Thread(target=server.run, daemon=True).start()
    while not server.started:
        time.sleep(0.05)
    return f"http://127.0.0.1:{port}", server


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--photos", type=int, default=20_000)
    args = p.parse_args()
    from fastapi.testclient import TestClient
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory() as tmp:
        root, state = Path(tmp) / "archive", Path(tmp) / "state"
        start = time.perf_counter()
        probs = make_archive(root, args.photos)
        judged_run(root, state, probs=probs)
        print(f"{args.photos} photos written and judged in {time.perf_counter() - start:.0f} s")
        start = time.perf_counter()
        items = ReviewQueue(root, state).items()
        print(f"queue built: {len(items)} items in {time.perf_counter() - start:.1f} s")

        app = create_app(root, "bench", state)
        http = TestClient(app, base_url="http://127.0.0.1")
        http.get("/api/state")  # the queue is built once and kept for 30 s
        for query in ({}, {"limit": MAX_PAGE}):
            start = time.perf_counter()
            listing = http.get("/api/state", params=query)
            data = listing.json()
            print(
                f"listing {query or '(page default)'}: {len(data['items'])} of {data.get('matching', '?')} "
                f"items, {len(listing.content) / 1e6:.1f} MB in {time.perf_counter() - start:.2f} s"
            )

        url, server = serve(app)
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox"])
            page = browser.new_page(viewport={"width": 1280, "height": 800})
            start = time.perf_counter()
            page.goto(url)
            page.wait_for_selector("#path bdi")
            print(f"page shows its first photo after {time.perf_counter() - start:.2f} s")
            first = page.inner_text("#path")
            start = time.perf_counter()
            for _ in range(20):
                before = page.inner_text("#path")
                page.keyboard.press("ArrowDown")
                page.wait_for_function("b => document.querySelector('#path').innerText !== b", arg=before)
            step = (time.perf_counter() - start) / 20
            print(
                f"a step to the next photo: {1000 * step:.0f} ms (from {first} to {page.inner_text('#path')})"
            )
            browser.close()
        server.should_exit = True


if __name__ == "__main__":
    main()
