"""Predictors for an exported model: dygraph, Paddle Inference (CPU/GPU) and ONNX Runtime (CPU).

A damaged export (truncated ``.pdiparams``, broken ``model.json`` / ``.pdmodel`` / ``model.onnx``) is a one-line
ConfigError naming the file, not a backend traceback."""

from __future__ import annotations

import json
import os
from typing import Optional

import numpy as np
import paddle
import paddle.nn as nn

from passl.registry import ConfigError

__all__ = [
    "process_gpu_id",
    "on_gpu",
    "DygraphPredictor",
    "InferencePredictor",
    "OnnxPredictor",
    "build_predictor",
    "model_files",
    "BACKENDS",
]


def model_files(model_dir_or_prefix: str):
    """(program file, params file) of an exported model: PREFIX.json (3.x) or PREFIX.pdmodel (2.x)."""
    prefix = model_dir_or_prefix
    if os.path.isdir(prefix):
        prefix = os.path.join(prefix, "model")
    for ext in (".json", ".pdmodel"):
        if os.path.isfile(prefix + ext) and os.path.isfile(prefix + ".pdiparams"):
            return prefix + ext, prefix + ".pdiparams"
    raise ConfigError(
        f"no exported model at {model_dir_or_prefix}: expected {prefix}.json (or .pdmodel) and {prefix}.pdiparams; "
        f"run tools/export_model.py first"
    )


def _onnx_file(path: str) -> str:
    return os.path.join(path, "model.onnx") if os.path.isdir(path) else path


def _first_line(e: BaseException) -> str:
    """The line of a backend's message that says what failed (Paddle's start with '(Kind) what', then a C++ stack)."""
    lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
    for line in lines:
        if line.startswith("(") or "Error" in line.split(":")[0]:
            return line[:300]
    return (lines or [type(e).__name__])[0][:300]


def _damaged(path: str, e: BaseException) -> ConfigError:
    return ConfigError(
        f"{path} is damaged or not an exported model ({type(e).__name__}: {_first_line(e)}); export it again with "
        f"tools/export_model.py"
    )


def _check_program(prog: str) -> None:
    """Parse the program file before Paddle Inference does: its JSON errors do not name the file, and a damaged
    .pdmodel crashes it (SIGSEGV) instead of raising."""
    try:
        with open(prog, "rb") as f:
            data = f.read()
        if prog.endswith(".json"):
            json.loads(data)
        else:
            from paddle.base.proto import framework_pb2

            desc = framework_pb2.ProgramDesc()
            desc.ParseFromString(data)
            if not desc.blocks:
                raise ValueError("no program blocks")
    except Exception as e:  # JSON, protobuf DecodeError, OSError
        raise _damaged(prog, e) from None


def _export_classes(model_file: str):
    """The class names written beside an export (``classes.txt``; None when the model was exported without)."""
    from passl.utils.report import read_class_names

    return read_class_names(os.path.join(os.path.dirname(os.path.abspath(model_file)), "classes.txt"))


class DygraphPredictor:
    def __init__(self, model: nn.Layer) -> None:
        self.model = model
        self.model.eval()
        self.class_names = getattr(model, "class_names", None)  # from the checkpoint (tools/_common.py)

    @paddle.no_grad()
    def __call__(self, batch: np.ndarray) -> np.ndarray:
        return self.model(paddle.to_tensor(np.ascontiguousarray(batch, dtype=np.float32))).numpy()


def process_gpu_id() -> int:
    """The GPU this process computes on: Paddle's current device (``gpu:N``), else the launcher's
    ``FLAGS_selected_gpus``, else 0. Paddle Inference must use it too, not GPU 0 for every process."""
    device = str(paddle.device.get_device())
    if device.startswith("gpu:"):
        return int(device.split(":", 1)[1])
    selected = os.environ.get("FLAGS_selected_gpus", "").split(",")[0].strip()
    return int(selected) if selected.isdigit() else 0


def on_gpu() -> bool:
    """Whether this process computes on a GPU (a CUDA build that sees one, and the current device is a GPU)."""
    return str(paddle.device.get_device()).startswith("gpu")


