"""The fused block tail (``passl_residual``: layer scale, channels-last -> channels-first, residual add) equals the
pure-Paddle form in value and every gradient (1e-5 relative to the largest magnitude) at odd sizes and batch 1, and
a ConvNeXt block gives the same output and gradients with it as without it."""

from __future__ import annotations

import numpy as np
import paddle
import pytest

from passl import ops
from passl.modeling.backbones.convnext import Block
from passl.modeling.layers import DropPath, layer_scale_residual
from tests.ops._common import needs_compiler, ops_auto, rel  # noqa: F401 (ops_auto: a fixture)

pytestmark = [needs_compiler, pytest.mark.usefixtures("ops_auto")]


def _reference(shortcut, branch, gamma):
    return shortcut + (gamma * branch).transpose([0, 3, 1, 2])


def _assert_same(fused, reference, data, grad):
    """Value and every input gradient of ``fused`` within 1e-5 (relative to the largest magnitude) of ``reference``."""
    results = []
    for fn in (fused, reference):
        xs = [paddle.to_tensor(d.astype("float32"), stop_gradient=False) for d in data]
        out = fn(*xs)
        assert out is not None, "the fused kernel did not run"
        results.append([out.numpy()] + [g.numpy() for g in paddle.grad(out, xs, grad)])
    errs = [rel(a, b) for a, b in zip(*results)]
    assert max(errs) < 1e-5, errs


@pytest.mark.parametrize("shape", [(1, 3, 5, 9), (2, 5, 7, 7), (1, 7, 13, 11), (3, 4, 1, 1), (2, 24, 17, 23)])
def test_residual_kernel_equals_paddle(shape):
    n, c, h, w = shape
    data = [np.random.randn(n, c, h, w), np.random.randn(n, h, w, c), np.random.randn(c)]
    grad = paddle.randn([n, c, h, w])
    _assert_same(ops.fused_layer_scale_residual, _reference, data, grad)


def test_residual_kernel_off_and_non_cpu_float32_fall_back():
    s, b, g = paddle.randn([1, 3, 2, 2]), paddle.randn([1, 2, 2, 3]), paddle.randn([3])
    assert ops.fused_layer_scale_residual(s.astype("float64"), b, g) is None
    ops.set_ops("off")
    assert ops.fused_layer_scale_residual(s, b, g) is None
    y = layer_scale_residual(s, b, g, paddle.nn.Identity())  # the pure-Paddle form
    np.testing.assert_allclose(y.numpy(), _reference(s, b, g).numpy(), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("dim,hw,n", [(24, 14, 2), (13, 5, 1)])
def test_block_same_with_and_without_the_fused_tail(dim, hw, n):
    paddle.seed(1)
    block = Block(dim, layer_scale_init_value=0.5)
    x0 = np.random.randn(n, dim, hw, hw).astype("float32")
    grad = paddle.randn([n, dim, hw, hw])
    results = []
    for mode in ("auto", "off"):
        ops.set_ops(mode)
        x = paddle.to_tensor(x0, stop_gradient=False)
        out = block(x)
        params = [block.gamma, block.pwconv2.weight, block.dwconv.weight]
        grads = paddle.grad(out, [x] + params, grad)
        results.append([out.numpy()] + [g.numpy() for g in grads])
    errs = [rel(a, b) for a, b in zip(*results)]
    assert max(errs) < 1e-5, errs


@pytest.mark.parametrize("shape", [(1, 3, 5, 9), (4, 5, 7, 7), (3, 24, 17, 23)])
def test_residual_drop_kernel_equals_paddle(shape):
    """Stochastic depth's per-sample factor (0 or 1 / keep) inside the kernel: value and every gradient."""
    n, c, h, w = shape
    data = [np.random.randn(n, c, h, w), np.random.randn(n, h, w, c), np.random.randn(c)]
    scale = paddle.to_tensor(np.where(np.arange(n) % 2, 0.0, 1.0 / 0.7).astype("float32"))
    grad = paddle.randn([n, c, h, w])
    _assert_same(
        lambda s, b, g: ops.fused_layer_scale_residual(s, b, g, scale),
        lambda s, b, g: s + (g * b).transpose([0, 3, 1, 2]) * scale.reshape([-1, 1, 1, 1]),
        data,
        grad,
    )


def _tail_runs(monkeypatch):
    """Count the fused tail's runs that carried a drop-path factor."""
    import passl.modeling.layers as layers

    calls = []
    real = layers.fused_layer_scale_residual

    def spy(shortcut, branch, gamma, scale=None):
        y = real(shortcut, branch, gamma, scale)
        calls.append((scale is not None, y is not None))
        return y

    monkeypatch.setattr(layers, "fused_layer_scale_residual", spy)
    return calls


@pytest.mark.parametrize("with_gamma", [True, False])
def test_active_drop_path_runs_fused_and_equals_the_pure_paddle_form(monkeypatch, with_gamma):
    """Same seed -> the same mask, output and gradients with the kernel (auto) and without it (off); some samples are
    really dropped (their output is the shortcut); without layer scale (ConvNeXt V2) the kernel runs too."""
    calls = _tail_runs(monkeypatch)
    n, c, h, w = 8, 6, 3, 5
    data = [np.random.randn(n, c, h, w), np.random.randn(n, h, w, c), np.random.randn(c)]
    grad = paddle.randn([n, c, h, w])
    drop = DropPath(0.5)
    drop.train()
    results = []
    for mode in ("auto", "off"):
        ops.set_ops(mode)
        xs = [paddle.to_tensor(d.astype("float32"), stop_gradient=False) for d in data]
        paddle.seed(3)
        y = layer_scale_residual(xs[0], xs[1], xs[2] if with_gamma else None, drop)
        wrt = xs if with_gamma else xs[:2]
        results.append([y.numpy()] + [g.numpy() for g in paddle.grad(y, wrt, grad)])
    assert calls == [(True, True)], calls
    errs = [rel(a, b) for a, b in zip(*results)]
    assert max(errs) < 1e-5, errs
    dropped = [k for k in range(n) if np.array_equal(results[0][0][k], data[0][k].astype("float32"))]
    assert 0 < len(dropped) < n, dropped
    assert not results[0][2][dropped].any(), "a dropped sample's branch got a gradient"
