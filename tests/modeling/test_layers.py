"""DepthwiseConv2D's CPU matmul path equals the standard depthwise convolution, values and gradients."""

import numpy as np
import paddle
import paddle.nn.functional as F
import pytest

from passl.modeling.layers import DepthwiseConv2D


@pytest.mark.parametrize("shape", [(3, 5, 1, 1), (2, 4, 3, 3), (2, 6, 7, 7), (3, 4, 14, 14), (2, 3, 5, 9)])
def test_matmul_path_equals_conv(shape):
    n, c, h, w = shape
    layer = DepthwiseConv2D(c, 7)
    layer.bias.set_value(paddle.randn([c]))
    x = paddle.randn(list(shape))
    x.stop_gradient = False
    out = layer._matmul_forward(x)
    ref = F.conv2d(x, layer.weight, layer.bias, padding=3, groups=c)
    np.testing.assert_allclose(out.numpy(), ref.numpy(), atol=1e-5)
    g = paddle.randn(out.shape)
    got = paddle.grad(out, [x, layer.weight, layer.bias], g)
    exp = paddle.grad(ref, [x, layer.weight, layer.bias], g)
    for a, b in zip(got, exp):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-4, atol=1e-4)


def test_fast_path_rule_static_graphs_and_env(monkeypatch):
    layer = DepthwiseConv2D(4, 7)
    grad_x = paddle.zeros([128, 4, 14, 14])
    grad_x.stop_gradient = False
    assert layer._use_matmul(paddle.zeros([1, 4, 3, 3]))  # tiny maps: always
    assert layer._use_matmul(paddle.zeros([8, 4, 8, 8])) and not layer._use_matmul(paddle.zeros([4, 4, 8, 8]))
    assert layer._use_matmul(grad_x)  # 14x14: only when training with a large batch
    with paddle.no_grad():
        assert not layer._use_matmul(grad_x)
    assert not layer._use_matmul(paddle.zeros([128, 4, 28, 28]))
    monkeypatch.setenv("PASSL_DWCONV_MATMUL", "0")
    assert not layer._use_matmul(paddle.zeros([8, 4, 8, 8]))
    monkeypatch.delenv("PASSL_DWCONV_MATMUL")
    static = paddle.jit.to_static(
        layer, input_spec=[paddle.static.InputSpec([None, 4, 8, 8], "float32")], full_graph=True
    )
    x = paddle.randn([8, 4, 8, 8])
    assert layer._use_matmul(x)
    np.testing.assert_allclose(static(x).numpy(), layer(x).numpy(), atol=1e-5)


def test_state_dict_keys_are_a_plain_conv():
    assert sorted(DepthwiseConv2D(4, 7).state_dict()) == ["bias", "weight"]
    assert DepthwiseConv2D(4, 7).weight.shape == [4, 1, 7, 7]