class InferencePredictor:
    """Paddle Inference on CPU (oneDNN on, ``threads`` math threads) or on this process's GPU (``use_gpu``; the device
    id from :func:`process_gpu_id`)."""

    def __init__(self, model_dir: str, use_gpu: bool = False, threads: int = 2, onednn: bool = True) -> None:
        import paddle.inference as pi

        prog, params = model_files(model_dir)
        _check_program(prog)
        config = pi.Config(prog, params)
        if use_gpu:
            config.enable_use_gpu(256, process_gpu_id())
        else:
            config.disable_gpu()
            config.set_cpu_math_library_num_threads(int(threads))
            if onednn:
                config.enable_mkldnn()
        config.disable_glog_info()
        try:
            self.predictor = pi.create_predictor(config)
        except Exception as e:  # the program parsed, so the parameters (or a .pdmodel) are what is broken
            raise _damaged(params if prog.endswith(".json") else f"{prog} or {params}", e) from None
        self.input_name = self.predictor.get_input_names()[0]
        self.class_names = _export_classes(prog)
        self.output_name = self.predictor.get_output_names()[0]

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        batch = np.ascontiguousarray(batch, dtype=np.float32)
        handle = self.predictor.get_input_handle(self.input_name)
        handle.reshape(list(batch.shape))
        handle.copy_from_cpu(batch)
        self.predictor.run()
        return self.predictor.get_output_handle(self.output_name).copy_to_cpu()


class OnnxPredictor:
    """ONNX Runtime on CPU with ``threads`` intra-op threads; ``path`` is model.onnx or the folder holding it. A batch
    runs in micro-batches of ``chunk`` images (the images are independent: same logits); the smaller working set
    stays in cache (ConvNeXt-T batch 16 on a 2-core CPU: ~7% faster in chunks of 4, docs/benchmarks.md)."""

    def __init__(self, path: str, threads: int = 2, chunk: int = 4) -> None:
        self.chunk = max(int(chunk), 1)
        try:
            import onnxruntime as ort
        except ImportError:
            raise ConfigError("the onnx backend needs onnxruntime: pip install onnxruntime") from None
        path = _onnx_file(path)
        if not os.path.isfile(path):
            raise ConfigError(f"no ONNX model at {path}: run tools/export_model.py --onnx first")
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = int(threads)
        opts.inter_op_num_threads = 1
        opts.log_severity_level = 3  # errors only: paddle2onnx leaves unused initializers that ORT warns about
        try:
            self.session = ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])
        except Exception as e:
            raise _damaged(path, e) from None
        self.input_name = self.session.get_inputs()[0].name
        self.class_names = _export_classes(path)

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        batch = np.ascontiguousarray(batch, dtype=np.float32)
        if len(batch) <= self.chunk:
            return self.session.run(None, {self.input_name: batch})[0]
        parts = [batch[i : i + self.chunk] for i in range(0, len(batch), self.chunk)]
        return np.concatenate([self.session.run(None, {self.input_name: p})[0] for p in parts])


BACKENDS = ("dygraph", "paddle", "onnx")


def build_predictor(backend: str, model: Optional[nn.Layer] = None, model_dir: Optional[str] = None, **kw):
    """``dygraph`` runs ``model``; ``paddle`` (Paddle Inference; ``threads``, ``onednn``, ``use_gpu``) and ``onnx``
    (ONNX Runtime; ``threads``) run the export in ``model_dir``."""
    if backend == "dygraph":
        if model is None:
            raise ConfigError("the dygraph backend needs a model (config + weights)")
        return DygraphPredictor(model)
    if backend not in BACKENDS:
        raise ConfigError(f"unknown backend '{backend}': choose one of {', '.join(BACKENDS)}")
    if not model_dir:
        raise ConfigError(f"the {backend} backend runs an exported model: pass its folder (tools/export_model.py)")
    if backend == "onnx":
        return OnnxPredictor(model_dir, threads=kw.get("threads", 2))
    return InferencePredictor(model_dir, **kw)
