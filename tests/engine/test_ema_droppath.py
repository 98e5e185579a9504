"""The EMA update in place (cached tensor pairs, one lerp per tensor) equals the old two-walk formula within float32
rounding; the drop-path mask is drawn in float32 whatever the activation dtype."""

import numpy as np
import paddle

from passl.engine.ema import ModelEMA
from passl.modeling.layers import drop_path


def _model(seed):
    paddle.seed(seed)
    return paddle.nn.Sequential(paddle.nn.Linear(6, 5), paddle.nn.BatchNorm1D(5), paddle.nn.Linear(5, 3))


def test_in_place_ema_equals_the_formula():
    model = _model(0)
    ema = ModelEMA(model, decay=0.9)
    ref = {k: v.numpy().astype("float64") for k, v in ema.state_dict().items()}
    tensors = {k: id(v) for k, v in ema.state_dict().items()}
    for step in range(4):
        other = _model(step + 1)
        model.set_state_dict(other.state_dict())
        ema.update(model)
        for k, v in model.state_dict().items():
            ref[k] = ref[k] * 0.9 + v.numpy().astype("float64") * 0.1
    for k, v in ema.state_dict().items():
        np.testing.assert_allclose(v.numpy(), ref[k], rtol=2e-6, atol=1e-7, err_msg=k)
        assert id(v) == tensors[k]  # updated in place
    assert ema._pairs is not None and len(ema._pairs) == len(ref)


def test_drop_path_mask_is_drawn_in_float32():
    drawn = []
    real = paddle.rand

    def spy(shape, dtype=None, name=None):
        drawn.append(dtype)
        return real(shape, dtype=dtype)

    x = paddle.ones([64, 2, 2, 2], dtype="bfloat16")
    paddle.rand = spy
    try:
        paddle.seed(3)
        out16 = drop_path(x, 0.3, training=True)
    finally:
        paddle.rand = real
    assert drawn == ["float32"] and out16.dtype == paddle.bfloat16
    paddle.seed(3)
    out32 = drop_path(x.astype("float32"), 0.3, training=True)
    np.testing.assert_array_equal(out16.numpy() != 0, out32.numpy() != 0)  # the same samples kept
