"""The main job, as an archivist's runbook: ingest -> predict -> apply -> report."""

import functools
import json
import os
import time
from pathlib import Path

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE
from prefect.runtime import flow_run

from flows.errors import fail_cleanly
from flows.progress import RunProgress
from orient_model.archive.atomic import atomic_write_bytes
from orient_model.archive.changes import Archive, archive_lock
from orient_model.archive.journal import JournalError
from orient_model.archive.walk import ArchiveEntry, walk_archive
from orient_model.config import AutorotateConfig
from orient_model.errors import OrientError
from orient_model.model.evidence import SaliencyRenderer
from orient_model.model.predict import Predictor
from orient_model.model.registry import load_model, resolve_model_path
from orient_model.pipeline import batched, predict_entries
from orient_model.report import ReportRow, summarize, summary_markdown, write_report

CHUNK = 256  # photos per prediction task: one progress step in the UI


@functools.lru_cache(maxsize=4)
def cached_model(model_path: str, device: str, tta: bool, saliency: str):
    """Load each model once per process, however many tasks use it."""
    loaded = load_model(model_path)
    renderer = None if saliency == "off" else SaliencyRenderer(loaded, saliency)
    return Predictor(loaded, device=device, tta=tta), renderer


@task(retries=2, retry_delay_seconds=2, cache_policy=NO_CACHE)
def list_archive(root: str) -> list[ArchiveEntry]:
    return list(walk_archive(root))


@task(retries=1, retry_delay_seconds=2, cache_policy=NO_CACHE)
def predict_chunk(root: str, entries: list[ArchiveEntry], model_path: str, cfg: AutorotateConfig,
                  rotated_before: dict[str, str], run_id: str, progress: RunProgress) -> list[ReportRow]:
    predictor, renderer = cached_model(model_path, cfg.device, cfg.tta, cfg.saliency)
    rows = predict_entries(Path(root), entries, predictor, cfg, renderer, rotated_before.get, progress.advance)
    for row in rows:
        row.model_version, row.run_id = predictor.loaded.version, run_id
    return rows


@task(cache_policy=NO_CACHE)
def apply_changes(root: str, rows: list[ReportRow], method: str, run_id: str, out_dir: str | None,
                  progress: RunProgress) -> list[ReportRow]:
    """Carry out each 'rotate' decision (journaled, verified, atomic); copy the rest to a mirror."""
    logger = get_run_logger()
    with Archive(root) as archive:
        for row in rows:
            start = time.perf_counter()
            rel = os.fsdecode(row.path_bytes)
            try:
                if row.action == "rotate":
                    result = archive.apply(rel, row.rotation_deg, method, run_id, row.sha256_before,
                                           Path(out_dir) if out_dir else None,
                                           exif_orientation=row.exif_orientation)
                    row.applied, row.method, row.sha256_after = result.applied, result.method, result.sha256_after
                    row.note = result.note or row.note
                elif out_dir and row.action in ("keep", "flag"):
                    archive.mirror(rel, Path(out_dir), row.sha256_before, run_id)
            except JournalError:
                raise
            except (OrientError, OSError) as exc:
                row.action, row.error = "error", f"not rotated: {exc}"
                logger.warning(f"{row.path}: {row.error}")
            row.apply_ms = (time.perf_counter() - start) * 1000
            progress.advance(1)
    return rows


@task(retries=2, retry_delay_seconds=1, cache_policy=NO_CACHE)
def write_outputs(rows: list[ReportRow], report_path: str, run_config: dict) -> dict:
    path = write_report(rows, Path(report_path), run_config)
    summary = summarize(rows)
    flagged_dir = path.with_name(path.stem + "_flagged")
    for row in rows:
        if row.saliency_png or row.thumbnail_png:
            flagged_dir.mkdir(exist_ok=True)
            name = row.path.replace(os.sep, "__") + ".png"
            atomic_write_bytes(flagged_dir / name, row.saliency_png or row.thumbnail_png)
    summary.update(report=str(path), flagged_dir=str(flagged_dir) if flagged_dir.exists() else None,
                   run_id=run_config["run_id"])
    atomic_write_bytes(path.with_suffix(".json"), json.dumps(summary, indent=2).encode())
    atomic_write_bytes(path.with_suffix(".md"), summary_markdown(summary, f"orient run {run_config['run_id']}").encode())
    return summary


def new_run_id() -> str:
    return time.strftime("%Y%m%d-%H%M%S-") + (flow_run.id or "local")[:8]


@flow(name="autorotate", log_prints=True)
@fail_cleanly
def autorotate(archive_dir: str, config: AutorotateConfig | None = None, report: str | None = None,
               out_dir: str | None = None) -> dict:
    """Find and fix the orientation of every photo in an archive; write a Parquet report."""
    cfg = config or AutorotateConfig()
    logger = get_run_logger()
    root = Path(archive_dir).resolve()
    if not root.is_dir():
        raise NotADirectoryError(f"archive directory not found: {archive_dir}")
    model_path = str(resolve_model_path(cfg.model))
    run_id = new_run_id()
    report_path = Path(report) if report else root / ".orient" / "reports" / f"{run_id}.parquet"
    with archive_lock(root, run_id):
        with Archive(root) as archive:
            for message in archive.recover():
                logger.warning(f"recovered from an interrupted run: {message}")
            archive.adopt_unfinished(run_id)
            adopted = archive.runs_undone_with(run_id)[1:]  # with the runs those had finished
            if adopted:
                logger.warning(f"finishing the work of interrupted run(s) {', '.join(adopted)}; "
                               f"undoing this run undoes theirs too")
            rotated_before = {e.sha256_after: e.run_id for e in archive.entries() if e.state == "done"}
        entries = list_archive(str(root))
        logger.info(f"run {run_id}: {len(entries)} files in {root}; model {cfg.model}, apply={cfg.apply}")
        progress = RunProgress("autorotate-predict", len(entries), "photos read and predicted")
        rows: list[ReportRow] = []
        for chunk in batched(entries, CHUNK):
            rows += predict_chunk(str(root), chunk, model_path, cfg, rotated_before, run_id, progress)
        if cfg.apply != "none":
            todo = [r for r in rows if r.action == "rotate" or (out_dir and r.action in ("keep", "flag"))]
            logger.info(f"applying {sum(r.action == 'rotate' for r in todo)} rotations ({cfg.apply})")
            # The task updates these rows (applied, method, hashes, errors) and hands them back.
            done = apply_changes(str(root), todo, cfg.apply, run_id, out_dir,
                                 RunProgress("autorotate-apply", len(todo), "files written"))
            by_path = {r.path_bytes: r for r in done}
            rows = [by_path.get(r.path_bytes, r) for r in rows]
        run_config = {"run_id": run_id, "archive": str(root), "out_dir": out_dir, "model": model_path,
                      "resumed_runs": adopted, **cfg.model_dump()}
        summary = write_outputs(rows, str(report_path), run_config)
        with Archive(root) as archive:
            archive.finish(run_id)
    create_table_artifact([{"action": a, "photos": n} for a, n in summary["counts"].items()],
                          key="autorotate-counts", description=f"Actions in run {run_id}")
    create_markdown_artifact(summary_markdown(summary, f"orient run {run_id}"), key="autorotate-flagged",
                             description="Flagged photos and errors")
    logger.info(f"report: {summary['report']}; " + ", ".join(f"{a} {n}" for a, n in summary["counts"].items()))
    return summary
