"""ConvNeXt V2: the GRN layer, the backbone over its eight archs (official names, exact parameter counts, MACs),
and what it shares with V1."""

import numpy as np
import paddle
import pytest

from passl.modeling import build_model
from passl.modeling.backbones import build_backbone
from passl.modeling.backbones.convnext import Block, ConvNeXt
from passl.modeling.backbones.convnext_v2 import CONVNEXT_V2_ARCHS, ConvNeXtV2
from passl.modeling.layers import GRN, DropPath
from passl.registry import ConfigError
from passl.utils.model_info import count_macs, count_params

# Exact parameter counts with 1000 classes (timm's convnextv2_*, also the official models/convnextv2.py) and the
# official README's FLOPs column (multiply-accumulates), in G.
OFFICIAL = {
    "atto": (3_708_400, 0.55),
    "femto": (5_233_240, 0.78),
    "pico": (9_066_280, 1.37),
    "nano": (15_623_800, 2.45),
    "tiny": (28_635_496, 4.47),
    "base": (88_717_800, 15.4),
    "large": (197_956_840, 34.4),
    "huge": (660_289_640, 115.0),
}


def grn_reference(x, gamma, beta, eps=1e-6):
    """The official dense GRN (models/utils.py) in NumPy, per sample: x (N, H, W, C)."""
    gx = np.sqrt((x.astype(np.float64) ** 2).sum(axis=(1, 2), keepdims=True))
    nx = gx / (gx.mean(axis=-1, keepdims=True) + eps)
    return gamma * (x * nx) + beta + x


