"""The ConvNeXt backbone over every registered arch: shapes, gradients, drop path (train vs eval), options."""

import numpy as np
import paddle
import pytest

from passl.modeling import build_model
from passl.modeling.backbones import build_backbone
from passl.modeling.backbones.convnext import CONVNEXT_ARCHS, Block
from passl.modeling.layers import DropPath, LayerNorm2d
from passl.registry import ConfigError

SMALL_DIMS = (8, 16, 32, 64)


def _cfg(arch, drop_path_rate=0.0, **extra):
    """Full dims for atto and femto; the others keep their depths with test dims so CPU tests take seconds."""
    cfg = {"name": "ConvNeXt", "arch": arch, "drop_path_rate": drop_path_rate, **extra}
    if arch not in ("atto", "femto"):
        cfg["dims"] = list(SMALL_DIMS)
        cfg["depths"] = list(CONVNEXT_ARCHS[arch][0])
    return cfg


def _model(arch, drop_path_rate=0.0, **extra):
    cfg = _cfg(arch, drop_path_rate, **extra)
    dims = cfg.get("dims", CONVNEXT_ARCHS[arch][1])
    return build_model(
        {"architecture": cfg, "head": {"name": "ConvNeXtClsHead", "in_channels": dims[-1], "num_classes": 7}}
    )


@pytest.mark.parametrize("arch", list(CONVNEXT_ARCHS))
def test_forward_backward(arch):
    # drop_path_rate 0 here only: with drop path a block dropped for the whole batch legitimately gets no gradient.
    # Eval determinism and drop path are checked with a real rate in test_drop_path_train_vs_eval below.
    model = _model(arch)
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
    blocks = [m for m in model.sublayers() if isinstance(m, Block)]
    assert len(blocks) == sum(CONVNEXT_ARCHS[arch][0])


def _block_rates(backbone):
    return [b.drop_path.drop_prob if isinstance(b.drop_path, DropPath) else 0.0 for s in backbone.stages for b in s]


@pytest.mark.parametrize("arch", list(CONVNEXT_ARCHS))
def test_drop_path_train_vs_eval(arch):
    """drop_path_rate 0.3: identity in eval (deterministic, equal to the same weights without drop path), active and
    seed-controlled in train, with the linear per-block schedule 0 .. 0.3."""
    rate = 0.3
    # layer scale 1 instead of 1e-6: with gamma 1e-6 the residual branches (and so drop path) barely move the logits
    model = _model(arch, rate, layer_scale_init_value=1.0)
    ref = _model(arch, 0.0, layer_scale_init_value=1.0)
    depths = CONVNEXT_ARCHS[arch][0]

    # linear schedule over all blocks, as official/timm: torch.linspace(0, rate, sum(depths)); block 0 has rate 0
    rates = _block_rates(model.backbone)
    np.testing.assert_allclose(rates, np.linspace(0.0, rate, sum(depths)), atol=1e-6)
    assert rates[0] == 0.0 and rates[-1] == pytest.approx(rate)
    assert not isinstance(model.backbone.stages[0][0].drop_path, DropPath)
    assert sum(isinstance(m, DropPath) for m in model.sublayers()) == sum(depths) - 1
    assert not any(isinstance(m, DropPath) for m in ref.sublayers())

    assert set(ref.state_dict()) == set(model.state_dict())  # DropPath has no parameters
    ref.set_state_dict(model.state_dict())
    x = paddle.randn([4, 3, 32, 32])
    with paddle.no_grad():
        model.eval()
        ref.eval()
        a, b = model(x).numpy(), model(x).numpy()
        np.testing.assert_array_equal(a, b)  # eval is deterministic
        np.testing.assert_array_equal(a, ref(x).numpy())  # and drop path is the identity in eval

        model.train()
        ref.train()
        # nothing else in the model is stochastic: without drop path train mode gives the eval logits
        np.testing.assert_array_equal(ref(x).numpy(), a)
        paddle.seed(123)
        t1, t2 = model(x).numpy(), model(x).numpy()
        paddle.seed(123)
        t1_again = model(x).numpy()
    assert np.abs(t1 - t2).max() > 1e-3, "train-mode forwards agree: drop path is not active"
    assert np.abs(t1 - a).max() > 1e-3, "train-mode output equals eval output: drop path is not active"
    np.testing.assert_array_equal(t1, t1_again)  # the masks come from paddle's seeded generator


def test_block_drop_path_drops_whole_residual_branches():
    """Train mode: each sample's output is either its input (branch dropped) or input + branch / keep_prob."""
    blk = Block(8, drop_path=0.5, layer_scale_init_value=1.0)
    x = paddle.randn([64, 8, 4, 4])
    with paddle.no_grad():
        blk.eval()
        branch = (blk(x) - x).numpy()
        blk.train()
        y = blk(x).numpy()
    xn = x.numpy()
    assert np.abs(branch).reshape(64, -1).min(1).max() > 0  # the branch is not zero
    dropped = np.all(y == xn, axis=(1, 2, 3))
    assert 10 < dropped.sum() < 54  # about half dropped at rate 0.5
    np.testing.assert_allclose(y[~dropped], xn[~dropped] + branch[~dropped] / 0.5, rtol=1e-5, atol=1e-5)


def test_drop_path_schedule_and_eval_identity():
    bb = build_backbone({"name": "ConvNeXt", "arch": "atto", "drop_path_rate": 0.3})
    rates = _block_rates(bb)
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
