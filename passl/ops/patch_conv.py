"""Patchify convolution (kernel = stride, no padding: ConvNeXt's stem and downsampling layers) as one GEMM on the
fused Linear kernel: the patches are a pure reshape of the input, so this is exactly the convolution."""

from __future__ import annotations

from typing import Optional

import paddle

from passl.ops.norm_act import fused_linear
from passl.ops.switch import kernels_for

__all__ = ["fused_patch_conv2d", "patches_reference"]


def patches_reference(x: paddle.Tensor, p: int, q: int) -> paddle.Tensor:
    """x [N, C, H, W] -> [N, H // p, W // q, C * p * q], the patches in (C, p, q) order, in Paddle's ops (the
    reference of the ``passl_patchify`` kernel)."""
    n, c, h, w = (int(s) for s in x.shape)
    ho, wo = h // p, w // q
    if ho * p != h or wo * q != w:
        x = x[:, :, : ho * p, : wo * q]  # the convolution ignores the remainder rows and columns
    patches = x.reshape([n, c, ho, p, wo, q]).transpose([0, 2, 4, 1, 3, 5])  # (N, Ho, Wo, C, p, q)
    return patches.reshape([n, ho, wo, c * p * q])


def fused_patch_conv2d(
    x: paddle.Tensor, weight: paddle.Tensor, bias: Optional[paddle.Tensor]
) -> Optional[paddle.Tensor]:
    """x [N, C, H, W], weight [O, C, p, p], bias [O] -> [N, O, H // p, W // p] (stride p, no padding), or ``None``
    when the fused kernels do not apply."""
    ops = kernels_for(x)
    if ops is None or not hasattr(ops, "passl_linear") or bias is None:
        return None
    o, c, p, q = (int(s) for s in weight.shape)
    n, _, h, w = (int(s) for s in x.shape)
    ho, wo = h // p, w // q
    if ho == 0 or wo == 0:
        return None
    nhwc = x.transpose([0, 2, 3, 1])
    if not x.is_contiguous() and nhwc.is_contiguous():  # an NCHW view of channels-last data (after LayerNorm2d)
        patches = ops.passl_patchify(nhwc, p, q, True)  # read it in place: no strided copy either way
    else:
        patches = ops.passl_patchify(x, p, q, False)  # one pass instead of patches_reference's strided copies
    y = fused_linear(patches, weight.reshape([o, c * p * q]).transpose([1, 0]), bias)  # (N, Ho, Wo, O)
    if y is None:
        return None
    return ops.passl_to_nchw(y)  # (N, Ho, Wo, O) -> contiguous (N, O, Ho, Wo): no strided view for the next op
