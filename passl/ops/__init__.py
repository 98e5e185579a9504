"""Fused CPU kernels (Paddle custom C++ operators) with pure-Paddle fallbacks, chosen by one switch (``PASSL_OPS``).

See :mod:`passl.ops.switch` for the switch and :mod:`passl.ops.build` for the build-and-cache step.
"""

from passl.ops.dwconv import depthwise_conv2d, depthwise_conv2d_reference, fused_depthwise_conv2d
from passl.ops.norm_act import fused_gelu, fused_layer_norm, fused_layer_norm_cf, fused_linear, fused_linear_gelu
from passl.ops.patch_conv import fused_patch_conv2d
from passl.ops.residual import fused_layer_scale_residual
from passl.ops.switch import get_ops, kernels_for, set_ops

__all__ = [
    "depthwise_conv2d",
    "depthwise_conv2d_reference",
    "fused_depthwise_conv2d",
    "fused_gelu",
    "fused_layer_scale_residual",
    "fused_layer_norm",
    "fused_layer_norm_cf",
    "fused_linear",
    "fused_linear_gelu",
    "fused_patch_conv2d",
    "get_ops",
    "kernels_for",
    "set_ops",
]
