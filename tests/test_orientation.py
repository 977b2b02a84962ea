"""The one orientation convention: class k means 'turn k degrees clockwise to make it upright'."""

import numpy as np
import pytest
from PIL import Image, ImageOps

from orient_model import orientation as ori


def marked() -> Image.Image:
    """An image whose orientation is unambiguous: a bright block in the top-left corner."""
    arr = np.zeros((40, 60, 3), np.uint8)
    arr[:10, :10] = 255
    arr[30:, 50:, 2] = 200
    return Image.fromarray(arr)


@pytest.mark.parametrize("angle", ori.ROTATIONS)
def test_clockwise_correction_undoes_counter_clockwise_turn(angle):
    upright = marked()
    turned = ori.apply(upright, ori.COUNTER_CLOCKWISE[angle])
    assert ori.apply(turned, ori.CLOCKWISE[angle]).tobytes() == upright.tobytes()


@pytest.mark.parametrize("tag", range(1, 9))
@pytest.mark.parametrize("rotation", ori.ROTATIONS)
def test_exif_after_rotation_shows_the_photo_turned_clockwise(tag, rotation):
    stored = marked()
    displayed = ori.apply(stored, ori.EXIF_TRANSFORMS[tag])
    expected = ori.apply(displayed, ori.CLOCKWISE[rotation])
    new_tag = ori.exif_after_rotation(tag, rotation)
    assert ori.apply(stored, ori.EXIF_TRANSFORMS[new_tag]).tobytes() == expected.tobytes()
    baked = ori.apply(stored, ori.pixel_transform(tag, rotation))
    assert baked.tobytes() == expected.tobytes()


@pytest.mark.parametrize("tag", range(1, 9))
def test_exif_table_matches_pillow(tag):
    img = marked()
    exif = Image.Exif()
    exif[0x0112] = tag
    img.info["exif"] = exif.tobytes()
    img.getexif()[0x0112] = tag
    assert ImageOps.exif_transpose(img).tobytes() == ori.apply(marked(), ori.EXIF_TRANSFORMS[tag]).tobytes()


@pytest.mark.parametrize("transform", list(ori.EXIF_TRANSFORMS.values()))
def test_inverse_and_array_agree_with_pillow(transform):
    img = marked()
    assert ori.apply(ori.apply(img, transform), ori.inverse(transform)).tobytes() == img.tobytes()
    assert np.array_equal(ori.apply_array(np.asarray(img), transform), np.asarray(ori.apply(img, transform)))
