"""Crash drills against the real command line: `kill -9` mid-run, resume, check every byte, undo.

Each drill starts `orient autorotate ARCHIVE --apply lossless` as a separate process (with its
own Prefect home, so its temporary server is its own), kills it with SIGKILL while it is writing
(triggered by new rows appearing in `.orient/journal.sqlite`, then a random short delay), runs it
again to completion, and then checks every file in the archive:

* it is byte-identical to its original, or it decodes and, as displayed, is exactly the
  original as displayed turned by the journal's rotation (JPEG: within rotate.py's tolerance);
* its hash is the one the journal recorded for that change (``sha256_after``);
* no file is missing, no temporary file is left, no journal row is left 'planned';
* no file was rotated twice: at most one 'done' change per path, starting from the original.

Undoing the runs (the final run through its report, the killed runs by run id, since a killed
run writes no report) must then give back byte-identical originals.

Set ORIENT_CRASH_SEED to replay a drill's kill points.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from orient_model.archive.atomic import TMP_PREFIX
from orient_model.archive.audit import archive_contents, displayed_rotation_problem, read_journal
from orient_model.archive.paths import STATE_DIRNAME
from orient_model.synthetic import scene

REPO = Path(__file__).resolve().parents[1]



# --------------------------------------------------------------------------- the archive


def make_archive(root: Path, n: int, seed: int) -> dict[str, bytes]:
    """Scrambled synthetic scenes: mostly JPEG (MCU-aligned and odd sizes, some with an EXIF
    Orientation), some PNG and TIFF, a few in a subfolder. Returns {relative path: bytes}."""
    rng = np.random.default_rng(seed)
    sizes = [(320, 240), (256, 192), (301, 227), (250, 187)]  # 16-aligned and not
    originals: dict[str, bytes] = {}
    for i in range(n):
        w, h = sizes[i % len(sizes)]
        img = scene(rng, w, h).rotate(90 * int(rng.integers(4)), expand=True)
        kind, buf = i % 8, io.BytesIO()
        if kind == 6:
            rel, fmt, kwargs = f"p{i:03d}.png", "PNG", {}
        elif kind == 7:
            rel, fmt, kwargs = f"p{i:03d}.tif", "TIFF", {"compression": "tiff_lzw"}
        else:
            rel, fmt, kwargs = f"p{i:03d}.jpg", "JPEG", {"quality": 90}
            if kind == 5:
                exif = Image.Exif()
                exif[274] = int(rng.choice([3, 6, 8]))
                kwargs["exif"] = exif.tobytes()
        if i % 3 == 0:
            rel = f"1962/{rel}"
        img.save(buf, fmt, **kwargs)
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(buf.getvalue())
        originals[rel] = buf.getvalue()
    return originals


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# --------------------------------------------------------------------------- processes


def cli_env(prefect_home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    prefect_home.mkdir(parents=True, exist_ok=True)
    env.update(PREFECT_HOME=str(prefect_home), PREFECT_SERVER_ANALYTICS_ENABLED="false",
               PYTHONPATH=str(REPO))
    return env


def start_cli(args: list[str], work: Path, name: str) -> subprocess.Popen:
    """`orient ARGS` in its own process group (so SIGKILL also takes its Prefect server)."""
    out = open(work / f"{name}.out", "wb")  # noqa: SIM115 - closed by finish()
    err = open(work / f"{name}.err", "wb")  # noqa: SIM115
    proc = subprocess.Popen([sys.executable, "-m", "flows.cli", *args], cwd=REPO,
                            env=cli_env(work / f"prefect-{name}"), stdout=out, stderr=err,
                            start_new_session=True)
    proc.logs = (out, err, work / f"{name}.out", work / f"{name}.err")  # type: ignore[attr-defined]
    return proc


def finish(proc: subprocess.Popen, timeout: float = 120) -> tuple[int, str, str]:
    try:
        rc = proc.wait(timeout)
    except subprocess.TimeoutExpired:
        kill_group(proc)
        raise
    out, err, out_path, err_path = proc.logs  # type: ignore[attr-defined]
    out.close()
    err.close()
    return rc, out_path.read_text(errors="replace"), err_path.read_text(errors="replace")


def kill_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)  # the group we made for it: the CLI and its server
    except ProcessLookupError:
        pass
    proc.wait(30)


def run_cli(args: list[str], work: Path, name: str, timeout: float = 120) -> tuple[int, str, str]:
    return finish(start_cli(args, work, name), timeout)


def autorotate_args(root: Path, model: Path, report: Path | None = None) -> list[str]:
    args = ["autorotate", str(root), "--apply", "lossless", "--model", str(model),
            "--threshold", "0", "--no-tta", "--saliency", "off", "--device", "cpu"]
    return args + (["--report", str(report)] if report else [])


# --------------------------------------------------------------------------- checks


def audit(root: Path, originals: dict[str, bytes], final: bool = True) -> dict[str, list[str]]:
    """Every file original or verified rotated, none lost, none rotated twice.

    Right after a kill (``final=False``) a temporary file may be left and the change being made
    may still be 'planned' (its file either original or already replaced); the next run settles
    both. After a completed run neither may remain.
    """
    problems: dict[str, list[str]] = {"corrupt": [], "lost": [], "double": [], "journal": []}
    files = archive_contents(root)
    problems["lost"] = sorted(set(originals) - set(files))
    temps = {rel for rel in files if Path(rel).name.startswith(TMP_PREFIX)}
    extra = sorted(set(files) - set(originals) - (set() if final else temps))
    problems["corrupt"] += [f"{p}: unexpected file" for p in extra]
    rows = read_journal(root)
    if final:
        problems["journal"] += [f"{r['rel_path']}: left {r['state']!r}" for r in rows if r["state"] == "planned"]
    by_path: dict[str, list[dict]] = {}
    for r in rows:
        by_path.setdefault(r["rel_path"], []).append(r)
    for rel, original in originals.items():
        if rel not in files:
            continue
        now = files[rel]
        done = [r for r in by_path.get(rel, []) if r["state"] == "done"
                or (not final and r["state"] == "planned" and r["sha256_after"] == sha(now))]
        if len(done) > 1:
            problems["double"].append(f"{rel}: {len(done)} done changes (runs {[r['run_id'] for r in done]})")
            continue
        if sha(now) == sha(original):
            if done:
                problems["journal"].append(f"{rel}: journal says rotated by {done[0]['run_id']}, file is original")
            continue
        if not done:
            problems["corrupt"].append(f"{rel}: changed, but no done change in the journal")
            continue
        entry = done[0]
        if entry["sha256_before"] != sha(original):
            problems["double"].append(f"{rel}: rotated from a non-original state (run {entry['run_id']})")
        elif entry["sha256_after"] != sha(now):
            problems["corrupt"].append(f"{rel}: hash is not the journal's sha256_after")
        elif why := displayed_rotation_problem(original, now, entry["rotation_deg"]):
            problems["corrupt"].append(f"{rel}: {why}")
    return problems


# --------------------------------------------------------------------------- tests


def final_config(report: Path) -> dict:
    from orient_model.report import read_report, run_config_of

    return run_config_of(read_report(report))


@pytest.mark.slow
def test_kill_9_during_apply_then_resume_then_undo(tiny_model: Path, tmp_path: Path) -> None:
    seed = int(os.environ.get("ORIENT_CRASH_SEED", random.randrange(1 << 30)))
    rng = random.Random(seed)
    ctx = f"(ORIENT_CRASH_SEED={seed})"
    root = tmp_path / "archive"
    originals = make_archive(root, 80, seed=seed % 1000)
    report = tmp_path / "final.parquet"

    kills, start, drill = 0, time.monotonic(), []
    for attempt in range(3):
        rows_before = len(read_journal(root))
        proc = start_cli(autorotate_args(root, tiny_model), tmp_path, f"killed{attempt}")
        delay = rng.uniform(0.0, 0.12)  # early in the writing, so later attempts still find work
        while proc.poll() is None and time.monotonic() - start < 75:
            if len(read_journal(root)) > rows_before:  # this run is writing: kill it soon
                time.sleep(delay)
                break
            time.sleep(0.005)
        if proc.poll() is not None:  # it finished before we could kill it: nothing left to do
            rc, _, err = finish(proc)
            assert rc == 0, f"run ended with {rc} before the kill {ctx}: {err[-2000:]}"
            break
        kill_group(proc)
        kills += 1
        finish(proc)
        states = [r["state"] for r in read_journal(root)[rows_before:]]
        drill.append(f"kill {kills} at {time.monotonic() - start:.1f}s (+{delay:.3f}s): "
                     f"{states.count('done')} done, {states.count('planned')} planned")
        mid = audit(root, originals, final=False)  # the killed state itself must already be safe
        assert not mid["corrupt"] and not mid["lost"] and not mid["double"], f"after kill {kills} {ctx}: {mid}"
    assert kills >= 2, f"only {kills} kills landed while writing {ctx}"
    print(f"{ctx}", *drill, sep="\n  ")

    rc, out, err = run_cli(autorotate_args(root, tiny_model, report), tmp_path, "final")
    assert rc == 0, f"resume failed {ctx}: {err[-3000:]}"
    assert "Traceback" not in err
    problems = audit(root, originals)
    assert problems == {"corrupt": [], "lost": [], "double": [], "journal": []}, f"{ctx} {problems}"

    rows = read_journal(root)
    done = [r for r in rows if r["state"] == "done"]
    rotated_now = {rel for rel, data in archive_contents(root).items() if sha(data) != sha(originals[rel])}
    assert rotated_now == {r["rel_path"] for r in done} and len(rotated_now) >= 10, ctx
    killed_runs = {r["run_id"] for r in done} - {json.loads(report.with_suffix(".json").read_text())["run_id"]}

    # The resumed run adopted the killed runs' work, so its report alone undoes everything.
    final = json.loads(report.with_suffix(".json").read_text())
    assert set(final_config(report)["resumed_runs"]) == killed_runs, ctx
    rc, _, err = run_cli(["undo", str(report)], tmp_path, "undo-final")
    assert rc == 0, f"{ctx} {err[-2000:]}"
    assert "Traceback" not in err and final["run_id"]
    assert archive_contents(root) == originals, f"undo did not restore every original {ctx}"
    assert {r["state"] for r in read_journal(root)} <= {"undone", "abandoned"}
    assert time.monotonic() - start < 120


@pytest.mark.slow
def test_second_concurrent_run_fails_with_one_line_naming_the_holder(tiny_model: Path, tmp_path: Path) -> None:
    root = tmp_path / "archive"
    originals = make_archive(root, 8, seed=5)
    first = start_cli(autorotate_args(root, tiny_model), tmp_path, "first")
    lock_info = root / STATE_DIRNAME / "lock.json"
    deadline = time.monotonic() + 60
    while not lock_info.exists() and first.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)
    try:
        os.kill(first.pid, signal.SIGSTOP)  # hold it there, lock and all, while the second starts
        assert lock_info.exists(), "the first run ended before it could be paused"
        holder = json.loads(lock_info.read_text())
        rc, out, err = run_cli(autorotate_args(root, tiny_model), tmp_path, "second")
    finally:
        os.kill(first.pid, signal.SIGCONT)
    assert rc == 1, f"second run exited {rc}: {err[-2000:]}"
    assert "in use by" in err and "Traceback" not in err + out, err[-3000:]
    [line] = [ln for ln in err.splitlines() if "in use by" in ln and ln.startswith("error:")]
    assert f"pid {first.pid}" in line and holder["run_id"] in line, line
    rc, _, err = finish(first)
    assert rc == 0, err[-2000:]
    assert set(archive_contents(root)) == set(originals)
