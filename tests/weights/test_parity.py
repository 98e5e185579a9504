"""Random timm weights saved in every supported layout load through our public entry points and give timm's logits."""

import numpy as np
import paddle
import pytest

from passl.modeling import build_model
from passl.modeling.backbones.convnext import CONVNEXT_ARCHS
from passl.weights import load_pretrained

torch = pytest.importorskip("torch", reason="torch is a test-only reference (pip install -r requirements-dev.txt)")
timm = pytest.importorskip("timm", reason="timm is a test-only reference (pip install -r requirements-dev.txt)")

ARCHS = list(CONVNEXT_ARCHS)
FORMATS = ["official_pth", "timm_pth", "timm_safetensors", "paddleclas_pdparams", "passl_v1_pdparams"]
NUM_CLASSES = 7


def _timm_to_official(name):
    """timm names -> the official file's names (the layout of the official .pth and the PaddleClas ports)."""
    import re

    rules = [
        (r"^stem\.(\d)\.", r"downsample_layers.0.\1."),
        (r"^stages\.(\d)\.downsample\.(\d)\.", r"downsample_layers.\1.\2."),
        (r"\.blocks\.(\d+)\.conv_dw\.", r".\1.dwconv."),
        (r"\.blocks\.(\d+)\.mlp\.fc1\.", r".\1.pwconv1."),
        (r"\.blocks\.(\d+)\.mlp\.fc2\.", r".\1.pwconv2."),
        (r"\.blocks\.(\d+)\.", r".\1."),
        (r"^head\.norm\.", "norm."),
        (r"^head\.fc\.", "head."),
    ]
    for pat, rep in rules:
        name = re.sub(pat, rep, name)
    return name


@pytest.fixture(scope="module", params=ARCHS)
def reference(request, tmp_path_factory):
    arch = request.param
    torch.manual_seed(0)
    ref = timm.create_model(f"convnext_{arch}", pretrained=False, num_classes=NUM_CLASSES).eval()
    with torch.no_grad():  # non-trivial layer scale, norms and biases so every tensor matters
        for name, p in ref.named_parameters():
            if name.endswith(("gamma", ".bias")) or "norm" in name:
                p.copy_(torch.randn_like(p) * 0.3 + (1.0 if "norm.weight" in name else 0.0))
    size = 64  # at 32 px the last stage is 1x1 and only the centre tap of its 7x7 depthwise kernels matters
    x = np.random.RandomState(1).randn(2, 3, size, size).astype("float32")
    with torch.no_grad():
        expected = ref(torch.from_numpy(x)).numpy()
    sd = ref.state_dict()
    folder = tmp_path_factory.mktemp(arch)
    official = {}
    for k, v in sd.items():
        nk = _timm_to_official(k)
        if nk.endswith(("pwconv1.weight", "pwconv2.weight")):
            v = v.reshape(v.shape[0], v.shape[1])  # timm's 1x1-conv MLP (atto..nano) -> Linear
        official[nk] = v
    files = {
        "official_pth": folder / "official.pth",
        "timm_pth": folder / "timm.pth",
        "timm_safetensors": folder / "timm.safetensors",
        "paddleclas_pdparams": folder / "paddleclas.pdparams",
        "passl_v1_pdparams": folder / "passl_v1.pdparams",
    }
    torch.save({"model": official, "epoch": 299}, files["official_pth"])
    torch.save(sd, files["timm_pth"])
    from safetensors.torch import save_file

    save_file({k: v.contiguous() for k, v in sd.items()}, str(files["timm_safetensors"]))

    def paddle_layout(k, v):
        v = v.numpy()
        return (
            v.T.copy()
            if v.ndim == 2 and (k.endswith(("pwconv1.weight", "pwconv2.weight")) or k == "head.weight")
            else v
        )

    pc = {k: paddle.to_tensor(paddle_layout(k, v)) for k, v in official.items()}
    paddle.save(pc, str(files["paddleclas_pdparams"]))
    v1 = {("head.fc_cls." + k[5:]) if k.startswith("head.") else "backbone." + k: t for k, t in pc.items()}
    paddle.save(v1, str(files["passl_v1_pdparams"]))
    del ref, sd, official, pc, v1
    return arch, x, expected, files


@pytest.mark.parametrize("fmt", FORMATS)
def test_every_format_gives_timm_logits(reference, fmt):
    arch, x, expected, files = reference
    dims = CONVNEXT_ARCHS[arch][1]
    model = build_model(
        {
            "architecture": {"name": "ConvNeXt", "arch": arch},
            "head": {"name": "ConvNeXtClsHead", "in_channels": dims[-1], "num_classes": NUM_CLASSES},
        }
    )
    report = load_pretrained(model, str(files[fmt]))
    assert not report.missing and not report.unexpected and len(report.loaded) == len(model.state_dict())
    model.eval()
    with paddle.no_grad():
        got = model(paddle.to_tensor(x)).numpy()
    assert np.abs(expected).max() > 0.1
    np.testing.assert_allclose(got, expected, atol=1e-4, rtol=0)
