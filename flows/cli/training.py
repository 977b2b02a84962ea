"""Training and models: training sets, training, the registry, explaining, retraining."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from flows.cli.common import (
    config_option,
    existing_dir,
    fail,
    load,
    main,
    models_dir_option,
    run_flow,
    say,
    set_output,
    user_errors,
)
from flows.options import config_options, overrides
from orient_model.config import MAX_ERROR

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


# --------------------------------------------------------------------------- the model registry


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
    default=MAX_ERROR,
    show_default=True,
    help="error target whose certified threshold the figures use",
)
@click.option(
    "--max-photos",
    type=click.IntRange(min=1),
    default=1200,
    show_default=True,
    help="judge at most this many photos, spread evenly (each costs 12 network passes with three views)",
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
    labelled = photos_for(loaded.card, photos, loaded.path.parent if loaded.path else None)
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
