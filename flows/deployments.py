"""Scheduled deployments: the archivist's overnight run, as Prefect's docs set them up.

Each deployment is named after its archive and job, carries its schedule's time zone, and has a
concurrency limit of one: a run that would overlap the one still going is cancelled (the next
night's run picks its work up), never run twice over the same archive and never a red failure.
"""

from __future__ import annotations

import os
from pathlib import Path

from prefect import serve
from prefect.client.schemas.objects import ConcurrencyLimitConfig, ConcurrencyLimitStrategy
from prefect.schedules import Cron

from flows.autorotate import autorotate
from orient_model.archive import archive_slug
from orient_model.config import AutorotateConfig


def local_timezone() -> str:
    """This machine's IANA time zone name (TZ, /etc/timezone or /etc/localtime), else UTC."""
    if os.environ.get("TZ"):
        return os.environ["TZ"].lstrip(":")
    try:
        return Path("/etc/timezone").read_text().strip() or "UTC"
    except OSError:
        pass
    try:
        target = os.path.realpath("/etc/localtime")
        return target.split("zoneinfo/", 1)[1] if "zoneinfo/" in target else "UTC"
    except OSError:
        return "UTC"


def nightly_deployment(archive_dir: str, cron: str, timezone: str, cfg: AutorotateConfig):
    return autorotate.to_deployment(
        name=f"autorotate-{archive_slug(archive_dir)}",
        schedule=Cron(cron, timezone=timezone),
        concurrency_limit=ConcurrencyLimitConfig(
            limit=1, collision_strategy=ConcurrencyLimitStrategy.CANCEL_NEW
        ),
        parameters={"archive_dir": archive_dir, "config": cfg.model_dump()},
        description=f"Auto-rotate new scans in {archive_dir}; low-confidence photos are flagged for review.",
        tags=["orient", "autorotate", archive_slug(archive_dir)],
    )


def retrain_deployment(
    archive_dir: str, upright_dirs: list[str], cron: str, timezone: str, models_dir: str | None = None
):
    """Weekly by default: a challenger trained on the pool, promoted only if it wins."""
    from flows.retrain import retrain

    return retrain.to_deployment(
        name=f"retrain-{archive_slug(archive_dir)}",
        schedule=Cron(cron, timezone=timezone),
        concurrency_limit=ConcurrencyLimitConfig(
            limit=1, collision_strategy=ConcurrencyLimitStrategy.CANCEL_NEW
        ),
        parameters={"upright_dirs": upright_dirs, "archive_dir": archive_dir, "models_dir": models_dir},
        description=f"Retrain on the photos reviewed in {archive_dir} (and upright folders); promote only a better model.",
        tags=["orient", "retrain", archive_slug(archive_dir)],
    )


def serve_deployments(*deployments) -> None:
    """Serve until stopped (Ctrl-C); runs appear in the Prefect UI with their reports.

    Ctrl-C is turned into the termination Prefect's runner stops on at once: left to asyncio, a
    first Ctrl-C only cancels a task, and the runner goes on shutting down for many seconds."""
    import signal

    signal.signal(signal.SIGINT, lambda signum, frame: os.kill(os.getpid(), signal.SIGTERM))
    serve(*deployments)
