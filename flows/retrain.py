"""Scheduled retraining that only ever improves the model, as runbooks:

* ``retrain``: build the training pool (upright folders, checked; photos operators reviewed),
  train a challenger starting from the current model, judge champion and challenger on the same
  ground-truth photos neither learnt from, and promote the challenger only if it wins;
* ``bootstrap``: learn from the archive itself, in rounds: photos the current model is sure of
  (with safeguards, see ``orient_model.pool.pseudo_labels``) join the pool, then the same gate.
"""

import time
from pathlib import Path

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_link_artifact, create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE

from flows.errors import fail_cleanly
from flows.progress import RunProgress
from flows.training import make_training_set, train
from orient_model.config import RetrainConfig, TrainConfig, TrainingSetConfig
from orient_model.model.predict import Looking, Predictor
from orient_model.model.registry import (
    default_models_dir,
    load_model,
    resolve_model_path,
)
from orient_model.pool import pseudo_labels, rising_bar, score_archive
from orient_model.retraining import judge_and_maybe_promote

_GATE = RetrainConfig()  # the promotion gate's defaults: one home, the config's retrain section


@task(cache_policy=NO_CACHE)
def champion_against_challenger(
    data_dir: str, challenger_dir: str, champion_ref: str, models_dir: str, max_error: float, margin: float
) -> dict:
    """The promotion rule on the same photos (see :func:`orient_model.retraining.judge_and_maybe_promote`)."""
    return judge_and_maybe_promote(data_dir, challenger_dir, champion_ref, models_dir, max_error, margin)


def publish_decision(decision: dict) -> None:
    rows = [
        {"figure": r["figure"], "champion": f"{r['champion']:.1%}", "challenger": f"{r['challenger']:.1%}"}
        for r in decision["table"]
    ]
    create_table_artifact(
        rows,
        key="retrain-comparison",
        description=f"Champion {decision['champion']} against challenger {decision['challenger']}",
    )
    verb = "promoted" if decision["promoted"] else "not promoted"
    engines = decision["engines"]
    create_markdown_artifact(
        f"# Challenger {decision['challenger']} {verb}\n\n"
        + "\n".join(f"- {r}" for r in decision["reasons"])
        + f"\n\nEach judged as an archive run here runs it: the champion by {engines['champion']}, "
        f"the challenger by {engines['challenger']}.\n",
        key="retrain-decision",
        description="Champion/challenger decision",
    )
    if decision.get("page"):
        create_link_artifact(
            link=Path(decision["page"]).resolve().as_uri(),
            link_text=f"Champion {decision['champion']} against challenger {decision['challenger']}",
            key="retrain-comparison-page",
            description="Both side by side on the same photos, under the rule's verdict",
        )


@flow(name="retrain", log_prints=True)
@fail_cleanly
def retrain(
    upright_dirs: list[str],
    archive_dir: str | None = None,
    models_dir: str | None = None,
    work_dir: str | None = None,
    set_config: TrainingSetConfig | None = None,
    train_config: TrainConfig | None = None,
    max_error: float = _GATE.max_error,
    margin: float = _GATE.margin,
    provenance: str | None = None,
    trust_upright: bool = _GATE.trust_upright,
) -> dict:
    """Train a challenger on the pool and promote it only if it beats the current model."""
    logger = get_run_logger()
    models = str(models_dir or default_models_dir())
    work = Path(work_dir or Path(models).parent / "retrain") / time.strftime("%Y%m%d-%H%M%S")
    manifest = make_training_set(
        upright_dirs,
        str(work / "data"),
        set_config,
        provenance,
        reviewed_from=[archive_dir] if archive_dir else [],
        trust_upright=trust_upright,
        check_model="current",
    )
    cfg = _from_champion(train_config or TrainConfig(freeze=_GATE.freeze), models)
    challenger = train(str(Path(manifest).parent), models, cfg)
    decision = champion_against_challenger(
        str(Path(manifest).parent), challenger, "current", models, max_error, margin
    )
    publish_decision(decision)
    logger.info(
        f"challenger {decision['challenger']}: {'promoted' if decision['promoted'] else 'not promoted'} "
        f"({'; '.join(decision['reasons'])})"
    )
    return decision


