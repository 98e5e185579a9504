"""Export to a Paddle inference model (and optionally ONNX) and run it: dygraph, Paddle Inference and ONNX Runtime
predictors, and verification of an export against the dygraph model.

paddle2onnx and onnxruntime are optional (``pip install passl-convnext[onnx]``); they are imported only when an ONNX
function is called."""

from __future__ import annotations

import logging
import os
from typing import Optional, Sequence

import numpy as np
import paddle
import paddle.nn as nn

from passl.registry import ConfigError

__all__ = [
    "export_model",
    "export_onnx",
    "DygraphPredictor",
    "InferencePredictor",
    "OnnxPredictor",
    "build_predictor",
    "verify_export",
    "ExportError",
    "ExportMismatch",
    "model_files",
    "BACKENDS",
]

logger = logging.getLogger("passl.inference")


class ExportError(RuntimeError):
    """An export could not be written or does not match the dygraph model."""


class ExportMismatch(ExportError):
    """The exported model's logits differ from the dygraph model's beyond the tolerance."""


def export_model(model: nn.Layer, prefix: str, input_shape: Sequence[int]) -> str:
    """``paddle.jit.save`` the model in eval mode with a dynamic batch: writes PREFIX.json + PREFIX.pdiparams
    (Paddle 3.x; 2.x wrote PREFIX.pdmodel). Returns the prefix."""
    model.eval()
    spec = [paddle.static.InputSpec([None, *[int(s) for s in input_shape[1:]]], "float32", "x")]
    static = paddle.jit.to_static(model, input_spec=spec, full_graph=True)
    os.makedirs(os.path.dirname(os.path.abspath(prefix)), exist_ok=True)
    paddle.jit.save(static, prefix)
    return prefix


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


def export_onnx(model_dir: str, save_file: Optional[str] = None, opset: int = 17) -> str:
    """Convert an exported Paddle inference model (``export_model``) to ONNX with paddle2onnx; writes ``save_file``
    (default MODEL_DIR/model.onnx) atomically and returns its path. Opset 17 keeps LayerNorm one fused op."""
    prog, params = model_files(model_dir)
    try:
        import paddle2onnx
    except ImportError:
        raise ConfigError(
            "ONNX export needs paddle2onnx and onnxruntime: pip install paddle2onnx onnxruntime "
            "(or pip install passl-convnext[onnx])"
        ) from None
    save_file = save_file or os.path.join(os.path.dirname(prog), "model.onnx")
    try:  # no optimize_tool: its default (polygraphy) pip-installs packages at run time; ONNX Runtime folds anyway
        data = paddle2onnx.export(prog, params, None, opset_version=int(opset), optimize_tool="None")
    except Exception as e:  # paddle2onnx logs the real error and then fails on its own unset result
        raise ExportError(f"paddle2onnx could not convert {prog} to ONNX (opset {opset}): {e}") from None
    if not data:
        raise ExportError(f"paddle2onnx returned an empty model for {prog}")
    tmp = f"{save_file}.tmp{os.getpid()}"
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, save_file)
    return save_file


class DygraphPredictor:
    def __init__(self, model: nn.Layer) -> None:
        self.model = model
        self.model.eval()

    @paddle.no_grad()
    def __call__(self, batch: np.ndarray) -> np.ndarray:
        return self.model(paddle.to_tensor(np.ascontiguousarray(batch, dtype=np.float32))).numpy()


class InferencePredictor:
    """Paddle Inference on CPU (oneDNN on, ``threads`` math threads) or GPU (``use_gpu``)."""

    def __init__(self, model_dir: str, use_gpu: bool = False, threads: int = 2, onednn: bool = True) -> None:
        import paddle.inference as pi

        prog, params = model_files(model_dir)
        config = pi.Config(prog, params)
        if use_gpu:
            config.enable_use_gpu(256, 0)
        else:
            config.disable_gpu()
            config.set_cpu_math_library_num_threads(int(threads))
            if onednn:
                config.enable_mkldnn()
        config.disable_glog_info()
        self.predictor = pi.create_predictor(config)
        self.input_name = self.predictor.get_input_names()[0]
        self.output_name = self.predictor.get_output_names()[0]

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        batch = np.ascontiguousarray(batch, dtype=np.float32)
        handle = self.predictor.get_input_handle(self.input_name)
        handle.reshape(list(batch.shape))
        handle.copy_from_cpu(batch)
        self.predictor.run()
        return self.predictor.get_output_handle(self.output_name).copy_to_cpu()


class OnnxPredictor:
    """ONNX Runtime on CPU with ``threads`` intra-op threads; ``path`` is model.onnx or the folder holding it."""

    def __init__(self, path: str, threads: int = 2) -> None:
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
        self.session = ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])
        self.input_name = self.session.get_inputs()[0].name

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        return self.session.run(None, {self.input_name: np.ascontiguousarray(batch, dtype=np.float32)})[0]


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


def verify_export(
    model: nn.Layer,
    predictor,
    input_shape: Sequence[int],
    atol: float = 1e-4,
    seed: Optional[int] = 0,
    hint: Optional[str] = None,
) -> float:
    """Run the dygraph model and ``predictor`` on the same random batch; raise ExportMismatch above ``atol``.
    ``hint`` replaces the advice at the end of the error (the default one is about Paddle Inference)."""
    rng = np.random.RandomState(seed)
    batch = rng.standard_normal([max(int(input_shape[0]), 2), *input_shape[1:]]).astype(np.float32)
    expected = DygraphPredictor(model)(batch)
    got = predictor(batch)
    if got.shape != expected.shape:
        raise ExportMismatch(
            f"exported model returns shape {list(got.shape)}, the dygraph model {list(expected.shape)}"
        )
    diff = float(np.abs(got - expected).max())
    if not np.isfinite(diff) or diff > atol:
        hint = hint or (
            "check the Paddle version (3.3.x gives wrong oneDNN results for ConvNeXt; use 3.2.2) or export without "
            "oneDNN."
        )
        raise ExportMismatch(
            f"exported model's logits differ from the dygraph model's by {diff:.3g} (> {atol:g}, logits scale "
            f"{float(np.abs(expected).max()):.3g}). Do not deploy it; {hint}"
        )
    return diff
