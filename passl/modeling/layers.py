"""Generic layers and init helpers: the only home of DropPath, channels-first LayerNorm and truncated-normal init."""

from __future__ import annotations

import os
from typing import Dict, Optional, Tuple

import numpy as np
import paddle
import paddle.nn as nn
import paddle.nn.functional as F

from passl.ops import (
    fused_depthwise_conv2d,
    fused_gelu,
    fused_layer_norm,
    fused_layer_norm_cf,
    fused_layer_scale_residual,
    fused_linear,
    fused_linear_gelu,
    fused_patch_conv2d,
    kernels_for,
)

__all__ = [
    "DropPath",
    "layer_scale_residual",
    "linear_gelu",
    "LayerNorm",
    "LayerNorm2d",
    "GELU",
    "Linear",
    "PatchConv2D",
    "DepthwiseConv2D",
    "GRN",
    "trunc_normal_",
    "zeros_",
    "ones_",
    "init_weights_trunc_normal",
]


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


def _keep_mask(x: paddle.Tensor, keep: float) -> paddle.Tensor:
    """Stochastic depth's per-sample keep mask [N, 1, ...] of 0/1 in float32 (one draw of Paddle's generator)."""
    shape = [x.shape[0]] + [1] * (x.ndim - 1)
    # drawn in float32 whatever x's dtype: in bfloat16 (spacing 2^-7 near 1) keep + rand rounds, shifting the keep rate
    return paddle.floor(keep + paddle.rand(shape, dtype="float32"))


def drop_path(x: paddle.Tensor, drop_prob: float = 0.0, training: bool = False) -> paddle.Tensor:
    """Stochastic depth per sample: zero whole residual branches with probability ``drop_prob``, rescale the rest."""
    if drop_prob == 0.0 or not training:
        return x
    keep = 1.0 - drop_prob
    return x / keep * _keep_mask(x, keep).astype(x.dtype)


class DropPath(nn.Layer):
    """Stochastic depth; identity in eval mode or when ``drop_prob`` is 0."""

    def __init__(self, drop_prob: float = 0.0) -> None:
        super().__init__()
        self.drop_prob = float(drop_prob)

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        return drop_path(x, self.drop_prob, self.training)

    def extra_repr(self) -> str:
        return f"drop_prob={self.drop_prob}"


def layer_scale_residual(
    shortcut: paddle.Tensor, x: paddle.Tensor, gamma: Optional[paddle.Tensor], drop: nn.Layer
) -> paddle.Tensor:
    """The tail of a ConvNeXt block: ``shortcut + drop(gamma * x)`` with x channels-last [N, H, W, C] and shortcut
    and result [N, C, H, W]. One passl.ops kernel on float32 CPU tensors (with or without layer scale, with an
    active DropPath too: its mask is drawn here exactly as drop_path draws it); otherwise the pure-Paddle form."""
    active = isinstance(drop, DropPath) and drop.drop_prob > 0.0 and drop.training
    keep = 1.0 - drop.drop_prob if active else 1.0
    mask = _keep_mask(x, keep) if active else None  # drawn once, whichever form runs
    if kernels_for(shortcut) is not None and x.ndim == 4:
        g = gamma if gamma is not None else paddle.ones([x.shape[-1]], dtype=x.dtype)  # ConvNeXt V2: no layer scale
        scale = None if mask is None else mask.reshape([-1]) * (1.0 / keep)
        y = fused_layer_scale_residual(shortcut, x, g, scale)
        if y is not None:
            return y
    if gamma is not None:
        x = gamma * x
    x = x.transpose([0, 3, 1, 2])  # (N, H, W, C) -> (N, C, H, W)
    if mask is not None:
        return shortcut + x / keep * mask.astype(x.dtype)
    return shortcut + drop(x)


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
        y = fused_layer_norm_cf(x, self.weight, self.bias, self.eps)  # passl.ops: reads NCHW, writes NHWC
        if y is None:
            x = x.transpose([0, 2, 3, 1])  # (N, C, H, W) -> (N, H, W, C)
            y = fused_layer_norm(x, self.weight, self.bias, self.eps)
        if y is None:
            y = F.layer_norm(x, [self.num_channels], self.weight, self.bias, self.eps)
        return y.transpose([0, 3, 1, 2])  # (N, H, W, C) -> (N, C, H, W)

    def extra_repr(self) -> str:
        return f"{self.num_channels}, eps={self.eps}"


