"""Logits equal timm's for the same weights (timm is a test-only reference; CI installs it)."""

import numpy as np
import paddle
import pytest

from passl.modeling import build_model

torch = pytest.importorskip("torch", reason="torch is a test-only reference (pip install -r requirements-dev.txt)")
timm = pytest.importorskip("timm", reason="timm is a test-only reference (pip install -r requirements-dev.txt)")


def _timm_to_ours(sd):
    """timm key names -> ours, PyTorch Linear [out, in] -> Paddle [in, out]; 1x1 conv MLPs squeezed."""
    out = {}
    for k, v in sd.items():
        v = v.detach().cpu().numpy()
        nk = k
        if k.startswith("stem."):
            nk = "backbone.downsample_layers.0." + k[len("stem.") :]
        elif ".downsample." in k:
            i = k.split(".")[1]
            nk = f"backbone.downsample_layers.{i}." + k.split(".downsample.")[1]
        elif ".blocks." in k:
            _, i, _, j, rest = k.split(".", 4)
            rest = rest.replace("conv_dw", "dwconv").replace("mlp.fc1", "pwconv1").replace("mlp.fc2", "pwconv2")
            nk = f"backbone.stages.{i}.{j}.{rest}"
        elif k.startswith("head.norm."):
            nk = "backbone.norm." + k[len("head.norm.") :]
        elif k.startswith("head.fc."):
            nk = "head.fc." + k[len("head.fc.") :]
        if nk.endswith(("pwconv1.weight", "pwconv2.weight", "head.fc.weight")):
            v = v.reshape(v.shape[0], v.shape[1]).T
        out[nk] = v
    return out


@pytest.mark.parametrize("arch, size", [("atto", 64), ("tiny", 64)])
def test_logits_match_timm(arch, size):
    torch.manual_seed(0)
    ref = timm.create_model(f"convnext_{arch}", pretrained=False, num_classes=11).eval()
    with torch.no_grad():  # non-trivial layer scale and biases so every path matters
        for name, p in ref.named_parameters():
            if name.endswith("gamma") or name.endswith(".bias") or "norm" in name:
                p.copy_(torch.randn_like(p) * 0.5 + (1.0 if "norm.weight" in name else 0.0))
    dims = {"atto": 320, "tiny": 768}[arch]
    model = build_model(
        {
            "architecture": {"name": "ConvNeXt", "arch": arch},
            "head": {"name": "ConvNeXtClsHead", "in_channels": dims, "num_classes": 11},
        }
    )
    ours = _timm_to_ours(ref.state_dict())
    mine = model.state_dict()
    assert set(ours) == set(mine), set(ours) ^ set(mine)
    model.set_state_dict({k: paddle.to_tensor(v) for k, v in ours.items()})
    model.eval()
    x = np.random.RandomState(0).randn(2, 3, size, size).astype("float32")
    with torch.no_grad():
        expected = ref(torch.from_numpy(x)).numpy()
    got = model(paddle.to_tensor(x)).numpy()
    assert np.abs(expected).max() > 0.1
    np.testing.assert_allclose(got, expected, atol=1e-4, rtol=0)
