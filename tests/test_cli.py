"""The command line: bad input ends with one clear error line, never a traceback."""

import os
import subprocess
import sys

import pytest


def orient(*args, cwd=None, env=None) -> subprocess.CompletedProcess:
    env = env or {**os.environ, "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "COLUMNS": "200"}
    return subprocess.run(
        [sys.executable, "-m", "flows.cli", *map(str, args)],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=600,
    )


def assert_one_error_line(result: subprocess.CompletedProcess, *needles: str) -> None:
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, result.stderr
    for needle in needles:
        assert needle in lines[0]


def test_empty_directory(tmp_path):
    (tmp_path / "empty").mkdir()
    assert_one_error_line(
        orient("make-training-set", tmp_path / "empty", "--out", tmp_path / "data"), "no files found"
    )


def test_not_a_training_set(tmp_path):
    assert_one_error_line(orient("train", tmp_path, "--out", tmp_path / "models"), "make-training-set")


def test_missing_weights_file(tmp_path):
    (tmp_path / "manifest.parquet").write_bytes(b"")
    result = orient("train", tmp_path, "--out", tmp_path / "models", "--weights", tmp_path / "lite0.pth")
    assert_one_error_line(result, "weights file not found", "lite0.pth")


def test_corrupt_checkpoint(tmp_path):
    (tmp_path / "archive").mkdir()
    (tmp_path / "model.pt").write_bytes(b"PK\x03\x04 half a zip file")
    result = orient("autorotate", tmp_path / "archive", "--model", tmp_path / "model.pt")
    assert_one_error_line(result, "corrupt", "model.pt")


def test_missing_archive(tmp_path):
    assert_one_error_line(orient("autorotate", tmp_path / "nowhere"), "archive directory not found")


@pytest.mark.slow
def test_no_readable_photos(tmp_path, cli_env):
    src = tmp_path / "src"
    src.mkdir()
    (src / "a.jpg").write_text("not a photo")
    (src / "b.png").write_bytes(b"")
    result = orient("make-training-set", src, "--out", tmp_path / "data", "--trust-upright", env=cli_env)
    assert_one_error_line(result, "no readable photos among 2 files")


def test_plain_progress_lines_show_counts_that_moved(capfd):
    """A log file gets a count line when the count moves, never a rate of 0/s with a NaN ETA
    while a long first step (a caching pass) reports only milestones."""
    from flows.progress import Display

    display = Display("lines", every_s=0.0)
    display.start("k", "training", 2)
    for _ in range(3):
        display.update("k", "training", 0)
    display.note("k", "caching features: pass 1/3, batch 1/651")
    display.update("k", "training", 1)
    display.update("k", "training", 1)
    display.update("k", "training", 2)
    display.stop()
    lines = capfd.readouterr().err.splitlines()
    assert lines[:2] == ["training: 0/2", "caching features: pass 1/3, batch 1/651"], lines
    counts = [line for line in lines if line.startswith("training: ")]
    assert [c.split(" (")[0] for c in counts] == ["training: 0/2", "training: 1/2", "training: 2/2"], lines
    assert not any("nan" in line for line in lines), lines


def test_long_work_shows_progress_and_milestones_on_a_plain_stderr(prefect_server, capfd):
    """Without a terminal (cron, a log file) progress is plain lines on stderr, milestones included,
    even inside a flow, which logs its prints (and the console shows only warnings)."""
    from prefect import flow

    from flows.progress import RunProgress, display

    @flow(log_prints=True)
    def long_work():
        progress = RunProgress("drill", 2, "steps")
        progress.report(0.0, "caching features: pass 1/1", milestone=True)
        progress.advance(2)

    display.mode = "lines"
    try:
        long_work()
    finally:
        display.stop()
        display.mode = "off"
    lines = capfd.readouterr().err.splitlines()  # bare lines, not log records quoting them
    assert "steps: 0/2" in lines and "caching features: pass 1/1" in lines, lines
    assert any(line.startswith("steps: 2/2") for line in lines), lines


def in_process(*args):
    """The command run in this process (as the shell would, minus the interpreter's start)."""
    from click.testing import CliRunner

    from flows.cli import main

    return CliRunner().invoke(main, [str(a) for a in args])


def one_error_line(result, *needles: str) -> None:
    assert result.exit_code == 1, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    lines = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and "Traceback" not in result.output, result.output
    for needle in needles:
        assert needle in lines[0], lines[0]


def test_a_model_card_that_is_not_json_is_one_error_line(tmp_path):
    from orient_model.model.registry import DEFAULT_MODEL_DIR

    model = tmp_path / "model"
    model.mkdir()
    (model / "model.pt").write_bytes((DEFAULT_MODEL_DIR / "model.pt").read_bytes())
    (model / "card.json").write_text("{not json")
    (tmp_path / "archive").mkdir()
    one_error_line(
        in_process("autorotate", tmp_path / "archive", "--model", model), "card.json", "unreadable"
    )
