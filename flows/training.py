"""Flows that make training copies and train (or load) an orientation model."""

import contextlib
import json
import os
import shlex
import shutil
import sys
import time
from collections import Counter
from pathlib import Path

from prefect import flow, get_run_logger, task, unmapped
from prefect.artifacts import create_link_artifact, create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE
from prefect.task_runners import ThreadPoolTaskRunner
from prefect.utilities.annotations import quote

from flows.errors import fail_cleanly, retry_transient
from flows.progress import RunProgress
from orient_model.config import TrainConfig, TrainingSetConfig
from orient_model.files import atomic_write_bytes, sha256_file
from orient_model.insight import Caps, build_report, card_photos
from orient_model.model.architectures import ARCHS
from orient_model.model.card import CARD_FILE, amend_card, model_card_markdown, read_card
from orient_model.model.int8 import add_int8
from orient_model.model.registry import find_trained, load_model, save_model, training_key
from orient_model.model.train import TrainingError, fit
from orient_model.model.train_costs import capped_photos, capped_train_sources
from orient_model.pool import OPERATOR_REVIEW, PoolPhoto, check_upright, merge, upright_folders
from orient_model.training_set import (
    SPLITS,
    ManifestRow,
    find_photos,
    manifest_path,
    process_source,
    read_manifest,
    whole_photos,
    write_manifest,
)

CHUNK = 32
PROVENANCE = "provenance.json"
INSIGHT = "insight"  # the insight page's folder in a model's version folder
# Fewer samples than `orient explain` takes: the page is written with every model trained.
INSIGHT_CAPS = Caps(gallery=8, saliency=4, average=24, units=48)


@task(retries=2, retry_delay_seconds=1, retry_condition_fn=retry_transient, cache_policy=NO_CACHE)
def copies_for_sources(
    sources: list[tuple[PoolPhoto, bool]], out_dir: str, cfg: TrainingSetConfig, kinds: dict[str, list[str]]
) -> list[ManifestRow]:
    """Copies for a chunk of (pool photo, held out); copies already on disk are not made again."""
    return [
        row
        for photo, held_out in sources
        for row in process_source(
            Path(photo.path), Path(out_dir), cfg, kinds, held_out, photo.rotation_deg, photo.label_source
        )
    ]


@task(cache_policy=NO_CACHE)
def check_sources_upright(photos: list[PoolPhoto], model: str, report_file: str) -> int:
    """Refuse folders that are not upright (see orient_model.pool.check_upright); returns how
    many photos looked turned (few enough to go on)."""
    from orient_model.model.predict import Predictor
    from orient_model.model.registry import load_model

    progress = RunProgress("check-upright", len(photos), "photos checked as upright")
    suspects = check_upright(
        photos,
        Predictor(load_model(model), device="auto"),
        report_file=Path(report_file),
        progress=progress.advance,
    )
    return len(suspects)


