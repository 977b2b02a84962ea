"""Where the network runs for prediction: an inference engine built for the CPU, or PyTorch.

On a CPU, PyTorch's eager mode spends most of its time between layers; an engine that compiles
the whole graph runs the same network several times faster: ONNX Runtime about 5.7 times here
(efficientnet_lite0 at 224 px, 2 threads), OpenVINO in exact f32 somewhat less (faster only in
bf16, which changes probabilities by 6e-3). ``auto`` takes ONNX Runtime, else OpenVINO if installed.

A model may also carry an 8-bit network (``int8`` in its card: the shipped one does), about twice
as fast again on CPUs with 8-bit dot-product units. Its probabilities are not PyTorch's (up to
0.1 apart on one image), so it is calibrated and certified on its own: the card holds its own
temperatures and risk-coverage curves, and the predictor uses those with it (see
:meth:`~orient_model.model.registry.LoadedModel.run_by`). It is used only when the file is the
one calibrated (sha256) and this machine reproduces the probabilities recorded at calibration on
the check inputs: 8-bit kernels differ between CPUs, and a calibration holds for the numbers it saw.
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
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from orient_model.errors import OrientError
from orient_model.files import sha256_file

TOLERANCE = 1e-3  # largest difference in any class probability on the check inputs
INT8 = "onnxruntime-int8"
ENGINES = ("auto", INT8, "openvino", "onnxruntime", "torch")
CHECK_INPUTS = "8-bit images"  # which check inputs an 8-bit network's card recorded (see check_inputs)
log = logging.getLogger("orient.engine")


class EngineError(OrientError):
    """An engine that cannot run this model as PyTorch does."""


class TorchEngine:
    """Runs the PyTorch network on its device, fed channels-last (faster for depthwise
    convolutions, on CPUs too: about 1.6x here)."""

    name = "torch"

    def __init__(self, model: torch.nn.Module, device: torch.device) -> None:
        self.model, self.device = model, device

    def __call__(self, batch: torch.Tensor) -> torch.Tensor:
        return self.model(batch.to(self.device).contiguous(memory_format=torch.channels_last))

    def turned(self, batch: torch.Tensor) -> torch.Tensor:
        """``4N x 4`` logits of each image turned 0, 1, 2 and 3 quarter turns counter-clockwise
        (all images at one turn, then the next)."""
        return self(torch.cat([torch.rot90(batch, k, dims=(2, 3)) for k in range(4)]))  # rot90 on H,W: ccw


class CompiledEngine:
    """Runs an exported network on NCHW float32 batches; returns logits as a torch tensor."""

    name = "?"

    def __call__(self, batch: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(
            self.run(np.ascontiguousarray(batch.detach().cpu().numpy(), dtype=np.float32))
        )

    def turned(self, batch: torch.Tensor) -> torch.Tensor:
        """The four turns as :meth:`TorchEngine.turned` makes them, turned in NumPy and handed over
        as one NCHW array, without torch's thread pool and copies (75 ms against 90 for 32 passes
        of the 8-bit network, here)."""
        x = batch.detach().cpu().numpy()
        views = np.concatenate([np.rot90(x, k, axes=(2, 3)) for k in range(4)])
        return torch.from_numpy(self.run(np.ascontiguousarray(views, dtype=np.float32)))

    def run(self, x: np.ndarray) -> np.ndarray:  # pragma: no cover - implemented below
        raise NotImplementedError


class OpenVinoEngine(CompiledEngine):
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


class OnnxRuntimeEngine(CompiledEngine):
    name = "onnxruntime"

    def __init__(self, onnx_path: Path, threads: int, name: str = "onnxruntime") -> None:
        self.name = name
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        self.session = ort.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])

    def run(self, x: np.ndarray) -> np.ndarray:
        return self.session.run(None, {"images": x})[0]


Engine = TorchEngine | CompiledEngine


def export_onnx(model: torch.nn.Module, input_size: int, path: Path) -> Path:
    """The network as ONNX (any batch size), written atomically."""
    from orient_model.files import atomic_write_bytes

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


def quantize_int8(onnx_path: Path, batches: list[np.ndarray], out: Path) -> Path:
    """An 8-bit copy of an ONNX network (weights per channel, activations per tensor, ranges from
    ``batches`` of representative inputs: training copies, never the calibration photos)."""
    import tempfile

    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    from orient_model.files import atomic_write_bytes

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.batches = iter(batches)

        def get_next(self):
            batch = next(self.batches, None)
            return None if batch is None else {"images": np.ascontiguousarray(batch, dtype=np.float32)}

    with tempfile.TemporaryDirectory() as tmp:
        prepared, quantized = Path(tmp) / "prepared.onnx", Path(tmp) / "int8.onnx"
        quant_pre_process(str(onnx_path), str(prepared))
        quantize_static(
            str(prepared),
            str(quantized),
            Reader(),
            quant_format=QuantFormat.QDQ,
            per_channel=True,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
        )
        atomic_write_bytes(out, quantized.read_bytes())
    return out


def check_probabilities(
    engine, input_size: int, inputs: Callable[[int], torch.Tensor] | None = None
) -> torch.Tensor:
    """What an engine says on the check inputs (recorded with an 8-bit network's calibration)."""
    with torch.no_grad():
        return engine((inputs or check_inputs)(input_size)).float().softmax(1)


def check_inputs(input_size: int, n: int = 8) -> torch.Tensor:
    """Fixed inputs for the agreement checks: smooth 8-bit images, as photos are, normalised.

    Made in integers, then one float32 step at a time, so every machine and thread count makes
    the same numbers. It matters: inputs 7e-7 apart move the 8-bit network's probabilities by
    0.019, and the interpolated inputs used before (:func:`interpolated_check_inputs`) were that
    far apart with one thread and with several."""
    size, cells = input_size, 8
    noise = hashlib.shake_256(b"orient check inputs").digest(n * 3 * (cells + 1) ** 2)
    coarse = np.frombuffer(noise, dtype=np.uint8).reshape(n, 3, cells + 1, cells + 1).astype(np.int64)
    # Bilinear in integers: position y * cells / (size - 1) on the coarse grid, as a whole part
    # and a remainder over size - 1.
    at = np.arange(size) * cells
    lo, rest = at // (size - 1), at % (size - 1)
    hi = np.minimum(lo + 1, cells)
    den = size - 1
    rows = coarse[:, :, lo] * (den - rest)[:, None] + coarse[:, :, hi] * rest[:, None]
    both = rows[..., lo] * (den - rest) + rows[..., hi] * rest
    pixels = ((2 * both + den * den) // (2 * den * den)).astype(np.float32)
    return torch.from_numpy((pixels / np.float32(255) - np.float32(0.45)) / np.float32(0.25))


def interpolated_check_inputs(input_size: int, n: int = 8) -> torch.Tensor:
    """The check inputs of 8-bit networks calibrated before :func:`check_inputs` (cards without
    ``check_inputs``): torch's bilinear interpolation rounds otherwise with one thread than with
    several, so these differ by up to 7e-7 between the two."""
    gen = torch.Generator().manual_seed(1234)
    coarse = torch.rand(n, 3, 8, 8, generator=gen)
    images = torch.nn.functional.interpolate(
        coarse, size=(input_size, input_size), mode="bilinear", align_corners=False
    )
    return (images - 0.45) / 0.25


def agreement(reference: torch.nn.Module, engine: CompiledEngine, input_size: int) -> float:
    want = check_probabilities(reference.float().eval(), input_size)
    return float((want - check_probabilities(engine, input_size)).abs().max())


def _cache_dir() -> Path:
    import platformdirs

    return Path(os.environ.get("ORIENT_CACHE_DIR") or platformdirs.user_cache_dir("orient")) / "engines"


def model_digest(loaded) -> str:
    """What identifies a model's weights: its checkpoint's hash, or (not saved) its tensors'."""
    path = getattr(loaded, "path", None)
    if path:
        return sha256_file(path)[:16]
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


def candidates(loaded, device: torch.device, choice: str = "auto") -> list[str]:
    """The engines ``choice`` allows for this model and device, fastest first."""
    if choice not in ENGINES:
        raise EngineError(f"unknown engine {choice!r}; choose one of {', '.join(ENGINES)}")
    if device.type != "cpu" or choice == "torch":
        return ["torch"]
    if choice != "auto":
        return [choice]
    calibrated_int8 = (loaded.card.get("int8") or {}).get("calibration")
    return ([INT8] if calibrated_int8 else []) + ["onnxruntime", "openvino"]


def first_certified(loaded, device: torch.device, names: list[str], threads: int | None = None):
    """The first of ``names`` this machine runs as the model was certified (PyTorch always), as
    ``(engine or None, why each one before it was skipped)``."""
    threads = threads or torch.get_num_threads()
    problems = []
    for name in names:
        try:
            if name == "torch":
                return TorchEngine(loaded.model, device), problems
            if name == INT8:
                return _int8_engine(loaded, threads), problems
            return _float_engine(name, loaded, threads), problems
        except ImportError:
            problems.append(f"{name} is not installed")
        except EngineError as exc:
            problems.append(str(exc))
        except Exception as exc:  # noqa: BLE001 - an engine that fails to load is skipped, with the reason
            problems.append(f"{name} failed: {type(exc).__name__}: {exc}")
    return None, problems


def make_engine(loaded, device: torch.device, choice: str = "auto", threads: int | None = None):
    """The fastest verified engine for this model and device (see the module doc)."""
    names = candidates(loaded, device, choice)
    engine, problems = first_certified(loaded, device, names, threads)
    if engine is None and choice != "auto":
        hint = (
            " (--engine onnxruntime runs the float network, which every machine computes alike)"
            if choice == INT8
            else ""
        )
        raise EngineError(f"the {choice} engine cannot run this model here: {'; '.join(problems)}{hint}")
    if engine is None:
        log.warning("predicting with PyTorch (slower on a CPU): " + "; ".join(problems))
        return TorchEngine(loaded.model, device)
    if problems:
        log.warning(f"predicting with {engine.name}: " + "; ".join(problems))
    return engine


def _float_engine(name: str, loaded, threads: int) -> CompiledEngine:
    cls = OpenVinoEngine if name == "openvino" else OnnxRuntimeEngine
    path = onnx_for(loaded)
    file_digest = sha256_file(path)  # the file loaded now, not the one checked once
    engine = cls(path, threads)
    diff = _verified(loaded, engine, file_digest)
    if diff > TOLERANCE:
        raise EngineError(f"{name} differs from PyTorch by {diff:.2g} in probability")
    return engine


def _int8_engine(loaded, threads: int) -> OnnxRuntimeEngine:
    """The model's 8-bit network, if it is the file that was calibrated and this machine's 8-bit
    arithmetic gives the probabilities recorded with the calibration."""
    entry = loaded.card.get("int8")
    if not entry or getattr(loaded, "path", None) is None:
        raise EngineError(f"{INT8}: the model has no 8-bit network")
    path = Path(loaded.path).with_name(entry["file"])
    if not path.is_file():
        raise EngineError(f"{INT8}: its 8-bit network {path.name} is missing")
    if sha256_file(path) != entry["sha256"]:
        raise EngineError(f"{INT8}: {path.name} is not the network that was calibrated (sha256 differs)")
    engine = OnnxRuntimeEngine(path, threads, name=INT8)
    want = torch.tensor(entry["check_probabilities"])
    inputs = check_inputs if entry.get("check_inputs") == CHECK_INPUTS else interpolated_check_inputs
    diff = float((check_probabilities(engine, loaded.input_size, inputs) - want).abs().max())
    if diff > TOLERANCE:
        raise EngineError(
            f"{INT8}: this machine's 8-bit arithmetic differs from the calibrated one's by {diff:.2g} "
            "in probability"
        )
    return engine


def _verified(loaded, engine, file_digest: str) -> float:
    """The engine's agreement with PyTorch on the check inputs, remembered per model, engine and
    engine file (a file swapped in after its check is a new file, checked anew)."""
    record_path = _cache_dir() / "checks.json"
    key = f"{model_digest(loaded)}:{engine.name}:{file_digest}"
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
