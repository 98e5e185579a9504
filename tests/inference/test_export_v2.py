"""A ConvNeXt V2 model (GRN with non-trivial gamma/beta) exports and runs in Paddle Inference (the CPU default of
tools/eval.py) and ONNX Runtime with the dygraph model's logits."""

import numpy as np
import paddle
import pytest

from passl.inference import build_predictor, export_model, export_onnx
from passl.modeling import build_model


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    paddle.seed(0)
    model = build_model(
        {
            "architecture": {"name": "ConvNeXtV2", "arch": "atto"},
            "head": {"name": "ConvNeXtClsHead", "in_channels": 320, "num_classes": 5},
        }
    )
    for name, p in model.named_parameters():
        if ".grn." in name:
            p.set_value(paddle.randn(p.shape) * 0.3)
    model.eval()
    folder = tmp_path_factory.mktemp("v2export")
    export_model(model, str(folder / "model"), (1, 3, 64, 64))
    x = np.random.RandomState(0).randn(2, 3, 64, 64).astype("float32")
    with paddle.no_grad():
        ref = model(paddle.to_tensor(x)).numpy()
    return folder, x, ref


def test_paddle_inference(exported):
    folder, x, ref = exported
    out = build_predictor("paddle", model_dir=str(folder))(x)
    np.testing.assert_allclose(np.asarray(out), ref, atol=1e-4, rtol=0)


def test_onnx(exported):
    pytest.importorskip("paddle2onnx", reason="optional ONNX export (pip install passl-convnext[onnx])")
    pytest.importorskip("onnxruntime", reason="optional ONNX backend (pip install passl-convnext[onnx])")
    folder, x, ref = exported
    export_onnx(str(folder))
    out = build_predictor("onnx", model_dir=str(folder))(x)
    np.testing.assert_allclose(np.asarray(out), ref, atol=1e-4, rtol=0)
