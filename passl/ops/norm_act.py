"""LayerNorm over the last axis and exact GELU: the custom CPU kernels when the switch allows them."""

from __future__ import annotations

from typing import Optional

import paddle

from passl.ops.switch import kernels_for

__all__ = ["fused_layer_norm", "fused_layer_norm_cf", "fused_gelu", "fused_linear", "fused_linear_gelu"]


def fused_layer_norm(
    x: paddle.Tensor, weight: Optional[paddle.Tensor], bias: Optional[paddle.Tensor], eps: float
) -> Optional[paddle.Tensor]:
    """LayerNorm of ``x`` over its last axis (affine), or ``None`` when the kernel does not apply."""
    if weight is None or bias is None or x.ndim < 2:
        return None
    ops = kernels_for(x)
    if ops is None or weight.dtype != paddle.float32 or bias.dtype != paddle.float32:
        return None
    return ops.passl_layer_norm(x, weight, bias, float(eps))[0]


def fused_layer_norm_cf(
    x: paddle.Tensor, weight: Optional[paddle.Tensor], bias: Optional[paddle.Tensor], eps: float
) -> Optional[paddle.Tensor]:
    """LayerNorm over the channels of x [N, C, H, W], returned channels-last [N, H, W, C] (the transpose fused), or
    ``None`` when the kernel does not apply."""
    if weight is None or bias is None or x.ndim != 4:
        return None
    ops = kernels_for(x)
    if ops is None or not hasattr(ops, "passl_layer_norm_cf"):
        return None
    if weight.dtype != paddle.float32 or bias.dtype != paddle.float32:
        return None
    return ops.passl_layer_norm_cf(x, weight, bias, float(eps))[0]


def fused_gelu(x: paddle.Tensor) -> Optional[paddle.Tensor]:
    """Exact (erf) GELU of ``x``, or ``None`` when the kernel does not apply."""
    ops = kernels_for(x)
    return None if ops is None else ops.passl_gelu(x)


def fused_linear(x: paddle.Tensor, weight: paddle.Tensor, bias: Optional[paddle.Tensor]) -> Optional[paddle.Tensor]:
    """``x @ weight + bias`` (weight [in, out]) on MKL's sgemm, or ``None`` when the kernel does not apply."""
    if bias is None or weight.ndim != 2:
        return None
    ops = kernels_for(x)
    if ops is None or not hasattr(ops, "passl_linear") or weight.dtype != paddle.float32:
        return None
    return ops.passl_linear(x, weight, bias)


def fused_linear_gelu(
    x: paddle.Tensor, weight: paddle.Tensor, bias: Optional[paddle.Tensor]
) -> Optional[paddle.Tensor]:
    """Exact ``gelu(x @ weight + bias)`` (weight [in, out]) as one kernel (the block's fc1 + GELU), or ``None`` when
    it does not apply."""
    if bias is None or weight.ndim != 2:
        return None
    ops = kernels_for(x)
    if ops is None or not hasattr(ops, "passl_linear_gelu") or weight.dtype != paddle.float32:
        return None
    if bias.dtype != paddle.float32:
        return None
    return ops.passl_linear_gelu(x, weight, bias)[0]
