"""One way for tests to drive a real run whose decisions are chosen, not predicted: the run
protocol (walk, read, journal, apply, report) is what is under test, never a model."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from orient_model.archive.paths import Tree
from orient_model.config import AutorotateConfig
from orient_model.model.predict import Decision
from orient_model.pipeline import Predicted, read_entry
from orient_model.run import AutorotateRun


def decided_run(
    root: Path,
    cfg: AutorotateConfig,
    decide: Callable[[str], Decision | None],
    version: str = "test-model",
    view_key: str = "test-view",
    **run_options,
) -> AutorotateRun:
    """A real run over ``root`` where each readable photo gets ``decide(rel_path)`` (None: no
    judgement) instead of a model's; ``run_options`` go to :class:`AutorotateRun`."""
    with AutorotateRun(root, cfg, version, view_key, **run_options) as run:
        predicted = Predicted()
        with Tree(run.root) as tree:
            for entry in run.entries:
                read = read_entry(tree, entry, 32, cfg, run.memory)
                row = read.row
                decision = decide(entry.rel_path) if read.upright is not None else None
                if decision is not None:
                    if decision.probs is not None:
                        row.prob_0, row.prob_90, row.prob_180, row.prob_270 = decision.probs
                    row.rotation_deg, row.confidence, row.action = (
                        decision.rotation_deg,
                        decision.confidence,
                        decision.action,
                    )
                predicted.rows.append(row)
                if read.seen is not None:
                    predicted.seen.append(read.seen)
        run.finish_chunk(predicted)
    return run
