"""The one orientation convention, and the dihedral algebra of EXIF orientations.

Class ``k`` (0, 90, 180, 270) means: the photo's content is turned ``k`` degrees
counter-clockwise from upright, so it needs a ``k``-degree *clockwise* rotation to be
upright. The report's ``rotation_deg`` has the same meaning, measured on the photo as a
viewer displays it (after any EXIF orientation).

Every pixel transform is one of the 8 elements of the dihedral group D4. We name them
by Pillow's ``Image.Transpose`` members (``None`` is the identity) and compose them by
applying them to a tiny probe image, so there is no hand-written table to get wrong.
"""

from __future__ import annotations

from functools import cache

import numpy as np
from PIL import Image

Transpose = Image.Transpose

# The four values of ``rotation_deg``; a model's class index is ``rotation_deg // 90``.
ROTATIONS: tuple[int, ...] = (0, 90, 180, 270)
# Folder names of the four classes in a training set (ImageFolder layout).
CLASS_NAMES: tuple[str, ...] = ("000", "090", "180", "270")
EXIF_ORIENTATION_TAG = 0x0112

# EXIF Orientation tag value -> the transform that turns stored pixels into the displayed image.
EXIF_TRANSFORMS: dict[int, Transpose | None] = {
    1: None,
    2: Transpose.FLIP_LEFT_RIGHT,
    3: Transpose.ROTATE_180,
    4: Transpose.FLIP_TOP_BOTTOM,
    5: Transpose.TRANSPOSE,
    6: Transpose.ROTATE_270,
    7: Transpose.TRANSVERSE,
    8: Transpose.ROTATE_90,
}

# Clockwise rotation in degrees -> Pillow transform (Pillow's ROTATE_n is counter-clockwise).
CLOCKWISE: dict[int, Transpose | None] = {
    0: None,
    90: Transpose.ROTATE_270,
    180: Transpose.ROTATE_180,
    270: Transpose.ROTATE_90,
}

# Counter-clockwise rotation in degrees -> Pillow transform: how training copies are made.
COUNTER_CLOCKWISE: dict[int, Transpose | None] = {
    0: None,
    90: Transpose.ROTATE_90,
    180: Transpose.ROTATE_180,
    270: Transpose.ROTATE_270,
}

# jpegtran arguments that perform each transform in the DCT domain.
JPEGTRAN_ARGS: dict[Transpose | None, list[str]] = {
    None: [],
    Transpose.FLIP_LEFT_RIGHT: ["-flip", "horizontal"],
    Transpose.FLIP_TOP_BOTTOM: ["-flip", "vertical"],
    Transpose.ROTATE_90: ["-rotate", "270"],
    Transpose.ROTATE_180: ["-rotate", "180"],
    Transpose.ROTATE_270: ["-rotate", "90"],
    Transpose.TRANSPOSE: ["-transpose"],
    Transpose.TRANSVERSE: ["-transverse"],
}

_ELEMENTS: tuple[Transpose | None, ...] = tuple(EXIF_TRANSFORMS.values())


def class_index(rotation_deg: int) -> int:
    """A model's class index for a rotation in degrees (0, 90, 180, 270)."""
    return ROTATIONS.index(int(rotation_deg) % 360)


def apply(img: Image.Image, transform: Transpose | None) -> Image.Image:
    """Apply one D4 transform (``None`` is the identity) to a Pillow image."""
    return img if transform is None else img.transpose(transform)


def apply_array(arr: np.ndarray, transform: Transpose | None) -> np.ndarray:
    """Apply one D4 transform to an ``H x W [x C]`` array, exactly as :func:`apply` would."""
    if transform is None:
        return arr
    ops = {
        Transpose.FLIP_LEFT_RIGHT: lambda a: a[:, ::-1],
        Transpose.FLIP_TOP_BOTTOM: lambda a: a[::-1],
        Transpose.ROTATE_90: lambda a: np.rot90(a, 1),
        Transpose.ROTATE_180: lambda a: np.rot90(a, 2),
        Transpose.ROTATE_270: lambda a: np.rot90(a, 3),
        Transpose.TRANSPOSE: lambda a: np.swapaxes(a, 0, 1),
        Transpose.TRANSVERSE: lambda a: np.rot90(np.swapaxes(a, 0, 1), 2),
    }
    return np.ascontiguousarray(ops[transform](arr))


def _probe() -> Image.Image:
    return Image.fromarray(np.arange(6, dtype=np.uint8).reshape(2, 3))


@cache
def _signature(transform: Transpose | None) -> bytes:
    img = apply(_probe(), transform)
    return bytes(img.size) + img.tobytes()


def compose(first: Transpose | None, then: Transpose | None) -> Transpose | None:
    """The single transform equal to applying ``first`` and then ``then``."""
    sig = apply(apply(_probe(), first), then)
    target = bytes(sig.size) + sig.tobytes()
    for element in _ELEMENTS:
        if _signature(element) == target:
            return element
    raise AssertionError("D4 is closed under composition")  # pragma: no cover


def inverse(transform: Transpose | None) -> Transpose | None:
    """The transform that undoes ``transform``."""
    for element in _ELEMENTS:
        if compose(transform, element) is None:
            return element
    raise AssertionError("every D4 element has an inverse")  # pragma: no cover


def exif_value_of(transform: Transpose | None) -> int:
    """EXIF Orientation value (1..8) whose display transform is ``transform``."""
    for value, element in EXIF_TRANSFORMS.items():
        if element == transform:
            return value
    raise AssertionError("every D4 element is an EXIF orientation")  # pragma: no cover


def exif_after_rotation(exif_orientation: int, rotation_deg: int) -> int:
    """EXIF value that shows the photo rotated ``rotation_deg`` more degrees clockwise."""
    return exif_value_of(compose(EXIF_TRANSFORMS[exif_orientation], CLOCKWISE[rotation_deg % 360]))


def pixel_transform(exif_orientation: int, rotation_deg: int) -> Transpose | None:
    """Transform of the stored pixels that bakes in EXIF orientation plus a clockwise rotation.

    After applying it, the file is stored upright and its EXIF Orientation must be 1.
    """
    return compose(EXIF_TRANSFORMS[exif_orientation], CLOCKWISE[rotation_deg % 360])


def valid_exif_orientation(value: object) -> bool:
    return isinstance(value, int) and value in EXIF_TRANSFORMS
