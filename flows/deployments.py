"""Scheduled deployments: the archivist's overnight run."""

from __future__ import annotations

from prefect import serve

from flows.autorotate import autorotate
from orient_model.config import AutorotateConfig


def nightly_deployment(archive_dir: str, cron: str, cfg: AutorotateConfig):
    return autorotate.to_deployment(
        name=f"nightly-{archive_dir.strip('/').replace('/', '-')}"[:60],
        cron=cron,
        parameters={"archive_dir": archive_dir, "config": cfg.model_dump()},
        description="Auto-rotate new scans in this archive; low-confidence photos are flagged for review.",
        tags=["orient", "nightly"],
    )


def serve_nightly(archive_dir: str, cron: str, cfg: AutorotateConfig) -> None:
    """Serve until stopped (Ctrl-C); runs appear in the Prefect UI with their reports."""
    serve(nightly_deployment(archive_dir, cron, cfg))
