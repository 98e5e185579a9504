"""Generic layers and init helpers: the only home of DropPath, channels-first LayerNorm and truncated-normal init."""

from __future__ import annotations

import paddle
import paddle.nn as nn
import paddle.nn.functional as F

__all__ = ["DropPath", "LayerNorm2d", "trunc_normal_", "zeros_", "ones_", "init_weights_trunc_normal"]


def trunc_normal_(tensor: paddle.Tensor, std: float = 0.02, a: float = -2.0, b: float = 2.0) -> paddle.Tensor:
    """Fill ``tensor`` in place from N(0, std) truncated to [a, b] (absolute bounds, as timm's trunc_normal_)."""
    init = nn.initializer.TruncatedNormal(mean=0.0, std=std, a=a, b=b)
    init(tensor)
    return tensor


def zeros_(tensor: paddle.Tensor) -> paddle.Tensor:
    nn.initializer.Constant(0.0)(tensor)
    return tensor


def ones_(tensor: paddle.Tensor) -> paddle.Tensor:
    nn.initializer.Constant(1.0)(tensor)
    return tensor


def init_weights_trunc_normal(layer: nn.Layer, std: float = 0.02) -> None:
    """The ConvNeXt init: truncated normal for every Conv2D/Linear weight, zero bias."""
    if isinstance(layer, (nn.Conv2D, nn.Linear)):
        trunc_normal_(layer.weight, std=std)
        if layer.bias is not None:
            zeros_(layer.bias)


def drop_path(x: paddle.Tensor, drop_prob: float = 0.0, training: bool = False) -> paddle.Tensor:
    """Stochastic depth per sample: zero whole residual branches with probability ``drop_prob``, rescale the rest."""
    if drop_prob == 0.0 or not training:
        return x
    keep = 1.0 - drop_prob
    shape = [x.shape[0]] + [1] * (x.ndim - 1)
    mask = paddle.floor(keep + paddle.rand(shape, dtype=x.dtype))
    return x / keep * mask


class DropPath(nn.Layer):
    """Stochastic depth; identity in eval mode or when ``drop_prob`` is 0."""

    def __init__(self, drop_prob: float = 0.0) -> None:
        super().__init__()
        self.drop_prob = float(drop_prob)

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        return drop_path(x, self.drop_prob, self.training)

    def extra_repr(self) -> str:
        return f"drop_prob={self.drop_prob}"


class LayerNorm2d(nn.Layer):
    """LayerNorm over the channel axis of an NCHW tensor ("channels_first" in the official code).

    Parameters are named ``weight`` and ``bias`` of shape [C], as the official checkpoints have them.
    Computed as transpose -> fused layer_norm -> transpose, the fastest exact form measured on Paddle CPU
    (see docs/architecture.md).
    """

    def __init__(self, num_channels: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.num_channels = num_channels
        self.eps = eps
        self.weight = self.create_parameter([num_channels], default_initializer=nn.initializer.Constant(1.0))
        self.bias = self.create_parameter(
            [num_channels], is_bias=True, default_initializer=nn.initializer.Constant(0.0)
        )

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        x = x.transpose([0, 2, 3, 1])  # (N, C, H, W) -> (N, H, W, C)
        x = F.layer_norm(x, [self.num_channels], self.weight, self.bias, self.eps)
        return x.transpose([0, 3, 1, 2])  # (N, H, W, C) -> (N, C, H, W)

    def extra_repr(self) -> str:
        return f"{self.num_channels}, eps={self.eps}"
