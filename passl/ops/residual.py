"""The tail of a ConvNeXt block, ``shortcut + (gamma * branch).transpose(0, 3, 1, 2)``, as one custom CPU kernel."""

from __future__ import annotations

from typing import Optional

import paddle

from passl.ops.switch import kernels_for

__all__ = ["fused_layer_scale_residual"]


def fused_layer_scale_residual(
    shortcut: paddle.Tensor,
    branch: paddle.Tensor,
    gamma: paddle.Tensor,
    scale: Optional[paddle.Tensor] = None,
) -> Optional[paddle.Tensor]:
    """shortcut [N, C, H, W], branch [N, H, W, C] (channels last), gamma [C] -> shortcut + gamma * branch in NCHW,
    or ``None`` when the kernel does not apply (the caller then runs its own pure-Paddle form). ``scale`` [N]
    (stochastic depth: 0 for a dropped sample, 1 / keep for a kept one) multiplies each sample's branch."""
    if shortcut.ndim != 4 or branch.ndim != 4 or gamma.ndim != 1:
        return None
    ops = kernels_for(shortcut)
    if ops is None or not hasattr(ops, "passl_residual"):
        return None
    if branch.dtype != paddle.float32 or gamma.dtype != paddle.float32:
        return None
    if scale is None:
        return ops.passl_residual(shortcut, branch, gamma)
    if not hasattr(ops, "passl_residual_drop") or scale.dtype != paddle.float32:
        return None
    return ops.passl_residual_drop(shortcut, branch, gamma, scale.reshape([-1]))
