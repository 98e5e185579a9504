"""Export to a Paddle inference model and run it: dygraph and Paddle Inference predictors, and verification."""

from __future__ import annotations

import logging
import os
from typing import Optional, Sequence

import numpy as np
import paddle
import paddle.nn as nn

from passl.registry import ConfigError

__all__ = ["export_model", "DygraphPredictor", "InferencePredictor", "verify_export", "ExportMismatch", "model_files"]

logger = logging.getLogger("passl.inference")


class ExportMismatch(RuntimeError):
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


def verify_export(
    model: nn.Layer, predictor, input_shape: Sequence[int], atol: float = 1e-4, seed: Optional[int] = 0
) -> float:
    """Run the dygraph model and ``predictor`` on the same random batch; raise ExportMismatch above ``atol``."""
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
        raise ExportMismatch(
            f"exported model's logits differ from the dygraph model's by {diff:.3g} (> {atol:g}, logits scale "
            f"{float(np.abs(expected).max()):.3g}). Do not deploy it; check the Paddle version (3.3.x gives wrong "
            f"oneDNN results for ConvNeXt; use 3.2.2) or export without oneDNN."
        )
    return diff