def _from_champion(cfg: TrainConfig, models_dir: str) -> TrainConfig:
    """Start from the current model's weights when it has the architecture being trained."""
    current = load_model(resolve_model_path("current", Path(models_dir)))
    if current.arch != cfg.arch or cfg.weights not in ("auto", "package"):
        return cfg
    return cfg.model_copy(
        update={
            "weights": str(resolve_model_path("current", Path(models_dir))),
            "input_size": cfg.input_size or current.input_size,
        }
    )


@task(cache_policy=NO_CACHE)
def pseudo_label_round(
    archive_dir: str,
    models_dir: str,
    round_no: int,
    start_bar: float,
    overruled: list[str],
    max_folder_share: float,
) -> list:
    from orient_model.archive import walk_archive

    loaded = load_model(resolve_model_path("current", Path(models_dir)))
    predictor = Predictor(loaded, device="auto")
    total = sum(1 for e in walk_archive(archive_dir) if e.skip_reason is None)
    progress = RunProgress(f"bootstrap-round-{round_no}", total, f"round {round_no}: photos judged")
    candidates = score_archive(Path(archive_dir), predictor, progress.advance)
    temperature = loaded.temperature_for(Looking(1, True))
    return pseudo_labels(
        candidates, rising_bar(start_bar, round_no), temperature, set(overruled), max_folder_share, round_no
    )


@flow(name="bootstrap", log_prints=True)
@fail_cleanly
def bootstrap(
    archive_dir: str,
    upright_dirs: list[str] | None = None,
    rounds: int = 2,
    models_dir: str | None = None,
    work_dir: str | None = None,
    set_config: TrainingSetConfig | None = None,
    train_config: TrainConfig | None = None,
    start_bar: float = 0.95,
    max_folder_share: float = 0.2,
    max_error: float = _GATE.max_error,
    margin: float = _GATE.margin,
    trust_upright: bool = _GATE.trust_upright,
) -> list[dict]:
    """Rounds of pseudo-labelling the archive with the current model and retraining, each
    challenger through the champion/challenger gate; operator reviews are ground truth."""
    from orient_model.archive import open_journals, state_folders

    logger = get_run_logger()
    models = str(models_dir or default_models_dir())
    primary, others = open_journals(state_folders(archive_dir, True), create_primary=False)
    reviews = {}
    for journal in [j for j in (primary, *others) if j is not None]:
        reviews.update(journal.reviews())  # operators' decisions: ground truth, never pseudo-labelled
        journal.close()
    decisions = []
    for round_no in range(1, rounds + 1):
        labels = pseudo_label_round(
            archive_dir, models, round_no, start_bar, sorted(reviews), max_folder_share
        )
        logger.info(
            f"round {round_no}: {len(labels)} pseudo-labelled photos above confidence "
            f"{rising_bar(start_bar, round_no):.4f}"
        )
        work = (
            Path(work_dir or Path(models).parent / "bootstrap")
            / f"{time.strftime('%Y%m%d-%H%M%S')}-round{round_no}"
        )
        manifest = make_training_set(
            list(upright_dirs or []),
            str(work / "data"),
            set_config,
            reviewed_from=[archive_dir],
            pseudo_labels=labels,
            trust_upright=trust_upright,
        )
        cfg = _from_champion(train_config or TrainConfig(freeze=_GATE.freeze), models)
        challenger = train(str(Path(manifest).parent), models, cfg)
        decision = champion_against_challenger(
            str(Path(manifest).parent), challenger, "current", models, max_error, margin
        )
        decision.update(round=round_no, pseudo_labels=len(labels))
        publish_decision(decision)
        decisions.append(decision)
        logger.info(f"round {round_no}: challenger {'promoted' if decision['promoted'] else 'not promoted'}")
    return decisions
