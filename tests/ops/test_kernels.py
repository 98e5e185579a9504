"""passl.ops fused CPU kernels equal the pure-Paddle reference (values and every gradient, 1e-5 relative to the
largest magnitude) at odd sizes and batch 1; the switch turns them off; the model gives the same logits and
gradients either way."""

from __future__ import annotations

import numpy as np
import paddle
import paddle.nn.functional as F
import pytest

from passl import ops
from passl.ops import build
from tests.ops._common import needs_compiler, ops_auto, rel  # noqa: F401 (ops_auto: a fixture)

# Only a machine without a C++ compiler may skip: where g++ exists the kernels must build (a failure fails here).
pytestmark = [needs_compiler, pytest.mark.usefixtures("ops_auto")]


def test_kernels_build_where_a_compiler_exists():
    assert build.load() is not None, "passl.ops kernels did not build: see the passl.ops warning line"


def _compare(fused, reference, inputs, out_shape=None):
    """Run both on copies of ``inputs`` with one random output gradient; return relative errors of out and grads."""
    results = []
    grad = None
    for fn in (fused, reference):
        xs = [paddle.to_tensor(t.numpy(), stop_gradient=False) for t in inputs]
        out = fn(*xs)
        assert out is not None, "the fused kernel did not run"
        if grad is None:
            grad = paddle.randn(out.shape)
        grads = paddle.grad(out, xs, grad)
        results.append([out] + list(grads))
    return [rel(a, b) for a, b in zip(*results)]


# (3, 4, 1, 1), (2, 6, 3, 3), (1, 4, 2, 5), (2, 3, 9, 3), (1, 5, 4, 4): planes small enough for the direct path
@pytest.mark.parametrize(
    "shape",
    [(1, 3, 5, 9), (2, 5, 7, 7), (1, 7, 13, 11), (3, 4, 1, 1), (2, 16, 17, 23), (2, 6, 3, 3), (1, 4, 2, 5),
     (2, 3, 9, 3), (1, 5, 4, 4)],
)  # fmt: skip
@pytest.mark.parametrize("k", [3, 7, 9])
def test_depthwise_conv_equals_conv2d(shape, k):
    n, c, h, w = shape
    inputs = [paddle.randn(list(shape)), paddle.randn([c, 1, k, k]) * 0.2, paddle.randn([c])]
    errs = _compare(ops.fused_depthwise_conv2d, ops.depthwise_conv2d_reference, inputs)
    assert max(errs) < 1e-5, errs


@pytest.mark.parametrize("shape", [(1, 5), (3, 7, 13), (1, 3, 5, 96), (2, 9, 11, 40)])
def test_layer_norm_equals_paddle(shape):
    c = shape[-1]
    inputs = [paddle.randn(list(shape)) * 3 + 1, paddle.randn([c]), paddle.randn([c])]
    errs = _compare(
        lambda x, w, b: ops.fused_layer_norm(x, w, b, 1e-6),
        lambda x, w, b: F.layer_norm(x, [c], w, b, 1e-6),
        inputs,
    )
    assert max(errs) < 1e-5, errs


@pytest.mark.parametrize("shape", [(1,), (3, 7, 13), (1, 3, 5, 97)])
def test_gelu_equals_paddle(shape):
    errs = _compare(ops.fused_gelu, F.gelu, [paddle.randn(list(shape)) * 4])
    assert max(errs) < 1e-5, errs


@pytest.mark.parametrize("shape,out", [((1, 5), 3), ((3, 7, 13), 11), ((1, 3, 5, 24), 96)])
def test_linear_equals_paddle(shape, out):
    if not hasattr(build.load(), "passl_linear"):
        pytest.skip("no MKL runtime beside Paddle: the Linear kernel is not built")
    k = shape[-1]
    inputs = [paddle.randn(list(shape)), paddle.randn([k, out]) * 0.1, paddle.randn([out])]
    errs = _compare(ops.fused_linear, F.linear, inputs)
    assert max(errs) < 1e-5, errs


