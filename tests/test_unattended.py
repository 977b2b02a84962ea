"""Unattended runs an archivist can trust: incremental, undo that sticks, report-only runs that
never touch the archive, schedules with a time zone and no overlap, honest exit codes and events,
scriptable output. Real Prefect runs on the session's test server; a tiny model for speed."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from orient_model import orientation
from orient_model.archive.audit import archive_contents
from orient_model.archive.journal import Journal
from orient_model.archive.paths import STATE_DIRNAME
from orient_model.config import AutorotateConfig
from orient_model.synthetic import scene

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[1]


def make_archive(root: Path, n: int = 6, seed: int = 3) -> None:
    import numpy as np

    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        angle = orientation.ROTATIONS[i % 4]
        orientation.apply(scene(rng, 320, 240), orientation.COUNTER_CLOCKWISE[angle]).save(
            root / f"s{i}.jpg", quality=90
        )


def cfg(model: Path, **kw) -> AutorotateConfig:
    return AutorotateConfig(
        **{"model": str(model), "threshold": 0.5, "saliency": "off", "device": "cpu", **kw}
    )


def judgements(state: Path) -> int:
    journal = Journal(state / "journal.sqlite", readonly=True)
    try:
        return int(journal.conn.execute("SELECT count(*) FROM judgements").fetchone()[0])
    finally:
        journal.close()


def test_an_unchanged_archive_is_carried_over_and_changes_are_judged_again(
    prefect_server, tiny_model, tmp_path
):
    from flows.autorotate import autorotate

    root, state = tmp_path / "archive", tmp_path / "state"
    make_archive(root)
    first = autorotate(str(root), cfg(tiny_model), state_dir=str(state))
    assert first["carried_over"] == 0 and judgements(state) == 6
    second = autorotate(str(root), cfg(tiny_model), state_dir=str(state))
    assert second["carried_over"] == 6 and second["applied"] == 0  # nothing read, nothing predicted
    assert judgements(state) == 6
    from orient_model.report import read_report

    assert read_report(Path(second["report"])).num_rows == 0  # the nightly report lists what changed
    scene(__import__("numpy").random.default_rng(99), 320, 240).save(root / "s1.jpg", quality=80)  # rescanned
    third = autorotate(str(root), cfg(tiny_model), state_dir=str(state))
    assert third["carried_over"] == 5 and judgements(state) == 7
    fourth = autorotate(str(root), cfg(tiny_model), state_dir=str(state), rejudge=True)
    assert fourth["carried_over"] == 0


def test_a_new_model_judges_everything_again(prefect_server, tiny_model, tmp_path):
    from flows.autorotate import autorotate

    root, state = tmp_path / "archive", tmp_path / "state"
    make_archive(root, 3)
    autorotate(str(root), cfg(tiny_model), state_dir=str(state))
    other = tmp_path / "other-model"
    other.mkdir()
    card = json.loads((tiny_model / "card.json").read_text())
    card["version"] = "a-newer-version"
    (other / "card.json").write_text(json.dumps(card))
    (other / "model.pt").write_bytes((tiny_model / "model.pt").read_bytes())
    again = autorotate(str(root), cfg(other), state_dir=str(state))
    assert again["carried_over"] == 0


def test_an_undone_photo_is_not_turned_again_automatically(prefect_server, tiny_model, tmp_path):
    from flows.autorotate import autorotate
    from orient_model.archive.undo import undo_run

    root = tmp_path / "archive"
    make_archive(root, 4)
    originals = archive_contents(root)
    first = autorotate(str(root), cfg(tiny_model, apply="lossless", max_error=0.5, threshold=0.0))
    assert first["applied"] >= 2
    undo_run(first["report"], announce=lambda line: None)
    assert archive_contents(root) == originals
    second = autorotate(str(root), cfg(tiny_model, apply="lossless", threshold=0.0))
    assert second["applied"] == 0 and archive_contents(root) == originals
    from orient_model.report import read_report

    notes = [r["note"] for r in read_report(Path(second["report"])).to_pylist() if r["action"] == "skip"]
    assert len(notes) >= 2 and all("put back by undoing run" in n for n in notes)


def test_a_report_only_run_writes_nothing_into_the_archive(prefect_server, tiny_model, tmp_path):
    from flows.autorotate import autorotate

    root = tmp_path / "archive"
    make_archive(root, 3)
    before = {p: (p.stat().st_mtime_ns, p.stat().st_size) for p in root.rglob("*")}
    for path in [root, *root.iterdir()]:
        path.chmod(0o555 if path.is_dir() else 0o444)
    try:
        summary = autorotate(str(root), cfg(tiny_model))  # state in the user's data directory
    finally:
        for path in [root, *root.iterdir()]:
            path.chmod(0o755 if path.is_dir() else 0o644)
    assert summary["files"] == 3 and not (root / STATE_DIRNAME).exists()
    assert {p: (p.stat().st_mtime_ns, p.stat().st_size) for p in root.rglob("*")} == before
    assert not Path(summary["report"]).is_relative_to(root)


def test_the_deployment_on_a_real_server_has_its_time_zone_and_no_overlap(prefect_server, tmp_path):
    from prefect import get_client

    from flows.deployments import nightly_deployment

    root = tmp_path / "scans"
    root.mkdir()
    deployment = nightly_deployment(
        str(root), "0 2 * * *", "America/Chicago", AutorotateConfig(apply="lossless")
    )
    deployment_id = deployment.apply()
    with get_client(sync_client=True) as client:
        stored = client.read_deployment(deployment_id)
    assert [s.schedule.timezone for s in stored.schedules] == ["America/Chicago"]
    assert [s.schedule.cron for s in stored.schedules] == ["0 2 * * *"]
    assert stored.global_concurrency_limit.limit == 1
    assert stored.concurrency_options.collision_strategy == "CANCEL_NEW"
    assert stored.name.startswith("autorotate-scans-")


def orient(args: list[str], env: dict) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "flows.cli", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )


def test_a_run_with_a_bad_file_says_so_in_its_exit_code_json_and_event(tiny_model, cli_env, tmp_path):
    from prefect import get_client
    from prefect.events.filters import EventFilter, EventNameFilter

    root = tmp_path / "archive"
    make_archive(root, 2)
    (root / "torn.jpg").write_bytes((root / "s0.jpg").read_bytes()[:400])
    started = time.time()
    result = orient(
        [
            "autorotate",
            str(root),
            "--model",
            str(tiny_model),
            "--saliency",
            "off",
            "--json",
            "--state-dir",
            str(tmp_path / "state"),
        ],
        cli_env,
    )
    assert result.returncode == 3, result.stderr[-2000:]
    summary = json.loads(result.stdout)  # stdout holds the JSON and nothing else
    assert summary["counts"]["error"] == 1 and summary["files"] == 3
    with get_client(sync_client=True) as client:
        for _ in range(50):  # events are written by the server shortly after the run
            page = client.read_events(
                EventFilter(event=EventNameFilter(name=["orient.autorotate.completed"])), limit=50
            )
            mine = [e for e in page.events if e.payload.get("run_id") == summary["run_id"]]
            if mine:
                break
            time.sleep(0.2)
    assert mine and mine[0].payload["errors"] == 1 and mine[0].occurred.timestamp() >= started - 60


def test_every_user_error_is_one_line(tmp_path, cli_env):
    (tmp_path / "broken.yaml").write_text("autorotate:\n  apply: [lossless\n")
    (tmp_path / "archive").mkdir()
    env = {**cli_env, "PREFECT_API_URL": ""}  # none of these gets as far as Prefect
    import torch

    cases = [
        (
            ["autorotate", str(tmp_path / "archive"), "--config", str(tmp_path / "broken.yaml")],
            "not valid YAML",
        ),
        *(
            []
            if torch.cuda.is_available()
            else [(["autorotate", str(tmp_path / "archive"), "--device", "cuda"], "no CUDA GPU")]
        ),
        (["undo", str(tmp_path / "missing.parquet")], "report not found"),
        (["undo", "20261129-000000-abcdef"], "neither a report file nor"),
    ]
    with ThreadPoolExecutor(2) as pool:  # separate processes, mostly start-up: two at a time
        results = list(pool.map(lambda case: orient(case[0], env), [*cases, (["--version"], "")]))
    version = results.pop()
    for (args, needle), result in zip(cases, results, strict=True):
        errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
        assert result.returncode == 1 and len(errors) == 1 and needle in errors[0], (
            args,
            result.stderr[-1500:],
        )
        assert "Traceback" not in result.stderr
    assert version.returncode == 0 and version.stdout.startswith("orient, version")


def test_a_judgement_edited_in_a_state_journal_turns_nothing_without_the_model_looking(
    prefect_server, tiny_model, tmp_path
):
    """A report-only run's journal lies outside the archive, where anyone can edit it: a run that
    turns photos looks again at each one a carried judgement would turn."""
    import sqlite3

    from flows.autorotate import autorotate
    from orient_model.report import read_report

    root, state = tmp_path / "archive", tmp_path / "state"
    make_archive(root, 4)
    upright_before = (root / "s0.jpg").read_bytes()
    autorotate(str(root), cfg(tiny_model), state_dir=str(state))
    conn = sqlite3.connect(state / "journal.sqlite")
    with conn:  # every photo "certainly upside down"
        conn.execute("UPDATE judgements SET prob_0 = 0, prob_90 = 0, prob_180 = 1, prob_270 = 0")
    conn.close()
    applied = autorotate(str(root), cfg(tiny_model, apply="lossless"), state_dir=str(state))
    rows = read_report(Path(applied["report"])).to_pylist()
    turned = [r for r in rows if r["action"] == "rotate"]
    assert turned and all(not r["carried"] for r in turned)  # judged afresh by the model
    for r in turned:  # and turned as the photo needs, not as the journal said
        assert r["rotation_deg"] == orientation.ROTATIONS[int(r["path"][1]) % 4], r["path"]
    assert (root / "s0.jpg").read_bytes() == upright_before
    assert not any(r["applied"] for r in rows if r["action"] != "rotate")
