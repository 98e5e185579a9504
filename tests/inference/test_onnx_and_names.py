"""The shipped ImageNet-1k class names, predict.py showing them, and the optional ONNX export / backend (skipped
without paddle2onnx + onnxruntime: pip install paddle2onnx onnxruntime)."""

import importlib.util
import os
import re

import numpy as np
import paddle
import pytest
from PIL import Image

from passl.data import imagenet_class_names, imagenet_classes, imagenet_wnids
from passl.inference import DygraphPredictor, ExportMismatch, build_predictor, verify_export
from passl.modeling import build_model
from passl.registry import ConfigError
from tests.engine.helpers import ROOT
from tests.inference.helpers import randomize


def _tool(name):
    spec = importlib.util.spec_from_file_location(f"tool_{name}", os.path.join(ROOT, "tools", f"{name}.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


TINY = [
    "-o",
    "model.architecture.arch=atto",
    "-o",
    "model.head.in_channels=320",
    "-o",
    "data.val.transforms.1.size=32",  # ResizeCrop: short side int(32 / 0.875) = 36, crop 32
]


@pytest.fixture
def tiny_imagenet_model(tmp_path):
    """A 1000-class ConvNeXt-atto (run at 32x32) whose head bias makes class 1 (goldfish) win, saved as weights; and two images."""
    model = build_model(
        {
            "architecture": {"name": "ConvNeXt", "arch": "atto"},
            "head": {"name": "ConvNeXtClsHead", "in_channels": 320, "num_classes": 1000},
        }
    )
    bias = np.zeros(1000, "float32")
    bias[1] = 30.0
    model.head.fc.bias.set_value(paddle.to_tensor(bias))
    paddle.save(model.state_dict(), str(tmp_path / "w.pdparams"))
    imgs = tmp_path / "imgs"
    imgs.mkdir()
    rng = np.random.RandomState(0)
    for name in ("a.jpg", "b.png"):
        Image.fromarray((rng.rand(40, 50, 3) * 255).astype(np.uint8)).save(imgs / name)
    return model, tmp_path / "w.pdparams", imgs


@pytest.fixture
def random_imagenet_model(tmp_path):
    """A 1000-class ConvNeXt-atto with random layer scale, norms and biases (no planted class: the top class of an
    image comes from every block), saved as weights; and the same two images."""
    model = randomize(
        build_model(
            {
                "architecture": {"name": "ConvNeXt", "arch": "atto"},
                "head": {"name": "ConvNeXtClsHead", "in_channels": 320, "num_classes": 1000},
            }
        ),
        seed=7,
    )
    paddle.save(model.state_dict(), str(tmp_path / "rw.pdparams"))
    imgs = tmp_path / "rimgs"
    imgs.mkdir()
    rng = np.random.RandomState(0)
    for name in ("a.jpg", "b.png"):
        Image.fromarray((rng.rand(40, 50, 3) * 255).astype(np.uint8)).save(imgs / name)
    return model, tmp_path / "rw.pdparams", imgs


def test_shipped_imagenet_classes():
    pairs = imagenet_classes()
    wnids = imagenet_wnids()
    assert len(pairs) == 1000 and len(set(wnids)) == 1000 and wnids == sorted(wnids)
    assert all(re.fullmatch(r"n\d{8}", w) for w in wnids)
    names = imagenet_class_names()
    assert all(n.strip() == n and n for n in names)
    assert pairs[0] == ("n01440764", "tench, Tinca tinca") and names[1] == "goldfish, Carassius auratus"
    assert names[999] == "toilet tissue, toilet paper, bathroom tissue"


def test_predict_shows_imagenet_names(tiny_imagenet_model, tmp_path, capsys, monkeypatch):
    _, weights, imgs = tiny_imagenet_model
    predict = _tool("predict")
    cfg = "configs/convnext/convnext_tiny.yaml"
    monkeypatch.chdir(ROOT)
    assert predict.main(["-c", cfg, *TINY, "--weights", str(weights), "--topk", "2", str(imgs)]) == 0
    lines = [ln for ln in capsys.readouterr().out.splitlines() if ln.startswith(("a.jpg:", "b.png:"))]
    assert len(lines) == 2
    assert all(ln.split(": ", 1)[1].startswith("goldfish, Carassius auratus 1.000; ") for ln in lines)
    names = tmp_path / "names.txt"
    names.write_text("only\ntwo\n")
    assert predict.main(["-c", cfg, *TINY, "--weights", str(weights), "--class-names", str(names), str(imgs)]) == 2
    assert "has 2 class names, the model has 1000 classes" in capsys.readouterr().err
    assert predict.main(["-c", cfg, *TINY, "--backend", "onnx", str(imgs)]) == 2
    assert "the onnx backend runs an exported model" in capsys.readouterr().err


def test_build_predictor_errors(tmp_path):
    with pytest.raises(ConfigError, match="unknown backend 'tensorrt'"):
        build_predictor("tensorrt", model_dir=str(tmp_path))
    with pytest.raises(ConfigError, match="needs a model"):
        build_predictor("dygraph")


def test_onnx_export_verify_refuse_and_predict(random_imagenet_model, tmp_path, capsys, monkeypatch):
    pytest.importorskip("paddle2onnx")
    pytest.importorskip("onnxruntime")
    model, weights, imgs = random_imagenet_model
    export = _tool("export_model")
    predict = _tool("predict")
    cfg = "configs/convnext/convnext_tiny.yaml"
    out_dir = tmp_path / "inf"
    monkeypatch.chdir(ROOT)
    rc = export.main(["-c", cfg, *TINY, "--weights", str(weights), "--output", str(out_dir), "--onnx"])
    out = capsys.readouterr().out
    assert rc == 0
    assert "verified with ONNX Runtime: max |diff|" in out
    assert sorted(os.listdir(out_dir)) == ["model.json", "model.onnx", "model.pdiparams"]
    pred = build_predictor("onnx", model_dir=str(out_dir))
    x = np.random.RandomState(1).randn(3, 3, 32, 32).astype("float32")  # another batch size than verified with
    expected = DygraphPredictor(model)(x)
    assert np.abs(expected).max() > 0.1
    np.testing.assert_allclose(pred(x), expected, atol=1e-4, rtol=0)
    # every backend prints the same top-3 names and probabilities as the dygraph model; no class is planted, so
    # what is printed depends on every block (the top class is far from certain)
    lines = {}
    for backend in ("dygraph", "onnx", "paddle"):
        src = ["--weights", str(weights)] if backend == "dygraph" else ["--model-dir", str(out_dir)]
        args = ["-c", cfg, *TINY, *src, "--backend", backend, "--topk", "3", str(imgs)]
        assert predict.main(args) == 0
        lines[backend] = sorted(ln for ln in capsys.readouterr().out.splitlines() if ln.startswith(("a.jpg", "b.png")))
    assert len(lines["dygraph"]) == 2 and lines["onnx"] == lines["dygraph"] and lines["paddle"] == lines["dygraph"]
    top_probs = [float(ln.split("; ")[0].rsplit(" ", 1)[1]) for ln in lines["dygraph"]]
    assert all(p < 0.5 for p in top_probs), lines["dygraph"]
    # a model that no longer matches the export is refused
    other = build_model(
        {
            "architecture": {"name": "ConvNeXt", "arch": "atto"},
            "head": {"name": "ConvNeXtClsHead", "in_channels": 320, "num_classes": 1000},
        }
    )
    with pytest.raises(ExportMismatch, match="differ from the dygraph model's by"):
        verify_export(other, pred, (2, 3, 32, 32), hint="x")
    # the tool refuses an ONNX model off by 1e-3, and leaves no model.onnx behind (not even the earlier one)
    real = export.OnnxPredictor

    def off(path):
        p = real(path)
        return lambda batch: p(batch) + 1e-3

    monkeypatch.setattr(export, "OnnxPredictor", off)
    rc = export.main(["-c", cfg, *TINY, "--weights", str(weights), "--output", str(out_dir), "--onnx"])
    assert rc == 1 and "the ONNX model was not written" in capsys.readouterr().err
    assert sorted(os.listdir(out_dir)) == ["model.json", "model.pdiparams"]
