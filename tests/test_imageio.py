"""Reading photos: cheap, reduced-size decoding and clear messages for bad files."""

import io

import numpy as np
import pytest
import tifffile
from PIL import Image

from orient_model.imageio import ImageReadError, inspect_image, load_upright, square_views, to_rgb8

CAP = 250_000_000


def jpeg_bytes(img: Image.Image, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=85, **kw)
    return buf.getvalue()


def test_large_jpeg_is_decoded_at_reduced_size(tmp_path):
    path = tmp_path / "scan.jpg"
    Image.new("RGB", (4000, 3000), (120, 80, 40)).save(path, quality=80)
    img = load_upright(path, 224, CAP)
    assert min(img.size) >= 224
    assert max(img.size) <= 1000  # DCT scaling (1/8) then reduce(), never the full 4000 px


def test_exif_orientation_is_applied_once(tmp_path):
    arr = np.zeros((60, 90, 3), np.uint8)
    arr[:20, :20] = 255  # bright top-left corner as stored
    exif = Image.Exif()
    exif[0x0112] = 6  # display = stored turned 90 degrees clockwise
    path = tmp_path / "tagged.jpg"
    Image.fromarray(arr).save(path, quality=95, exif=exif.tobytes())
    shown = np.asarray(load_upright(path, 32, CAP).convert("L"), dtype=float)
    assert shown.shape[0] > shown.shape[1]  # portrait once displayed
    h, w = shown.shape
    assert shown[: h // 3, -w // 3 :].mean() > 120  # the corner moved to the top right
    assert shown[-h // 3 :, : w // 3].mean() < 30


def test_sixteen_bit_tiff_is_scaled_not_clipped(tmp_path):
    path = tmp_path / "gray16.tif"
    ramp = np.tile(np.linspace(0, 65535, 128, dtype=np.uint16), (96, 1))
    tifffile.imwrite(path, ramp)
    img = square_views(load_upright(path, 64, CAP), 64, 1)[0]
    row = np.asarray(img)[32, :, 0].astype(int)  # centre crop: 1/8 .. 7/8 of the ramp
    assert 20 < row[0] < 45 and 210 < row[-1] < 235  # scaled from 16 bits, not clipped at 255
    assert (np.diff(row) >= 0).all()


def test_transparency_is_flattened_on_white():
    rgba = Image.new("RGBA", (8, 8), (0, 0, 0, 0))
    assert to_rgb8(rgba).getpixel((0, 0)) == (255, 255, 255)


@pytest.mark.parametrize(
    "content, message",
    [
        (b"", "empty file"),
        (b"scanner log, not a photo\n", "not an image"),
    ],
)
def test_bad_files_have_clear_messages(tmp_path, content, message):
    path = tmp_path / "bad.jpg"
    path.write_bytes(content)
    with pytest.raises(ImageReadError, match=message):
        inspect_image(path, CAP)


def test_truncated_jpeg_is_reported_on_decode():
    data = jpeg_bytes(Image.effect_noise((300, 200), 60).convert("RGB"))
    with pytest.raises(ImageReadError, match="truncated"):
        load_upright(data[: len(data) // 2], 64, CAP)


def test_decompression_bomb_is_refused_before_decoding(tmp_path):
    path = tmp_path / "bomb.png"
    Image.new("L", (5000, 5000)).save(path)
    with pytest.raises(ImageReadError, match="too large"):
        load_upright(path, 64, max_pixels=10_000_000)


def test_bogus_exif_orientation_is_reported(tmp_path):
    exif = Image.Exif()
    exif[0x0112] = 9
    path = tmp_path / "bogus.jpg"
    Image.new("RGB", (64, 48)).save(path, exif=exif.tobytes())
    with pytest.raises(ImageReadError, match="bogus EXIF orientation"):
        inspect_image(path, CAP)


def test_importing_the_library_leaves_pillows_global_state_alone():
    import subprocess
    import sys

    code = (
        "from PIL import Image; before = Image.MAX_IMAGE_PIXELS; import warnings\n"
        "import orient_model.imageio, orient_model.rotate, orient_model.pipeline\n"
        "assert Image.MAX_IMAGE_PIXELS == before, Image.MAX_IMAGE_PIXELS\n"
        "assert not [f for f in warnings.filters if f[2] is Image.DecompressionBombWarning]"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_a_scan_over_pillows_own_cap_opens_under_ours(tmp_path):
    from PIL import Image as PillowImage

    path = tmp_path / "wide.png"
    PillowImage.new("L", (20000, 5000)).save(path)  # 100 MP: over Pillow's warning cap, under ours
    info = inspect_image(path, 250_000_000)
    assert (info.width, info.height) == (20000, 5000)
    with pytest.raises(ImageReadError, match="image too large"):
        inspect_image(path, 50_000_000)


def test_square_views_cut_only_the_views_asked_for_and_the_same_as_all_of_them():
    img = Image.fromarray(np.random.default_rng(3).integers(0, 256, (300, 700, 3), dtype=np.uint8))
    every = square_views(img, 64, 3)
    assert [v.tobytes() for v in square_views(img, 64, 3, [2, 0])] == [every[2].tobytes(), every[0].tobytes()]
    assert square_views(img, 64, 3, [1])[0].tobytes() == square_views(img, 64, 1)[0].tobytes()  # the centre