@flow(
    name="make-training-set",
    log_prints=True,
    # Prefect's thread pool is unbounded: 800 chunks of a 26,000-photo pool became 800 threads
    # fighting over two cores (one copy a second). One thread a core keeps them busy: Pillow
    # decodes, resizes and encodes outside the GIL.
    task_runner=ThreadPoolTaskRunner(max_workers=os.cpu_count() or 2),
)
@fail_cleanly
def make_training_set(
    upright_dirs: list[str],
    out: str,
    config: TrainingSetConfig | None = None,
    provenance: str | None = None,
    reviewed_from: list[str] | None = None,
    pseudo_labels: list[PoolPhoto] | None = None,
    trust_upright: bool = False,
    check_model: str = "current",
) -> str:
    """Four rotated copies (0/90/180/270) of every photo in the training pool, plus a manifest.

    The pool: photos in ``upright_dirs`` (checked with ``check_model`` first, unless
    ``trust_upright``), photos operators reviewed in the archives ``reviewed_from``, and
    ``pseudo_labels``. ``provenance``: optional JSON list of {sha256, source, license, kinds}
    records; kept beside the manifest so a model card names each photo's origin and licence.
    """
    cfg = config or TrainingSetConfig()
    logger = get_run_logger()
    records = {r["sha256"]: r for r in json.loads(Path(provenance).read_text())} if provenance else {}
    kinds = {sha: list(r.get("kinds") or []) for sha, r in records.items()}
    skipped: list[str] = []
    folders = upright_folders(find_photos(upright_dirs, skipped)) if upright_dirs else []
    held = [Path(d).resolve() for d in cfg.held_out_dirs]
    held_photos = upright_folders(find_photos(cfg.held_out_dirs, skipped)) if held else []
    for line in skipped:
        logger.warning(line)
    reviewed = [p for archive in reviewed_from or [] for p in reviewed_photos(archive)]
    pool = merge(reviewed, folders, held_photos, list(pseudo_labels or []))
    if not pool:
        raise TrainingError(f"no files found in {', '.join(upright_dirs) or 'the training pool'}")
    if folders and not trust_upright:
        suspects = check_sources_upright(folders, check_model, str(Path(out) / "not-upright.tsv"))
        if suspects:
            logger.warning(
                f"{suspects} photo(s) in the upright folders look turned to the model (few enough to go "
                f"on; listed in {Path(out) / 'not-upright.tsv'})"
            )
    sources = [(p, any(Path(p.path).resolve().is_relative_to(h) for h in held)) for p in pool]
    counts = Counter(p.label_source for p in pool)
    logger.info(
        f"{len(pool)} photos in the pool ("
        + ", ".join(f"{n} {k}" for k, n in counts.items())
        + f"); copies go to {out}"
    )
    progress = RunProgress("make-training-set", len(sources), "sources")
    chunks = [sources[i : i + CHUNK] for i in range(0, len(sources), CHUNK)]
    rows: list[ManifestRow] = []
    seen: set[tuple] = set()
    duplicates = 0
    # quote: Prefect would walk the whole kinds table (a row a photo) for every chunk's task run.
    for chunk, future in zip(
        chunks, copies_for_sources.map(chunks, unmapped(out), unmapped(cfg), unmapped(quote(kinds)))
    ):
        # The same photo under two names is one source: its copies must not count twice.
        for row in future.result():
            key = (row.source_sha256, row.rotation_deg, row.crop)
            if row.error or key not in seen:
                rows.append(row)
                seen.add(key)
            elif row.rotation_deg in (0, None) and row.crop in (0, None):
                duplicates += 1
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
        + ", ".join(f"{s} {n}" for s, n in per_split.items())
        + f"; {len(bad)} unreadable; "
        f"{duplicates} exact duplicate(s) used once; manifest {path}"
    )
    if bad:
        create_table_artifact(
            [{"source": r.source_path, "problem": r.error} for r in bad],
            key="unreadable-sources",
            description="Sources that could not be used",
        )
    return str(path)


def reviewed_photos(archive: str) -> list[PoolPhoto]:
    """Photos operators reviewed in an archive, as pool photos (their decision is the label)."""
    from orient_model.review import training_pool

    return [
        PoolPhoto(
            str(Path(archive) / e.path) if not Path(e.path).is_absolute() else e.path,
            e.rotation_deg,
            OPERATOR_REVIEW,
            e.sha256,
        )
        for e in training_pool(archive)
    ]


def run_folder(data_dir: str, key: str) -> Path:
    """Where a training run keeps its cached features and its checkpoint until its model is saved."""
    return Path(data_dir) / ".training" / key[:16]


@task(cache_policy=NO_CACHE)
def fit_and_register(
    data_dir: str, models_dir: str, cfg: TrainConfig, key: str, card: dict, resume: bool = False
) -> str:
    progress = RunProgress("train", cfg.epochs, "training", every_s=10.0)
    photos = capped_photos(whole_photos(data_dir), cfg)
    run_dir = run_folder(data_dir, key)
    result = fit(
        Path(data_dir),
        cfg,
        progress=lambda msg, frac, milestone: progress.report(frac, msg, milestone),
        photos=photos,
        run_dir=run_dir,
        resume=resume,
    )
    input_size = cfg.input_size or ARCHS[cfg.arch].input_size
    folder = save_model(
        Path(models_dir),
        result.model,
        cfg.arch,
        input_size,
        result.temperature,
        result.card(card, key, photos).as_dict(),
        tta_temperature=result.tta_temperature,
        views=cfg.views,
    )
    if cfg.int8:
        add_int8_network(folder, data_dir, photos, cfg)
    shutil.rmtree(run_dir, ignore_errors=True)  # the model is saved: its features and checkpoint are spent
    with contextlib.suppress(OSError):
        run_dir.parent.rmdir()  # .training too, unless another run's are kept there
    return str(folder)


