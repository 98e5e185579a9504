"""Depthwise "same" convolution with a fused bias: the custom CPU kernel when the switch allows it."""

from __future__ import annotations

from typing import Optional

import paddle
import paddle.nn.functional as F

from passl.ops.switch import kernels_for

__all__ = ["fused_depthwise_conv2d", "depthwise_conv2d", "depthwise_conv2d_reference"]

_KERNEL_SIZES = (3, 5, 7, 9)


def depthwise_conv2d_reference(x: paddle.Tensor, weight: paddle.Tensor, bias: paddle.Tensor) -> paddle.Tensor:
    """The pure-Paddle form: ``conv2d`` with groups = channels, stride 1, padding k // 2."""
    return F.conv2d(x, weight, bias, padding=int(weight.shape[-1]) // 2, groups=int(x.shape[1]))


def fused_depthwise_conv2d(x: paddle.Tensor, weight: paddle.Tensor, bias: paddle.Tensor) -> Optional[paddle.Tensor]:
    """The fused kernel's output, or ``None`` when it does not apply (switch off, not float32 CPU dygraph, no build,
    kernel size outside 3/5/7/9): the caller then runs its own pure-Paddle form."""
    k = int(weight.shape[-1])
    if k not in _KERNEL_SIZES or tuple(weight.shape) != (int(x.shape[1]), 1, k, k) or bias is None:
        return None
    ops = kernels_for(x)
    if ops is None or weight.dtype != paddle.float32:
        return None
    return ops.passl_dwconv(x, weight, bias)


def depthwise_conv2d(x: paddle.Tensor, weight: paddle.Tensor, bias: paddle.Tensor) -> paddle.Tensor:
    """x [N, C, H, W], weight [C, 1, k, k] (k odd), bias [C] -> [N, C, H, W]; fused kernel or ``conv2d``."""
    y = fused_depthwise_conv2d(x, weight, bias)
    return depthwise_conv2d_reference(x, weight, bias) if y is None else y
