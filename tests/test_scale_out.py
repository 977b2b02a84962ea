"""Scale-out as the README says: predictions on a Dask cluster of one-thread worker processes,
one engine certified on every worker, applying stays local."""

from __future__ import annotations

import logging
import sys

import pytest
from distributed.diagnostics.plugin import WorkerPlugin

from orient_model.config import AutorotateConfig
from orient_model.model.engine import INT8
from orient_model.report import read_report, run_config_of
from orient_model.synthetic import write_scenes


class OtherEightBitKernels(WorkerPlugin):
    """A Dask worker plugin: on one worker, ONNX Runtime computes 8-bit networks with its
    unfused kernels (graph optimisations off), as a CPU with other 8-bit kernels would: other
    probabilities (0.04 apart on the check inputs) for the same file."""

    name = "other-8-bit-kernels"

    def __init__(self, address: str) -> None:
        self.address = address

    def setup(self, worker) -> None:
        import onnxruntime as ort

        if worker.address != self.address:
            return
        self.original = base = ort.InferenceSession

        class Unfused(base):
            def __init__(self, path, options=None, **kwargs):
                if str(path).endswith(".int8.onnx"):
                    options = options or ort.SessionOptions()
                    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
                super().__init__(path, options, **kwargs)

        ort.InferenceSession = Unfused

    def teardown(self, worker) -> None:
        import onnxruntime as ort

        if getattr(self, "original", None) is not None:
            ort.InferenceSession = self.original


@pytest.fixture(scope="module")
def archive(tmp_path_factory):
    """Eight small scenes, three of them turned: photos to keep, to turn and maybe to review."""
    from PIL import Image

    folder = tmp_path_factory.mktemp("scale-out") / "archive"
    paths = write_scenes(folder, 8, seed=4, size=(128, 96))
    for path, turn in zip(
        paths[::3], (Image.Transpose.ROTATE_90, Image.Transpose.ROTATE_180, Image.Transpose.ROTATE_270)
    ):
        with Image.open(path) as img:
            turned = img.transpose(turn)
        turned.save(path, quality=90)
    return folder


@pytest.fixture(scope="module")
def dask_cluster():
    """Worker processes as the README starts them: one thread each, Dask's environment. Yields
    the scheduler's address and a client."""
    from distributed import Client, LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        with Client(cluster, set_as_default=False) as client:
            assert set(client.run(lambda: __import__("os").environ.get("OMP_NUM_THREADS")).values()) == {"1"}
            yield cluster.scheduler_address, client


@pytest.fixture
def two_chunks(monkeypatch):
    """Chunks of 4 photos: the 8 make two tasks, one for each worker to take."""
    import flows.autorotate

    monkeypatch.setattr(flows.autorotate, "CHUNK", 4)


SHIPPED = AutorotateConfig(model="default")  # the default settings, with the shipped model named


def run(cfg: AutorotateConfig, archive, state_dir) -> tuple[dict, dict]:
    """A run's report as ``{path: (action, rotation, confidence)}``, and its configuration."""
    from flows.autorotate import autorotate_flow_for

    summary = autorotate_flow_for(cfg)(str(archive), cfg, state_dir=str(state_dir))
    table = read_report(summary["report"])
    rows = {r["path"]: (r["action"], r["rotation_deg"], r["confidence"]) for r in table.to_pylist()}
    return rows, run_config_of(table)


def assert_same(there: dict, here: dict) -> None:
    """Same actions and turns; confidences within float rounding."""
    assert len(there) == 8
    assert {p: r[:2] for p, r in there.items()} == {p: r[:2] for p, r in here.items()}
    assert [r[2] for r in there.values()] == pytest.approx([here[p][2] for p in there], abs=1e-4)


def flow_log():
    """What the flow says (its run logger), collected here."""
    records: list[str] = []
    handler = logging.Handler(logging.INFO)
    handler.emit = lambda record: records.append(record.getMessage())
    logging.getLogger("prefect.flow_runs").addHandler(handler)
    return records, handler


@pytest.mark.slow
@pytest.mark.timeout(400)
def test_the_readme_cluster_runs_the_default_settings_like_a_local_run(
    prefect_server, archive, dask_cluster, two_chunks, tmp_path
):
    """One-thread workers run the 8-bit network as certified, as this machine does: the same
    actions and confidences as a local run."""
    here, here_cfg = run(SHIPPED, archive, tmp_path / "here")
    address, _ = dask_cluster
    there, there_cfg = run(SHIPPED.model_copy(update={"dask_address": address}), archive, tmp_path / "there")
    assert here_cfg["engine"] == "auto" and there_cfg["engine"] == INT8
    assert there_cfg["threshold"] == here_cfg["threshold"]
    assert_same(there, here)


@pytest.mark.slow
@pytest.mark.timeout(400)
def test_a_worker_with_other_8bit_arithmetic_makes_the_whole_run_float(
    prefect_server, archive, dask_cluster, two_chunks, tmp_path
):
    """One worker fails the 8-bit check: every chunk runs the float network with its own
    calibration, and the flow says so once, naming the worker."""
    import cloudpickle

    address, client = dask_cluster
    odd = sorted(client.scheduler_info()["workers"])[0]
    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    client.register_plugin(OtherEightBitKernels(odd))
    records, handler = flow_log()
    try:
        floats, floats_cfg = run(
            SHIPPED.model_copy(update={"engine": "onnxruntime"}), archive, tmp_path / "here"
        )
        records.clear()
        there, there_cfg = run(
            SHIPPED.model_copy(update={"dask_address": address}), archive, tmp_path / "there"
        )
    finally:
        logging.getLogger("prefect.flow_runs").removeHandler(handler)
        client.unregister_worker_plugin(OtherEightBitKernels.name)
        cloudpickle.unregister_pickle_by_value(sys.modules[__name__])
    assert there_cfg["engine"] == "onnxruntime"
    assert there_cfg["threshold"] == floats_cfg["threshold"]
    assert_same(there, floats)
    said = [r for r in records if "8-bit arithmetic differs" in r]
    assert len(said) == 1 and odd in said[0] and "the float network" in said[0], records
    assert odd in there_cfg["decisions"] and "the float network" in there_cfg["decisions"]


def test_the_run_takes_the_fastest_engine_every_worker_runs_or_says_who_cannot():
    """Workers answer as they would: the first engine they run certified from those asked, and
    why not the ones before it."""
    from flows.cluster import agree
    from orient_model.model.engine import EngineError

    runs = {"a": [INT8, "onnxruntime", "torch"], "b": ["onnxruntime", "torch"], "c": [INT8, "torch"]}

    def ask(who, names):
        answers = {}
        for w in who:
            ok = [n for n in names if n in runs[w]]
            first = ok[0] if ok else None
            answers[w] = first, [f"{n} fails on {w}" for n in names[: names.index(first) if ok else None]]
        return answers

    engine, why = agree(ask, ["a", "b", "c"], [INT8, "onnxruntime", "openvino", "torch"])
    assert engine == "torch"
    assert "onnxruntime-int8 fails on b" in why and "onnxruntime fails on c" in why
    assert agree(ask, ["a", "c"], [INT8, "onnxruntime", "torch"])[0] == INT8
    with pytest.raises(EngineError, match="on b: .*onnxruntime-int8 fails on b"):
        agree(ask, ["a", "b"], [INT8])