def add_int8_network(folder: Path, data_dir: str, photos: dict, cfg: TrainConfig) -> None:
    """The 8-bit network beside the saved model, with its own calibration in the card; a model
    without calibration photos, or a network ONNX Runtime cannot quantize, keeps the float one."""
    logger = get_run_logger()
    if not photos["calib"]:
        logger.info("no calibration photos: no 8-bit network (it would have no certified threshold)")
        return
    try:
        loaded = load_model(folder / "model.pt")
        entry = add_int8(loaded, data_dir, photos)
    except Exception as exc:  # noqa: BLE001 - the float network is complete without it
        logger.warning(f"no 8-bit network for {folder.name}: {type(exc).__name__}: {exc}")
        return
    amend_card(folder, int8=entry)
    default = entry["test"].get(f"views={cfg.views},tta=True")
    if default:
        logger.info(
            f"8-bit network: test accuracy {default['accuracy']:.1%}, coverage {default['coverage']:.0%}, "
            f"wrong automatic {default['wrong_automatic']} of {default['automatic']}"
        )


@task(cache_policy=NO_CACHE)
def explain_registered(folder: str) -> str | None:
    """The insight page of a registered model on its test and calibration photos, beside its
    checkpoint, named in its card and linked as an artifact of the run; a model is complete
    without it, so a page that cannot be made is a warning."""
    logger = get_run_logger()
    loaded = load_model(Path(folder) / "model.pt")
    photos = card_photos(loaded.card, Path(folder))
    if not photos:
        logger.info("no test or calibration photos on this machine: no insight page")
        return None
    try:
        page = build_report(loaded, photos, Path(folder) / INSIGHT, INSIGHT_CAPS, say=logger.info)
    except Exception as exc:  # noqa: BLE001 - the model is complete without its page
        logger.warning(f"no insight page for {loaded.version}: {type(exc).__name__}: {exc}")
        return None
    amend_card(folder, insight={"page": str(page.relative_to(folder)), "photos": len(photos)})
    create_link_artifact(
        link=page.resolve().as_uri(),
        link_text=f"How model {loaded.version} sees",
        key="model-insight",
        description="Insight page: behaviour, failures, saliency and units, on its test and calibration photos",
    )
    return str(page)


@flow(name="train", log_prints=True)
@fail_cleanly
def train(
    data_dir: str,
    models_dir: str,
    config: TrainConfig | None = None,
    command: str | None = None,
    resume: bool = False,
) -> str:
    """Train an orientation model on a training set, or load the one already trained on it;
    ``resume`` goes on from the last finished epoch of a stopped run with the same data and settings."""
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
    chosen = capped_train_sources(
        Path(data_dir), cfg
    )  # train.max_train_photos: the others are not learnt from
    sources = sorted(
        {
            (r["source_path"], r["source_sha256"], r["split"])
            for r in table.to_pylist()
            if not r["error"]
            and (r["split"] != "train" or chosen is None or r["source_sha256"][:20] in chosen)
        }
    )
    provenance_file = Path(data_dir) / PROVENANCE
    origin = {}
    if provenance_file.is_file():
        origin = {r["sha256"]: r for r in json.loads(provenance_file.read_text())}
    card = {
        "training_manifest_sha256": manifest_sha,
        "training_sources": [
            {**origin.get(s, {}), "path": p, "sha256": s, "split": split} for p, s, split in sources
        ],
        "train_config": cfg.model_dump(),
        "command": command or shlex.join([Path(sys.argv[0]).name, *sys.argv[1:]]),
        "trained_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    logger.info(f"training {cfg.arch} on {len(sources)} photos from {data_dir}")
    folder = fit_and_register(data_dir, models_dir, cfg, key, card, resume)
    if cfg.insight:
        explain_registered(folder)
    card = read_card(Path(folder) / CARD_FILE)
    create_markdown_artifact(
        model_card_markdown(card.as_dict()), key="model-card", description="Trained model"
    )
    if not card.passed_gate:
        logger.error(
            f"MODEL {card.version} FAILED ITS QUALITY GATE: {'; '.join(card.quality_gate.reasons)}. "
            "It is registered for inspection only and can never be promoted."
        )
    logger.info(f"model saved to {folder}: val accuracy {card.val_accuracy:.1%}")
    return folder
