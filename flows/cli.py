"""The `orient` command line: thin wrappers that validate input and start Prefect flows."""

from __future__ import annotations

import functools
import os
import sys
from pathlib import Path
from typing import Annotated

import typer
from pydantic import ValidationError
from rich.console import Console

from orient_model.config import load_config
from orient_model.errors import OrientError

app = typer.Typer(
    help="orient: find and fix the orientation of scanned photographs, safely, in batch.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
err = Console(stderr=True)
console = Console()

ConfigOpt = Annotated[Path | None, typer.Option("--config", "-c", help="YAML config (see configs/default.yaml)")]
DeviceOpt = Annotated[str | None, typer.Option(help="auto | cpu | cuda")]


def fail(message: str) -> None:
    err.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(1)


def user_errors(fn):
    """Expected problems end with one clear line and exit status 1, never a traceback."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        from flows.errors import USER_ERRORS

        try:
            return fn(*args, **kwargs)
        except USER_ERRORS as exc:
            fail(str(exc))
        except FileNotFoundError as exc:
            fail(f"file not found: {exc.filename or exc}")
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(part) for part in first["loc"])
            fail(f"invalid setting {where}: {first['msg']} (got {first.get('input')!r})")
        except KeyboardInterrupt:
            fail("interrupted; re-run the same command to resume (finished work is kept)")

    return wrapper


def run_flow(flow_fn, **params):
    """Run a flow; a failed run ends the command with the flow's own message."""
    state = flow_fn(**params, return_state=True)
    if not state.is_completed():
        fail(state.message or f"{flow_fn.name} ended {state.name}")
    return state.result()


@app.command("make-training-set")
@user_errors
def make_training_set_cmd(
    upright_dirs: Annotated[list[Path], typer.Argument(help="folders of photos known to be upright")],
    out: Annotated[Path, typer.Option("--out", "-o", help="training set folder (DATA_DIR)")],
    copy_size: Annotated[int | None, typer.Option(help="side of the square copies in px")] = None,
    crops_per_photo: Annotated[int | None, typer.Option(help="square crops along each photo's long side")] = None,
    val_fraction: Annotated[float | None, typer.Option(help="share of photos held out for validation")] = None,
    provenance: Annotated[Path | None, typer.Option(help="JSON list of {sha256, source, license} records")] = None,
    config: ConfigOpt = None,
) -> None:
    """Write 0/90/180/270 copies of upright photos (ImageFolder layout) and a Parquet manifest."""
    from orient_model.training_set import find_photos

    for d in upright_dirs:
        if not d.is_dir():
            fail(f"not a directory: {d}")
    if next(find_photos(upright_dirs), None) is None:
        fail(f"no files found in {', '.join(map(str, upright_dirs))}; give folders of upright photos")
    cfg = load_config(config, {"training_set": dict(copy_size=copy_size, crops_per_photo=crops_per_photo,
                                                   val_fraction=val_fraction)}).training_set
    from flows.training import make_training_set

    if provenance is not None and not provenance.is_file():
        fail(f"provenance file not found: {provenance}")
    manifest = run_flow(make_training_set, upright_dirs=[str(d) for d in upright_dirs], out=str(out), config=cfg,
                        provenance=str(provenance) if provenance else None)
    console.print(f"manifest: {manifest}")


@app.command()
@user_errors
def train(
    data_dir: Annotated[Path, typer.Argument(help="training set made by make-training-set")],
    out: Annotated[Path, typer.Option("--out", "-o", help="models folder (registry of versions)")],
    arch: Annotated[str | None, typer.Option(help="efficientnet_lite0 | tiny")] = None,
    epochs: Annotated[int | None, typer.Option(help="maximum epochs (early stopping may end sooner)")] = None,
    device: DeviceOpt = None,
    weights: Annotated[str | None, typer.Option(help="auto | package | timm | none | PATH to a state dict")] = None,
    batch_size: Annotated[int | None, typer.Option()] = None,
    lr: Annotated[float | None, typer.Option(help="peak learning rate")] = None,
    input_size: Annotated[int | None, typer.Option(help="model input side in px")] = None,
    workers: Annotated[int | None, typer.Option(help="data loader processes")] = None,
    patience: Annotated[int | None, typer.Option(help="epochs without validation gain before stopping")] = None,
    config: ConfigOpt = None,
) -> None:
    """Train an orientation model (GPU when present), or load the one already trained on this data."""
    cfg = load_config(config, {"train": dict(arch=arch, epochs=epochs, device=device, weights=weights,
                                             batch_size=batch_size, lr=lr, input_size=input_size,
                                             workers=workers, patience=patience)}).train
    if not (data_dir / "manifest.parquet").is_file():
        fail(f"{data_dir} is not a training set (no manifest.parquet); run `orient make-training-set` first")
    if cfg.weights not in ("auto", "package", "timm", "none") and not Path(cfg.weights).is_file():
        fail(f"weights file not found: {cfg.weights}")
    from flows.training import train as train_flow

    command = " ".join(["orient", *sys.argv[1:]])
    folder = run_flow(train_flow, data_dir=str(data_dir), models_dir=str(out), config=cfg, command=command)
    console.print(f"model: {folder}")


@app.command()
@user_errors
def autorotate(
    archive_dir: Annotated[Path, typer.Argument(help="folder of scanned photos (searched recursively)")],
    model: Annotated[str | None, typer.Option(help="'default', a model version folder or a model.pt file")] = None,
    threshold: Annotated[float | None, typer.Option(help="confidence needed to act without review")] = None,
    apply: Annotated[str | None, typer.Option(help="lossless | exif | none (only report)")] = None,
    report: Annotated[Path | None, typer.Option(help="Parquet report path (default: ARCHIVE/.orient/reports/)")] = None,
    out_dir: Annotated[Path | None, typer.Option(help="write corrected copies to this mirror tree instead")] = None,
    batch_size: Annotated[int | None, typer.Option()] = None,
    device: DeviceOpt = None,
    tta: Annotated[bool | None, typer.Option("--tta/--no-tta", help="vote over the four rotated views")] = None,
    saliency: Annotated[str | None, typer.Option(help="guided | gradient | off (maps for flagged photos)")] = None,
    config: ConfigOpt = None,
) -> None:
    """Predict every photo's orientation, rotate the confident ones, flag the rest, write a report."""
    cfg = load_config(config, {"autorotate": dict(model=model, threshold=threshold, apply=apply, device=device,
                                                  batch_size=batch_size, tta=tta, saliency=saliency)}).autorotate
    if not archive_dir.is_dir():
        fail(f"archive directory not found: {archive_dir}")
    if out_dir is not None and cfg.apply == "none":
        fail("--out-dir writes corrected copies, so it needs --apply lossless or --apply exif")
    from orient_model.model.registry import read_checkpoint, resolve_model_path

    read_checkpoint(resolve_model_path(cfg.model))  # a bad model fails here, before any work
    from flows.autorotate import autorotate as autorotate_flow

    summary = run_flow(autorotate_flow, archive_dir=str(archive_dir), config=cfg,
                       report=str(report) if report else None, out_dir=str(out_dir) if out_dir else None)
    print_summary(summary)


def print_summary(summary: dict) -> None:
    counts = ", ".join(f"{n} {a}" for a, n in summary["counts"].items() if n)
    console.print(f"[bold]{summary['files']} files[/]: {counts}; {summary['applied']} changes written")
    console.print(f"report: {summary['report']} (run id {summary['run_id']})")
    if summary.get("flagged_dir"):
        console.print(f"flagged photos (thumbnails with evidence maps): {summary['flagged_dir']}")


@app.command()
@user_errors
def undo(
    report_or_run_id: Annotated[str, typer.Argument(help="a run's Parquet report, or its run id")],
    archive: Annotated[Path | None, typer.Option(help="archive folder (needed with a run id)")] = None,
    path: Annotated[list[str] | None, typer.Option("--path", help="undo only this file (relative path; repeat)")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="say what would be restored; change nothing")] = False,
) -> None:
    """Restore every file a run changed to its byte-identical original (again: a no-op)."""
    from orient_model.archive.undo import undo_run

    result = undo_run(report_or_run_id, archive, path, dry_run, announce=lambda line: console.print(line, highlight=False))
    for o in result.outcomes:
        where = o.rel_path if o.target_root is None else f"{o.target_root}/{o.rel_path}"
        if not o.ok:
            err.print(f"[yellow]not restored:[/] {where}: {o.message}", highlight=False)
        elif o.status != "already":
            console.print(f"{o.status}: {where}", highlight=False)
    done = sum(o.status in ("restored", "removed") for o in result.outcomes)
    if not result.outcomes or result.nothing_to_do:
        console.print(f"run {result.run_id}: nothing left to undo in {result.root}", highlight=False)
    elif dry_run:
        console.print(f"run {result.run_id}: {len(result.outcomes) - len(result.refused)} of "
                      f"{len(result.outcomes)} changed files would be restored (dry run)", highlight=False)
    else:
        console.print(f"run {result.run_id}: restored {done} of {len(result.outcomes)} changed files in "
                      f"{result.root}", highlight=False)
    if result.refused:
        raise typer.Exit(1)


