"""The promotion rule on two trained models: champion against challenger on a training set's
calibration and test photos, each run by the engine an archive run would use here.

    python benchmarks/judge_pair.py DATA_DIR CHALLENGER_DIR [--champion default] [--json FILE]

The challenger's card gets the decision and its comparison page (as ``orient retrain`` writes
them); on a win the challenger becomes current in its own registry (the folder above it).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from orient_model.config import MARGIN, MAX_ERROR  # noqa: E402
from orient_model.retraining import judge_and_maybe_promote  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("data_dir", type=Path)
    p.add_argument("challenger", type=Path)
    p.add_argument("--champion", default="default")
    p.add_argument("--max-error", type=float, default=MAX_ERROR)
    p.add_argument("--margin", type=float, default=MARGIN)
    p.add_argument("--json", type=Path)
    args = p.parse_args()
    start = time.perf_counter()
    decision = judge_and_maybe_promote(
        str(args.data_dir),
        str(args.challenger),
        args.champion,
        str(args.challenger.parent),
        args.max_error,
        args.margin,
    )
    print(
        f"champion {decision['champion']} ({decision['engines']['champion']}) against challenger "
        f"{decision['challenger']} ({decision['engines']['challenger']}), {time.perf_counter() - start:.0f} s"
    )
    print(f"{'figure':<40} {'champion':>9} {'challenger':>10}")
    for row in decision["table"]:
        print(f"{row['figure']:<40} {row['champion']:>9.3f} {row['challenger']:>10.3f}")
    print("promoted" if decision["promoted"] else "not promoted", "-", "; ".join(decision["reasons"]))
    if args.json:
        args.json.write_text(json.dumps(decision, indent=1))


if __name__ == "__main__":
    main()
