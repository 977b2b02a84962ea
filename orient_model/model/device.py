"""Where the model runs: the GPU when there is one, unless told otherwise."""

import torch

from orient_model.errors import OrientError


def resolve_device(device: str) -> torch.device:
    """``auto`` picks CUDA when available; asking for ``cuda`` without a GPU is a clear error."""
    if device == "cuda" and not torch.cuda.is_available():
        raise OrientError("--device cuda asked for, but no CUDA GPU is available (use --device auto or cpu)")
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)
