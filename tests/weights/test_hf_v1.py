"""Hugging Face transformers ConvNext (V1) checkpoints load through the same Hugging Face rows as V2 (prefix
``convnext.``, layer scale ``layer_scale_parameter``) and give timm's logits."""

import numpy as np
import paddle
import pytest

from passl.modeling import build_model
from passl.weights import load_pretrained

torch = pytest.importorskip("torch", reason="torch is a test-only reference (pip install -r requirements-dev.txt)")
timm = pytest.importorskip("timm", reason="timm is a test-only reference (pip install -r requirements-dev.txt)")

from tests.weights.v2_layouts import official_to_hf, randomize, timm_to_official  # noqa: E402


def test_hf_convnext_v1_safetensors(tmp_path):
    torch.manual_seed(0)
    ref = timm.create_model("convnext_atto", pretrained=False, num_classes=4).eval()
    randomize(ref)
    with torch.no_grad():
        for name, p in ref.named_parameters():
            if name.endswith("gamma"):
                p.copy_(torch.randn_like(p) * 0.3)
    official = timm_to_official(ref.state_dict())
    hf = official_to_hf(official, prefix="convnext")
    assert "convnext.encoder.stages.0.layers.0.layer_scale_parameter" in hf
    from safetensors.torch import save_file

    path = tmp_path / "model.safetensors"
    save_file({k: v.contiguous() for k, v in hf.items()}, str(path))
    model = build_model(
        {
            "architecture": {"name": "ConvNeXt", "arch": "atto"},
            "head": {"name": "ConvNeXtClsHead", "in_channels": 320, "num_classes": 4},
        }
    )
    report = load_pretrained(model, str(path))
    assert report.format == "hf" and not report.missing and not report.unexpected
    x = np.random.RandomState(0).randn(2, 3, 64, 64).astype("float32")
    with torch.no_grad():
        expected = ref(torch.from_numpy(x)).numpy()
    model.eval()
    with paddle.no_grad():
        got = model(paddle.to_tensor(x)).numpy()
    np.testing.assert_allclose(got, expected, atol=1e-4, rtol=0)
