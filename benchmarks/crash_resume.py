"""Crash-and-resume drill for `orient autorotate --apply lossless` (and, with --apply-review, for
`orient apply-review`): kill -9, resume, check, undo.

The drill of ``tests/test_crash.py``, at scale and many times (it uses the same helpers from
``orient_model.archive.audit``). For each round:

1. builds a scrambled archive of synthetic scans (JPEG aligned and odd sizes, progressive, EXIF
   tagged; PNG; TIFF) and records every file's bytes;
2. starts `orient autorotate ARCHIVE --apply lossless --threshold 0` and kills its whole process
   group with SIGKILL a random moment after its first journal row (while it is writing),
   ``--kills`` times, checking after each kill that every file is original or fully rotated;
3. runs the same command to completion, checks every file (original, or verified rotated by the
   journal's rotation with the journal's hash; none missing, none rotated twice);
4. undoes the final run by its report alone (it adopted the killed runs) and checks that every
   file is byte-identical to its original again.

Prints one line per round and a summary; exits 1 if anything was corrupt, lost, double-rotated
or not restored.

    .venv/bin/python benchmarks/crash_resume.py --rounds 3 --photos 200
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from orient_model.archive.audit import (  # noqa: E402
    archive_contents,
    audit,
    clean,
    displayed_rotation_problem,
    drill_autorotate_args,
    read_journal,
    scrambled_archive,
)


def orient(args: list[str], wait: bool = True) -> subprocess.Popen | int:
    proc = subprocess.Popen(
        [sys.executable, "-m", "flows.cli", *args],
        cwd=REPO,
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    if not wait:
        return proc
    _, err = proc.communicate()
    if proc.returncode not in (0, 3):
        print(err.decode(errors="replace")[-2000:], file=sys.stderr)
    return proc.returncode


def kill_while_writing(root: Path, args: list[str], rng: random.Random) -> int:
    """Start `orient ARGS` and kill its whole process group with SIGKILL a random moment after
    its first new journal row (while it is writing); 1 if the kill landed before it finished."""
    before = len(read_journal(root))
    proc = orient(args, wait=False)
    while proc.poll() is None and len(read_journal(root)) <= before:
        time.sleep(0.005)
    time.sleep(rng.uniform(0.0, 0.3))
    landed = 0
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
        landed = 1
    proc.wait()
    return landed


def finished_alone(root: Path, final_report: Path) -> list[str]:
    """Runs, other than the final one, that finished on their own and changed files (oldest first)."""
    final = json.loads(final_report.with_suffix(".json").read_text())["run_id"]
    journal = sqlite3.connect(f"file:{root / '.orient' / 'journal.sqlite'}?mode=ro", uri=True)
    try:
        rows = journal.execute(
            "SELECT run_id FROM runs WHERE adopted_by IS NULL AND run_id != ?"
            " AND run_id IN (SELECT run_id FROM changes) ORDER BY finished_at",
            (final,),
        ).fetchall()
    finally:
        journal.close()
    return [r[0] for r in rows]


def drill_round(work: Path, photos: int, kills: int, model: str, rng: random.Random) -> dict:
    root = work / "archive"
    shutil.rmtree(work, ignore_errors=True)
    originals, truth = scrambled_archive(root, photos, rng.randrange(1 << 20))
    problems = {"corrupt": [], "lost": [], "double": [], "journal": []}
    landed = 0
    for _ in range(kills):
        landed += kill_while_writing(root, drill_autorotate_args(root, model), rng)
        mid = audit(root, originals, final=False)
        for key in ("corrupt", "lost", "double"):
            problems[key] += mid[key]
    report = work / "final.parquet"
    resumed = orient(drill_autorotate_args(root, model, report))
    final = audit(root, originals)
    for key, found in final.items():
        problems[key] += found
    changed = sum(archive_contents(root)[rel] != data for rel, data in originals.items())
    undone = orient(["undo", str(report), "--quiet"])
    # A kill that came after a run had finished its work (it was writing its report) leaves a
    # finished run of its own, which the final run rightly does not adopt: undo it by its id too.
    for run_id in reversed(finished_alone(root, report)):
        undone = max(undone, orient(["undo", run_id, "--archive", str(root), "--quiet"]))
    restored = sum(archive_contents(root).get(rel) == data for rel, data in originals.items())
    return {
        "kills": landed,
        "files": len(originals),
        "changed": changed,
        "turned": sum(r != 0 for r in truth.values()),
        "resumed_rc": resumed,
        "undo_rc": undone,
        "restored": restored,
        "problems": problems,
    }


def review_round(work: Path, photos: int, kills: int, model: str, rng: random.Random) -> dict:
    """apply-review under kill -9: the model turns every photo it can, an operator decides a turn
    for each (most differ from the model's), apply-review is killed ``kills`` times at random moments
    (while putting back automatic turns or turning as decided), then run to the end. Every photo
    must end in its decided orientation; undoing apply-review's runs must leave each file as the
    model left it or as it was before (an automatic turn the operator overturned stays put back)."""
    from orient_model.review import ReviewQueue

    root = work / "archive"
    shutil.rmtree(work, ignore_errors=True)
    originals, truth = scrambled_archive(root, photos, rng.randrange(1 << 20))
    orient(drill_autorotate_args(root, model))
    automatic = archive_contents(root)
    turned = {c["rel_path"]: c["rotation_deg"] for c in read_journal(root) if c["state"] == "done"}
    model_runs = {c["run_id"] for c in read_journal(root)}
    queue = ReviewQueue(root)
    items = queue.items()
    # The operator's answers are the truth here: most photos get a turn the model did not make
    # (an overturned automatic turn when the run turned it), the others are confirmed.
    decided = {i.path: rng.choice([0, 90, 180, 270, 90, 270]) for i in items}
    queue.decide_many([i.id for i in items], [decided[i.path] for i in items], "drill")
    expected = {rel: (turned.get(rel, 0) + decided.get(rel, 0)) % 360 for rel in originals}
    landed = sum(kill_while_writing(root, ["apply-review", str(root), "--quiet"], rng) for _ in range(kills))
    report = work / "final.parquet"
    resumed = orient(["apply-review", str(root), "--quiet", "--report", str(report)])
    wrong = [
        rel
        for rel, data in originals.items()
        if displayed_problem(data, (root / rel).read_bytes(), expected[rel])
    ]
    undone = orient(["undo", str(report), "--quiet"])
    for run_id in reversed([r for r in finished_alone(root, report) if r not in model_runs]):
        undone = max(undone, orient(["undo", run_id, "--archive", str(root), "--quiet"]))
    now = archive_contents(root)
    back = sum(now.get(rel) in (automatic[rel], originals[rel]) for rel in originals)
    return {
        "kills": landed,
        "files": len(originals),
        "decided": len(items),
        "overturned": sum(decided[i.path] != 0 and turned.get(i.path, 0) != 0 for i in items),
        "wrong": wrong,
        "resumed_rc": resumed,
        "undo_rc": undone,
        "back": back,
    }


def displayed_problem(original: bytes, now: bytes, rotation_deg: int) -> bool:
    return displayed_rotation_problem(original, now, rotation_deg) is not None


def main_review(args, rng: random.Random, work: Path) -> bool:
    """The apply-review drill's rounds; True when every round was safe."""
    failed = False
    for n in range(args.rounds):
        r = review_round(work / f"review{n}", args.photos, args.kills, args.model, rng)
        ok = not r["wrong"] and r["decided"] == r["files"] and r["back"] == r["files"]
        ok = ok and r["resumed_rc"] in (0, 3) and r["undo_rc"] == 0
        failed |= not ok
        print(
            f"apply-review round {n + 1}: kills {r['kills']}, files {r['files']}, decided {r['decided']} "
            f"({r['overturned']} overturned), in the decided orientation {r['files'] - len(r['wrong'])}, "
            f"after undo as the model left them or original {r['back']}/{r['files']} "
            f"{'ok' if ok else 'FAILED: ' + str(r['wrong'][:10])}",
            flush=True,
        )
    return not failed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--photos", type=int, default=200)
    parser.add_argument("--kills", type=int, default=2, help="kills per round before the run that finishes")
    parser.add_argument("--model", default="default")
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument(
        "--apply-review", action="store_true", help="drill apply-review instead (decisions on every photo)"
    )
    args = parser.parse_args()
    seed = args.seed if args.seed is not None else random.randrange(1 << 30)
    rng = random.Random(seed)
    work = args.workdir or Path(tempfile.mkdtemp(prefix="orient-crash-drill-"))
    start, failed, totals = time.monotonic(), False, {"kills": 0, "files": 0, "restored": 0}
    print(f"crash drill: {args.rounds} rounds of {args.photos} photos, {args.kills} kills each (seed {seed})")
    if args.apply_review:
        safe = main_review(args, rng, work)
        print(f"total: {time.monotonic() - start:.0f} s; {'all safe' if safe else 'FAILED'}")
        sys.exit(0 if safe else 1)
    for n in range(args.rounds):
        r = drill_round(work / f"round{n}", args.photos, args.kills, args.model, rng)
        bad = {k: len(v) for k, v in r["problems"].items()}
        ok = (
            clean(r["problems"])
            and r["restored"] == r["files"]
            and r["resumed_rc"] in (0, 3)
            and r["undo_rc"] == 0
        )
        failed |= not ok
        for key in totals:
            totals[key] += r[key]
        print(
            f"round {n + 1}: kills {r['kills']}, files {r['files']}, rotated {r['changed']}, corrupt {bad['corrupt']}, "
            f"lost {bad['lost']}, double-rotated {bad['double']}, journal {bad['journal']}, "
            f"restored {r['restored']}/{r['files']} {'ok' if ok else 'FAILED: ' + str(r['problems'])[:500]}",
            flush=True,
        )
    print(
        f"total: {totals['kills']} kills, {totals['files']} files checked, {totals['restored']} restored byte for "
        f"byte, {time.monotonic() - start:.0f} s; {'FAILED' if failed else 'all safe'}"
    )
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
