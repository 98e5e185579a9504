"""Exports of models whose every block matters agree with dygraph (Paddle Inference and ONNX Runtime); the check is
sensitive to a skipped block; the reference is a float32 CPU forward; an export folder holds one model; damaged
exports and unwritable outputs are one-line errors naming the file."""

import importlib.util
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
    build_predictor,
    cpu_logits,
    export_model,
    verify_export,
)
from passl.inference import export as export_mod
from passl.registry import ConfigError
from tests.engine.helpers import ROOT
from tests.inference.helpers import random_model, without_blocks

SHAPE = (2, 3, 64, 64)


def _tool(name):
    spec = importlib.util.spec_from_file_location(f"tool_{name}", os.path.join(ROOT, "tools", f"{name}.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    model = random_model("atto", num_classes=10, seed=1)
    folder = tmp_path_factory.mktemp("export")
    export_model(model, str(folder / "model"), SHAPE)
    return model, folder


def test_blocks_matter_in_the_test_model(exported):
    """Guards the parity tests: skipping every block must move the logits far beyond their 1e-4 tolerance. Also
    checks that export_model left the model a dygraph model (to_static had swapped its forward for the traced
    program, so a verification ran the trace on both sides)."""
    model, _ = exported
    assert "forward" not in model.__dict__
    x = np.random.RandomState(0).randn(*SHAPE).astype("float32")
    full = DygraphPredictor(model)(x)
    with without_blocks(model) as n:
        skipped = DygraphPredictor(model)(x)
    assert n == 12 and np.abs(full - skipped).max() > 0.1


def test_paddle_inference_parity_on_a_random_model(exported):
    model, folder = exported
    pred = InferencePredictor(str(folder))
    x = np.random.RandomState(3).randn(5, 3, 64, 64).astype("float32")
    expected = DygraphPredictor(model)(x)
    assert np.abs(expected).max() > 0.1
    np.testing.assert_allclose(pred(x), expected, atol=1e-4, rtol=0)
    assert verify_export(model, pred, SHAPE) < 1e-4


def test_onnx_parity_on_a_random_model(exported, tmp_path):
    pytest.importorskip("paddle2onnx")
    pytest.importorskip("onnxruntime")
    from passl.inference import export_onnx

    model, folder = exported
    onnx = export_onnx(str(folder), str(tmp_path / "model.onnx"))
    pred = build_predictor("onnx", model_dir=onnx)
    x = np.random.RandomState(4).randn(3, 3, 64, 64).astype("float32")
    expected = DygraphPredictor(model)(x)
    np.testing.assert_allclose(pred(x), expected, atol=1e-4, rtol=0)
    assert verify_export(model, pred, SHAPE) < 1e-4


def test_an_export_with_blocks_skipped_is_refused(tmp_path):
    """The planted bug the parity tests must catch: a program whose blocks return their input."""
    model = random_model("atto", num_classes=10, seed=2)
    with without_blocks(model):
        export_model(model, str(tmp_path / "model"), SHAPE)
    with pytest.raises(ExportMismatch, match="differ from the dygraph model's"):
        verify_export(model, InferencePredictor(str(tmp_path)), SHAPE)


# ------------------------------------------------------------------------------------- the CPU reference (#18.5)
def test_cpu_logits_copies_a_model_that_is_not_float32_on_cpu(monkeypatch):
    model = random_model("atto", num_classes=10, seed=3)
    x = np.random.RandomState(5).randn(2, 3, 32, 32).astype("float32")
    direct = DygraphPredictor(model)(x)
    before = {k: v.numpy().copy() for k, v in model.state_dict().items()}
    params = [id(p) for p in model.parameters()]
    monkeypatch.setattr(export_mod, "_on_cpu", lambda m: False)  # what a GPU (or float16) model looks like
    np.testing.assert_array_equal(cpu_logits(model, x), direct)
    assert [id(p) for p in model.parameters()] == params
    for k, v in model.state_dict().items():
        np.testing.assert_array_equal(v.numpy(), before[k])
    # a float16 model is verified through a float32 copy of its weights
    half = random_model("atto", num_classes=10, seed=3)
    half.set_state_dict(model.state_dict())
    half.to(dtype="float16")
    monkeypatch.undo()
    assert not export_mod._on_cpu(half)
    got = cpu_logits(half, x)
    assert got.dtype == np.float32 and half.head.fc.weight.dtype == paddle.float16
    np.testing.assert_allclose(got, direct, atol=0.05 * np.abs(direct).max())


def test_reference_forward_runs_on_the_cpu_whatever_the_process_device(monkeypatch):
    """On a GPU host the process device is gpu:N: the reference switches to the CPU for its forward and back."""
    model = random_model("atto", num_classes=10, seed=4)
    calls, seen = [], []
    real_set = paddle.set_device
    monkeypatch.setattr(paddle, "get_device", lambda: "gpu:3")
    monkeypatch.setattr(paddle, "set_device", lambda d: calls.append(d) or real_set("cpu"))
    real_forward = model.forward

    def spy(x):
        seen.append((x.place.is_cpu_place(), x.dtype))
        return real_forward(x)

    model.forward = spy
    cpu_logits(model, np.zeros((2, 3, 32, 32), "float32"))
    assert calls == ["cpu", "gpu:3"] and seen == [(True, paddle.float32)]


# ------------------------------------------------------------------------------- one model per folder (#16.10)
def _export_args(tmp_path, out, onnx=False):
    weights = tmp_path / "w.pdparams"
    if not weights.exists():
        paddle.save(random_model("atto", num_classes=10, seed=5).state_dict(), str(weights))
    args = ["-c", os.path.join(ROOT, "configs/convnext/convnext_tiny.yaml"), "--output", str(out)]
    args += ["-o", "model.architecture.arch=atto", "-o", "model.head.in_channels=320"]
    args += ["-o", "model.head.num_classes=10", "-o", "data.val.transforms.1.size=32", "--weights", str(weights)]
    return args + (["--onnx"] if onnx else [])


def test_reexport_leaves_one_model_in_the_folder(tmp_path, capsys):
    tool = _tool("export_model")
    out = tmp_path / "export"
    out.mkdir()
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    (out / "model.onnx").write_bytes(b"an older model")  # from an earlier export with --onnx
    (out / "model.pdmodel").write_bytes(b"an older 2.x program")
    (out / f".unverified{int(dead.stdout)}").mkdir()  # the staging folder of a killed export
    (out / f"model.onnx.unverified{int(dead.stdout)}").write_bytes(b"x")
    (out / "README.txt").write_text("not ours")
    assert tool.main(_export_args(tmp_path, out)) == 0
    text = capsys.readouterr().out
    assert sorted(os.listdir(out)) == ["README.txt", "model.json", "model.pdiparams"]
    assert "removed from" in text and "model.onnx" in text and "model.pdmodel" in text
    with pytest.raises(ConfigError, match="no ONNX model"):  # the onnx backend can no longer serve old weights
        build_predictor("onnx", model_dir=str(out))


# ------------------------------------------------------------------------------------ one-line errors (#16.9)
def test_output_that_is_a_file_or_unwritable_is_a_one_line_error(tmp_path, capsys, monkeypatch):
    tool = _tool("export_model")
    a_file = tmp_path / "a_file"
    a_file.write_text("x")
    assert tool.main(_export_args(tmp_path, a_file)) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"error: --output {a_file} is a file; pass a folder (it will hold model.json + model.pdiparams)"
    assert tool.main(_export_args(tmp_path, a_file / "sub")) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"error: cannot create the output folder {a_file / 'sub'}") and "\n" not in err

    read_only = tmp_path / "read_only"
    read_only.mkdir()
    if os.geteuid() != 0:
        read_only.chmod(0o555)
    else:  # root writes anywhere: make the folder refuse writes the way a read-only one does
        real = os.makedirs

        def refuse(path, *a, **k):
            if str(path).startswith(str(read_only) + os.sep):
                raise PermissionError(13, "Permission denied", str(path))
            return real(path, *a, **k)

        monkeypatch.setattr(os, "makedirs", refuse)
    try:
        assert tool.main(_export_args(tmp_path, read_only)) == 2
    finally:
        read_only.chmod(0o755)
    err = capsys.readouterr().err.strip().splitlines()[-1]  # after the "weights: ..." report
    assert err.startswith(f"error: could not write the export to {read_only}: Permission denied")


def _damage(folder, name, how):
    path = folder / name
    if how == "truncate":
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2])
    else:
        path.write_bytes(b"<html>not a model</html>")
    return str(path)


