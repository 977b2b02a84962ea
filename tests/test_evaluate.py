"""Judging photos in four orientations from one orientation's passes equals turning them for real."""

import numpy as np
import pytest
from PIL import Image

from orient_model import orientation
from orient_model.imageio import load_upright
from orient_model.model.evaluate import MAX_PIXELS, WIDEST, in_all_orientations, score_photos
from orient_model.model.predict import Looking, Predictor
from orient_model.model.registry import DEFAULT_MODEL_DIR, load_model
from orient_model.synthetic import write_scenes


@pytest.fixture(scope="module")
def predictor():
    return Predictor(load_model(DEFAULT_MODEL_DIR / "model.pt"), device="cpu", engine="torch")


def turned_for_real(predictor, path):
    """The photo turned to each orientation, then looked at: what an archive's turned scan gives."""
    upright = load_upright(path, predictor.decode_size, MAX_PIXELS)
    shown = [orientation.apply(upright, orientation.COUNTER_CLOCKWISE[r]) for r in orientation.ROTATIONS]
    return predictor.log_probs(shown, Looking(WIDEST, True))


@pytest.mark.parametrize("size", [(360, 240), (240, 360), (300, 300), (301, 300)])
def test_scores_in_four_orientations_match_the_photo_turned_for_real(predictor, tmp_path, size):
    [path] = write_scenes(tmp_path, 1, seed=sum(size), size=size)
    scores = score_photos(predictor, [(path, ["scene"])])
    real = turned_for_real(predictor, path)
    derived = scores.log_probs[0]
    assert derived.shape == real.shape == (4, 3, 4, 4)
    # Only the resize's rounding differs (it runs along the other axis first on a turned photo).
    assert np.abs(np.exp(derived) - np.exp(real)).max() < 0.02
    assert (derived.argmax(-1) == real.argmax(-1)).mean() > 0.95


def test_in_all_orientations_swaps_the_end_views_where_the_long_side_runs_back():
    upright = np.arange(3 * 4 * 4, dtype=np.float32).reshape(3, 4, 4)
    wide, tall = in_all_orientations(upright, (30, 20)), in_all_orientations(upright, (20, 30))
    assert np.array_equal(wide[0], upright) and np.array_equal(tall[0], upright)
    assert np.array_equal(wide[2], tall[2])  # half a turn runs either long side back
    assert np.array_equal(wide[1][0], tall[1][2]) and not np.array_equal(wide[1], tall[1])
    assert np.array_equal(wide[3], tall[3][::-1])


def test_an_unreadable_photo_is_a_failure_not_a_score(predictor, tmp_path):
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"not a photo")
    Image.new("RGB", (64, 48), "white").save(tmp_path / "good.png")
    scores = score_photos(predictor, [(bad, []), (tmp_path / "good.png", [])])
    assert scores.names == [str(tmp_path / "good.png")] and scores.log_probs.shape[0] == 1
    assert scores.failed[0][0] == str(bad)


def test_the_insight_page_judges_four_orientations_as_if_turned_for_real(predictor, tmp_path):
    from orient_model.insight.behaviour import four_ways, shown_four_ways

    paths = write_scenes(tmp_path, 1, seed=9, size=(360, 240))
    images = [load_upright(p, predictor.decode_size, MAX_PIXELS) for p in paths]
    looking = Looking(WIDEST, True)
    derived = four_ways(predictor, images, looking)
    shown = [view for img in images for view in shown_four_ways(img)]
    real = predictor.calibrated(predictor.log_probs(shown, looking), looking).reshape(1, 4, 4)
    assert np.abs(derived - real).max() < 0.02
    assert (derived.argmax(-1) == real.argmax(-1)).all()
    alone = Looking(WIDEST, False)  # without the turns nothing can be re-indexed: turned for real
    turned = predictor.calibrated(predictor.log_probs(shown, alone), alone).reshape(1, 4, 4)
    assert np.allclose(four_ways(predictor, images, alone), turned)
