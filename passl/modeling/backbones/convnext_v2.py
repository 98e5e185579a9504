"""ConvNeXt V2 ("Co-designing and Scaling ConvNets with Masked Autoencoders", arXiv 2301.00808).

A sibling of ConvNeXt V1, not a copy: the stem, downsampling, stages, drop-path schedule, init, forward and layer
ids are V1's (``ConvNeXt``); only the block differs -- GRN(4C) after the GELU and no layer scale. The official
attribute names (``downsample_layers``, ``stages``, ``dwconv``, ``norm``, ``pwconv1``, ``grn.gamma``, ``grn.beta``,
``pwconv2``, final ``norm``) make official V2 checkpoints map one to one.
"""

from __future__ import annotations

from typing import Dict, Optional, Sequence, Tuple

from passl.modeling.backbones.convnext import CONVNEXT_ARCHS, ConvNeXt
from passl.registry import BACKBONES

__all__ = ["ConvNeXtV2", "CONVNEXT_V2_ARCHS"]

# name -> (depths, dims): the eight archs of the official repository (README table). All but huge have V1's shapes.
CONVNEXT_V2_ARCHS: Dict[str, Tuple[Tuple[int, ...], Tuple[int, ...]]] = {
    **{name: CONVNEXT_ARCHS[name] for name in ("atto", "femto", "pico", "nano", "tiny", "base", "large")},
    "huge": ((3, 3, 27, 3), (352, 704, 1408, 2816)),
}


@BACKBONES.register
class ConvNeXtV2(ConvNeXt):
    """The ConvNeXt V2 backbone: block = dwconv 7x7 -> LayerNorm -> Linear(C, 4C) -> GELU -> GRN(4C) ->
    Linear(4C, C) -> DropPath -> + input.

    Args as ``ConvNeXt`` without ``layer_scale_init_value`` (V2 has no layer scale); ``arch`` is one of
    ``CONVNEXT_V2_ARCHS`` (atto .. huge). Layer-wise lr decay defaults to the official V2 rule "single" (one id per
    block); ``optimizer.layer_decay_type: group`` selects the 12-group rule of V1 (the official one for base and
    large).

    ``forward_features(x, mask)`` with a (N, h, w) mask (1 = masked) is the masked encoder of FCMAE pre-training
    (``passl.modeling.architectures.FCMAE``; see ``ConvNeXt.forward_features`` and ``Block``).
    """

    archs = CONVNEXT_V2_ARCHS
    use_grn = True
    default_layer_decay_type = "single"

    def __init__(
        self,
        arch: Optional[str] = "tiny",
        depths: Optional[Sequence[int]] = None,
        dims: Optional[Sequence[int]] = None,
        in_chans: int = 3,
        drop_path_rate: float = 0.0,
        patch_size: int = 4,
        out_indices: Optional[Sequence[int]] = None,
    ) -> None:
        super().__init__(
            arch,
            depths,
            dims,
            in_chans,
            drop_path_rate,
            layer_scale_init_value=0.0,
            patch_size=patch_size,
            out_indices=out_indices,
        )
