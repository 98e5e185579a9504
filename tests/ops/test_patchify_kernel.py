"""The patch extraction kernel of the stem and downsampling convolutions (``passl_patchify``) equals the pure-Paddle
form (slice + reshape + transpose) in value and gradient at odd sizes (remainder rows and columns dropped) and batch
1, and the fused patch convolution still equals ``conv2d``."""

from __future__ import annotations

import numpy as np
import paddle
import paddle.nn.functional as F
import pytest

from passl import ops
from passl.ops import build
from passl.ops.patch_conv import patches_reference
from tests.ops._common import needs_compiler, ops_auto, rel  # noqa: F401 (ops_auto: a fixture)

pytestmark = [needs_compiler, pytest.mark.usefixtures("ops_auto")]


def _assert_bit_equal(kernel, reference, data):
    """A pure data-movement kernel: output and input gradient bit for bit equal to the reference's."""
    outs, grads = [], []
    for fn in (kernel, reference):
        x = paddle.to_tensor(data, stop_gradient=False)
        y = fn(x)
        g = paddle.to_tensor(np.arange(y.size, dtype="float32").reshape(y.shape))  # distinct per element
        outs.append(y.numpy())
        grads.append(paddle.grad(y, x, g)[0].numpy())
    np.testing.assert_array_equal(outs[0], outs[1])
    np.testing.assert_array_equal(grads[0], grads[1])


@pytest.mark.parametrize("shape,p,q", [((1, 1, 28, 28), 2, 2), ((2, 3, 7, 9), 2, 2), ((1, 5, 13, 11), 4, 3)])
def test_patchify_equals_paddle(shape, p, q):
    kernels = build.load()
    data = np.random.randn(*shape).astype("float32")
    _assert_bit_equal(lambda x: kernels.passl_patchify(x, p, q, False), lambda x: patches_reference(x, p, q), data)


@pytest.mark.parametrize("shape,p", [((1, 3, 9, 7), 2), ((2, 4, 28, 28), 4)])
def test_fused_patch_conv_equals_conv2d(shape, p):
    data = np.random.randn(*shape).astype("float32")
    w0 = (np.random.randn(6, shape[1], p, p) * 0.2).astype("float32")
    b0 = np.random.randn(6).astype("float32")
    results = []
    for fn in (ops.fused_patch_conv2d, lambda x, w, b: F.conv2d(x, w, b, stride=p)):
        xs = [paddle.to_tensor(a, stop_gradient=False) for a in (data, w0, b0)]
        y = fn(*xs)
        assert y is not None, "the fused kernel did not run"
        g = paddle.to_tensor(np.random.RandomState(0).randn(*y.shape).astype("float32"))
        results.append([y.numpy()] + [t.numpy() for t in paddle.grad(y, xs, g)])
    for a, b in zip(*results):
        assert np.abs(a - b).max() <= 1e-5 * max(np.abs(b).max(), 1e-12)


@pytest.mark.parametrize("shape,p,q", [((1, 28, 28, 1), 2, 2), ((2, 7, 9, 3), 2, 2), ((1, 13, 11, 5), 4, 3)])
def test_patchify_channels_last_equals_paddle(shape, p, q):
    kernels = build.load()
    data = np.random.randn(*shape).astype("float32")  # [N, H, W, C]
    _assert_bit_equal(
        lambda x: kernels.passl_patchify(x, p, q, True),
        lambda x: patches_reference(x.transpose([0, 3, 1, 2]), p, q),
        data,
    )


def test_fused_patch_conv_on_a_channels_first_view_equals_conv2d():
    """LayerNorm2d hands the downsampling convolution an NCHW view of NHWC data: read in place, same result."""
    data = np.random.randn(2, 7, 9, 5).astype("float32")
    w0 = (np.random.randn(6, 5, 2, 2) * 0.2).astype("float32")
    b0 = np.random.randn(6).astype("float32")
    results = []
    for fn in (ops.fused_patch_conv2d, lambda x, w, b: F.conv2d(x, w, b, stride=2)):
        xs = [paddle.to_tensor(a, stop_gradient=False) for a in (data, w0, b0)]
        view = xs[0].transpose([0, 3, 1, 2])
        y = fn(view, xs[1], xs[2])
        assert y is not None, "the fused kernel did not run"
        g = paddle.to_tensor(np.random.RandomState(0).randn(*y.shape).astype("float32"))
        results.append([y.numpy()] + [t.numpy() for t in paddle.grad(y, xs, g)])
    for a, b in zip(*results):
        assert np.abs(a - b).max() <= 1e-5 * max(np.abs(b).max(), 1e-12)


@pytest.mark.parametrize("shape", [(1, 1, 1, 1), (2, 7, 9, 5), (1, 33, 3, 40)])
def test_to_nchw_equals_transpose(shape):
    data = np.random.randn(*shape).astype("float32")  # [N, H, W, C]
    _assert_bit_equal(build.load().passl_to_nchw, lambda x: x.transpose([0, 3, 1, 2]), data)
