"""Before a run on a Dask cluster: one engine, certified on every worker.

A threshold holds for the network it was certified with, and an 8-bit network only where the
arithmetic is the calibrated one: a worker's CPU may compute it otherwise than this machine's.
So before the first chunk is sent, every worker (and this machine, which sets the threshold)
says which of the engines the settings allow it runs as certified, in a small task of its own;
the run takes the fastest one they all run (the 8-bit network only if every one passes its
check), says why once, and every chunk runs it.
"""

from __future__ import annotations

import torch

from orient_model.config import AutorotateConfig
from orient_model.errors import OrientError
from orient_model.model.device import resolve_device
from orient_model.model.engine import INT8, EngineError, candidates, first_certified
from orient_model.model.registry import load_model

WAIT_FOR_WORKERS_S = 120  # for the first worker to join, when the run starts with none
HERE = "this machine"
Answers = dict[str, tuple[str | None, list[str]]]  # who: (engine it runs, why not faster ones)


def engine_here(model_path: str, cfg: AutorotateConfig, names: list[str]) -> tuple[str | None, list[str]]:
    """The first of ``names`` this process runs as the model was certified, and why not the ones
    before it: run on each worker, under the threads and environment its chunks will have."""
    try:
        loaded = load_model(model_path)
        device = resolve_device(cfg.device)
    except (OrientError, OSError) as exc:  # a registry at another path, no GPU: the reason, once
        return None, [f"cannot load {model_path}: {exc}"]
    engine, problems = first_certified(loaded, device, names if device.type == "cpu" else ["torch"])
    return (engine.name if engine else None), problems


def engine_for_cluster(cfg: AutorotateConfig, model_path: str) -> tuple[str, str]:
    """The one engine for a run on ``cfg.dask_address``, and a line saying why."""
    from distributed import Client

    names = allowed(cfg, model_path)
    with Client(cfg.dask_address, set_as_default=False) as client:
        try:
            client.wait_for_workers(1, timeout=WAIT_FOR_WORKERS_S)
        except TimeoutError:
            raise EngineError(
                f"no Dask worker joined {cfg.dask_address} within {WAIT_FOR_WORKERS_S} s: start some "
                "(dask worker ADDRESS --nthreads 1)"
            ) from None
        workers = sorted(client.scheduler_info(n_workers=-1)["workers"])

        def ask(who: list[str], names: list[str]) -> Answers:
            futures = {
                w: client.submit(
                    engine_here, model_path, cfg, names, workers=[w], allow_other_workers=False, pure=False
                )
                for w in who
                if w != HERE
            }
            answers = {HERE: engine_here(model_path, cfg, names)} if HERE in who else {}  # meanwhile
            return {**answers, **{w: f.result() for w, f in futures.items()}}

        return agree(ask, [HERE, *workers], names)


def allowed(cfg: AutorotateConfig, model_path: str) -> list[str]:
    """The engines the settings allow, fastest first (with ``auto``, PyTorch last)."""
    names = candidates(load_model(model_path), torch.device("cpu"), cfg.engine)
    return names + ["torch"] if cfg.engine == "auto" else names


def agree(ask, everyone: list[str], names: list[str]) -> tuple[str, str]:
    """Ask everyone for the first of ``names`` they run certified; while the answers differ, ask
    the faster ones again from the slowest answer on. Returns the engine and why."""
    answers = ask(everyone, names)
    reasons: dict[str, list[str]] = {}  # why an engine was left out: who said so
    while True:
        for who, (_, problems) in answers.items():
            for problem in problems:
                said_by = reasons.setdefault(problem, [])
                if who not in said_by:
                    said_by.append(who)
        refused = [w for w, (name, _) in answers.items() if name not in names]
        if refused:
            raise EngineError(
                f"no engine of {', '.join(names)} runs this model as certified on "
                f"{', '.join(refused)}: {explain(reasons) or 'it predicts with PyTorch on its GPU'}"
            )
        slowest = max((name for name, _ in answers.values()), key=names.index)
        faster = [w for w, (name, _) in answers.items() if name != slowest]
        if not faster:
            return slowest, why(slowest, reasons, len(everyone) - 1)
        names = names[names.index(slowest) :]
        answers = {**answers, **ask(faster, names)}


def explain(reasons: dict[str, list[str]]) -> str:
    return " | ".join(f"{', '.join(who)}: {problem}" for problem, who in reasons.items())


def why(engine: str, reasons: dict[str, list[str]], n_workers: int) -> str:
    """One line: which network every worker runs, and what kept the faster ones out."""
    network = "the 8-bit network" if engine == INT8 else "the float network"
    said = f"predicting with {engine} ({network}, with its own calibration) on all {n_workers} worker(s)"
    return said + (f": {explain(reasons)}" if reasons else ", each of which runs it as certified")
