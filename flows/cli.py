"""The `orient` command line: thin wrappers that check input, then run a library call or a flow.

Every setting of a job is also an option (derived from the config's fields: see
``flows/options.py``). Expected problems end with one ``error:`` line and status 1; a run that
finished but could not handle some files ends with status 3 ("completed with errors"), so an
automation can tell the two apart.
"""

from __future__ import annotations

import functools
import json
import os
import sys
from importlib import metadata
from pathlib import Path

import click

from flows.options import config_options, overrides
from orient_model.errors import OrientError

EXIT_USER_ERROR = 1
EXIT_COMPLETED_WITH_ERRORS = 3


def _version() -> str:
    try:
        return metadata.version("orient")
    except metadata.PackageNotFoundError:  # pragma: no cover - running from a source tree
        return "unknown"


def say(text: str) -> None:
    """A line for the person at the terminal (stderr: stdout is kept for --json)."""
    click.echo(text, err=True)


def fail(message: str) -> None:
    click.echo(f"error: {message}", err=True)
    raise SystemExit(EXIT_USER_ERROR)


def user_errors(fn):
    """Expected problems end with one clear line and exit status 1, never a traceback."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        from pydantic import ValidationError

        from flows.errors import USER_ERRORS

        try:
            return fn(*args, **kwargs)
        except USER_ERRORS as exc:
            fail(str(exc))
        except FileNotFoundError as exc:
            fail(f"file not found: {exc.filename or exc}")
        except OSError as exc:  # a full disk, a read-only folder, ...: what and where, in one line
            where = f" ({exc.filename})" if exc.filename else ""
            fail(f"{exc.strerror or exc}{where}")
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(part) for part in first["loc"])
            fail(f"invalid setting {where}: {first['msg']} (got {first.get('input')!r})")
        except KeyboardInterrupt:
            fail("interrupted; run the same command again to resume (finished work is kept)")

    return wrapper


def existing_dir(path: Path, what: str) -> Path:
    if not path.is_dir():
        fail(f"{what} not found: {path}")
    return path


def load(config: Path | None, section: str, values: dict):
    from orient_model.config import load_config

    return getattr(load_config(config, overrides(section, values)), section)


def output_options(fn):
    fn = click.option(
        "--json", "as_json", is_flag=True, help="print the summary as JSON on stdout, nothing else"
    )(fn)
    fn = click.option("--quiet", "-q", is_flag=True, help="no progress, only errors")(fn)
    return fn


def set_output(quiet: bool, as_json: bool) -> None:
    from flows.progress import display

    display.mode = "off" if (quiet or as_json) else ("bar" if sys.stderr.isatty() else "lines")


def run_flow(server, flow_fn, **params):
    """Run a flow against the command's Prefect API; a failed run ends the command with its message."""
    if server is not None:
        server.wait_until_ready()
    from flows.progress import display

    try:
        state = flow_fn(**params, return_state=True)
    finally:
        display.stop()
    if not state.is_completed():
        fail(state.message or f"{flow_fn.name} ended {state.name}")
    return state.result()


config_option = click.option(
    "--config", "-c", type=click.Path(path_type=Path), help="YAML config file (see `orient config`)"
)


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110})
@click.version_option(_version(), prog_name="orient")
def main() -> None:
    """orient: find and fix the orientation of scanned photographs, safely, in batch.

    Start with `orient demo`, then `orient review orient-demo/archive`. Each command's options:
    `orient COMMAND --help`; every setting with its default: `orient config`.

    \b
    Documentation: README.md, and the pages in docs/ (a MkDocs site):
      .venv/bin/mkdocs serve    read it at http://127.0.0.1:8000
      docs/safety.md            what is never lost, and how
      docs/model.md             how sure it is: the certified bound, the figures
      docs/cli.md               every command; docs/configuration.md: every setting
    """


# --------------------------------------------------------------------------- auto-rotate