@app.command()
@user_errors
def demo(
    workdir: Annotated[Path, typer.Option(help="where to build the demo archive")] = Path("orient-demo"),
) -> None:
    """Build a scrambled demo archive from bundled open photos, auto-rotate it, show how it went."""
    import json
    import shutil

    from orient_model.demo import build_demo_archive
    from orient_model.report import read_report

    if workdir.exists():
        shutil.rmtree(workdir)
    truth = build_demo_archive(workdir)
    console.print(f"demo archive: {workdir / 'archive'} ({len(truth)} scrambled photos + 3 bad files)")
    cfg = load_config(None).autorotate.model_copy(update={"apply": "lossless"})
    from flows.autorotate import autorotate as autorotate_flow

    summary = run_flow(autorotate_flow, archive_dir=str(workdir / "archive"), config=cfg,
                       report=str(workdir / "report.parquet"))
    rows = read_report(Path(summary["report"])).to_pylist()
    judged = [r for r in rows if r["path"] in truth and r["rotation_deg"] is not None]
    correct = sum(r["rotation_deg"] == truth[r["path"]] for r in judged)
    print_summary(summary)
    console.print(f"accuracy against the known rotations: {correct}/{len(judged)} = {correct / max(len(judged), 1):.0%}")
    wrong_applied = [r["path"] for r in judged if r["applied"] and r["rotation_deg"] != truth[r["path"]]]
    if wrong_applied:
        console.print(f"rotated wrongly (undo with `orient undo {summary['report']}`): {', '.join(wrong_applied)}")
    (workdir / "accuracy.json").write_text(json.dumps({"correct": correct, "judged": len(judged)}))


@app.command()
@user_errors
def serve(
    archive_dir: Annotated[Path, typer.Argument(help="archive to auto-rotate on a schedule")],
    cron: Annotated[str, typer.Option(help="when to run (cron syntax; default nightly at 02:00)")] = "0 2 * * *",
    apply: Annotated[str, typer.Option(help="lossless | exif | none")] = "lossless",
    config: ConfigOpt = None,
) -> None:
    """Serve a scheduled Prefect deployment that auto-rotates new scans every night."""
    from flows.deployments import serve_nightly

    cfg = load_config(config, {"autorotate": {"apply": apply}}).autorotate
    serve_nightly(str(archive_dir.resolve()), cron, cfg)


@app.command("config")
def show_config() -> None:
    """Print the default configuration (copy it to a file, edit, pass with --config)."""
    from orient_model.config import dump_defaults

    typer.echo(dump_defaults())


def main() -> None:
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    try:
        app()
    except OrientError as exc:  # pragma: no cover - belt and braces
        err.print(f"[bold red]error:[/] {exc}")
        sys.exit(1)


if __name__ == "__main__":
    main()
