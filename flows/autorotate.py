"""The main job, as an archivist's runbook: ingest -> predict -> apply -> report.

The protocol that keeps the archive safe (lock, recovery, adopting killed runs, journal,
report) is the library's :class:`~orient_model.run.AutorotateRun`; this flow runs its stages
as Prefect tasks, so progress, logs and artifacts show in the UI.
"""

import functools
from collections import deque
from pathlib import Path

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_link_artifact, create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE
from prefect.events import emit_event

from flows.cluster import engine_for_cluster
from flows.errors import fail_cleanly, finished, retry_transient
from flows.progress import RunProgress
from orient_model.archive import ArchiveEntry, Memory, archive_slug
from orient_model.config import AutorotateConfig
from orient_model.model.evidence import EvidenceRenderer
from orient_model.model.predict import Predictor, decision_threshold
from orient_model.model.registry import load_model, resolve_model_path
from orient_model.pipeline import Predicted, predict_entries
from orient_model.report import summary_markdown
from orient_model.review import review_markdown
from orient_model.run import AutorotateRun

CHUNK = 64  # photos per prediction task: one progress step


@functools.lru_cache(maxsize=4)
def cached_model(
    model_path: str, device: str, tta: bool, views: int | None, glance: bool, saliency: str, engine: str
):
    """Load each model once per process (a worker's too), however many tasks use it."""
    loaded = load_model(model_path)
    renderer = None if saliency == "off" else EvidenceRenderer(loaded, saliency)
    return Predictor(loaded, device=device, tta=tta, views=views, engine=engine, glance=glance), renderer


def model_for(cfg: AutorotateConfig, model_path: str):
    return cached_model(model_path, cfg.device, cfg.tta, cfg.views, cfg.glance, cfg.saliency, cfg.engine)


@task(retries=1, retry_delay_seconds=2, retry_condition_fn=retry_transient, cache_policy=NO_CACHE)
def predict_chunk(
    root: str,
    entries: list[ArchiveEntry],
    model_path: str,
    cfg: AutorotateConfig,
    threshold: float,
    memory: Memory,
    rejudge: bool,
) -> Predicted:
    """Read, predict and decide a chunk of files: small, picklable inputs and outputs, so it runs
    wherever the task runner sends it (a thread here, a Dask worker on another machine)."""
    predictor, renderer = model_for(cfg, model_path)
    return predict_entries(Path(root), entries, predictor, cfg, threshold, renderer, memory, rejudge=rejudge)


def record(run: AutorotateRun, predicted: Predicted, progress: RunProgress) -> None:
    """Apply, journal and report a predicted chunk: here, never in a task (see the flow's doc)."""
    run.finish_chunk(predicted)
    progress.advance(len(predicted.rows))


def autorotate_flow_for(cfg: AutorotateConfig):
    """The flow, with its predictions sent to a Dask cluster when one is configured."""
    if not cfg.dask_address:
        return autorotate
    from prefect_dask import DaskTaskRunner

    return autorotate.with_options(task_runner=DaskTaskRunner(address=cfg.dask_address))


@flow(name="autorotate", log_prints=True)
@fail_cleanly
def autorotate(
    archive_dir: str,
    config: AutorotateConfig | None = None,
    report: str | None = None,
    out_dir: str | None = None,
    state_dir: str | None = None,
    rejudge: bool = False,
) -> dict:
    """Find and fix the orientation of every photo in an archive; write a Parquet report.

    Prediction runs as tasks, a few chunks ahead; applying stays here, in the one process that
    holds the archive's lock and journal.
    """
    cfg = config or AutorotateConfig()
    logger = get_run_logger()
    model_path = str(resolve_model_path(cfg.model, cfg.models_dir and Path(cfg.models_dir)))
    engine_note = ""
    if cfg.dask_address:
        # The threshold holds for the engine it was certified with: one engine that every worker
        # (and this machine) runs certified, chosen before the first chunk, never mixing calibrations.
        engine, engine_note = engine_for_cluster(cfg, model_path)
        cfg = cfg.model_copy(update={"engine": engine})
    predictor, _ = model_for(cfg, model_path)
    threshold, how = decision_threshold(predictor, cfg.threshold, cfg.max_error)
    how += f"; {engine_note}" if engine_note else ""  # in the log once, the report and the summary
    logger.info(f"deciding alone above confidence {threshold:.4f}: {how}")
    with AutorotateRun(
        archive_dir,
        cfg,
        predictor.loaded.version,
        predictor.looking.key,
        threshold=threshold,
        decision_note=how,
        report=report,
        out_dir=out_dir,
        state_dir=state_dir,
        rejudge=rejudge,
        model_path=model_path,
        log=logger.warning,
    ) as run:
        logger.info(
            f"run {run.run_id}: {len(run.entries)} files in {run.root}; model "
            f"{predictor.loaded.version}, apply={cfg.apply}"
        )
        progress = RunProgress("autorotate", len(run.entries), "photos read, predicted and written")
        pending: deque = deque()
        for chunk in run.chunks(CHUNK):
            pending.append(
                predict_chunk.submit(
                    str(run.root), chunk, model_path, cfg, run.threshold, run.memory_for(chunk), rejudge
                )
            )
            if len(pending) > max(1, cfg.chunks_ahead):
                record(run, pending.popleft().result(), progress)
        while pending:
            record(run, pending.popleft().result(), progress)
    summary = run.summary
    publish(summary, archive_slug(str(run.root)))
    return finished(summary, logger, "handled")


def report_link_artifact(summary: dict, key: str) -> None:
    """A link to the run's Parquet report, where Prefect users look."""
    create_link_artifact(
        Path(summary["report"]).as_uri(),
        link_text=f"report of run {summary['run_id']}",
        key=key,
        description="The run's Parquet report",
    )


def publish(summary: dict, slug: str) -> None:
    """The run's outcome where Prefect users look: artifacts keyed by archive (each archive keeps
    its own history), a link to the report, and an event an automation can act on."""
    counts = summary["counts"]
    create_table_artifact(
        [
            {"action": a, "photos": n, "of which carried over": summary["carried_counts"][a]}
            for a, n in counts.items()
        ],
        key=f"autorotate-{slug}-counts",
        description=f"Actions in run {summary['run_id']}",
    )
    create_markdown_artifact(
        summary_markdown(summary, f"orient run {summary['run_id']}"),
        key=f"autorotate-{slug}-summary",
        description="Flagged photos and errors",
    )
    report_link_artifact(summary, key=f"autorotate-{slug}-report")
    if counts["flag"]:  # how to open the review page, and where the flagged photos' pictures are
        create_markdown_artifact(
            review_markdown(summary),
            key=f"autorotate-{slug}-review",
            description="Review the flagged photos: orient review ARCHIVE",
        )
    emit_event(
        event="orient.autorotate.completed",
        resource={
            "prefect.resource.id": f"orient.archive.{slug}",
            "prefect.resource.name": summary["archive"],
            "orient.result": "completed-with-errors" if counts["error"] else "completed",
        },
        payload={
            "run_id": summary["run_id"],
            "report": summary["report"],
            "files": summary["files"],
            "rotated": summary["applied"],
            "flagged": counts["flag"],
            "errors": counts["error"],
            "carried_over": summary["carried_over"],
        },
    )