@main.command()
@click.argument("archive_dir", type=click.Path(path_type=Path))
@config_options("autorotate")
@click.option(
    "--report", type=click.Path(path_type=Path), help="Parquet report path (default: in the state folder)"
)
@click.option(
    "--out-dir", type=click.Path(path_type=Path), help="write corrected copies to this folder instead"
)
@click.option(
    "--state-dir",
    type=click.Path(path_type=Path),
    help="state folder for report-only runs (default: per archive, in your data directory)",
)
@click.option(
    "--rejudge", is_flag=True, help="judge every photo again, even those unchanged since the last run"
)
@output_options
@config_option
@user_errors
def autorotate(archive_dir, report, out_dir, state_dir, rejudge, quiet, as_json, config, **settings) -> None:
    """Predict every photo's orientation, rotate the confident ones, flag the rest, write a report."""
    set_output(quiet, as_json)
    cfg = load(config, "autorotate", settings)
    existing_dir(archive_dir, "archive directory")
    if out_dir is not None and cfg.apply == "none":
        fail("--out-dir writes corrected copies, so it needs --apply lossless or --apply exif")
    from orient_model.model.device import resolve_device
    from orient_model.model.registry import read_checkpoint, resolve_model_path

    resolve_device(cfg.device)  # `--device cuda` without a GPU: one line, before any work
    read_checkpoint(
        resolve_model_path(cfg.model, cfg.models_dir and Path(cfg.models_dir))
    )  # so does a bad model
    from flows.server import prefect_api

    with prefect_api() as server:  # a temporary server starts now, while the model loads
        from flows.autorotate import autorotate_flow_for, model_for

        model_for(cfg, str(resolve_model_path(cfg.model, cfg.models_dir and Path(cfg.models_dir))))
        summary = run_flow(
            server,
            autorotate_flow_for(cfg),
            archive_dir=str(archive_dir),
            config=cfg,
            report=str(report) if report else None,
            out_dir=str(out_dir) if out_dir else None,
            state_dir=str(state_dir) if state_dir else None,
            rejudge=rejudge,
        )
    finish_summary(summary, quiet, as_json)


def finish_summary(summary: dict, quiet: bool, as_json: bool) -> None:
    """Print a run's summary (or its JSON) and leave with the status that says how it went."""
    if as_json:
        click.echo(json.dumps(summary, indent=1))
    elif not quiet:
        counts = ", ".join(f"{n} {a}" for a, n in summary["counts"].items() if n)
        carried = (
            f" ({summary['carried_over']} carried over unchanged)" if summary.get("carried_over") else ""
        )
        click.echo(
            f"{summary['files']} files{carried}: {counts or 'nothing'}; {summary['applied']} changes written"
        )
        if summary.get("decisions"):
            click.echo(f"{summary.get('automatic', 0)} automatic decisions; {summary['decisions']}")
        click.echo(f"report: {summary['report']}")
        click.echo(f"run id: {summary['run_id']}")
        if summary.get("flagged_dir"):
            click.echo(
                f"flagged photos (the four ways each could be turned, with evidence): {summary['flagged_dir']}"
            )
    errors = summary["counts"].get("error", 0)
    if errors:
        if not as_json:
            say(f"completed with errors: {errors} file(s) could not be handled; see the report")
        raise SystemExit(EXIT_COMPLETED_WITH_ERRORS)


