"""tools/convert_weights.py: an official-layout .pth becomes our .pdparams that gives timm's logits (--verify)."""

import subprocess
import sys

import numpy as np
import paddle
import pytest

from passl.modeling import build_model
from passl.weights import load_pretrained

torch = pytest.importorskip("torch", reason="torch is a test-only reference (pip install -r requirements-dev.txt)")
timm = pytest.importorskip("timm", reason="timm is a test-only reference (pip install -r requirements-dev.txt)")


def test_convert_official_pth_with_verify(tmp_path, repo_root):
    torch.manual_seed(0)
    ref = timm.create_model("convnext_atto", pretrained=False, num_classes=5).eval()
    with torch.no_grad():  # random layer scale, norms and biases: with timm's 1e-6 layer scale no block shows
        for name, p in ref.named_parameters():
            if name.endswith(("gamma", ".bias")) or p.ndim == 1:
                p.copy_(
                    torch.randn_like(p) * 0.3 + (1.0 if p.ndim == 1 and not name.endswith(("gamma", ".bias")) else 0.0)
                )
    # The official layout: downsample_layers/stages.N.M/pwconv Linear/head, inside a {"model": ...} container.
    official = {}
    for k, v in ref.state_dict().items():
        k = k.replace("stem.", "downsample_layers.0.").replace("head.fc.", "head.").replace("head.norm.", "norm.")
        for s in range(1, 4):
            k = k.replace(f"stages.{s}.downsample.", f"downsample_layers.{s}.")
        k = k.replace(".blocks.", ".").replace("conv_dw.", "dwconv.").replace("mlp.fc1.", "pwconv1.")
        k = k.replace("mlp.fc2.", "pwconv2.")
        official[k] = v.reshape(v.shape[0], v.shape[1]) if k.endswith(("pwconv1.weight", "pwconv2.weight")) else v
    src, out = tmp_path / "convnext_atto_official.pth", tmp_path / "atto.pdparams"
    torch.save({"model": official}, src)

    res = subprocess.run(
        [sys.executable, "tools/convert_weights.py", str(src), str(out), "--arch", "atto", "--verify"],
        cwd=repo_root,
        capture_output=True,
        text=True,
    )
    assert res.returncode == 0, res.stderr[-2000:]
    assert "official layout" in res.stdout and "transposed" in res.stdout and "missing 0; unexpected 0" in res.stdout
    diff = float(res.stdout.split("max |logit diff| ")[1].split()[0])
    assert diff < 1e-4

    model = build_model(
        {
            "architecture": {"name": "ConvNeXt", "arch": "atto"},
            "head": {"name": "ConvNeXtClsHead", "in_channels": 320, "num_classes": 5},
        }
    )
    report = load_pretrained(model, str(out))
    assert not report.missing and not report.unexpected
    x = np.random.RandomState(3).randn(2, 3, 64, 64).astype("float32")
    model.eval()
    with torch.no_grad():
        expected = ref(torch.from_numpy(x)).numpy()
    assert np.abs(expected).max() > 0.1
    with paddle.no_grad():
        np.testing.assert_allclose(model(paddle.to_tensor(x)).numpy(), expected, atol=1e-4, rtol=0)

    # Our own output converts again and verifies (timm gets it mapped back to the official layout).
    res = subprocess.run(
        [sys.executable, "tools/convert_weights.py", str(out), str(tmp_path / "again.pdparams"), "--arch", "atto"]
        + ["--verify"],
        cwd=repo_root,
        capture_output=True,
        text=True,
    )
    assert res.returncode == 0 and "passl layout" in res.stdout and "missing 0; unexpected 0" in res.stdout

    res = subprocess.run(
        [sys.executable, "tools/convert_weights.py", str(src), str(out), "--verify"],
        cwd=repo_root,
        capture_output=True,
        text=True,
    )
    assert res.returncode == 2 and "--verify needs --arch" in res.stderr