class GRN(nn.Layer):
    """Global Response Normalization (ConvNeXt V2, arXiv 2301.00808) over channels-last input (N, H, W, C).

    Per sample and channel: ``Gx = sqrt(sum_{h,w} x^2)`` (the L2 norm over H and W; ``paddle.linalg.norm`` over two
    axes would be a matrix norm), ``Nx = Gx / (mean_c Gx + eps)``, ``out = gamma * (x * Nx) + beta + x``. ``gamma``
    and ``beta`` have shape [C] and start at zero, so the layer starts as the identity. The statistics are computed
    in float32 under half precision (a sum of squares over H x W overflows float16), and a channel that is zero
    everywhere gets a zero gradient (as torch's norm gives) instead of the NaN of sqrt at 0.

    ``forward(x, mask)``: ``mask`` is a *visible* map (N, H, W, 1), 1 = visible site, 0 = masked (FCMAE's masked
    encoder): the statistics are taken over each sample's visible sites only (the per-sample masked GRN of the
    official JAX code), so masked sites never change a visible output; the output formula is unchanged.
    """

    def __init__(self, dim: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.dim, self.eps = dim, eps
        self.gamma = self.create_parameter([dim], default_initializer=nn.initializer.Constant(0.0))
        self.beta = self.create_parameter([dim], is_bias=True, default_initializer=nn.initializer.Constant(0.0))

    def forward(self, x: paddle.Tensor, mask: Optional[paddle.Tensor] = None) -> paddle.Tensor:
        xf = x if x.dtype == paddle.float32 else x.astype("float32")
        if mask is not None:  # statistics over the visible sites only
            xf = xf * (mask if mask.dtype == xf.dtype else mask.astype(xf.dtype))
        sq = paddle.sum(xf * xf, axis=[1, 2], keepdim=True)  # (N, 1, 1, C)
        nonzero = sq > 0
        gx = paddle.where(nonzero, paddle.sqrt(paddle.where(nonzero, sq, paddle.ones_like(sq))), sq)
        nx = gx / (gx.mean(axis=-1, keepdim=True) + self.eps)  # (N, 1, 1, C)
        if nx.dtype != x.dtype:
            nx = nx.astype(x.dtype)
        return self.gamma * (x * nx) + self.beta + x

    def extra_repr(self) -> str:
        return f"{self.dim}, eps={self.eps}"


class LayerNorm(nn.LayerNorm):
    """``nn.LayerNorm`` (same parameters and state dict) that runs the passl.ops fused CPU kernel when the
    ``PASSL_OPS`` switch allows it (float32 CPU dygraph, one normalized axis); otherwise Paddle's own."""

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        if len(self._normalized_shape) == 1:
            y = fused_layer_norm(x, self.weight, self.bias, self._epsilon)
            if y is not None:
                return y
        return super().forward(x)

    def forward_nchw(self, x: paddle.Tensor) -> paddle.Tensor:
        """x [N, C, H, W] -> this LayerNorm over C, channels-last [N, H, W, C]: one passl.ops kernel (the transpose
        fused) when it applies, else transpose + :meth:`forward`."""
        if len(self._normalized_shape) == 1:
            y = fused_layer_norm_cf(x, self.weight, self.bias, self._epsilon)
            if y is not None:
                return y
        return self.forward(x.transpose([0, 2, 3, 1]))  # (N, C, H, W) -> (N, H, W, C)


class Linear(nn.Linear):
    """``nn.Linear`` (same parameters and state dict) that runs the passl.ops fused CPU kernel (MKL sgemm with the
    bias add and its gradient fused) when the ``PASSL_OPS`` switch allows it; otherwise Paddle's own."""

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        y = fused_linear(x, self.weight, self.bias)
        return super().forward(x) if y is None else y


def _hooked(layer: nn.Layer) -> bool:
    return bool(layer._forward_pre_hooks or layer._forward_post_hooks)


def linear_gelu(linear: nn.Linear, act: nn.Layer, x: paddle.Tensor) -> paddle.Tensor:
    """``act(linear(x))``; one passl.ops kernel (the bias and GELU fused into the GEMM's pass) when ``act`` is the
    exact GELU, the kernel applies and neither layer has forward hooks (which the kernel would bypass)."""
    if isinstance(act, nn.GELU) and not act._approximate and not (_hooked(linear) or _hooked(act)):
        y = fused_linear_gelu(x, linear.weight, linear.bias)
        if y is not None:
            return y
    return act(linear(x))


class PatchConv2D(nn.Conv2D):
    """Patchify convolution (kernel = stride = ``patch``, no padding), a plain ``nn.Conv2D`` with the same
    parameters, that runs as one GEMM on the passl.ops fused Linear kernel when the ``PASSL_OPS`` switch allows it."""

    def __init__(self, in_channels: int, out_channels: int, patch: int) -> None:
        super().__init__(in_channels, out_channels, kernel_size=patch, stride=patch)

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        y = fused_patch_conv2d(x, self.weight, self.bias)
        return super().forward(x) if y is None else y


class GELU(nn.GELU):
    """Exact GELU (``nn.GELU``) that runs the passl.ops fused CPU kernel when the ``PASSL_OPS`` switch allows it."""

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        if not self._approximate:
            y = fused_gelu(x)
            if y is not None:
                return y
        return super().forward(x)


_SHIFT_BASIS: Dict[Tuple[int, int, int], paddle.Tensor] = {}


def _shift_basis(h: int, w: int, k: int) -> paddle.Tensor:
    """0/1 tensor S[t, out, in]: input pixel ``in`` feeds output pixel ``out`` through kernel tap ``t`` ("same"
    padding, stride 1). Cached per (h, w, k)."""
    key = (h, w, k)
    if key not in _SHIFT_BASIS:
        p = k // 2
        basis = np.zeros((k * k, h * w, h * w), dtype="float32")
        ys, xs = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
        out_idx = (ys * w + xs).ravel()
        for i in range(k):
            for j in range(k):
                yy, xx = (ys + i - p).ravel(), (xs + j - p).ravel()
                ok = (yy >= 0) & (yy < h) & (xx >= 0) & (xx < w)
                basis[i * k + j, out_idx[ok], (yy * w + xx)[ok]] = 1.0
        _SHIFT_BASIS[key] = paddle.to_tensor(basis)
    return _SHIFT_BASIS[key]


class DepthwiseConv2D(nn.Conv2D):
    """Depthwise "same" convolution (groups = channels, stride 1, padding k // 2): a plain ``nn.Conv2D`` with the
    same parameters, plus an exact fast path for small feature maps on CPU.

    Paddle's CPU depthwise kernel runs at about 1 GMAC/s while its GEMM runs at about 30 GFLOP/s, so small maps are
    computed as a batched matmul with a per-channel [HW, HW] matrix built from the kernel. Building that matrix does
    not scale with the batch, and the direct kernel's backward is the slow part, so the rule (measured with
    ``tools/benchmark_layers.py``) is: maps of at most 16 pixels always; at most 64 pixels (8x8) from batch 8; at
    most 196 pixels (14x14) only when gradients flow and the batch is at least 96. Only in dygraph on CPU in float32;
    GPUs, static graphs and exported models run the standard convolution. ``PASSL_DWCONV_MATMUL=0`` turns it off.
    When the passl.ops fused CPU kernels are on (``PASSL_OPS``, the default), their depthwise kernel runs instead of
    both (faster than either here).
    """

    def __init__(self, channels: int, kernel_size: int = 7) -> None:
        super().__init__(channels, channels, kernel_size, padding=kernel_size // 2, groups=channels)
        self.channels, self.k = channels, kernel_size

    def _use_matmul(self, x: paddle.Tensor) -> bool:
        if not paddle.in_dynamic_mode() or os.environ.get("PASSL_DWCONV_MATMUL", "1") == "0":
            return False
        if not x.place.is_cpu_place() or x.dtype != paddle.float32:
            return False
        n, pixels = int(x.shape[0]), int(x.shape[2]) * int(x.shape[3])
        if pixels <= 16:
            return True
        if pixels <= 64:
            return n >= 8
        if pixels <= 196:
            grads = paddle.is_grad_enabled() and not (x.stop_gradient and self.weight.stop_gradient)
            return grads and n >= 96
        return False

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        y = fused_depthwise_conv2d(x, self.weight, self.bias)  # passl.ops kernel; None when PASSL_OPS says no
        if y is not None:
            return y
        return self._matmul_forward(x) if self._use_matmul(x) else super().forward(x)

    def _matmul_forward(self, x: paddle.Tensor) -> paddle.Tensor:
        n, c, h, w = x.shape
        hw, taps = h * w, self.k * self.k
        basis = _shift_basis(h, w, self.k)  # [taps, HW_out, HW_in]
        kernel = paddle.matmul(self.weight.reshape([c, taps]), basis.reshape([taps, hw * hw])).reshape([c, hw, hw])
        cols = x.reshape([n, c, hw]).transpose([1, 2, 0])  # (N, C, HW) -> (C, HW_in, N)
        y = paddle.bmm(kernel, cols)  # (C, HW_out, N)
        y = y.transpose([2, 0, 1]).reshape([n, c, h, w])  # (C, HW, N) -> (N, C, H, W)
        return y + self.bias.reshape([1, c, 1, 1])
