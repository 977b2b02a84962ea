"""Running and undoing: auto-rotate an archive, undo a run, the demo."""

from __future__ import annotations

import json
from pathlib import Path

import click

from flows.cli.common import (
    EXIT_COMPLETED_WITH_ERRORS,
    EXIT_USER_ERROR,
    config_option,
    existing_dir,
    fail,
    finish_summary,
    load,
    main,
    output_options,
    run_flow,
    say,
    set_output,
    user_errors,
)
from flows.options import config_options

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


@main.command()
@click.argument("report_or_run_id")
@click.option("--archive", type=click.Path(path_type=Path), help="archive folder (needed with a run id)")
@click.option("--path", "paths", multiple=True, help="undo only this file (relative path; repeat for more)")
@click.option("--dry-run", is_flag=True, help="say what would be restored; change nothing")
@output_options
@user_errors
def undo(report_or_run_id, archive, paths, dry_run, quiet, as_json) -> None:
    """Restore every file a run changed to its byte-identical original (again: a no-op)."""
    from orient_model.archive import undo_run

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
