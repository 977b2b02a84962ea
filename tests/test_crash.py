"""Crash safety: kill -9 at any point of the change protocol, resume, check every byte, undo.

Most kills land in-process at exact points (the library's run in a child process, killed by its
own stage hook); one drill kills the real command line while it writes. After each kill the
archive must already be safe (every file original or fully rotated and verified); the resumed
run finishes the job without rotating anything twice, and undoing its report alone restores
every original byte for byte. Set ORIENT_CRASH_SEED to replay a drill's random choices.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from orient_model.archive.audit import (
    archive_contents,
    audit,
    drill_autorotate_args,
    read_journal,
    scrambled_archive,
)
from orient_model.archive.paths import STATE_DIRNAME
from orient_model.archive.undo import undo_run
from orient_model.config import AutorotateConfig
from orient_model.run import apply_decisions

REPO = Path(__file__).resolve().parents[1]
LOSSLESS = AutorotateConfig(apply="lossless")

KILLED_RUN = textwrap.dedent("""
    import json, os, signal, sys
    from orient_model.config import AutorotateConfig
    from orient_model.run import apply_decisions
    root, truth, stage, nth = sys.argv[1], json.loads(open(sys.argv[2]).read()), sys.argv[3], int(sys.argv[4])
    seen = {"n": 0}

    def kill_at(at, rel):  # a real SIGKILL, at the nth time the protocol reaches this stage
        if at == stage:
            seen["n"] += 1
            if seen["n"] == nth:
                os.kill(os.getpid(), signal.SIGKILL)

    apply_decisions(root, truth, AutorotateConfig(apply="lossless"), "drill", on_stage=kill_at)
