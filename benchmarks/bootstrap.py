"""Learning from the archive itself: held-out accuracy and coverage before and after bootstrap rounds.

    python benchmarks/bootstrap.py PHOTOS_DIR [--archive 300 --truth 100 --held-out 150 --turned 0.2]

Takes real upright photos the current model never learnt from (e.g. the test split of its
training set), and makes three disjoint sets: a generated archive (a known share of its photos
turned by 90, 180 or 270 degrees, saved as JPEG), a small folder of known-upright photos (the
ground truth challengers are judged on), and held-out photos (judged here, never seen by any
round). Runs `bootstrap` for ``--rounds`` rounds in a temporary registry, then prints, before and
after: accuracy (every held-out photo in all four orientations, three views, four turns voted),
coverage and wrong automatic decisions at the certified threshold, and how the pseudo-labels
compared with the known truth.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
from pathlib import Path

from PIL import Image, ImageOps

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")  # offline: no telemetry errors
os.environ.setdefault("PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL", "WARNING")

from orient_model import orientation  # noqa: E402
from orient_model.config import MAX_ERROR, TrainConfig, TrainingSetConfig  # noqa: E402
from orient_model.model.evaluate import certified_metrics, score_photos  # noqa: E402
from orient_model.model.predict import Predictor  # noqa: E402
from orient_model.model.registry import load_model, resolve_model_path  # noqa: E402


def judge(model_path: Path, photos: list[tuple[str, list]], max_error: float) -> dict:
    loaded = load_model(model_path)
    predictor = Predictor(loaded, device="auto", engine="auto")
    looking = predictor.looking  # as auto-rotate looks by default
    scores = score_photos(predictor, photos)
    # the calibration of the engine that ran
    return certified_metrics(scores, looking, predictor.loaded.calibration, max_error)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("photos", type=Path)
    p.add_argument("--archive", type=int, default=300)
    p.add_argument("--truth", type=int, default=100)
    p.add_argument("--held-out", type=int, default=150)
    p.add_argument("--turned", type=float, default=0.2)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--max-error", type=float, default=MAX_ERROR)
    args = p.parse_args()
    rng = random.Random(args.seed)
    photos = sorted(q for q in args.photos.rglob("*") if q.suffix.lower() in (".jpg", ".jpeg", ".png"))
    rng.shuffle(photos)
    need = args.archive + args.truth + args.held_out
    if len(photos) < need:
        sys.exit(f"need {need} photos, found {len(photos)} in {args.photos}")
    work = Path(tempfile.mkdtemp(prefix="orient-bootstrap-"))
    archive, truth_dir = work / "archive", work / "known-upright"
    truth = {}
    for i, src in enumerate(photos[: args.archive]):
        angle = rng.choice([90, 180, 270]) if rng.random() < args.turned else 0
        img = ImageOps.exif_transpose(Image.open(src)).convert("RGB")
        rel = f"box-{i % 6}/scan_{i:04d}.jpg"
        (archive / rel).parent.mkdir(parents=True, exist_ok=True)
        orientation.apply(img, orientation.COUNTER_CLOCKWISE[angle]).save(archive / rel, quality=92)
        truth[rel] = angle
    truth_dir.mkdir()
    for src in photos[args.archive : args.archive + args.truth]:
        (truth_dir / src.name).write_bytes(src.read_bytes())
    held_out = [(str(q), []) for q in photos[args.archive + args.truth : need]]
    models = work / "models"
    models.mkdir()
    before = judge(resolve_model_path("current", models), held_out, args.max_error)
    print(
        f"archive of {args.archive} photos ({sum(a != 0 for a in truth.values())} turned), "
        f"{args.truth} known upright, {len(held_out)} held out; {args.rounds} rounds"
    )
    print(
        f"before: accuracy {before['accuracy']:.3f}, coverage {before['coverage']:.2f}, "
        f"wrong automatic {before['wrong_automatic']}/{before['automatic']} (model {load_model(resolve_model_path('current', models)).version})",
        flush=True,
    )

    from prefect.testing.utilities import prefect_test_harness

    from flows.retrain import bootstrap

    with prefect_test_harness(server_startup_timeout=None):
        decisions = bootstrap(
            str(archive),
            [str(truth_dir)],
            rounds=args.rounds,
            models_dir=str(models),
            work_dir=str(work / "rounds"),
            set_config=TrainingSetConfig(val_fraction=0.2, calibration_fraction=0.4, test_fraction=0.4),
            train_config=TrainConfig(freeze="early", epochs=args.epochs, cache_passes=1, patience=2),
            trust_upright=True,
        )
    for d in decisions:
        print(
            f"round {d['round']}: {d['pseudo_labels']} pseudo-labels; challenger "
            f"{'promoted' if d['promoted'] else 'not promoted'}: {'; '.join(d['reasons'])}"
        )
    after = judge(resolve_model_path("current", models), held_out, args.max_error)
    print(
        f"after:  accuracy {after['accuracy']:.3f}, coverage {after['coverage']:.2f}, "
        f"wrong automatic {after['wrong_automatic']}/{after['automatic']} (model "
        f"{load_model(resolve_model_path('current', models)).version})"
    )
    pseudo = sorted((work / "rounds").glob("*/data/manifest.parquet"))
    if pseudo:
        import pyarrow.parquet as pq

        rows = [
            r for r in pq.read_table(pseudo[-1]).to_pylist() if (r["label_source"] or "").startswith("pseudo")
        ]
        seen = {}
        for r in rows:
            rel = str(Path(r["source_path"]).relative_to(archive))
            seen[rel] = r["source_rotation_deg"]
        right = sum(truth[rel] == turn for rel, turn in seen.items())
        print(
            f"last round's pseudo-labels: {len(seen)} photos, {right} right ({right / max(len(seen), 1):.1%})"
        )


if __name__ == "__main__":
    main()