@main.command()
@click.argument("report_or_run_id")
@click.option("--archive", type=click.Path(path_type=Path), help="archive folder (needed with a run id)")
@click.option("--path", "paths", multiple=True, help="undo only this file (relative path; repeat for more)")
@click.option("--dry-run", is_flag=True, help="say what would be restored; change nothing")
@output_options
@user_errors
def undo(report_or_run_id, archive, paths, dry_run, quiet, as_json) -> None:
    """Restore every file a run changed to its byte-identical original (again: a no-op)."""
    from orient_model.archive.undo import undo_run

    result = undo_run(
        report_or_run_id,
        archive,
        paths or None,
        dry_run,
        announce=(lambda line: None) if (quiet or as_json) else say,
    )
    refused = result.refused
    if as_json:
        click.echo(
            json.dumps(
                {
                    "run_id": result.run_id,
                    "archive": str(result.root),
                    "dry_run": dry_run,
                    "from_report_only": result.from_report_only,
                    "outcomes": [o.__dict__ for o in result.outcomes],
                },
                indent=1,
            )
        )
    else:
        for o in result.outcomes:
            where = o.rel_path if o.target_root is None else f"{o.target_root}/{o.rel_path}"
            if not o.ok:
                say(f"not restored: {where}: {o.message}")
            elif o.status != "already" and not quiet:
                click.echo(f"{o.status}: {where}")
        if quiet:
            pass
        elif not result.outcomes or result.nothing_to_do:
            click.echo(f"run {result.run_id}: nothing left to undo in {result.root}")
        elif dry_run:
            click.echo(
                f"run {result.run_id}: {len(result.outcomes) - len(refused)} of {len(result.outcomes)} "
                "changed files would be restored (dry run)"
            )
        else:
            done = sum(o.status in ("restored", "removed") for o in result.outcomes)
            click.echo(
                f"run {result.run_id}: restored {done} of {len(result.outcomes)} changed files in {result.root}"
            )
    if refused:
        raise SystemExit(EXIT_USER_ERROR)


@main.command()
@click.option(
    "--workdir",
    type=click.Path(path_type=Path),
    default=Path("orient-demo"),
    show_default=True,
    help="where to build the demo archive",
)
@output_options
@user_errors
def demo(workdir, quiet, as_json) -> None:
    """Build a scrambled demo archive from bundled open photos, auto-rotate it, show how it went."""
    import shutil

    set_output(quiet, as_json)
    from flows.server import prefect_api
    from orient_model.demo import build_demo_archive
    from orient_model.report import read_report

    if not (quiet or as_json):
        say("building the demo archive and starting Prefect...")
    with prefect_api() as server:
        if workdir.exists():
            shutil.rmtree(workdir)
        truth = build_demo_archive(workdir)
        if not (quiet or as_json):
            say(f"demo archive: {workdir / 'archive'} ({len(truth)} scrambled photos + 3 bad files)")
        from flows.autorotate import autorotate as autorotate_flow
        from orient_model.config import load_config

        cfg = load_config(None).autorotate.model_copy(update={"apply": "lossless"})
        summary = run_flow(
            server,
            autorotate_flow,
            archive_dir=str(workdir / "archive"),
            config=cfg,
            state_dir=str(workdir / "state"),
        )
    rows = read_report(Path(summary["report"])).to_pylist()
    judged = [r for r in rows if r["path"] in truth and r["rotation_deg"] is not None]
    correct = sum(r["rotation_deg"] == truth[r["path"]] for r in judged)
    wrong_applied = [r["path"] for r in judged if r["applied"] and r["rotation_deg"] != truth[r["path"]]]
    summary["demo"] = {"correct": correct, "judged": len(judged), "rotated_wrongly": wrong_applied}
    (workdir / "accuracy.json").write_text(json.dumps({"correct": correct, "judged": len(judged)}))
    if not (quiet or as_json):
        click.echo(
            f"accuracy against the known rotations: {correct}/{len(judged)} = {correct / max(len(judged), 1):.0%}"
        )
        if wrong_applied:
            click.echo(
                f"rotated wrongly (undo with `orient undo {summary['report']}`): {', '.join(wrong_applied)}"
            )
    if not (quiet or as_json):
        click.echo(f"review the flagged photos in a browser: orient review {workdir / 'archive'}")
    try:
        finish_summary(summary, quiet, as_json)
    except SystemExit as done:  # the demo's bad files are there on purpose
        if done.code != EXIT_COMPLETED_WITH_ERRORS:
            raise


# --------------------------------------------------------------------------- training


