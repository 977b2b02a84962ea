"""Flows that make training copies and train (or load) an orientation model."""

import json
import shlex
import sys
import time
from pathlib import Path

from prefect import flow, get_run_logger, task, unmapped
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE

from flows.errors import fail_cleanly, retry_transient
from flows.progress import RunProgress
from orient_model.archive.atomic import atomic_write_bytes, sha256_file
from orient_model.config import TrainConfig, TrainingSetConfig
from orient_model.model.architectures import ARCHS
from orient_model.model.card import model_card_markdown
from orient_model.model.registry import find_trained, save_model, training_key
from orient_model.model.train import TrainingError, fit
from orient_model.training_set import (
    SPLITS,
    ManifestRow,
    find_photos,
    manifest_path,
    process_source,
    read_manifest,
    write_manifest,
)

CHUNK = 32
PROVENANCE = "provenance.json"


@task(retries=2, retry_delay_seconds=1, retry_condition_fn=retry_transient, cache_policy=NO_CACHE)
def copies_for_sources(sources: list[tuple[str, bool]], out_dir: str, cfg: TrainingSetConfig,
                       kinds: dict[str, list[str]]) -> list[ManifestRow]:
    """Copies for a chunk of (source, held out); copies already on disk are not made again."""
    return [row for s, held_out in sources for row in process_source(Path(s), Path(out_dir), cfg, kinds, held_out)]


@flow(name="make-training-set", log_prints=True)
@fail_cleanly
def make_training_set(
    upright_dirs: list[str], out: str, config: TrainingSetConfig | None = None, provenance: str | None = None
) -> str:
    """Four rotated copies (0/90/180/270) of every upright photo, plus a Parquet manifest.

    ``provenance``: optional JSON list of {sha256, source, license, ...} records; kept beside
    the manifest so a model card can name each training photo's origin and licence.
    """
    cfg = config or TrainingSetConfig()
    logger = get_run_logger()
    records = {r["sha256"]: r for r in json.loads(Path(provenance).read_text())} if provenance else {}
    kinds = {sha: list(r.get("kinds") or []) for sha, r in records.items()}
    held = [Path(d).resolve() for d in cfg.held_out_dirs]
    paths = list(find_photos([*upright_dirs, *cfg.held_out_dirs]))
    sources = [(str(p), any(p.resolve().is_relative_to(h) for h in held)) for p in paths]
    if not sources:
        raise TrainingError(f"no files found in {', '.join(upright_dirs)}")
    logger.info(f"{len(sources)} files in {len(upright_dirs)} folder(s); copies go to {out}")
    progress = RunProgress("make-training-set", len(sources), "sources")
    chunks = [sources[i:i + CHUNK] for i in range(0, len(sources), CHUNK)]
    rows: list[ManifestRow] = []
    seen: set[tuple] = set()
    for chunk, future in zip(chunks, copies_for_sources.map(chunks, unmapped(out), unmapped(cfg), unmapped(kinds))):
        chunk_rows = future.result()
        # The same photo under two names is one source: its copies must not count twice.
        for row in chunk_rows:
            if row.error or (row.source_sha256, row.rotation_deg, row.crop) not in seen:
                rows.append(row)
                seen.add((row.source_sha256, row.rotation_deg, row.crop))
        progress.advance(len(chunk))
    bad = [r for r in rows if r.error]
    good = {r.source_sha256 for r in rows if not r.error}
    if not good:
        raise TrainingError(f"no readable photos among {len(sources)} files (first problem: {bad[0].error})")
    path = manifest_path(Path(out))
    write_manifest(rows, path)
    if provenance:
        used = [records.get(sha, {"sha256": sha, "license": "unknown"}) for sha in sorted(good)]
        atomic_write_bytes(Path(out) / PROVENANCE, json.dumps(used, indent=1).encode())
    per_split = {s: len({r.source_sha256 for r in rows if r.split == s}) for s in SPLITS}
    logger.info(
        f"{len(good)} photos -> {sum(1 for r in rows if r.copy_path)} copies; photos per split: "
        + ", ".join(f"{s} {n}" for s, n in per_split.items()) + f"; {len(bad)} unreadable; manifest {path}"
    )
    if bad:
        create_table_artifact(
            [{"source": r.source_path, "problem": r.error} for r in bad],
            key="unreadable-sources", description="Sources that could not be used",
        )
    return str(path)


def whole_photos(data_dir: str) -> dict[str, list[tuple[str, list[str]]]]:
    """The calibration and test photos a training set names (judged whole, never learnt from)."""
    table = read_manifest(manifest_path(Path(data_dir))).to_pylist()
    out: dict[str, list] = {"calib": [], "test": []}
    for row in table:
        if row["split"] in out and not row["error"]:
            out[row["split"]].append((row["source_path"], row["kinds"] or []))
    return out


@task(cache_policy=NO_CACHE)
def fit_and_register(data_dir: str, models_dir: str, cfg: TrainConfig, key: str, card: dict) -> str:
    progress = RunProgress("train", cfg.epochs, "training", every_s=10.0)
    result = fit(Path(data_dir), cfg, progress=lambda msg, frac, milestone: progress.report(frac, msg, milestone),
                 photos=whole_photos(data_dir))
    input_size = cfg.input_size or ARCHS[cfg.arch].input_size
    card = {
        **card,
        "training_key": key,
        "device": result.device,
        "epochs_run": result.epochs_run,
        "best_epoch": result.best_epoch,
        "training_seconds": round(result.train_seconds, 1),
        "history": result.history,
        **result.metrics,
        "calibration": result.calibration,
    }
    folder = save_model(Path(models_dir), result.model, cfg.arch, input_size, result.temperature, card,
                        tta_temperature=result.tta_temperature, views=cfg.views)
    return str(folder)


@flow(name="train", log_prints=True)
@fail_cleanly
def train(data_dir: str, models_dir: str, config: TrainConfig | None = None, command: str | None = None) -> str:
    """Train an orientation model on a training set, or load the one already trained on it."""
    cfg = config or TrainConfig()
    logger = get_run_logger()
    manifest = manifest_path(Path(data_dir))
    if not manifest.is_file():
        raise TrainingError(f"{data_dir} holds no manifest.parquet; run `orient make-training-set` first")
    manifest_sha = sha256_file(manifest)
    key = training_key(manifest_sha, cfg)
    if existing := find_trained(Path(models_dir), key):
        logger.info(f"model {existing.name} was trained on this manifest with this config: loading it")
        return str(existing)
    table = read_manifest(manifest)
    sources = sorted({(r["source_path"], r["source_sha256"], r["split"]) for r in table.to_pylist() if not r["error"]})
    provenance_file = Path(data_dir) / PROVENANCE
    origin = {}
    if provenance_file.is_file():
        origin = {r["sha256"]: r for r in json.loads(provenance_file.read_text())}
    card = {
        "training_manifest_sha256": manifest_sha,
        "training_sources": [{**origin.get(s, {}), "path": p, "sha256": s, "split": split} for p, s, split in sources],
        "train_config": cfg.model_dump(),
        "command": command or shlex.join([Path(sys.argv[0]).name, *sys.argv[1:]]),
        "trained_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    logger.info(f"training {cfg.arch} on {len(sources)} photos from {data_dir}")
    folder = fit_and_register(data_dir, models_dir, cfg, key, card)
    card = json.loads((Path(folder) / "card.json").read_text())
    create_markdown_artifact(model_card_markdown(card), key="model-card", description="Trained model")
    logger.info(f"model saved to {folder}: val accuracy {card['val_accuracy']:.1%}")
    return folder
