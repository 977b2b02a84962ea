"""The projected cost of a training run: the parts add up where they cannot overlap."""

from orient_model.model import train_costs
from orient_model.model.train_costs import CopyCosts, RunShape, caching_seconds, project_seconds

COSTS = CopyCosts(
    decode_augment=0.010,
    early_forward=0.020,
    late_train_step=0.015,
    late_forward=0.005,
    whole_forward=0.025,
    feature_bytes=31_360,
    threads=2,
)


def test_caching_takes_turns_when_the_network_holds_every_core(monkeypatch):
    monkeypatch.setattr(train_costs, "usable_cores", lambda: 2)
    assert caching_seconds(COSTS, loader_workers=2) == 0.030
    monkeypatch.setattr(train_costs, "usable_cores", lambda: 8)
    assert caching_seconds(COSTS, loader_workers=2) == 0.020  # decoding hides behind the network
    assert caching_seconds(COSTS, loader_workers=0) == 0.030


def test_judging_costs_twelve_passes_a_photo(monkeypatch):
    monkeypatch.setattr(train_costs, "usable_cores", lambda: 2)
    shape = RunShape(1000, 100, 10, 30, 2, 1, 2)
    parts = project_seconds(COSTS, shape)
    assert parts["judge calibration and test photos"] == (10 + 30) * 12 * 0.025
    assert parts["run"] == sum(
        v for k, v in parts.items() if k not in ("run", "one epoch (train + validate)")
    )
