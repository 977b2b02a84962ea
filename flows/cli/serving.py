"""Unattended runs and settings: serve the schedules, print the configuration."""

from __future__ import annotations

from pathlib import Path

import click

from flows.cli.common import (
    config_option,
    existing_dir,
    load,
    main,
    say,
    user_errors,
)
from flows.options import config_options

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


@main.command("config")
def show_config() -> None:
    """Print the default configuration (copy it to a file, edit, pass with --config)."""
    from orient_model.config import dump_defaults

    click.echo(dump_defaults(), nl=False)
