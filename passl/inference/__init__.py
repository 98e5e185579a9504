"""Export to a Paddle inference model (and optionally ONNX) and run it: dygraph, Paddle Inference and ONNX Runtime
predictors (``passl.inference.predictors``), export and its verification against a float32 CPU forward of the same
weights (``passl.inference.export``).

paddle2onnx and onnxruntime are optional (``pip install passl-convnext[onnx]``); they are imported only when an ONNX
function is called."""

from passl.inference.export import (
    EXPORT_FILES,
    ExportError,
    ExportMismatch,
    cpu_logits,
    export_model,
    export_onnx,
    install_export,
    verify_export,
)
from passl.inference.predictors import (
    BACKENDS,
    DygraphPredictor,
    InferencePredictor,
    OnnxPredictor,
    build_predictor,
    model_files,
    on_gpu,
    process_gpu_id,
)

__all__ = [
    "export_model",
    "export_onnx",
    "DygraphPredictor",
    "InferencePredictor",
    "OnnxPredictor",
    "build_predictor",
    "verify_export",
    "cpu_logits",
    "install_export",
    "EXPORT_FILES",
    "ExportError",
    "ExportMismatch",
    "model_files",
    "BACKENDS",
    "on_gpu",
    "process_gpu_id",
]
