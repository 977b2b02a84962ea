"""Datasets over the training copies, and the label-preserving augmentation."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset
from torchvision.transforms import v2

from orient_model import orientation
from orient_model.model.augment import scan_look

# A horizontal mirror turns "content turned 90 ccw" into "content turned 90 cw" (= 270 ccw).
HFLIP_LABEL = {0: 0, 1: 3, 2: 2, 3: 1}


def to_tensor(img: Image.Image, mean, std) -> torch.Tensor:
    t = v2.functional.pil_to_tensor(img).float().div_(255.0)
    return v2.functional.normalize(t, list(mean), list(std))


def to_batch(images: list[Image.Image], mean, std) -> torch.Tensor:
    """``N x 3 x H x W`` of same-size RGB images, as :func:`to_tensor` makes each, in two passes
    over the batch (one image at a time costs five small operations each, a third of the CPU a
    prediction's views cost besides the network)."""
    pixels = torch.from_numpy(np.stack([np.asarray(img) for img in images])).permute(0, 3, 1, 2)
    scale = torch.tensor([1.0 / (255.0 * s) for s in std]).view(1, 3, 1, 1)
    shift = torch.tensor([m / s for m, s in zip(mean, std, strict=True)]).view(1, 3, 1, 1)
    return pixels.float().mul_(scale).sub_(shift).contiguous()


def split_copies(data_dir: Path | str, split: str) -> list[tuple[Path, int]]:
    """A split's copies with their labels: ``DATA_DIR/<split>/<000|090|180|270>/*.jpg``."""
    root = Path(data_dir) / split
    return [
        (p, label)
        for label, name in enumerate(orientation.CLASS_NAMES)
        for p in sorted((root / name).glob("*.jpg"))
    ]


def photo_of(copy: Path) -> str:
    """The photo a copy was cut from (its hash prefix): copies are named ``<hash>_c<view>.jpg``."""
    return copy.name.split("_")[0]


class CopiesDataset(Dataset):
    """``DATA_DIR/<split>/<000|090|180|270>/*.jpg`` with labels 0..3 (class index = rotation_deg / 90).

    Training copies get label-preserving augmentation: scanned-print effects (see
    :mod:`orient_model.model.augment`), a random resized crop, colour jitter, and a mirror that
    swaps the 90 and 270 classes. ``sources`` keeps only copies of those photos (hash prefixes).
    ``numbered``: each item also says which copy it is (its index), so features cached in a
    shuffled order can be traced to their photo.
    """

    def __init__(
        self,
        data_dir: Path,
        split: str,
        input_size: int,
        mean,
        std,
        train: bool,
        scan_look: float = 0.0,
        sources: set[str] | None = None,
        numbered: bool = False,
    ):
        self.numbered = numbered
        self.samples = [
            (p, label)
            for p, label in split_copies(data_dir, split)
            if sources is None or photo_of(p) in sources
        ]
        self.input_size, self.mean, self.std, self.train = input_size, mean, std, train
        self.scan_look = scan_look
        self.augment = v2.Compose(
            [
                v2.RandomResizedCrop(input_size, scale=(0.5, 1.0), ratio=(3 / 4, 4 / 3), antialias=True),
                v2.ColorJitter(brightness=0.3, contrast=0.3, saturation=0.3, hue=0.03),
                v2.RandomGrayscale(p=0.1),
            ]
        )

    def __len__(self) -> int:
        return len(self.samples)

    def labels(self) -> list[int]:
        return [label for _, label in self.samples]

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int] | tuple[torch.Tensor, int, int]:
        path, label = self.samples[index]
        with Image.open(path) as f:
            # Copies made larger than the network looks (--copy-size 768 for 224 px) decode at a
            # fraction of their size (JPEG's own scaling, the same both ways), never below it.
            f.draft("RGB", (self.input_size, self.input_size))
            img = f.convert("RGB")
        if self.train:
            if self.scan_look > 0:
                rng = np.random.default_rng(int(torch.randint(0, 2**31, ())))  # seeded per worker by torch
                img = scan_look(img, rng, self.scan_look)
            img = self.augment(img)
            if random.random() < 0.5:
                img, label = img.transpose(Image.Transpose.FLIP_LEFT_RIGHT), HFLIP_LABEL[label]
        elif img.size != (self.input_size, self.input_size):
            img = img.resize((self.input_size, self.input_size), Image.Resampling.BICUBIC)
        tensor = to_tensor(img, self.mean, self.std)
        return (tensor, label, index) if self.numbered else (tensor, label)
