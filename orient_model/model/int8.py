"""An 8-bit network for a model, calibrated and certified on its own.

8-bit arithmetic runs the network about twice as fast on a CPU with 8-bit dot-product units,
but its probabilities are not the float network's. A threshold certified for one does not hold
for the other, so the 8-bit network gets its own temperatures, risk-coverage curves and test
figures, on the same calibration and test photos, and the card records them under ``int8``
with the file's sha256 and what it says on the engine's check inputs (see
:mod:`orient_model.model.engine`).

Its quantization ranges come from training copies, never from the calibration photos, which
then stay untouched by anything fitted to them except the temperatures and the threshold.
"""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import torch

from orient_model.config import MAX_ERROR
from orient_model.files import sha256_file
from orient_model.imageio import load_upright, square_views
from orient_model.model.data import split_copies, to_tensor
from orient_model.model.engine import (
    CHECK_INPUTS,
    INT8,
    OnnxRuntimeEngine,
    check_probabilities,
    onnx_for,
    quantize_int8,
)
from orient_model.model.evaluate import MAX_PIXELS, calibrate_and_test, lookings_for
from orient_model.model.predict import Predictor
from orient_model.model.registry import LoadedModel

FILE_NAME = "model.int8.onnx"


def representative_batches(
    loaded: LoadedModel, copies: list[Path], n: int = 256, batch: int = 32, seed: int = 0
) -> list[np.ndarray]:
    """``n`` training copies (any turn), seen as prediction sees a view, in batches."""
    chosen = random.Random(seed).sample(sorted(copies), min(n, len(copies)))
    size = loaded.input_size
    tensors = [
        to_tensor(square_views(load_upright(p, size, MAX_PIXELS), size, 1, [0])[0], loaded.mean, loaded.std)
        for p in chosen
    ]
    return [torch.stack(tensors[i : i + batch]).numpy() for i in range(0, len(tensors), batch)]


def add_int8(
    loaded: LoadedModel, data_dir: Path | str, photos: dict, max_error: float = MAX_ERROR, threads: int = 0
) -> dict:
    """Quantize ``loaded`` (a saved model) beside its checkpoint on the training copies in
    ``data_dir``, calibrate the 8-bit network on ``photos["calib"]`` and judge it on
    ``photos["test"]``; returns the card's ``int8`` entry (also set in ``loaded.card``)."""
    if loaded.path is None:
        raise ValueError("an 8-bit network is written beside a saved model's checkpoint")
    copies = [path for path, _ in split_copies(data_dir, "train")]
    out = quantize_int8(
        onnx_for(loaded), representative_batches(loaded, copies), Path(loaded.path).with_name(FILE_NAME)
    )
    engine = OnnxRuntimeEngine(out, threads or torch.get_num_threads(), name=INT8)
    entry = {
        "file": out.name,
        "sha256": sha256_file(out),
        "size_bytes": out.stat().st_size,
        "quantized_on": f"{min(len(copies), 256)} training copies (ranges per tensor, weights per channel)",
        "check_probabilities": check_probabilities(engine, loaded.input_size).tolist(),
        "check_inputs": CHECK_INPUTS,
    }
    loaded.card["int8"] = entry
    predictor = Predictor(loaded, device="cpu", engine=INT8)
    entry["calibration"], entry["test"] = calibrate_and_test(
        predictor, photos, lookings_for(loaded.views), max_error
    )
    return entry
