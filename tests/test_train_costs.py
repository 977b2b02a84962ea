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


def test_caching_keeps_the_thread_count_its_own_batches_ran_fastest_with():
    import torch

    from orient_model.model.feature_cache import ThreadProbe

    before = torch.get_num_threads()
    try:
        probe = ThreadProbe([2, 1], batches=2)
        assert torch.get_num_threads() == 2
        for seconds in (9.0, 1.0, 1.0):  # settle, then two batches of 32 copies with 2 threads
            probe.observe(seconds, 32)
        assert probe.chosen is None and torch.get_num_threads() == 1
        for seconds in (9.0, 0.5, 0.5):  # one thread: twice as fast here
            probe.observe(seconds, 32)
        assert probe.chosen == 1 and torch.get_num_threads() == 1
        assert "64.0 copies/s with 1" in probe.summary() and "32.0 copies/s with 2" in probe.summary()
        probe.observe(100.0, 32)  # decided: later batches change nothing
        assert probe.chosen == 1
    finally:
        torch.set_num_threads(before)
