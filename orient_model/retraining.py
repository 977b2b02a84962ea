"""Champion against challenger, decided and recorded: the promotion rule applied to two models on
the same ground-truth photos, the challenger's card updated with the decision and its comparison
page, and the challenger made current on a win. The flows only schedule it and publish it."""

from __future__ import annotations

import time
from pathlib import Path

from orient_model.errors import OrientError
from orient_model.insight.compare import comparison_page
from orient_model.model.card import CARD_FILE, amend_card, read_card
from orient_model.model.evaluate import score_photos
from orient_model.model.predict import Looking, Predictor
from orient_model.model.promotion import judge_pair
from orient_model.model.registry import load_model, promote, resolve_model_path
from orient_model.training_set import whole_photos

MIN_JUDGED = 30  # ground-truth photos needed before a challenger may replace the champion
COMPARISON = "promotion"  # the comparison page's folder in the challenger's version folder


class NotEnoughToJudge(OrientError):
    """Too few ground-truth photos to compare two models fairly."""


def judge_and_maybe_promote(
    data_dir: str, challenger_dir: str, champion_ref: str, models_dir: str, max_error: float, margin: float
) -> dict:
    """Champion and challenger on the same calibration and test photos, each run by the engine an
    archive run would give it here (on a CPU its calibrated 8-bit network, when it has one that
    this machine reproduces); promote on a win."""
    photos = whole_photos(data_dir)
    calib, test = len(photos["calib"]), len(photos["test"])
    if calib < MIN_JUDGED // 2 or test < MIN_JUDGED // 2:
        raise NotEnoughToJudge(
            f"only {calib} calibration and {test} test ground-truth photos to judge with (at least "
            f"{MIN_JUDGED // 2} of each are needed: review more photos or give an upright folder); "
            "the challenger was not promoted"
        )
    champion, challenger = (
        load_model(resolve_model_path(champion_ref, Path(models_dir))),
        load_model(challenger_dir),
    )
    looking = Looking(challenger.views, True)
    scores, engines = {}, {}
    for name, model in (("champion", champion), ("challenger", challenger)):
        predictor = Predictor(model, device="auto", views=looking.views, engine="auto")
        engines[name] = predictor.engine.name
        scores[name] = (score_photos(predictor, photos["calib"]), score_photos(predictor, photos["test"]))
    verdict = judge_pair(
        champion, *scores["champion"], challenger, *scores["challenger"], looking, max_error, margin
    )
    card = read_card(Path(challenger_dir) / CARD_FILE)
    promoted = verdict.promote and card.passed_gate
    reasons = verdict.reasons + (
        [] if card.passed_gate else [f"it failed its quality gate ({'; '.join(card.quality_gate.reasons)})"]
    )
    page, page_error = None, None
    try:
        page = comparison_page(
            Path(challenger_dir) / COMPARISON,
            champion.version,
            card.version,
            verdict,
            promoted,
            reasons,
            {name: test_scores for name, (_, test_scores) in scores.items()},
            looking,
        )
    except Exception as exc:  # noqa: BLE001 - the decision stands without its page
        page_error = f"{type(exc).__name__}: {exc}"
    promotion = {
        "decision": "promoted" if promoted else "kept the champion",
        "page": str(page.relative_to(challenger_dir)) if page else None,
        **({"page_error": page_error} if page_error else {}),
        "champion": champion.version,
        "reasons": reasons,
        "table": verdict.table,
        "judged_on": calib + test,
        "engines": engines,
        "decided_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    amend_card(challenger_dir, promotion=promotion)
    if promoted:
        promote(Path(challenger_dir).name, Path(models_dir), why="; ".join(reasons))
    return {
        "challenger": card.version,
        "champion": champion.version,
        "promoted": promoted,
        "reasons": reasons,
        "table": verdict.table,
        "engines": engines,
        "page": str(page) if page else None,
    }