@pytest.mark.parametrize("shape,out", [((1, 5), 3), ((3, 7, 13), 11), ((1, 3, 5, 24), 96), ((2, 9, 8, 16), 64)])
def test_linear_gelu_equals_paddle(shape, out):
    """fc1 + GELU as one kernel (bias added in the GELU pass, bias gradient summed in its backward pass)."""
    if not hasattr(build.load(), "passl_linear_gelu"):
        pytest.skip("no MKL runtime beside Paddle: the Linear kernels are not built")
    k = shape[-1]
    inputs = [paddle.randn(list(shape)), paddle.randn([k, out]) * 0.5, paddle.randn([out])]
    errs = _compare(ops.fused_linear_gelu, lambda x, w, b: F.gelu(F.linear(x, w, b)), inputs)
    assert max(errs) < 1e-5, errs


def test_block_fc1_gelu_runs_fused_unless_hooked(monkeypatch):
    import passl.modeling.layers as layers

    ran = []
    real = layers.fused_linear_gelu
    monkeypatch.setattr(layers, "fused_linear_gelu", lambda *a: ran.append(1) or real(*a))
    paddle.seed(0)
    fc, act = layers.Linear(8, 32), layers.GELU()
    x = paddle.randn([2, 3, 3, 8])
    ref = F.gelu(F.linear(x, fc.weight, fc.bias))
    y = layers.linear_gelu(fc, act, x)
    assert ran == [1]
    np.testing.assert_allclose(y.numpy(), ref.numpy(), rtol=1e-5, atol=1e-6)
    seen = []
    handle = fc.register_forward_post_hook(lambda layer, inp, out: seen.append(out.shape))
    layers.linear_gelu(fc, act, x)  # a hooked layer runs as itself, so the hook sees its output
    handle.remove()
    assert seen == [[2, 3, 3, 32]] and ran == [1]


def test_switch_off_and_bad_values(monkeypatch):
    x = paddle.randn([1, 2, 3, 3])
    assert ops.kernels_for(x) is not None
    ops.set_ops("off")
    assert ops.kernels_for(x) is None and ops.fused_gelu(x) is None
    ops.set_ops(None)
    monkeypatch.setenv("PASSL_OPS", "off")
    assert ops.get_ops() == "off" and ops.kernels_for(x) is None
    monkeypatch.setenv("PASSL_OPS", "fast")
    with pytest.raises(ValueError, match="PASSL_OPS"):
        ops.get_ops()
    with pytest.raises(ValueError, match="set_ops"):
        ops.set_ops("on")
    monkeypatch.delenv("PASSL_OPS")
    assert ops.kernels_for(x.astype("float64")) is None  # float32 only


def test_convnext_same_logits_and_grads_with_and_without_kernels():
    from passl.modeling.backbones import ConvNeXt

    paddle.seed(0)
    model = ConvNeXt(depths=(1, 2), dims=(8, 16), in_chans=3, patch_size=2)
    x = paddle.randn([1, 3, 15, 15])  # odd size, batch 1
    results = []
    for mode in ("auto", "off"):
        ops.set_ops(mode)
        out = model(x)
        (out * paddle.arange(out.shape[-1], dtype="float32")).sum().backward()
        results.append([out.numpy()] + [p.grad.numpy().copy() for p in model.parameters()])
        model.clear_gradients()
    for a, b in zip(*results):
        assert np.abs(a - b).max() <= 1e-5 * max(np.abs(b).max(), 1e-6)


@pytest.mark.parametrize("shape,out,p", [((1, 3, 9, 13), 8, 4), ((2, 5, 7, 7), 6, 2), ((1, 1, 28, 28), 4, 2)])
def test_patch_conv_equals_conv2d(shape, out, p):
    if not hasattr(build.load(), "passl_linear"):
        pytest.skip("no MKL runtime beside Paddle: the Linear kernel is not built")
    inputs = [paddle.randn(list(shape)), paddle.randn([out, shape[1], p, p]) * 0.2, paddle.randn([out])]
    errs = _compare(ops.fused_patch_conv2d, lambda x, w, b: F.conv2d(x, w, b, stride=p), inputs)
    assert max(errs) < 1e-5, errs