def test_grn_matches_the_official_formula_per_sample():
    grn = GRN(6)
    gamma, beta = np.random.randn(6).astype("float32"), np.random.randn(6).astype("float32")
    grn.gamma.set_value(paddle.to_tensor(gamma))
    grn.beta.set_value(paddle.to_tensor(beta))
    # two samples of very different scale: statistics over the whole batch (MinkowskiGRN) would mix them
    x = np.random.randn(2, 5, 3, 6).astype("float32")
    x[1] *= 50.0
    x[0, :, :, 2] *= 10.0  # a full-rank H x W map: a matrix 2-norm (paddle.linalg.norm over two axes) differs here
    got = grn(paddle.to_tensor(x)).numpy()
    np.testing.assert_allclose(got, grn_reference(x, gamma, beta), rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(grn(paddle.to_tensor(x[:1])).numpy(), got[:1], rtol=1e-6, atol=1e-6)


def test_grn_starts_as_identity_with_zero_parameters():
    grn = GRN(4)
    assert grn.gamma.shape == [4] and grn.beta.shape == [4]
    assert not grn.gamma.numpy().any() and not grn.beta.numpy().any()
    x = paddle.randn([2, 3, 3, 4])
    np.testing.assert_array_equal(grn(x).numpy(), x.numpy())


def test_grn_gradients_match_torch_and_stay_finite_on_a_zero_channel():
    torch = pytest.importorskip("torch", reason="torch is a test-only reference")
    timm_grn = pytest.importorskip("timm.layers.grn", reason="timm is a test-only reference")
    x = np.random.randn(2, 4, 4, 5).astype("float32")
    x[0, :, :, 1] = 0.0  # a channel that is zero everywhere (a dead unit after GELU): sqrt'(0) must not give NaN
    gamma, beta = np.random.randn(5).astype("float32"), np.random.randn(5).astype("float32")
    ref = timm_grn.GlobalResponseNorm(5)
    with torch.no_grad():
        ref.weight.copy_(torch.from_numpy(gamma))
        ref.bias.copy_(torch.from_numpy(beta))
    tx = torch.from_numpy(x).requires_grad_(True)
    (ref(tx) ** 2).sum().backward()
    grn = GRN(5)
    grn.gamma.set_value(paddle.to_tensor(gamma))
    grn.beta.set_value(paddle.to_tensor(beta))
    px = paddle.to_tensor(x, stop_gradient=False)
    (grn(px) ** 2).sum().backward()
    assert np.isfinite(px.grad.numpy()).all()
    np.testing.assert_allclose(px.grad.numpy(), tx.grad.numpy(), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(grn.gamma.grad.numpy(), ref.weight.grad.numpy(), rtol=1e-4, atol=1e-4)


def _v2(arch, dims=None, **extra):
    cfg = {"name": "ConvNeXtV2", "arch": arch, **extra}
    if dims:
        cfg["dims"] = list(dims)
    d = dims or CONVNEXT_V2_ARCHS[arch][1]
    return build_model({"architecture": cfg, "head": {"name": "ConvNeXtClsHead", "in_channels": d[-1]}})


def test_official_attribute_names_and_no_layer_scale():
    bb = build_backbone({"name": "ConvNeXtV2", "arch": "atto"})
    names = set(bb.state_dict())
    for key in [
        "downsample_layers.0.0.weight",
        "downsample_layers.0.1.bias",
        "downsample_layers.3.1.weight",
        "stages.0.0.dwconv.weight",
        "stages.0.0.norm.weight",
        "stages.0.0.pwconv1.weight",
        "stages.0.0.grn.gamma",
        "stages.0.0.grn.beta",
        "stages.3.1.pwconv2.bias",
        "norm.weight",
    ]:
        assert key in names, key
    assert not any(k.endswith(".gamma") and ".grn." not in k for k in names)  # V2 has no layer scale
    assert [k.split(".", 3)[-1] for k in bb.state_dict() if k.startswith("stages.0.0.")] == [
        "dwconv.weight",
        "dwconv.bias",
        "norm.weight",
        "norm.bias",
        "pwconv1.weight",
        "pwconv1.bias",
        "grn.gamma",
        "grn.beta",
        "pwconv2.weight",
        "pwconv2.bias",
    ]


def test_shares_v1_code():
    bb = build_backbone({"name": "ConvNeXtV2", "arch": "atto", "drop_path_rate": 0.2})
    assert isinstance(bb, ConvNeXtV2) and isinstance(bb, ConvNeXt)
    blocks = [b for s in bb.stages for b in s]
    assert all(type(b) is Block and isinstance(b.grn, GRN) and b.gamma is None for b in blocks)
    rates = [b.drop_path.drop_prob if isinstance(b.drop_path, DropPath) else 0.0 for b in blocks]
    np.testing.assert_allclose(rates, np.linspace(0, 0.2, 12), rtol=1e-6)
    v1 = build_backbone({"name": "ConvNeXt", "arch": "atto"})
    assert all(b.grn is None for s in v1.stages for b in s)  # V1 unchanged
    w = bb.stages[2][0].pwconv1.weight.numpy()
    assert abs(w.std() - 0.02) < 0.001 and np.all(bb.stages[2][0].pwconv1.bias.numpy() == 0)


@pytest.mark.parametrize("arch", list(CONVNEXT_V2_ARCHS))
def test_forward_backward(arch):
    model = _v2(arch, dims=None if arch in ("atto", "femto") else (8, 16, 32, 64))
    out = model(paddle.randn([2, 3, 32, 32]))
    assert out.shape == [2, 1000]
    out.sum().backward()
    bad = [n for n, p in model.named_parameters() if p.grad is None or not np.isfinite(p.grad.numpy()).all()]
    assert not bad, bad[:5]
    zero = [n for n, p in model.named_parameters() if float(p.grad.abs().sum()) == 0.0]
    assert not zero, zero[:5]
    assert sum(1 for m in model.sublayers() if isinstance(m, GRN)) == sum(CONVNEXT_V2_ARCHS[arch][0])


@pytest.mark.parametrize("arch", ["atto", "femto", "pico", "nano", "tiny", "base"])
def test_params_and_macs_match_official(arch):
    model = _v2(arch)
    params, gmacs = OFFICIAL[arch]
    assert count_params(model) == params
    got = count_macs(model, (1, 3, 224, 224))["total"] / 1e9
    assert abs(got - gmacs) / gmacs < 0.01, got


@pytest.mark.parametrize("arch", ["large", "huge"])
def test_params_of_the_largest_archs(arch):
    # Built under LazyGuard (shapes only, no memory); the head is Linear(C, 1000).
    with paddle.LazyGuard():
        bb = build_backbone({"name": "ConvNeXtV2", "arch": arch})
    assert count_params(bb) + bb.num_features * 1000 + 1000 == OFFICIAL[arch][0]


def test_bad_arch_and_v1_only_arguments():
    with pytest.raises(ConfigError, match="ConvNeXtV2: unknown arch 'xlarge'"):
        build_backbone({"name": "ConvNeXtV2", "arch": "xlarge"})
    with pytest.raises(ConfigError, match="layer_scale_init_value"):
        build_backbone({"name": "ConvNeXtV2", "arch": "atto", "layer_scale_init_value": 1e-6})