@pytest.mark.parametrize(
    "name,how", [("model.pdiparams", "truncate"), ("model.json", "truncate"), ("model.json", "garbage")]
)
def test_damaged_export_is_a_one_line_error_naming_the_file(exported, tmp_path, name, how, capsys, monkeypatch):
    _, good = exported
    folder = tmp_path / "inf"
    folder.mkdir()
    for f in ("model.json", "model.pdiparams"):
        (folder / f).write_bytes((good / f).read_bytes())
    path = _damage(folder, name, how)
    with pytest.raises(ConfigError, match=rf"^{path} is damaged or not an exported model \(.*export it again"):
        build_predictor("paddle", model_dir=str(folder))
    predict = _tool("predict")
    from PIL import Image

    (tmp_path / "a.png").write_bytes(b"")
    Image.fromarray(np.zeros((40, 40, 3), np.uint8)).save(tmp_path / "a.png")
    monkeypatch.chdir(ROOT)
    args = ["-c", "configs/convnext/convnext_tiny.yaml", "-o", "model.architecture.arch=atto"]
    args += ["-o", "model.head.in_channels=320", "-o", "model.head.num_classes=10"]
    args += ["--model-dir", str(folder), "--backend", "paddle", str(tmp_path / "a.png")]
    assert predict.main(args) != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and path in err[0] and "Traceback" not in err[0]


_PDMODEL_CHILD = """
import sys
sys.path.insert(0, {root!r})
from passl.inference import build_predictor
from passl.registry import ConfigError
try:
    build_predictor("paddle", model_dir={folder!r})
    print("LOADED")
except ConfigError as e:
    print("REFUSED", e)
"""


def test_damaged_pdmodel_is_refused_not_a_crash(exported, tmp_path):
    """Paddle Inference dies with SIGSEGV on a garbage .pdmodel: run in a child so a crash fails only this test."""
    _, good = exported
    folder = tmp_path / "legacy"
    folder.mkdir()
    (folder / "model.pdiparams").write_bytes((good / "model.pdiparams").read_bytes())
    (folder / "model.pdmodel").write_bytes(b"<html>not a model</html>" + bytes(range(256)) * 8)
    res = subprocess.run(
        [sys.executable, "-c", _PDMODEL_CHILD.format(root=ROOT, folder=str(folder))],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert res.returncode == 0, f"crashed with return code {res.returncode}"
    assert res.stdout.startswith(f"REFUSED {folder / 'model.pdmodel'} is damaged"), res.stdout


def test_damaged_onnx_is_a_one_line_error(tmp_path):
    pytest.importorskip("onnxruntime")
    (tmp_path / "model.onnx").write_bytes(b"<html>not a model</html>")
    with pytest.raises(ConfigError, match=rf"^{tmp_path / 'model.onnx'} is damaged or not an exported model"):
        build_predictor("onnx", model_dir=str(tmp_path))
