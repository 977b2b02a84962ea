"""Scale-out on an existing engine: predictions on a Dask cluster, applying stays local."""

from __future__ import annotations

import pytest

from orient_model.config import AutorotateConfig
from orient_model.report import read_report
from orient_model.synthetic import write_scenes

pytestmark = pytest.mark.slow


def test_a_dask_cluster_gives_the_same_rows_as_a_local_run(prefect_server, tiny_model, tmp_path):
    from distributed import LocalCluster

    from flows.autorotate import CHUNK, autorotate_flow_for

    write_scenes(tmp_path / "archive", CHUNK + 6, seed=4)  # two chunks: both workers get work
    local = AutorotateConfig(model=str(tiny_model), threshold=0.5, saliency="off", device="cpu")

    def rows(summary: dict) -> list[tuple]:
        table = read_report(summary["report"]).to_pylist()
        return sorted((r["path"], r["action"], r["rotation_deg"], round(r["confidence"], 5)) for r in table)

    here = autorotate_flow_for(local)(str(tmp_path / "archive"), local, state_dir=str(tmp_path / "a"))
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        remote_cfg = local.model_copy(update={"dask_address": cluster.scheduler_address})
        there = autorotate_flow_for(remote_cfg)(
            str(tmp_path / "archive"), remote_cfg, state_dir=str(tmp_path / "b")
        )
    assert there["files"] == here["files"] == CHUNK + 6
    assert rows(there) == rows(here)
