"""A glance first: the centre view decides the photos it is sure of, the full look the rest, and
the two-step rule is calibrated and certified as one rule."""

import numpy as np
import pytest
import torch
from PIL import Image

from orient_model.model.architectures import TinyOrientNet
from orient_model.model.calibration import THRESHOLD_GRID, risk_curve
from orient_model.model.evaluate import PhotoScores, calibrate, lookings_for, metrics
from orient_model.model.predict import GLANCE, Looking, Predictor, combine, views_within
from orient_model.model.registry import LoadedModel

FULL, GLANCING = Looking(3, True), Looking(3, True, glance=True)


def test_two_step_curve_counts_each_photo_once_by_the_look_that_decided_it():
    glance_conf = np.array([0.99, 0.99, 0.60, 0.60, 0.60])
    glance_right = np.array([True, False, False, True, False])
    full_conf = np.array([0.10, 0.10, 0.97, 0.97, 0.50])
    full_right = np.array([False, False, True, False, True])
    rows = {r["threshold"]: r for r in risk_curve(glance_conf, glance_right, then=(full_conf, full_right))}
    assert (rows[0.98]["automatic"], rows[0.98]["errors"]) == (2, 1)  # the glance's two photos
    assert (rows[0.95]["automatic"], rows[0.95]["errors"]) == (4, 2)  # and two by the full look
    assert (rows[0.5]["automatic"], rows[0.5]["errors"]) == (5, 3)  # the glance is sure of all
    assert rows[0.995]["automatic"] == 0


def test_a_glance_needs_several_views_each_turned():
    with pytest.raises(ValueError, match="several views"):
        Looking(1, True, glance=True)
    with pytest.raises(ValueError, match="several views"):
        Looking(3, False, glance=True)
    assert GLANCING.key == "views=3,tta=True,glance" and GLANCING.wide == FULL


def tiny_model(calibrated_to_glance: bool, views: int = 3) -> LoadedModel:
    """A real (untrained) network; temperatures that make the glance and the full look differ."""
    torch.manual_seed(0)
    full, glancing = Looking(views, True), Looking(views, True, glance=True)
    calibration = {GLANCE.key: {"temperature": 0.05}, full.key: {"temperature": 2.0}}
    if calibrated_to_glance:
        calibration[glancing.key] = {"temperature": 2.0, "risk_curve": []}
    card = {"calibration": calibration}
    return LoadedModel(
        TinyOrientNet(input_size=64), "tiny", 64, (0.5,) * 3, (0.25,) * 3, 1.0, "t", card, 1.0, views
    )


def photos(n: int = 10) -> list[Image.Image]:
    rng = np.random.default_rng(0)
    return [Image.fromarray(rng.integers(0, 256, (64, 64 + 24 * i, 3), dtype=np.uint8)) for i in range(n)]


@pytest.mark.parametrize("views", [3, 2])  # the centre is one of three views, not of two
def test_glancing_keeps_the_glance_where_it_is_sure_and_looks_at_every_view_elsewhere(views):
    loaded = tiny_model(calibrated_to_glance=True, views=views)
    glancing = Predictor(loaded, device="cpu", glance=True)
    assert glancing.looking == Looking(views, True, glance=True)
    images = photos()
    centre = Predictor(loaded, device="cpu", views=1).probabilities(images)  # the glance alone
    full = Predictor(loaded, device="cpu").probabilities(images)  # in full, the default
    assert not np.allclose(centre, full, atol=1e-3)
    assert np.allclose(glancing.probabilities(images, threshold=0.0), centre, atol=1e-5)
    assert np.allclose(glancing.probabilities(images, threshold=1.01), full, atol=1e-5)
    assert np.allclose(glancing.probabilities(images), full, atol=1e-5)  # no threshold: the full look
    threshold = float(np.median(centre.max(1)))
    sure = centre.max(1) >= threshold
    assert 0 < sure.sum() < len(images)
    got = glancing.probabilities(images, threshold=threshold)
    assert np.allclose(got[sure], centre[sure], atol=1e-5)
    assert np.allclose(got[~sure], full[~sure], atol=1e-5)


def test_two_views_are_the_ends_of_the_three_so_three_views_scores_judge_both():
    images = photos(4)
    predictor = Predictor(tiny_model(calibrated_to_glance=False), device="cpu")
    three = predictor.log_probs(images, Looking(3, True))
    two = predictor.log_probs(images, Looking(2, True))
    assert np.allclose(two, three[:, [0, 2]], atol=1e-5)
    assert not np.allclose(two[:, 0], two[:, 1], atol=1e-3)  # two different views, not one twice
    voted = combine(three, Looking(2, True))
    assert np.allclose(voted, two.reshape(len(images), -1, 4).mean(1), atol=1e-5)
    assert views_within(1, 3) == [1] and views_within(2, 5) == [0, 4] and views_within(3, 5) == [0, 2, 4]
    for views, n in ((3, 4), (4, 3), (2, 1)):
        with pytest.raises(ValueError, match="cannot look"):
            views_within(views, n)


def test_a_model_without_a_curve_for_the_glance_is_not_glanced_at():
    assert Predictor(tiny_model(calibrated_to_glance=False), device="cpu", glance=True).looking == FULL
    assert Predictor(tiny_model(calibrated_to_glance=True), device="cpu").looking == FULL  # off by default
    unturned = Predictor(tiny_model(calibrated_to_glance=True), device="cpu", tta=False, glance=True)
    assert unturned.looking == Looking(3, False)


def scores(n: int = 80, seed: int = 1) -> PhotoScores:
    """Log-probabilities that favour the right class, more for some photos and views than others."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(size=(n, 4, 3, 4, 4)) * 2
    for r in range(4):
        logits[:, r, :, :, r] += rng.gamma(2.0, 1.5, size=(n, 3, 1))
    log_probs = torch.log_softmax(torch.from_numpy(logits), -1).numpy().astype(np.float32)
    return PhotoScores([f"p{i}" for i in range(n)], [["scene"]] * n, log_probs)


def test_calibration_and_judging_agree_on_the_two_step_rule():
    calib = scores()
    calibration = calibrate(calib, lookings_for(3))
    assert set(calibration) == {looking.key for looking in lookings_for(3)}
    assert calibration[GLANCING.key]["temperature"] == calibration[FULL.key]["temperature"]
    curve = {row["threshold"]: row for row in calibration[GLANCING.key]["risk_curve"]}
    for threshold in (THRESHOLD_GRID[20], THRESHOLD_GRID[100], THRESHOLD_GRID[200]):
        judged = metrics(calib, GLANCING, calibration, threshold)
        assert judged["automatic"] == curve[threshold]["automatic"]
        assert judged["wrong_automatic"] == curve[threshold]["errors"]
    # Between its two parts: the glance decides fewer photos alone than the two-step rule.
    glance_only = {row["threshold"]: row for row in calibration[GLANCE.key]["risk_curve"]}
    assert all(curve[t]["automatic"] >= glance_only[t]["automatic"] for t in curve)
