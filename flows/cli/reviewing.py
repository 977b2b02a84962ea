"""The operator's review: the review page and carrying out its decisions."""

from __future__ import annotations

from pathlib import Path

import click

from flows.cli.common import (
    existing_dir,
    finish_summary,
    main,
    output_options,
    run_flow,
    say,
    set_output,
    state_dir_option,
    user_errors,
)

# --------------------------------------------------------------------------- operator review


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
