"""apply-review: carry out the operator's decisions, as safely as auto-rotate carries out its own.

The decisions come from the archive's journal (see :mod:`orient_model.review`); the run is an
ordinary :class:`~orient_model.run.AutorotateRun` (lock, recovery, journal, backups, verified
atomic writes, a report that ``orient undo`` takes), whose rows carry the operator's turns
instead of a model's. Applying twice changes nothing: a decision is about one content, and once
the file is turned it holds another.
"""

from __future__ import annotations

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE

from flows.autorotate import report_link_artifact
from flows.errors import fail_cleanly, finished
from flows.progress import RunProgress
from orient_model.archive import archive_slug
from orient_model.config import AutorotateConfig
from orient_model.errors import OrientError
from orient_model.report import summary_markdown
from orient_model.review import REVIEW_MODEL_VERSION, REVIEW_VIEW_KEY, review_rows
from orient_model.run import AutorotateRun


@task(cache_policy=NO_CACHE)
def carry_out_decisions(archive_dir: str, apply: str, state_dir: str | None, report: str | None) -> dict:
    """One run over the archive (its lock, journal, backups and report held here, never handed
    between tasks): read each file with a pending decision, put back the automatic turns the
    operator overturned, turn each as decided; returns the run's summary."""
    logger = get_run_logger()
    cfg = AutorotateConfig(apply=apply)
    with AutorotateRun(
        archive_dir,
        cfg,
        REVIEW_MODEL_VERSION,
        REVIEW_VIEW_KEY,
        report=report,
        state_dir=state_dir,
        log=logger.warning,
    ) as run:
        planned = review_rows(run, log=logger.info)
        turning = sum(r.action == "rotate" for r in planned.rows)
        logger.info(f"run {run.run_id}: {turning} photo(s) to turn as the operator decided, in {run.root}")
        progress = RunProgress("apply-review", max(turning, 1), "photos turned as decided")
        run.finish_chunk(planned, progress.advance)
    return run.summary


@flow(name="apply-review", log_prints=True)
@fail_cleanly
def apply_review(
    archive_dir: str, apply: str = "lossless", state_dir: str | None = None, report: str | None = None
) -> dict:
    """Turn every photo an operator decided needs turning (lossless by default); write a report."""
    if AutorotateConfig(apply=apply).apply == "none":
        raise OrientError("apply-review changes files: use --apply lossless or --apply exif")
    summary = carry_out_decisions(archive_dir, apply, state_dir, report)
    publish(summary, archive_slug(summary["archive"]))
    return finished(summary, get_run_logger(), "turned")


def publish(summary: dict, slug: str) -> None:
    """What was applied, where Prefect users look, and how to take it back."""
    undo = f"\nUndo it with `orient undo {summary['report']}`.\n"
    create_markdown_artifact(
        summary_markdown(summary, f"orient apply-review {summary['run_id']}") + undo,
        key=f"apply-review-{slug}-summary",
        description="Operator decisions applied",
    )
    report_link_artifact(summary, key=f"apply-review-{slug}-report")
