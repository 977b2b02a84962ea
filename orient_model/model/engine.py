"""Where the network runs for prediction: an inference engine built for the CPU, or PyTorch.

On a CPU, PyTorch's eager mode spends most of its time between layers; an engine that compiles
the whole graph runs the same network several times faster: ONNX Runtime about 5.7 times here
(efficientnet_lite0 at 224 px, 2 threads), OpenVINO in exact f32 somewhat less (faster only in
bf16, which changes probabilities by 6e-3). ``auto`` takes ONNX Runtime, else OpenVINO if installed.
The network is exported to ONNX once per model (beside a registered model's checkpoint, or in
the user's cache for the shipped one) and checked on fixed inputs: the engine's probabilities
must match PyTorch's within :data:`TOLERANCE`, or the engine is not used. Training, the GPU path
and evidence maps stay in PyTorch. When no engine is installed, PyTorch runs, and says so.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path

import numpy as np
import torch

from orient_model.errors import OrientError

TOLERANCE = 1e-3  # largest difference in any class probability on the check inputs
ENGINES = ("auto", "openvino", "onnxruntime", "torch")
log = logging.getLogger("orient.engine")


class EngineError(OrientError):
    """An engine that cannot run this model as PyTorch does."""


class TorchEngine:
    name = "torch"

    def __init__(self, model: torch.nn.Module, device: torch.device) -> None:
        self.model, self.device = model, device

    def __call__(self, batch: torch.Tensor) -> torch.Tensor:
        return self.model(batch.to(self.device))


class _CompiledEngine:
    """Runs an exported network on NCHW float32 batches; returns logits as a torch tensor."""

    name = "?"

    def __call__(self, batch: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(
            self.run(np.ascontiguousarray(batch.detach().cpu().numpy(), dtype=np.float32))
        )

    def run(self, x: np.ndarray) -> np.ndarray:  # pragma: no cover - implemented below
        raise NotImplementedError


class OpenVinoEngine(_CompiledEngine):
    name = "openvino"

    def __init__(self, onnx_path: Path, threads: int) -> None:
        import openvino as ov

        core = ov.Core()
        # f32 throughout: on CPUs with bf16 units OpenVINO would otherwise round activations.
        self.compiled = core.compile_model(
            str(onnx_path),
            "CPU",
            {
                "INFERENCE_NUM_THREADS": threads,
                "INFERENCE_PRECISION_HINT": "f32",
                "PERFORMANCE_HINT": "LATENCY",
            },
        )
        self.request = self.compiled.create_infer_request()
        self.output = self.compiled.output(0)

    def run(self, x: np.ndarray) -> np.ndarray:
        return np.array(self.request.infer({0: x})[self.output])


class OnnxRuntimeEngine(_CompiledEngine):
    name = "onnxruntime"

    def __init__(self, onnx_path: Path, threads: int) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        self.session = ort.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])

    def run(self, x: np.ndarray) -> np.ndarray:
        return self.session.run(None, {"images": x})[0]


def export_onnx(model: torch.nn.Module, input_size: int, path: Path) -> Path:
    """The network as ONNX (any batch size), written atomically."""
    from orient_model.archive.atomic import atomic_write_bytes

    tmp = path.with_name(path.name + ".part")
    model = model.float().eval().to(memory_format=torch.contiguous_format)
    with torch.no_grad():
        torch.onnx.export(
            model,
            torch.zeros(1, 3, input_size, input_size),
            str(tmp),
            input_names=["images"],
            output_names=["logits"],
            dynamic_axes={"images": {0: "n"}, "logits": {0: "n"}},
            opset_version=17,
            dynamo=False,
        )
    atomic_write_bytes(path, tmp.read_bytes())
    tmp.unlink()
    return path


def check_inputs(input_size: int, n: int = 8) -> torch.Tensor:
    """Fixed inputs for the agreement check: smooth random images, normalised-looking."""
    gen = torch.Generator().manual_seed(1234)
    coarse = torch.rand(n, 3, 8, 8, generator=gen)
    images = torch.nn.functional.interpolate(
        coarse, size=(input_size, input_size), mode="bilinear", align_corners=False
    )
    return (images - 0.45) / 0.25


def agreement(reference: torch.nn.Module, engine: _CompiledEngine, input_size: int) -> float:
    x = check_inputs(input_size)
    with torch.no_grad():
        want = reference.float().eval()(x).softmax(1)
    got = engine(x).float().softmax(1)
    return float((want - got).abs().max())


def _cache_dir() -> Path:
    import platformdirs

    return Path(os.environ.get("ORIENT_CACHE_DIR") or platformdirs.user_cache_dir("orient")) / "engines"


def model_digest(loaded) -> str:
    """What identifies a model's weights: its checkpoint's hash, or (not saved) its tensors'."""
    path = getattr(loaded, "path", None)
    if path:
        return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:16]
    digest = hashlib.sha256()
    for name, tensor in loaded.model.state_dict().items():
        digest.update(name.encode())
        digest.update(tensor.detach().float().cpu().numpy().tobytes())
    return digest.hexdigest()[:16]


def onnx_for(loaded) -> Path:
    """The model's ONNX file: beside its checkpoint when written at registration, else exported
    once into the user's cache (keyed by the checkpoint's hash)."""
    beside = Path(loaded.path).with_name("model.onnx") if getattr(loaded, "path", None) else None
    if beside is not None and beside.is_file():
        return beside
    cached = _cache_dir() / f"{model_digest(loaded)}.onnx"
    if not cached.is_file():
        cached.parent.mkdir(parents=True, exist_ok=True)
        export_onnx(loaded.model, loaded.input_size, cached)
    return cached


def make_engine(loaded, device: torch.device, choice: str = "auto", threads: int | None = None):
    """The fastest verified engine for this model and device (see the module doc)."""
    if choice not in ENGINES:
        raise EngineError(f"unknown engine {choice!r}; choose one of {', '.join(ENGINES)}")
    if device.type != "cpu" or choice == "torch":
        return TorchEngine(loaded.model, device)
    threads = threads or torch.get_num_threads()
    order = ["onnxruntime", "openvino"] if choice == "auto" else [choice]
    problems = []
    for name in order:
        try:
            cls = OpenVinoEngine if name == "openvino" else OnnxRuntimeEngine
            engine = cls(onnx_for(loaded), threads)
            diff = _verified(loaded, engine)
            if diff <= TOLERANCE:
                return engine
            problems.append(f"{name} differs from PyTorch by {diff:.2g} in probability")
        except ImportError:
            problems.append(f"{name} is not installed")
        except Exception as exc:  # noqa: BLE001 - an engine that fails to load is skipped, with the reason
            problems.append(f"{name} failed: {type(exc).__name__}: {exc}")
    if choice != "auto":
        raise EngineError(f"the {choice} engine cannot run this model: {'; '.join(problems)}")
    log.warning("predicting with PyTorch (slower on a CPU): " + "; ".join(problems))
    return TorchEngine(loaded.model, device)


def _verified(loaded, engine) -> float:
    """The engine's agreement with PyTorch on the check inputs, remembered per model and engine."""
    record_path = _cache_dir() / "checks.json"
    key = f"{model_digest(loaded)}:{engine.name}"
    try:
        records = json.loads(record_path.read_text())
    except (OSError, ValueError):
        records = {}
    if key not in records:
        records[key] = agreement(loaded.model, engine, loaded.input_size)
        try:
            record_path.parent.mkdir(parents=True, exist_ok=True)
            record_path.write_text(json.dumps(records))
        except OSError:
            pass
    return records[key]
