"""The archivist's overnight run is a real scheduled Prefect deployment."""

from flows.deployments import nightly_deployment
from orient_model.config import AutorotateConfig


def test_nightly_deployment_has_the_schedule_and_the_archive(tmp_path):
    cfg = AutorotateConfig(apply="lossless", threshold=0.95)
    deployment = nightly_deployment(str(tmp_path), "0 2 * * *", "Europe/Berlin", cfg)
    assert deployment.flow_name == "autorotate"
    assert [s.schedule.cron for s in deployment.schedules] == ["0 2 * * *"]
    assert [s.schedule.timezone for s in deployment.schedules] == ["Europe/Berlin"]
    assert (
        deployment.concurrency_limit == 1
        and deployment.concurrency_options.collision_strategy == "CANCEL_NEW"
    )
    assert deployment.name.startswith("autorotate-test-nightly-deployment")
    assert deployment.parameters["archive_dir"] == str(tmp_path)
    assert AutorotateConfig.model_validate(deployment.parameters["config"]) == cfg
