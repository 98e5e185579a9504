"""LayerNorm over the channels of an NCHW tensor written channels-last (``passl_layer_norm_cf``, the block's
transpose + LayerNorm in one kernel) equals Paddle's transpose + ``F.layer_norm`` in value and every gradient (1e-5
relative to the largest magnitude) at odd sizes and batch 1; LayerNorm2d and LayerNorm.forward_nchw give the same
with the switch on and off."""

from __future__ import annotations

import numpy as np
import paddle
import paddle.nn.functional as F
import pytest

from passl import ops
from passl.modeling.layers import LayerNorm, LayerNorm2d
from tests.ops._common import needs_compiler, ops_auto, rel  # noqa: F401 (ops_auto: a fixture)

pytestmark = [needs_compiler, pytest.mark.usefixtures("ops_auto")]


def _run(fn, data, grad):
    xs = [paddle.to_tensor(d, stop_gradient=False) for d in data]
    out = fn(*xs)
    assert out is not None, "the fused kernel did not run"
    return [out.numpy()] + [g.numpy() for g in paddle.grad(out, xs, grad)]


@pytest.mark.parametrize("shape", [(1, 5, 1, 1), (2, 7, 3, 5), (1, 24, 14, 14), (3, 13, 7, 9)])
def test_layer_norm_cf_equals_paddle(shape):
    n, c, h, w = shape
    data = [(np.random.randn(*shape) * 3 + 1).astype("float32")] + [np.random.randn(c).astype("float32")] * 2
    grad = paddle.randn([n, h, w, c])
    fused = _run(lambda x, wt, b: ops.fused_layer_norm_cf(x, wt, b, 1e-6), data, grad)
    ref = _run(lambda x, wt, b: F.layer_norm(x.transpose([0, 2, 3, 1]), [c], wt, b, 1e-6), data, grad)
    errs = [rel(a, b) for a, b in zip(fused, ref)]
    assert max(errs) < 1e-5, errs


@pytest.mark.parametrize("layer_cls", [LayerNorm2d, LayerNorm])
def test_layers_same_with_the_switch_on_and_off(layer_cls):
    paddle.seed(2)
    layer = layer_cls(11, 1e-6) if layer_cls is LayerNorm2d else layer_cls(11, epsilon=1e-6)
    with paddle.no_grad():
        layer.weight.set_value(paddle.randn([11]))
        layer.bias.set_value(paddle.randn([11]))
    x0 = np.random.randn(2, 11, 5, 3).astype("float32")
    fn = layer if layer_cls is LayerNorm2d else layer.forward_nchw
    results = []
    for mode in ("auto", "off"):
        ops.set_ops(mode)
        x = paddle.to_tensor(x0, stop_gradient=False)
        out = fn(x)
        g = paddle.to_tensor(np.random.RandomState(0).randn(*out.shape).astype("float32"))
        results.append([out.numpy()] + [t.numpy() for t in paddle.grad(out, [x, layer.weight, layer.bias], g)])
    errs = [rel(a, b) for a, b in zip(*results)]
    assert max(errs) < 1e-5, errs