@main.command("make-training-set")
@click.argument("upright_dirs", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option(
    "--out", "-o", required=True, type=click.Path(path_type=Path), help="training set folder (DATA_DIR)"
)
@click.option(
    "--provenance",
    type=click.Path(path_type=Path),
    help="JSON list of {sha256, source, license, kinds} records for the photos",
)
@click.option(
    "--reviewed-from",
    "reviewed_from",
    multiple=True,
    type=click.Path(path_type=Path),
    help="an archive whose operator-reviewed photos join the pool (repeat)",
)
@click.option(
    "--trust-upright",
    is_flag=True,
    help="do not check that the folders hold upright photos (the check refuses a folder when over 5% "
    "of its photos are confidently predicted as turned)",
)
@click.option("--check-model", default="current", show_default=True, help="the model that checks the folders")
@config_options("training_set")
@config_option
@click.option("--quiet", "-q", is_flag=True, help="no progress, only errors")
@user_errors
def make_training_set_cmd(
    upright_dirs, out, provenance, reviewed_from, trust_upright, check_model, config, quiet, **settings
) -> None:
    """Write 0/90/180/270 copies of upright photos (ImageFolder layout) and a Parquet manifest."""
    set_output(quiet, False)
    cfg = load(config, "training_set", settings)
    for d in [*upright_dirs, *map(Path, cfg.held_out_dirs)]:
        existing_dir(Path(d), "folder of upright photos")
    from orient_model.training_set import find_photos

    if next(find_photos(upright_dirs), None) is None:
        fail(f"no files found in {', '.join(map(str, upright_dirs))}; give folders of upright photos")
    if provenance is not None and not provenance.is_file():
        fail(f"provenance file not found: {provenance}")
    from flows.server import prefect_api
    from flows.training import make_training_set

    with prefect_api() as server:
        manifest = run_flow(
            server,
            make_training_set,
            upright_dirs=[str(d) for d in upright_dirs],
            out=str(out),
            config=cfg,
            provenance=str(provenance) if provenance else None,
            reviewed_from=[str(a) for a in reviewed_from],
            trust_upright=trust_upright,
            check_model=check_model,
        )
    click.echo(f"manifest: {manifest}")


@main.command()
@click.argument("data_dir", type=click.Path(path_type=Path))
@click.option(
    "--out",
    "-o",
    type=click.Path(path_type=Path),
    help="models folder (default: the registry, ORIENT_MODELS_DIR or in your data directory)",
)
@click.option(
    "--resume",
    is_flag=True,
    help="go on from the last finished epoch of a stopped run (same data and settings)",
)
@config_options("train")
@config_option
@click.option("--quiet", "-q", is_flag=True, help="no progress, only errors")
@user_errors
def train(data_dir, out, resume, config, quiet, **settings) -> None:
    """Train an orientation model (GPU when present), or load the one already trained on this data.

    A checkpoint follows every epoch: after a stop, the same command with --resume goes on."""
    set_output(quiet, False)
    cfg = load(config, "train", settings)
    if not (data_dir / "manifest.parquet").is_file():
        fail(f"{data_dir} is not a training set (no manifest.parquet); run `orient make-training-set` first")
    if cfg.weights not in ("auto", "package", "timm", "none") and not Path(cfg.weights).is_file():
        fail(f"weights file not found: {cfg.weights}")
    from orient_model.model.device import resolve_device

    resolve_device(cfg.device)  # `--device cuda` without a GPU: one line, before any work
    from flows.server import prefect_api
    from flows.training import train as train_flow
    from orient_model.model.registry import default_models_dir

    command = " ".join(["orient", *sys.argv[1:]])
    try:
        with prefect_api() as server:
            folder = run_flow(
                server,
                train_flow,
                data_dir=str(data_dir),
                models_dir=str(out or default_models_dir()),
                config=cfg,
                command=command,
                resume=resume,
            )
    except KeyboardInterrupt:
        fail("interrupted; the same command with --resume goes on from the last finished epoch")
    click.echo(f"model: {folder}")


# --------------------------------------------------------------------------- schedules and settings


@main.command()
@click.argument("archive_dir", type=click.Path(path_type=Path))
@click.option("--cron", default="0 2 * * *", show_default=True, help="when to auto-rotate (cron syntax)")
@click.option("--timezone", help="time zone of the schedules (default: this machine's)")
@click.option(
    "--retrain-cron",
    default="0 3 * * 0",
    show_default=True,
    help="when to retrain (cron syntax; weekly by default)",
)
@click.option("--no-retrain", is_flag=True, help="serve only the auto-rotate deployment")
@click.option(
    "--upright",
    "upright_dirs",
    multiple=True,
    type=click.Path(path_type=Path),
    help="a folder of upright photos for retraining (repeat)",
)
@config_options("autorotate")
@config_option
@user_errors
def serve(archive_dir, cron, timezone, retrain_cron, no_retrain, upright_dirs, config, **settings) -> None:
    """Serve scheduled Prefect deployments: auto-rotate new scans nightly, retrain weekly."""
    cfg = load(config, "autorotate", settings)
    existing_dir(archive_dir, "archive directory")
    from flows.deployments import local_timezone, nightly_deployment, retrain_deployment, serve_deployments
    from flows.server import prefect_api

    root, tz = str(archive_dir.resolve()), timezone or local_timezone()
    deployments = [nightly_deployment(root, cron, tz, cfg)]
    if not no_retrain:
        deployments.append(
            retrain_deployment(
                root, [str(d.resolve()) for d in upright_dirs], retrain_cron, tz, cfg.models_dir
            )
        )
    with prefect_api() as server:
        if server is not None:
            server.wait_until_ready()
        say(f"serving {', '.join(d.name for d in deployments)} ({tz}); stop with Ctrl-C")
        serve_deployments(*deployments)


# --------------------------------------------------------------------------- the model registry

models_dir_option = click.option(
    "--models-dir",
    type=click.Path(path_type=Path),
    help="the model registry (default: ORIENT_MODELS_DIR, else in your data directory)",
)


@main.command()
@models_dir_option
@click.option("--json", "as_json", is_flag=True, help="print the list as JSON")
@user_errors
def models(models_dir, as_json) -> None:
    """List the registered models; the current one is marked *."""
    from orient_model.model.registry import default_models_dir, list_models

    rows = list_models(models_dir)
    if as_json:
        click.echo(json.dumps(rows, indent=1))
        return
    if not rows:
        click.echo(
            f"no models in {models_dir or default_models_dir()}; the shipped model serves (`--model default`)"
        )
        return
    for r in rows:
        figures = (
            f"test accuracy {r['test_accuracy']:.1%}" if r["test_accuracy"] is not None else "no test figures"
        )
        gate = "" if r["quality_gate"] else "  FAILED ITS QUALITY GATE"
        click.echo(
            f"{'*' if r['current'] else ' '} {r['version']}  {r['architecture']}  {figures}"
            f"{'  ' + r['promotion'] if r['promotion'] else ''}{gate}"
        )
        for what in ("insight", "comparison"):
            if r[what]:
                click.echo(f"    {what}: {r[what]}")
    if not any(r["current"] for r in rows):
        click.echo("  (none promoted: the shipped model serves)")


@main.command()
@click.option(
    "--model",
    default="current",
    show_default=True,
    help="current (promoted, else shipped) | default (shipped) | a version | a folder or model.pt",
)
@click.option(
    "--photos",
    type=click.Path(path_type=Path),
    help="labelled photos: class folders 000/090/180/270 (each needing that turn clockwise), else all "
    "upright (default: the model's own test and calibration photos)",
)
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    help="folder for the page and its pictures (default: ./explain-VERSION)",
)
@click.option(
    "--max-error",
    type=float,
    default=0.01,
    show_default=True,
    help="error target whose certified threshold the figures use",
)
@click.option(
    "--max-photos",
    type=click.IntRange(min=1),
    default=1200,
    show_default=True,
    help="judge at most this many photos, spread evenly (each costs 48 network passes with three views)",
)
@models_dir_option
@user_errors
def explain(model, photos, out, max_error, max_photos, models_dir) -> None:
    """Write a page on how a model sees: behaviour, failures, saliency and units, with pictures."""
    from orient_model.insight import Caps, build_report, photos_for
    from orient_model.model.registry import load_model

    if photos is not None:
        existing_dir(photos, "folder of labelled photos")
    loaded = load_model(model, models_dir)
    labelled = photos_for(loaded.card, photos)
    page = build_report(
        loaded,
        labelled,
        out or Path(f"explain-{loaded.version}"),
        Caps(photos=max_photos),
        max_error,
        say=say,
    )
    click.echo(f"page: {page}")