""")


def killed_run(root: Path, truth: dict[str, int], stage: str, nth: int, work: Path) -> int:
    (work / "truth.json").write_text(json.dumps(truth))
    proc = subprocess.run(
        [sys.executable, "-c", KILLED_RUN, str(root), str(work / "truth.json"), stage, str(nth)],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        capture_output=True,
        timeout=300,
    )
    return proc.returncode


@pytest.mark.parametrize("stage", ["verified", "backed-up", "planned", "replaced"])
def test_kill_9_at_each_point_of_the_protocol_then_resume_then_undo(tmp_path: Path, stage: str) -> None:
    # A fixed seed by default (this one once found a run lost from the undo chain), so the suite
    # cannot turn red by chance; ORIENT_CRASH_SEED=random draws one, as the drill benchmark does.
    chosen = os.environ.get("ORIENT_CRASH_SEED", "615023094")
    seed = random.randrange(1 << 30) if chosen == "random" else int(chosen)
    ctx = f"(stage {stage}, ORIENT_CRASH_SEED={seed})"
    root = tmp_path / "archive"
    originals, truth = scrambled_archive(root, 16, seed % 1000)
    turned = sum(r != 0 for r in truth.values())
    rng = random.Random(seed)
    for attempt in range(2):  # killed twice, at random turns, before the run that finishes
        rc = killed_run(root, truth, stage, rng.randint(1, max(1, turned // 3)), tmp_path)
        assert rc == -signal.SIGKILL, f"attempt {attempt}: the run was not killed (rc {rc}) {ctx}"
        mid = audit(root, originals, final=False)
        assert not mid["corrupt"] and not mid["lost"] and not mid["double"], (
            f"after kill {attempt + 1} {ctx}: {mid}"
        )
    killed_runs = {r["run_id"] for r in read_journal(root)}  # a run killed before its first row left none
    final = apply_decisions(root, truth, LOSSLESS, "drill", log=lambda line: None)
    assert audit(root, originals) == {"corrupt": [], "lost": [], "double": [], "journal": []}, ctx
    rotated = {rel for rel, data in archive_contents(root).items() if data != originals[rel]}
    assert rotated == {rel for rel, r in truth.items() if r}, ctx
    # Every killed run that wrote is adopted, directly or through a killed run that adopted it
    # (one killed before its own first change still adopted the run before it).
    assert killed_runs <= set(final.adopted), f"the finishing run did not adopt the killed runs {ctx}"
    again = apply_decisions(root, truth, LOSSLESS, "drill", log=lambda line: None)  # a re-run: never twice
    assert again.summary["applied"] == 0 and audit(root, originals)["double"] == []
    undo_run(str(final.report_path), announce=lambda line: None)
    assert archive_contents(root) == originals, f"undo did not restore every original {ctx}"
    assert {r["state"] for r in read_journal(root)} <= {"undone", "abandoned"}


# --------------------------------------------------------------------------- the real command line


def start_cli(args: list[str], env: dict, work: Path, name: str) -> subprocess.Popen:
    """`orient ARGS` in its own process group, its output to files."""
    out, err = open(work / f"{name}.out", "wb"), open(work / f"{name}.err", "wb")  # noqa: SIM115
    proc = subprocess.Popen(
        [sys.executable, "-m", "flows.cli", *args],
        cwd=REPO,
        env=env,
        stdout=out,
        stderr=err,
        start_new_session=True,
    )
    proc.files = (out, err, work / f"{name}.err")  # type: ignore[attr-defined]
    return proc


def finish(proc: subprocess.Popen, timeout: float = 600) -> tuple[int, str]:
    rc = proc.wait(timeout)
    out, err, err_path = proc.files  # type: ignore[attr-defined]
    out.close()
    err.close()
    return rc, err_path.read_text(errors="replace")


# One view, no vote, PyTorch on the CPU: the tiny model, quickly.
FAST = ("--no-tta", "--views", "1", "--device", "cpu", "--engine", "torch")


@pytest.mark.slow
def test_kill_9_of_the_command_line_while_it_writes(tiny_model: Path, cli_env: dict, tmp_path: Path) -> None:
    # A fixed seed by default (this one once found a run lost from the undo chain), so the suite
    # cannot turn red by chance; ORIENT_CRASH_SEED=random draws one, as the drill benchmark does.
    chosen = os.environ.get("ORIENT_CRASH_SEED", "615023094")
    seed = random.randrange(1 << 30) if chosen == "random" else int(chosen)
    ctx = f"(ORIENT_CRASH_SEED={seed})"
    root = tmp_path / "archive"
    originals, _ = scrambled_archive(root, 60, seed % 1000)
    proc = start_cli(drill_autorotate_args(root, tiny_model, None, extra=FAST), cli_env, tmp_path, "killed")
    while proc.poll() is None and not read_journal(root):  # no time limit: a busy machine is slow
        time.sleep(0.005)
    time.sleep(random.Random(seed).uniform(0.0, 0.1))
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
    finish(proc)
    mid = audit(root, originals, final=False)
    assert not mid["corrupt"] and not mid["lost"] and not mid["double"], f"after the kill {ctx}: {mid}"
    report = tmp_path / "final.parquet"
    rc, err = finish(
        start_cli(drill_autorotate_args(root, tiny_model, report, extra=FAST), cli_env, tmp_path, "final")
    )
    assert rc == 0 and "Traceback" not in err, f"resume failed {ctx}: {err[-3000:]}"
    assert audit(root, originals) == {"corrupt": [], "lost": [], "double": [], "journal": []}, ctx
    rc, err = finish(start_cli(["undo", str(report)], cli_env, tmp_path, "undo"))
    assert rc == 0, f"{ctx} {err[-2000:]}"
    assert archive_contents(root) == originals, f"undo did not restore every original {ctx}"


@pytest.mark.slow
def test_a_second_run_on_a_busy_archive_fails_with_one_line_naming_the_holder(tiny_model, cli_env, tmp_path):
    root = tmp_path / "archive"
    scrambled_archive(root, 4, 5)
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time\nfrom orient_model.archive.changes import archive_lock\n"
            "with archive_lock(sys.argv[1], 'night-run'):\n    print('locked', flush=True)\n    time.sleep(120)\n",
            str(root),
        ],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        rc, err = finish(
            start_cli(drill_autorotate_args(root, tiny_model, None, extra=FAST), cli_env, tmp_path, "second")
        )
    finally:
        holder.kill()
        holder.wait()
    assert rc == 1 and "Traceback" not in err, err[-3000:]
    [line] = [ln for ln in err.splitlines() if ln.startswith("error:")]
    assert "in use by run 'night-run'" in line and f"pid {holder.pid}" in line, line
    assert (root / STATE_DIRNAME / "lock").exists()
