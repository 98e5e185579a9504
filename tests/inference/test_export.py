"""Export writes a Paddle inference model that agrees with dygraph; verification refuses a broken predictor."""

import os
import subprocess
import sys

import numpy as np
import paddle
import pytest

from passl.inference import (
    DygraphPredictor,
    ExportMismatch,
    InferencePredictor,
    export_model,
    model_files,
    verify_export,
)
from passl.modeling import build_model
from passl.registry import ConfigError
from tests.engine.helpers import ROOT
from tests.inference.helpers import randomize


def _model():  # random layer scale, norms and biases: every block shows in the logits
    return randomize(
        build_model(
            {
                "architecture": {"name": "ConvNeXt", "arch": "atto"},
                "head": {"name": "ConvNeXtClsHead", "in_channels": 320, "num_classes": 10},
            }
        )
    )


def test_export_verifies_and_broken_predictor_is_refused(tmp_path):
    model = _model()
    export_model(model, str(tmp_path / "model"), (2, 3, 64, 64))
    assert sorted(os.listdir(tmp_path)) == ["model.json", "model.pdiparams"]
    pred = InferencePredictor(str(tmp_path))
    diff = verify_export(model, pred, (4, 3, 64, 64))
    assert diff < 1e-4
    x = np.random.RandomState(3).randn(5, 3, 64, 64).astype("float32")  # another batch size than exported with
    np.testing.assert_allclose(pred(x), DygraphPredictor(model)(x), atol=1e-4)

    def broken(batch):
        return pred(batch) + 1e-3

    with pytest.raises(ExportMismatch, match="differ from the dygraph model's by"):
        verify_export(model, broken, (4, 3, 64, 64))


def test_model_files_reads_both_layouts(tmp_path):
    (tmp_path / "model.pdmodel").write_bytes(b"x")
    (tmp_path / "model.pdiparams").write_bytes(b"x")
    assert model_files(str(tmp_path)) == (str(tmp_path / "model.pdmodel"), str(tmp_path / "model.pdiparams"))
    (tmp_path / "model.json").write_bytes(b"x")
    assert model_files(str(tmp_path / "model"))[0].endswith("model.json")
    with pytest.raises(ConfigError, match="run tools/export_model.py first"):
        model_files(str(tmp_path / "nothing"))


def test_export_and_predict_tools(tmp_path):
    weights = tmp_path / "w.pdparams"
    model = build_model(
        {
            "architecture": {
                "name": "ConvNeXt",
                "depths": [1, 1, 1, 1],
                "dims": [8, 16, 32, 64],
                "in_chans": 1,
                "patch_size": 2,
            },
            "head": {"name": "ConvNeXtClsHead", "in_channels": 64, "num_classes": 10},
        }
    )
    randomize(model)
    paddle.save(model.state_dict(), str(weights))
    cfg = "configs/demo/fashion_mnist_convnext.yaml"
    over = [
        "-o",
        "model.architecture.depths=[1, 1, 1, 1]",
        "-o",
        "model.architecture.dims=[8, 16, 32, 64]",
        "-o",
        "model.head.in_channels=64",
    ]
    res = subprocess.run(
        [
            sys.executable,
            "tools/export_model.py",
            "-c",
            cfg,
            *over,
            "--weights",
            str(weights),
            "--output",
            str(tmp_path / "inf"),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert res.returncode == 0, res.stderr[-2000:]
    assert "verified against dygraph" in res.stdout
    from PIL import Image

    from passl.data.datasets.fashion_mnist import CLASSES

    img_dir = tmp_path / "imgs"
    img_dir.mkdir()
    Image.fromarray(np.random.RandomState(0).randint(0, 255, (28, 28)).astype(np.uint8)).save(img_dir / "a.png")
    res = subprocess.run(
        [
            sys.executable,
            "tools/predict.py",
            "-c",
            cfg,
            *over,
            "--model-dir",
            str(tmp_path / "inf"),
            "--class-names",
            os.devnull,
            str(img_dir),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert res.returncode == 0, res.stderr[-2000:]
    names_file = tmp_path / "names.txt"
    names_file.write_text("\n".join(CLASSES))
    res = subprocess.run(
        [
            sys.executable,
            "tools/predict.py",
            "-c",
            cfg,
            *over,
            "--weights",
            str(weights),
            "--class-names",
            str(names_file),
            "--topk",
            "2",
            str(img_dir / "a.png"),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert res.returncode == 0, res.stderr[-2000:]
    line = [ln for ln in res.stdout.splitlines() if ln.startswith("a.png:")][0]
    assert sum(name in line for name in CLASSES) == 2


def test_export_tool_refuses_a_mismatching_model_and_leaves_nothing(tmp_path, monkeypatch, capsys):
    import importlib.util

    spec = importlib.util.spec_from_file_location("export_tool", os.path.join(ROOT, "tools", "export_model.py"))
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)

    class Broken(InferencePredictor):  # what a miscompiled inference build would do
        def __call__(self, batch):
            return super().__call__(batch) * 1.01 + 0.1

    monkeypatch.setattr(tool, "InferencePredictor", Broken)
    weights = tmp_path / "w.pdparams"
    paddle.save(_model().state_dict(), str(weights))
    out = tmp_path / "export"
    args = ["-c", os.path.join(ROOT, "configs/convnext/convnext_tiny.yaml"), "--output", str(out)]
    args += [
        "-o",
        "model.architecture.arch=atto",
        "-o",
        "model.head.in_channels=320",
        "-o",
        "model.head.num_classes=10",
    ]
    args += ["--weights", str(weights)]
    assert tool.main(args) == 1
    assert "export verification failed" in capsys.readouterr().err
    assert os.listdir(out) == []  # neither the refused model nor its staging folder is left behind
    monkeypatch.setattr(tool, "InferencePredictor", InferencePredictor)
    assert tool.main(args) == 0
    assert sorted(os.listdir(out)) == ["model.json", "model.pdiparams"]