@main.command("promote")
@click.argument("version")
@models_dir_option
@user_errors
def promote_cmd(version, models_dir) -> None:
    """Make VERSION the current model (autorotate and serve use it from their next run)."""
    from orient_model.model.registry import promote

    promote(version, models_dir, why="promoted by hand (orient promote)")
    click.echo(f"current model: {version}")


@main.command("rollback")
@models_dir_option
@user_errors
def rollback_cmd(models_dir) -> None:
    """Make the previously current model current again."""
    from orient_model.model.registry import rollback

    previous = rollback(models_dir)
    click.echo(f"current model: {previous or 'the shipped model (nothing promoted)'}")


@main.command()
@click.argument("upright_dirs", nargs=-1, type=click.Path(path_type=Path))
@click.option(
    "--archive",
    "archive_dir",
    type=click.Path(path_type=Path),
    help="an archive whose operator-reviewed photos join the pool",
)
@models_dir_option
@click.option(
    "--provenance", type=click.Path(path_type=Path), help="JSON records of the photos' origin and licence"
)
@config_options("retrain")
@config_options("train", exclude=frozenset({"freeze"}))
@config_option
@click.option("--quiet", "-q", is_flag=True, help="no progress, only errors")
@user_errors
def retrain(upright_dirs, archive_dir, models_dir, provenance, config, quiet, **settings) -> None:
    """Train a challenger on upright folders and reviewed photos; promote it only if it beats the current model."""
    set_output(quiet, False)
    for d in upright_dirs:
        existing_dir(d, "folder of upright photos")
    if not upright_dirs and archive_dir is None:
        fail("give folders of upright photos and/or --archive with reviewed photos")
    conf = retraining_config(config, settings)
    from flows.retrain import retrain as retrain_flow
    from flows.server import prefect_api

    with prefect_api() as server:
        decision = run_flow(
            server,
            retrain_flow,
            upright_dirs=[str(d) for d in upright_dirs],
            archive_dir=str(archive_dir) if archive_dir else None,
            models_dir=str(models_dir) if models_dir else None,
            set_config=conf.training_set,
            train_config=conf.train,
            max_error=conf.retrain.max_error,
            margin=conf.retrain.margin,
            provenance=str(provenance) if provenance else None,
            trust_upright=conf.retrain.trust_upright,
        )
    click.echo(
        f"challenger {decision['challenger']}: {'promoted' if decision['promoted'] else 'not promoted'}"
    )
    for reason in decision["reasons"]:
        click.echo(f"  {reason}")


