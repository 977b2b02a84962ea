"""Crash-and-resume drill for `orient autorotate --apply lossless`: kill -9, resume, check, undo.

Builds an archive of synthetic scanned photos (JPEG at MCU-aligned and odd sizes, baseline and
progressive, some with an EXIF Orientation tag; a few PNG and TIFF), records every file's hash,
then for each drill run:

1. starts `orient autorotate ARCHIVE --apply lossless --threshold 0` (every non-upright
   prediction becomes a rotation) and kills its
   whole process group with SIGKILL at a random moment, mostly while it is writing files
   (a random delay after its first journal row) and sometimes at any moment after start;
2. runs the same command again to completion;
3. checks every file: byte-identical to its original, or decodes and, as displayed, is the
   original as displayed turned by the journal's rotation (JPEG within rotate.py's tolerance)
   with the journal's sha256_after; none missing; none rotated twice (at most one 'done'
   change per path, made from the original bytes);
4. undoes the final run by its report (which covers the killed runs it finished; a killed run
   that had already written its own report is undone by that report) and checks that
   every file is byte-identical to its original again, which also readies the next drill run.

Prints one summary line; exits 1 if anything was corrupt, lost, double-rotated or not restored.

    .venv/bin/python benchmarks/crash_resume.py --runs 2 --photos 60 --workdir /tmp/crash-drill
"""

from __future__ import annotations

import argparse
import hashlib
import io
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from orient_model.archive.audit import (  # noqa: E402
    archive_contents,
    displayed_rotation_problem,  # noqa: E402
    read_journal,
)
from orient_model.synthetic import scene, write_scenes  # noqa: E402

SIZES = [(320, 240), (256, 192), (480, 320), (301, 227), (250, 187), (333, 250)]  # aligned, odd


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# --------------------------------------------------------------------------- archive


def make_archive(root: Path, n: int, seed: int) -> dict[str, bytes]:
    rng = np.random.default_rng(seed)
    originals: dict[str, bytes] = {}
    for i in range(n):
        w, h = SIZES[int(rng.integers(len(SIZES)))]
        img = scene(rng, w, h).rotate(90 * int(rng.integers(4)), expand=True)
        roll, buf = rng.random(), io.BytesIO()
        folder = f"{1950 + i % 7}"
        if roll < 0.05:
            name, fmt, kwargs = f"scan_{i:04d}.png", "PNG", {}
        elif roll < 0.10:
            name, fmt, kwargs = f"scan_{i:04d}.tif", "TIFF", {"compression": "tiff_lzw"}
        else:
            name, fmt = f"scan_{i:04d}.jpg", "JPEG"
            kwargs = {"quality": int(rng.integers(70, 96))}
            if rng.random() < 0.2:
                kwargs["progressive"] = True
            if rng.random() < 0.2:
                kwargs["subsampling"] = 0  # 4:4:4: 8-pixel blocks
            if rng.random() < 0.2:
                exif = Image.Exif()
                exif[274] = int(rng.choice([1, 3, 6, 8]))
                kwargs["exif"] = exif.tobytes()
        img.save(buf, fmt, **kwargs)
        rel = f"{folder}/{name}"
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(buf.getvalue())
        originals[rel] = buf.getvalue()
    return originals


# --------------------------------------------------------------------------- processes


