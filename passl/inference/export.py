"""Export to a Paddle inference model (and optionally ONNX), verification of an export against a float32 CPU
forward of the same weights, and installing a verified export as the only model in its folder."""

from __future__ import annotations

import copy
import logging
import os
import shutil
from typing import List, Optional, Sequence

import numpy as np
import paddle
import paddle.nn as nn

from passl.inference.predictors import model_files
from passl.registry import ConfigError
from passl.utils.process import pid_alive

__all__ = [
    "export_model",
    "export_onnx",
    "verify_export",
    "cpu_logits",
    "install_export",
    "EXPORT_FILES",
    "ExportError",
    "ExportMismatch",
]

logger = logging.getLogger("passl.inference")

# Everything an export may write into its folder; installing a new export removes those it did not write again, so a
# folder never mixes two models (an older model.onnx beside new Paddle files would serve old weights).
EXPORT_FILES = ("model.json", "model.pdmodel", "model.pdiparams", "model.pdiparams.info", "model.onnx", "classes.txt")
_LEFTOVER_PREFIXES = (".unverified", "model.onnx.unverified")


class ExportError(RuntimeError):
    """An export could not be written or does not match the dygraph model."""


class ExportMismatch(ExportError):
    """The exported model's logits differ from the dygraph model's beyond the tolerance."""


def export_model(model: nn.Layer, prefix: str, input_shape: Sequence[int]) -> str:
    """``paddle.jit.save`` the model in eval mode with a dynamic batch: writes PREFIX.json + PREFIX.pdiparams
    (Paddle 3.x; 2.x wrote PREFIX.pdmodel). Returns the prefix.

    ``paddle.jit.to_static`` replaces the layer's ``forward`` by the traced program; it is put back afterwards, so
    the model stays a dygraph model and a verification against it checks the trace instead of repeating it."""
    model.eval()
    spec = [paddle.static.InputSpec([None, *[int(s) for s in input_shape[1:]]], "float32", "x")]
    own_forward = model.__dict__.get("forward")
    try:
        static = paddle.jit.to_static(model, input_spec=spec, full_graph=True)
        os.makedirs(os.path.dirname(os.path.abspath(prefix)), exist_ok=True)
        paddle.jit.save(static, prefix)
        if getattr(model, "class_names", None):  # the names travel with the model: PREFIX's folder/classes.txt
            from passl.utils.report import write_class_names

            write_class_names(os.path.dirname(os.path.abspath(prefix)), model.class_names)
    finally:
        if own_forward is not None:
            model.forward = own_forward
        elif "forward" in model.__dict__:
            del model.__dict__["forward"]
    return prefix


def export_onnx(model_dir: str, save_file: Optional[str] = None, opset: int = 17, optimize: bool = True) -> str:
    """Convert an exported Paddle inference model (``export_model``) to ONNX with paddle2onnx; writes ``save_file``
    (default MODEL_DIR/model.onnx) atomically and returns its path. Opset 17 keeps LayerNorm one fused op.
    ``optimize`` runs the exact graph rewrites of ``passl.inference.onnx_passes`` (faster in ONNX Runtime)."""
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
    if optimize:
        from passl.inference.onnx_passes import optimize_onnx_bytes

        data = optimize_onnx_bytes(data)
    tmp = f"{save_file}.tmp{os.getpid()}"
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, save_file)
    return save_file


def _on_cpu(model: nn.Layer) -> bool:
    tensors = list(model.parameters()) + list(model.buffers())
    return all(t.place.is_cpu_place() and t.dtype == paddle.float32 for t in tensors)


@paddle.no_grad()
def cpu_logits(model: nn.Layer, batch: np.ndarray) -> np.ndarray:
    """The model's float32 logits computed on the CPU, whatever device and dtype it lives in: a model on a GPU (or
    in float16/bfloat16) is copied to a float32 CPU model first and the caller's model is left as it was. This is
    the reference an export is verified against, so the check compares CPU float32 with CPU float32 (no TF32 or
    cuDNN algorithm differences) on any host."""
    previous = paddle.get_device()
    paddle.set_device("cpu")
    try:
        ref = model if _on_cpu(model) else copy.deepcopy(model).to(device="cpu", dtype="float32")
        was_training = ref.training
        ref.eval()
        try:
            x = paddle.to_tensor(np.ascontiguousarray(batch, dtype=np.float32), place=paddle.CPUPlace())
            return ref(x).numpy()
        finally:
            if was_training and ref is model:
                model.train()
    finally:
        paddle.set_device(previous)


def verify_export(
    model: nn.Layer,
    predictor,
    input_shape: Sequence[int],
    atol: float = 1e-4,
    seed: Optional[int] = 0,
    hint: Optional[str] = None,
) -> float:
    """Run ``predictor`` and a float32 CPU forward of the same model (``cpu_logits``) on the same random batch; raise
    ExportMismatch above ``atol``. ``hint`` replaces the advice at the end of the error (the default one is about
    Paddle Inference)."""
    rng = np.random.RandomState(seed)
    batch = rng.standard_normal([max(int(input_shape[0]), 2), *input_shape[1:]]).astype(np.float32)
    expected = cpu_logits(model, batch)
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


def _pid_of(name: str) -> Optional[int]:
    digits = name.rsplit("unverified", 1)[-1]
    return int(digits) if digits.isdigit() else None


def install_export(stage: str, output: str) -> List[str]:
    """Move the files of a verified export from ``stage`` into ``output`` so that ``output`` holds that model only:
    first remove every export file (EXPORT_FILES) the new export does not write, and the staging leftovers of
    exports that were killed, then move the new files in. Other files in ``output`` are left alone. Returns the
    names removed."""
    new = set(os.listdir(stage))
    removed = []
    for name in EXPORT_FILES:
        path = os.path.join(output, name)
        if name not in new and os.path.isfile(path):
            os.remove(path)
            removed.append(name)
    here = os.path.abspath(stage)
    for name in os.listdir(output):
        path = os.path.join(output, name)
        pid = _pid_of(name)
        if name.startswith(_LEFTOVER_PREFIXES) and os.path.abspath(path) != here and pid and not pid_alive(pid):
            shutil.rmtree(path) if os.path.isdir(path) else os.remove(path)
            removed.append(name)
    for name in sorted(new):
        os.replace(os.path.join(stage, name), os.path.join(output, name))
    if removed:
        logger.info("removed from %s (an earlier export): %s", output, ", ".join(removed))
    return removed