def retraining_config(config: Path | None, settings: dict):
    """The configuration a retraining command runs with: file < environment < flags, the
    ``retrain`` section's ``freeze`` deciding how the challenger trains."""
    from orient_model.config import load_config

    conf = load_config(config, {**overrides("train", settings), **overrides("retrain", settings)})
    return conf.model_copy(update={"train": conf.train.model_copy(update={"freeze": conf.retrain.freeze})})


@main.command()
@click.argument("archive_dir", type=click.Path(path_type=Path))
@click.option(
    "--rounds", type=int, default=2, show_default=True, help="rounds of pseudo-labelling and retraining"
)
@click.option(
    "--upright",
    "upright_dirs",
    multiple=True,
    type=click.Path(path_type=Path),
    help="also a folder of upright photos (repeat); ground truth to judge challengers on",
)
@click.option(
    "--start-bar",
    type=float,
    default=0.95,
    show_default=True,
    help="confidence a pseudo-label needs in round 1 (rises each round)",
)
@models_dir_option
@config_options("retrain", exclude=frozenset({"trust_upright"}))
@config_options("train", exclude=frozenset({"freeze"}))
@config_option
@click.option("--quiet", "-q", is_flag=True, help="no progress, only errors")
@user_errors
def bootstrap(archive_dir, rounds, upright_dirs, start_bar, models_dir, config, quiet, **settings) -> None:
    """Learn from the archive itself: photos the model is sure of become training photos, in rounds."""
    set_output(quiet, False)
    existing_dir(archive_dir, "archive directory")
    conf = retraining_config(config, settings)
    from flows.retrain import bootstrap as bootstrap_flow
    from flows.server import prefect_api

    with prefect_api() as server:
        decisions = run_flow(
            server,
            bootstrap_flow,
            archive_dir=str(archive_dir),
            upright_dirs=[str(d) for d in upright_dirs],
            rounds=rounds,
            models_dir=str(models_dir) if models_dir else None,
            set_config=conf.training_set,
            train_config=conf.train,
            max_error=conf.retrain.max_error,
            margin=conf.retrain.margin,
            start_bar=start_bar,
            trust_upright=True,  # the --upright folders are the ground truth the rounds are judged on
        )
    for d in decisions:
        click.echo(
            f"round {d['round']}: {d['pseudo_labels']} pseudo-labels; challenger {d['challenger']} "
            f"{'promoted' if d['promoted'] else 'not promoted'}: {'; '.join(d['reasons'])}"
        )


