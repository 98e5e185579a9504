"""The ConvNeXt backbone over every registered arch: shapes, gradients, determinism, drop path, options."""

import numpy as np
import paddle
import pytest

from passl.modeling import build_model
from passl.modeling.backbones import build_backbone
from passl.modeling.backbones.convnext import CONVNEXT_ARCHS, Block
from passl.modeling.layers import DropPath, LayerNorm2d
from passl.registry import ConfigError

SMALL_DIMS = (8, 16, 32, 64)


def _cfg(arch):
    """Full dims for atto..nano; the big variants keep their depths with test dims so CPU tests take seconds."""
    cfg = {"name": "ConvNeXt", "arch": arch, "drop_path_rate": 0.0}  # drop path could zero a block's grads
    if arch not in ("atto", "femto"):
        cfg["dims"] = list(SMALL_DIMS)
        cfg["depths"] = list(CONVNEXT_ARCHS[arch][0])
    return cfg


@pytest.mark.parametrize("arch", list(CONVNEXT_ARCHS))
def test_forward_backward_eval(arch):
    cfg = _cfg(arch)
    dims = cfg.get("dims", CONVNEXT_ARCHS[arch][1])
    model = build_model(
        {"architecture": cfg, "head": {"name": "ConvNeXtClsHead", "in_channels": dims[-1], "num_classes": 7}}
    )
    x = paddle.randn([2, 3, 32, 32])
    model.train()
    out = model(x)
    assert out.shape == [2, 7]
    out.sum().backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not np.isfinite(p.grad.numpy()).all()]
    assert not missing, f"no gradient for {missing[:5]}"
    # every parameter actually received signal somewhere (gamma starts at 1e-6, so check it is non-zero grad)
    zero = [n for n, p in model.named_parameters() if float(p.grad.abs().sum()) == 0.0]
    assert not zero, f"zero gradient for {zero[:5]}"
    model.eval()
    with paddle.no_grad():
        a, b = model(x).numpy(), model(x).numpy()
    np.testing.assert_array_equal(a, b)
    blocks = [m for m in model.sublayers() if isinstance(m, Block)]
    assert len(blocks) == sum(CONVNEXT_ARCHS[arch][0])


def test_drop_path_schedule_and_eval_identity():
    bb = build_backbone({"name": "ConvNeXt", "arch": "atto", "drop_path_rate": 0.3})
    rates = [b.drop_path.drop_prob if isinstance(b.drop_path, DropPath) else 0.0 for s in bb.stages for b in s]
    np.testing.assert_allclose(rates, np.linspace(0, 0.3, 12), atol=1e-6)
    dp = DropPath(0.5)
    x = paddle.randn([64, 4, 2, 2])
    dp.eval()
    np.testing.assert_array_equal(dp(x).numpy(), x.numpy())
    dp.train()
    y = dp(x).numpy()
    kept = np.abs(y).reshape(64, -1).sum(1) > 0
    assert 10 < kept.sum() < 54  # some samples dropped, some kept
    np.testing.assert_allclose(y[kept], x.numpy()[kept] * 2, rtol=1e-6)


def test_layer_scale_off_and_init():
    bb = build_backbone({"name": "ConvNeXt", "arch": "atto", "layer_scale_init_value": 0.0})
    assert all(b.gamma is None for s in bb.stages for b in s)
    bb = build_backbone({"name": "ConvNeXt", "arch": "atto"})
    g = bb.stages[0][0].gamma.numpy()
    np.testing.assert_allclose(g, 1e-6)
    w = bb.stages[2][0].pwconv1.weight.numpy()
    # trunc normal std 0.02 with absolute bounds +-2, as timm's trunc_normal_(std=.02) and the official code
    assert abs(w.std() - 0.02) < 0.001 and abs(w.mean()) < 0.001 and np.abs(w).max() <= 2.0
    assert np.all(bb.stages[2][0].pwconv1.bias.numpy() == 0)


def test_official_attribute_names():
    names = set(build_backbone({"name": "ConvNeXt", "arch": "atto"}).state_dict())
    for key in [
        "downsample_layers.0.0.weight",
        "downsample_layers.0.1.weight",
        "downsample_layers.3.0.bias",
        "downsample_layers.3.1.weight",
        "stages.3.1.gamma",
        "stages.0.0.dwconv.weight",
        "stages.0.0.norm.weight",
        "stages.0.0.pwconv1.weight",
        "stages.0.0.pwconv2.bias",
        "norm.weight",
        "norm.bias",
    ]:
        assert key in names, key


def test_out_indices_returns_feature_maps():
    bb = build_backbone({"name": "ConvNeXt", "arch": "atto", "out_indices": [0, 1, 2, 3]})
    outs = bb(paddle.randn([1, 3, 64, 64]))
    assert [o.shape for o in outs] == [[1, 40, 16, 16], [1, 80, 8, 8], [1, 160, 4, 4], [1, 320, 2, 2]]
    with pytest.raises(ConfigError, match="out_indices"):
        build_backbone({"name": "ConvNeXt", "arch": "atto", "out_indices": [4]})


def test_patch_size_and_in_chans():
    bb = build_backbone({"name": "ConvNeXt", "depths": [1, 1], "dims": [8, 16], "in_chans": 1, "patch_size": 2})
    assert bb.forward_features(paddle.randn([2, 1, 28, 28])).shape == [2, 16, 7, 7]


def test_bad_arch_and_head_mismatch():
    with pytest.raises(ConfigError, match="unknown arch 'tinyy'"):
        build_backbone({"name": "ConvNeXt", "arch": "tinyy"})
    with pytest.raises(ConfigError, match="in_channels is 10 but the backbone's feature size is 320"):
        build_model(
            {
                "architecture": {"name": "ConvNeXt", "arch": "atto"},
                "head": {"name": "ConvNeXtClsHead", "in_channels": 10},
            }
        )


def test_layernorm2d_matches_manual_formula():
    ln = LayerNorm2d(6)
    ln.weight.set_value(paddle.rand([6]))
    ln.bias.set_value(paddle.rand([6]))
    x = paddle.randn([2, 6, 5, 3]) * 3 + 1
    xn = x.numpy()
    mu = xn.mean(1, keepdims=True)
    var = ((xn - mu) ** 2).mean(1, keepdims=True)
    ref = (xn - mu) / np.sqrt(var + 1e-6) * ln.weight.numpy()[:, None, None] + ln.bias.numpy()[:, None, None]
    np.testing.assert_allclose(ln(x).numpy(), ref, atol=1e-5)


def test_head_init_scale():
    a = build_model(
        {
            "architecture": {"name": "ConvNeXt", "arch": "atto"},
            "head": {"name": "ConvNeXtClsHead", "in_channels": 320, "head_init_scale": 0.001},
        }
    )
    assert abs(float(a.head.fc.weight.numpy().std()) - 0.02 * 0.001) < 0.001 * 0.002
