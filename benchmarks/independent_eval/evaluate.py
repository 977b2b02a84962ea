"""Judge models on photos from sources nobody trained or tuned on (see README.md here).

    python benchmarks/independent_eval/evaluate.py [--photos /work/evalphotos] [--models default v1 ...]

For each set (natural scenes; people and old prints) and each model: every photo in all four
orientations, seen in full as auto-rotate sees it by default (three views, four turns voted), with
two views (``--views 2``: the ends of the long side, a third fewer passes), with the centre view
alone at four turns and in one pass (``--views 1``, ``--views 1 --no-tta``), and glancing first
(``--glance``, when the model is calibrated for it), with each engine asked for (``--engines``: the
float network and the 8-bit one, each with its own calibration); accuracy, and at the certified
threshold for at most 1% error: coverage and wrong automatic decisions. Use it to report figures,
never to choose between candidates: a choice made on these photos would make them tuning photos.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from orient_model.config import MAX_ERROR  # noqa: E402
from orient_model.model.engine import EngineError  # noqa: E402
from orient_model.model.evaluate import certified_metrics, score_photos  # noqa: E402
from orient_model.model.predict import Looking, Predictor  # noqa: E402
from orient_model.model.registry import load_model, resolve_model_path  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--photos", type=Path, default=Path("/work/evalphotos"))
    p.add_argument("--models", nargs="+", default=["default"])
    p.add_argument("--max-error", type=float, default=MAX_ERROR)
    p.add_argument("--engines", nargs="+", default=["onnxruntime", "onnxruntime-int8"])
    p.add_argument("--json", type=Path)
    args = p.parse_args()
    records = json.loads((args.photos / "sources.json").read_text())
    sets: dict[str, list] = {}
    for r in records:
        sets.setdefault(r["set"], []).append((str(args.photos / r["file"]), r.get("kinds") or []))
    out = {}
    print(
        f"{'model':<22}{'engine':<18}{'look':<9}{'set':<9}{'photos':>7}{'accuracy':>10}{'coverage':>10}"
        f"{'wrong auto':>14}{'threshold':>11}"
    )
    for ref in args.models:
        loaded = load_model(resolve_model_path(ref))
        for engine in args.engines:
            try:
                predictor = Predictor(loaded, device="auto", engine=engine, glance=True)
            except EngineError as exc:
                print(f"{loaded.version[:20]:<22}{engine:<18}skipped: {exc}")
                continue
            calibration = predictor.loaded.calibration  # the calibration of what runs
            # In full, as auto-rotate looks by default, with fewer views and passes, and glancing
            # first (--glance) when calibrated for it; all cut from the same scores.
            wide = predictor.looking.wide
            fewer = [Looking(v, True) for v in (3, 2, 1)] + [Looking(1, False)]
            lookings = [k for k in dict.fromkeys([predictor.looking, wide, *fewer]) if k.key in calibration]
            for name, photos in sorted(sets.items()):
                scores = score_photos(predictor, photos)
                for looking in lookings:
                    m = certified_metrics(scores, looking, calibration, args.max_error)
                    look = "glance" if looking.glance else f"{looking.views}v x{4 if looking.tta else 1}"
                    out[f"{loaded.version}/{predictor.engine.name}/{name}/{looking.key}"] = m
                    print(
                        f"{loaded.version[:20]:<22}{predictor.engine.name:<18}{look:<9}{name:<9}{m['photos']:>7}"
                        f"{m['accuracy']:>10.3f}{m['coverage']:>10.2f}"
                        f"{m['wrong_automatic']:>7}/{m['automatic']:<6}{m['threshold']:>11.4f}"
                        + (f"  {m['decided_at_a_glance']:.0%} at a glance" if looking.glance else ""),
                        flush=True,
                    )
    if args.json:
        args.json.write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
