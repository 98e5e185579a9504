"""--backend auto on the CPU (issue 13 point 1): the fastest verified backend that is installed (ONNX Runtime), Paddle
Inference when onnxruntime / paddle2onnx are missing or the ONNX model is refused; the same for predict's
--model-dir default."""

import importlib.util
import json
import os
import shutil
import sys

import pytest

from tests.tools.tool_helpers import DEMO, ROOT, TINY, tiny_weights

sys.path.insert(0, os.path.join(ROOT, "tools"))
import eval as eval_tool  # noqa: E402
import predict as predict_tool  # noqa: E402


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    path = tmp_path_factory.mktemp("auto") / "w.pdparams"
    tiny_weights(path, head_init_scale=1.0)
    return path


def _run(weights, report, *extra):
    rc = eval_tool.main(["-c", DEMO, *TINY, "--weights", str(weights), "--report", str(report), *extra])
    assert rc == 0
    return json.load(open(report))


def test_auto_uses_onnx_runtime_when_installed(weights, tmp_path):
    assert importlib.util.find_spec("onnxruntime") and importlib.util.find_spec("paddle2onnx")  # CI installs both
    auto = _run(weights, tmp_path / "auto.json")
    assert auto["backend"] == "onnx"
    paddle_ = _run(weights, tmp_path / "paddle.json", "--backend", "paddle")
    assert auto["count"] == paddle_["count"] == 10000
    assert auto["top1"] == pytest.approx(paddle_["top1"], abs=0.02)


def test_auto_falls_back_to_paddle_inference_without_onnxruntime(weights, tmp_path, monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "onnxruntime" else real(name, *a))
    assert _run(weights, tmp_path / "r.json")["backend"] == "paddle"


def test_auto_falls_back_when_the_onnx_model_is_refused(weights, tmp_path, monkeypatch, capsys):
    real = eval_tool.verify_export

    def refuse_onnx(model, predictor, *a, **k):
        if type(predictor).__name__ == "OnnxPredictor":
            raise eval_tool.ExportError("planted: ONNX logits differ")
        return real(model, predictor, *a, **k)

    monkeypatch.setattr(eval_tool, "verify_export", refuse_onnx)
    assert _run(weights, tmp_path / "r.json")["backend"] == "paddle"
    assert "ONNX Runtime backend not used (planted" in capsys.readouterr().err


def test_predict_default_backend_for_an_export(tmp_path, monkeypatch):
    folder = tmp_path / "inf"
    folder.mkdir()
    assert predict_tool._default_backend(None) == "dygraph"
    assert predict_tool._default_backend(str(folder)) == "paddle"  # no model.onnx there
    (folder / "model.onnx").write_bytes(b"")
    assert predict_tool._default_backend(str(folder)) == "onnx"
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "onnxruntime" else real(name, *a))
    assert predict_tool._default_backend(str(folder)) == "paddle"
    shutil.rmtree(folder)