class Cli:
    """`orient` subprocesses, each in its own process group with its own Prefect home."""

    def __init__(self, work: Path) -> None:
        self.work, self.count = work, 0

    def start(self, args: list[str]) -> subprocess.Popen:
        self.count += 1
        home = self.work / "prefect" / str(self.count)
        home.mkdir(parents=True, exist_ok=True)
        env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
        env.update(PREFECT_HOME=str(home), PREFECT_SERVER_ANALYTICS_ENABLED="false", PYTHONPATH=str(REPO))
        log = open(self.work / "logs" / f"{self.count:03d}-{args[0]}.log", "wb")  # noqa: SIM115
        proc = subprocess.Popen([sys.executable, "-m", "flows.cli", *args], cwd=REPO, env=env,
                                stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        proc.log = log  # type: ignore[attr-defined]
        return proc

    @staticmethod
    def finish(proc: subprocess.Popen, timeout: float = 1800) -> tuple[int, str]:
        try:
            rc = proc.wait(timeout)
        except subprocess.TimeoutExpired:
            Cli.kill(proc)
            rc = -9
        proc.log.close()  # type: ignore[attr-defined]
        return rc, Path(proc.log.name).read_text(errors="replace")  # type: ignore[attr-defined]

    @staticmethod
    def kill(proc: subprocess.Popen) -> None:
        try:
            os.killpg(proc.pid, signal.SIGKILL)  # the CLI, its Prefect server, any jpegtran
        except ProcessLookupError:
            pass
        proc.wait(60)

    def run(self, args: list[str]) -> tuple[int, str]:
        return self.finish(self.start(args))


def autorotate_args(root: Path, model: str, report: Path | None = None) -> list[str]:
    args = ["autorotate", str(root), "--apply", "lossless", "--model", model, "--threshold", "0",
            "--no-tta", "--saliency", "off"]
    return args + (["--report", str(report)] if report else [])


def ensure_model(choice: str, work: Path, cli: Cli) -> str:
    if choice != "default":
        return choice
    if (REPO / "orient_model" / "default_model" / "model.pt").exists():
        return "default"
    models = work / "tiny-model" / "models"
    found = sorted(p for p in models.glob("*") if (p / "model.pt").exists()) if models.exists() else []
    if found:
        return str(found[-1])
    print("no shipped model yet: training a tiny one on synthetic scenes ...", flush=True)
    write_scenes(work / "tiny-model" / "upright", 60, seed=3)
    for args in (["make-training-set", str(work / "tiny-model" / "upright"), "--out",
                  str(work / "tiny-model" / "data"), "--copy-size", "96"],
                 ["train", str(work / "tiny-model" / "data"), "--out", str(models), "--arch", "tiny",
                  "--epochs", "2", "--device", "cpu", "--workers", "0", "--weights", "none"]):
        rc, log = cli.run(args)
        if rc != 0:
            sys.exit(f"{args[0]} failed:\n{log[-3000:]}")
    return str(sorted(p for p in models.glob("*") if (p / "model.pt").exists())[-1])


# --------------------------------------------------------------------------- checks


def audit(root: Path, originals: dict[str, bytes], first_row: int) -> dict[str, list[str]]:
    """After a completed run: every file original or verified rotated, none lost, none twice."""
    found = {"corrupt": [], "lost": [], "double": []}
    files = archive_contents(root)
    found["lost"] = sorted(set(originals) - set(files))
    found["corrupt"] += [f"{p}: unexpected file (temporary file left?)" for p in sorted(set(files) - set(originals))]
    rows = [r for r in read_journal(root) if r["id"] > first_row]
    found["corrupt"] += [f"{r['rel_path']}: journal row left planned" for r in rows if r["state"] == "planned"]
    done: dict[str, list[dict]] = {}
    for r in rows:
        if r["state"] == "done":
            done.setdefault(r["rel_path"], []).append(r)
    for rel, original in originals.items():
        if rel not in files:
            continue
        now, changes = files[rel], done.get(rel, [])
        if len(changes) > 1:
            found["double"].append(f"{rel}: rotated {len(changes)} times ({[c['run_id'] for c in changes]})")
        elif sha(now) == sha(original):
            if changes:
                found["corrupt"].append(f"{rel}: journal says rotated by {changes[0]['run_id']}, file is original")
        elif not changes:
            found["corrupt"].append(f"{rel}: changed without a done change in the journal")
        elif changes[0]["sha256_before"] != sha(original):
            found["double"].append(f"{rel}: rotated from a state that was not the original")
        elif changes[0]["sha256_after"] != sha(now):
            found["corrupt"].append(f"{rel}: hash differs from the journal's sha256_after")
        elif why := displayed_rotation_problem(original, now, changes[0]["rotation_deg"]):
            found["corrupt"].append(f"{rel}: {why}")
    return found


# --------------------------------------------------------------------------- drill


def drill(args: argparse.Namespace) -> int:
    rng = random.Random(args.seed)
    work = Path(args.workdir or tempfile.mkdtemp(prefix="orient-crash-drill-")).resolve()
    root = work / "archive"
    if root.exists():
        shutil.rmtree(root)
    (work / "logs").mkdir(parents=True, exist_ok=True)
    cli = Cli(work)
    model = ensure_model(args.model, work, cli)
    originals = make_archive(root, args.photos, args.seed)
    print(f"archive {root}: {len(originals)} photos; model {model}; seed {args.seed}", flush=True)

    totals = dict(runs=0, kills=0, checked=0, corrupt=0, lost=0, double=0, restored=0, rotated=0)
    problems: list[str] = []
    t0 = time.monotonic()
    for n in range(1, args.runs + 1):
        first_row = max((r["id"] for r in read_journal(root)), default=0)
        start, round_started = time.monotonic(), time.time()
        for _ in range(args.kills_per_run):
            seen = len(read_journal(root))
            proc = cli.start(autorotate_args(root, model))
            if rng.random() < 0.2:  # any moment: start-up, prediction or apply
                delay = rng.uniform(0.5, 15.0)
                time.sleep(delay)
                when = f"{delay:.2f}s after start"
            else:  # while writing: a random delay after its first journal row
                delay = rng.uniform(0, args.max_delay)
                while proc.poll() is None and len(read_journal(root)) <= seen:
                    time.sleep(0.005)
                time.sleep(delay)
                when = f"{delay:.2f}s into apply"
            if proc.poll() is not None:
                rc, log = cli.finish(proc)
                print(f"  run {n}: finished (rc {rc}) before the kill {when}", flush=True)
                if rc != 0:
                    problems.append(f"run {n}: exited {rc} before the kill:\n{log[-2000:]}")
                break
            cli.kill(proc)
            cli.finish(proc)
            totals["kills"] += 1
            rows = [r for r in read_journal(root) if r["id"] > first_row]
            print(f"  run {n}: killed {when}; journal so far: {sum(r['state'] == 'done' for r in rows)} done, "
                  f"{sum(r['state'] == 'planned' for r in rows)} planned", flush=True)
        report = work / f"run{n}.parquet"
        rc, log = cli.run(autorotate_args(root, model, report))
        if rc != 0:
            problems.append(f"run {n}: resume exited {rc}:\n{log[-3000:]}")
            print(f"  run {n}: RESUME FAILED (rc {rc}); see {work / 'logs'}", flush=True)
        found = audit(root, originals, first_row)
        for key, items in found.items():
            totals[key] += len(items)
            problems += [f"run {n}: {key}: {item}" for item in items]
        totals["checked"] += len(originals)
        totals["runs"] += 1
        rows = [r for r in read_journal(root) if r["id"] > first_row]
        run_ids = sorted({r["run_id"] for r in rows if r["state"] == "done"})
        rotated = sum(r["state"] == "done" for r in rows)
        totals["rotated"] += rotated
        # undo: the final run's report (it adopted the killed runs' work), and the report of any
        # killed run that had already finished (a kill landing after its report was written)
        reports = [report] + sorted(p for p in (root / ".orient" / "reports").glob("*.parquet")
                                    if p.stat().st_mtime >= round_started)
        for path in reports:
            urc, ulog = cli.run(["undo", str(path)])
            if urc != 0:
                problems.append(f"run {n}: `orient undo {path}` exited {urc}:\n{ulog[-2000:]}")
        now = archive_contents(root)
        restored = sum(now.get(rel) == data for rel, data in originals.items())
        totals["restored"] += restored
        problems += [f"run {n}: not restored: {rel}" for rel, data in originals.items() if now.get(rel) != data]
        print(f"  run {n}: {rotated} rotated over {len(run_ids)} runs; corrupt {len(found['corrupt'])}, "
              f"lost {len(found['lost'])}, double-rotated {len(found['double'])}; restored {restored}/"
              f"{len(originals)} ({time.monotonic() - start:.0f}s)", flush=True)

    for line in problems[:30]:
        print(line, file=sys.stderr)
    print(f"crash_resume: runs {totals['runs']}, kills {totals['kills']}, files checked {totals['checked']}, "
          f"rotated {totals['rotated']}, corrupt {totals['corrupt']}, lost {totals['lost']}, "
          f"double-rotated {totals['double']}, restored {totals['restored']}/{totals['checked']} "
          "(by undoing the runs' reports) "
          f"({time.monotonic() - t0:.0f}s; logs in {work / 'logs'})")
    bad = totals["corrupt"] or totals["lost"] or totals["double"] or totals["restored"] != totals["checked"]
    return 1 if bad or problems else 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5, help="kill-resume-check-undo rounds")
    parser.add_argument("--photos", type=int, default=300, help="photos in the archive")
    parser.add_argument("--workdir", type=Path, help="where to build the archive (default: a temp folder)")
    parser.add_argument("--model", default="default",
                        help="'default' (the shipped model, else a tiny one trained here), or a model path")
    parser.add_argument("--seed", type=int, default=None, help="archive and kill-point seed (default: random)")
    parser.add_argument("--kills-per-run", type=int, default=1, help="kills before each run is let finish")
    parser.add_argument("--max-delay", type=float, default=None,
                        help="longest kill delay into apply, seconds (default: 0.015 s per photo)")
    args = parser.parse_args()
    if args.seed is None:
        args.seed = random.randrange(1 << 30)
    if args.max_delay is None:
        args.max_delay = 0.002 * args.photos  # the writing of a few hundred small scans takes ~1-2 s
    sys.exit(drill(args))


if __name__ == "__main__":
    main()