@main.command("config")
def show_config() -> None:
    """Print the default configuration (copy it to a file, edit, pass with --config)."""
    from orient_model.config import dump_defaults

    click.echo(dump_defaults(), nl=False)


# --------------------------------------------------------------------------- operator review

state_dir_option = click.option(
    "--state-dir",
    type=click.Path(path_type=Path),
    help="state folder of report-only runs, if not the default one",
)


@main.command()
@click.argument("archive_dir", type=click.Path(path_type=Path))
@click.option("--host", default="127.0.0.1", show_default=True, help="address to listen on (keep it local)")
@click.option(
    "--port", default=8765, show_default=True, type=click.IntRange(1, 65535), help="port to listen on"
)
@click.option("--reviewer", help="name recorded with each decision  [default: your user name]")
@click.option(
    "--report",
    "reports",
    multiple=True,
    type=click.Path(path_type=Path),
    help="also review this report (one written outside the state folders with --report)",
)
@state_dir_option
@user_errors
def review(archive_dir, host, port, reviewer, reports, state_dir) -> None:
    """Serve the review page for an archive's flagged photos (and its automatic decisions)."""
    existing_dir(archive_dir, "archive directory")
    from flows.review import serve

    serve(archive_dir, host, port, reviewer, state_dir, list(reports), announce=say)


@main.command("apply-review")
@click.argument("archive_dir", type=click.Path(path_type=Path))
@click.option(
    "--apply",
    "method",
    type=click.Choice(["lossless", "exif"]),
    default="lossless",
    show_default=True,
    help="how to turn the files",
)
@click.option(
    "--report", type=click.Path(path_type=Path), help="Parquet report path (default: in the state folder)"
)
@state_dir_option
@output_options
@user_errors
def apply_review(archive_dir, method, report, state_dir, quiet, as_json) -> None:
    """Turn the photos as the operator decided on the review page: lossless, journaled, undoable."""
    set_output(quiet, as_json)
    existing_dir(archive_dir, "archive directory")
    from flows.server import prefect_api

    with prefect_api() as server:
        from flows.apply_review import apply_review as apply_review_flow

        summary = run_flow(
            server,
            apply_review_flow,
            archive_dir=str(archive_dir),
            apply=method,
            state_dir=str(state_dir) if state_dir else None,
            report=str(report) if report else None,
        )
    finish_summary(summary, quiet, as_json)
    if not (quiet or as_json) and summary["applied"]:
        click.echo(f"undo with: orient undo {summary['report']}")


def run() -> None:
    """The console script: quiet Prefect on the terminal (the UI keeps every log line)."""
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL", "WARNING")
    try:
        main(standalone_mode=True)
    except OrientError as exc:  # pragma: no cover - belt and braces
        fail(str(exc))


if __name__ == "__main__":
    run()
