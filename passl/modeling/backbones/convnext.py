"""ConvNeXt ("A ConvNet for the 2020s", arXiv 2201.03545), with the official attribute names so that official
checkpoints map one to one: downsample_layers, stages, dwconv, norm, pwconv1, pwconv2, gamma, norm.

The stem, downsampling, stage layout, drop-path schedule, init and layer ids here are shared with ConvNeXt V2
(``convnext_v2.py``), which subclasses ``ConvNeXt`` and switches the block to GRN without layer scale."""

from __future__ import annotations

from typing import Dict, Optional, Sequence, Tuple, Union

import paddle
import paddle.nn as nn

from passl.modeling.layers import (
    GELU,
    GRN,
    DepthwiseConv2D,
    DropPath,
    LayerNorm,
    LayerNorm2d,
    Linear,
    PatchConv2D,
    init_weights_trunc_normal,
    layer_scale_residual,
    linear_gelu,
)
from passl.registry import BACKBONES, ConfigError

__all__ = ["ConvNeXt", "Block", "CONVNEXT_ARCHS"]

# Variants as data: name -> (depths, dims). atto..nano are timm's small variants; tiny..xlarge are the paper's.
CONVNEXT_ARCHS: Dict[str, Tuple[Tuple[int, ...], Tuple[int, ...]]] = {
    "atto": ((2, 2, 6, 2), (40, 80, 160, 320)),
    "femto": ((2, 2, 6, 2), (48, 96, 192, 384)),
    "pico": ((2, 2, 6, 2), (64, 128, 256, 512)),
    "nano": ((2, 2, 8, 2), (80, 160, 320, 640)),
    "tiny": ((3, 3, 9, 3), (96, 192, 384, 768)),
    "small": ((3, 3, 27, 3), (96, 192, 384, 768)),
    "base": ((3, 3, 27, 3), (128, 256, 512, 1024)),
    "large": ((3, 3, 27, 3), (192, 384, 768, 1536)),
    "xlarge": ((3, 3, 27, 3), (256, 512, 1024, 2048)),
}


class Block(nn.Layer):
    """dwconv 7x7 -> LayerNorm -> Linear(C, 4C) -> GELU -> Linear(4C, C) -> gamma -> DropPath -> + input.

    ``use_grn`` inserts GRN(4C) after the GELU (the ConvNeXt V2 block, used with ``layer_scale_init_value=0``).

    ``forward(x, visible)`` with a visible map (N, 1, H, W) (1 = visible site, 0 = masked) is the dense form of the
    sparse block of FCMAE pre-training: the input is masked before the depthwise conv (masked neighbours contribute
    nothing), its output is masked again (a sparse conv has outputs only at active sites) and GRN takes its
    statistics over each sample's visible sites. LayerNorm, the MLP and the residual add are per site, so a visible
    output reads visible inputs only. Masked sites keep values that are never read by a visible site.
    ``visible=None`` is the plain block, unchanged. (The mask after the dwconv, like the one after the stem, changes
    no visible output -- the next dwconv's input is masked and GRN ignores masked sites; both are kept as in the
    official JAX code. The input mask and the GRN statistics are the load-bearing parts: tests/modeling/test_fcmae.py
    fails without either.)"""

    def __init__(
        self, dim: int, drop_path: float = 0.0, layer_scale_init_value: float = 1e-6, use_grn: bool = False
    ) -> None:
        super().__init__()
        self.dwconv = DepthwiseConv2D(dim, kernel_size=7)
        self.norm = LayerNorm(dim, epsilon=1e-6)
        self.pwconv1 = Linear(dim, 4 * dim)
        self.act = GELU()
        self.grn = GRN(4 * dim) if use_grn else None
        self.pwconv2 = Linear(4 * dim, dim)
        if layer_scale_init_value > 0:
            self.gamma = self.create_parameter(
                [dim], default_initializer=nn.initializer.Constant(layer_scale_init_value)
            )
        else:
            self.gamma = None
        self.drop_path = DropPath(drop_path) if drop_path > 0.0 else nn.Identity()

    def forward(self, x: paddle.Tensor, visible: Optional[paddle.Tensor] = None) -> paddle.Tensor:
        shortcut = x
        if visible is not None:
            visible = visible if visible.dtype == x.dtype else visible.astype(x.dtype)
            x = self.dwconv(x * visible) * visible
        else:
            x = self.dwconv(x)
        x = self.norm.forward_nchw(x)  # (N, C, H, W) -> normalized (N, H, W, C)
        x = linear_gelu(self.pwconv1, self.act, x)  # pwconv1 -> GELU (one fused kernel on CPU)
        if self.grn is not None:
            x = self.grn(x, None if visible is None else visible.transpose([0, 2, 3, 1]))
        x = self.pwconv2(x)
        return layer_scale_residual(shortcut, x, self.gamma, self.drop_path)  # gamma, NHWC -> NCHW, drop path, add


@BACKBONES.register
class ConvNeXt(nn.Layer):
    """The ConvNeXt backbone.

    Args:
        arch: one of ``CONVNEXT_ARCHS`` (atto .. xlarge); ignored when both ``depths`` and ``dims`` are given.
        depths, dims: explicit blocks per stage and channels per stage (a custom variant).
        in_chans: input channels.
        drop_path_rate: stochastic depth at the last block; rates grow linearly from 0 over all blocks.
        layer_scale_init_value: initial gamma; <= 0 disables layer scale.
        patch_size: stem conv kernel and stride (4 officially; 2 or 1 suit small images such as 28x28).
        out_indices: ``None`` returns the pooled, normalized feature [N, C]; a tuple of stage indices returns those
            stages' feature maps (each normalized by its own ``out_norms`` LayerNorm) for dense tasks.
    """

    archs = CONVNEXT_ARCHS
    use_grn = False  # the V2 block (GRN, no layer scale) in ConvNeXtV2

    def __init__(
        self,
        arch: Optional[str] = "tiny",
        depths: Optional[Sequence[int]] = None,
        dims: Optional[Sequence[int]] = None,
        in_chans: int = 3,
        drop_path_rate: float = 0.0,
        layer_scale_init_value: float = 1e-6,
        patch_size: int = 4,
        out_indices: Optional[Sequence[int]] = None,
    ) -> None:
        super().__init__()
        if depths is None or dims is None:
            if arch not in self.archs:
                raise ConfigError(
                    f"{type(self).__name__}: unknown arch '{arch}'; use one of {', '.join(self.archs)} "
                    f"or give both depths and dims"
                )
            depths = depths or self.archs[arch][0]
            dims = dims or self.archs[arch][1]
        depths, dims = tuple(int(d) for d in depths), tuple(int(d) for d in dims)
        if len(depths) != len(dims) or not depths:
            raise ConfigError(
                f"{type(self).__name__}: depths {depths} and dims {dims} must be non-empty and of equal length"
            )
        if not 0.0 <= float(drop_path_rate) < 1.0:
            raise ConfigError(f"{type(self).__name__}: drop_path_rate must be in [0, 1), got {drop_path_rate}")
        self.depths, self.dims = depths, dims
        self.num_features = dims[-1]
        self.out_indices = tuple(out_indices) if out_indices is not None else None
        if self.out_indices is not None:
            bad = [i for i in self.out_indices if not 0 <= i < len(dims)]
            if bad:
                raise ConfigError(f"{type(self).__name__}: out_indices {bad} out of range for {len(dims)} stages")

        self.downsample_layers = nn.LayerList()
        stem = nn.Sequential(PatchConv2D(in_chans, dims[0], patch_size), LayerNorm2d(dims[0], eps=1e-6))
        self.downsample_layers.append(stem)
        for i in range(len(dims) - 1):
            self.downsample_layers.append(
                nn.Sequential(LayerNorm2d(dims[i], eps=1e-6), PatchConv2D(dims[i], dims[i + 1], 2))
            )

        rates = [float(r) for r in paddle.linspace(0, float(drop_path_rate), sum(depths)).numpy()]
        self.stages = nn.LayerList()
        cur = 0
        for i, depth in enumerate(depths):
            self.stages.append(
                nn.Sequential(
                    *[
                        Block(dims[i], rates[cur + j], float(layer_scale_init_value), use_grn=self.use_grn)
                        for j in range(depth)
                    ]
                )
            )
            cur += depth

        if self.out_indices is None:
            self.norm = nn.LayerNorm(dims[-1], epsilon=1e-6)  # final norm after global average pooling
        else:
            self.out_norms = nn.LayerList([LayerNorm2d(dims[i], eps=1e-6) for i in self.out_indices])
        self.apply(init_weights_trunc_normal)

    # Layer-wise lr decay, two official rules (optim_factory of facebookresearch/ConvNeXt and ConvNeXt-V2); the lr
    # scale of id i is layer_decay ** (count - 1 - i).
    # "group" (get_num_layer_for_convnext, V1's only rule, V2 base/large): 12 ids plus one for the final norm and
    # the head. Stem -> 0; downsample 1, 2 -> 2, 3; stages 0, 1 -> 1, 2; stage 2 block j -> 3 + j // 3 for its 27
    # blocks; stage 3 and downsample 3 -> 12; everything else -> 13. For other stage-2 depths (tiny: 9, atto: 6) the
    # blocks are spread over the same nine ids 3..11 in order: 3 + (j * 9) // depth (equal to j // 3 at depth 27).
    # "single" (get_num_layer_for_convnext_single, V2's default): one id per block, sum(depths[:s]) + j + 1; a
    # downsampling layer (the stem too) shares the id of the first block of its stage; everything else (final norm,
    # head) -> sum(depths) + 1. Id 0 is unused, as in the official code.
    num_layer_ids = 14  # of the "group" rule
    default_layer_decay_type = "group"
    LAYER_DECAY_TYPES = ("group", "single")

    def layer_id_count(self, decay_type: str = "group") -> int:
        """How many layer ids ``decay_type`` uses (the head's id is this minus one)."""
        return self.num_layer_ids if decay_type == "group" else sum(self.depths) + 2

    def get_layer_id(self, name: str, decay_type: str = "group") -> int:
        """Layer id of a parameter name relative to this backbone (``stages.2.5.pwconv1.weight`` -> 4 for base)."""
        if decay_type not in self.LAYER_DECAY_TYPES:
            raise ConfigError(
                f"optimizer.layer_decay_type must be one of {', '.join(self.LAYER_DECAY_TYPES)}, got {decay_type!r}"
            )
        parts = name.split(".")
        if decay_type == "single":
            if parts[0] in ("downsample_layers", "stages"):
                stage = int(parts[1])
                return sum(self.depths[:stage]) + (int(parts[2]) if parts[0] == "stages" else 0) + 1
            return sum(self.depths) + 1
        if len(self.depths) != 4:
            raise ConfigError(
                "layer-wise lr decay is defined for 4-stage ConvNeXt models; set optimizer.layer_decay: null"
            )
        if parts[0] == "downsample_layers":
            return {0: 0, 1: 2, 2: 3, 3: 12}[int(parts[1])]
        if parts[0] == "stages":
            stage, block = int(parts[1]), int(parts[2])
            if stage < 2:
                return stage + 1
            if stage == 2:
                return 3 + (block * 9) // self.depths[2]
            return 12
        return 13

    def forward_features(
        self, x: paddle.Tensor, mask: Optional[paddle.Tensor] = None
    ) -> Union[paddle.Tensor, Tuple[paddle.Tensor, ...]]:
        """Stage outputs: the last feature map, or the ``out_indices`` maps (normalized) when set.

        ``mask`` (N, h, w), 1 = masked, runs the masked encoder of FCMAE pre-training (dense, equal to the sparse
        one on every visible site): the mask is upsampled (nearest) to each stage's grid, the stem output is
        multiplied by the visible map and every block runs masked (see ``Block``). Each stage's grid must be a
        multiple of (h, w), so that mask cells align with the 2x2 downsampling windows. Values at masked sites of
        the output are meaningless. ``mask=None`` is the plain forward, unchanged."""
        if mask is not None:
            return self._forward_features_masked(x, mask)
        outs = []
        for i, (down, stage) in enumerate(zip(self.downsample_layers, self.stages)):
            x = stage(down(x))
            if self.out_indices is not None and i in self.out_indices:
                outs.append(self.out_norms[self.out_indices.index(i)](x))
        return tuple(outs) if self.out_indices is not None else x

    def _forward_features_masked(
        self, x: paddle.Tensor, mask: paddle.Tensor
    ) -> Union[paddle.Tensor, Tuple[paddle.Tensor, ...]]:
        if mask.ndim != 3 or int(mask.shape[0]) != int(x.shape[0]):
            raise ConfigError(
                f"{type(self).__name__}.forward_features: mask must have shape (N, h, w) with N = {x.shape[0]} "
                f"(the batch), got {list(mask.shape)}"
            )
        grid_h, grid_w = int(mask.shape[1]), int(mask.shape[2])
        visible = (1.0 - mask.astype("float32")).unsqueeze(1)  # (N, 1, h, w), 1 = visible
        outs = []
        for i, (down, stage) in enumerate(zip(self.downsample_layers, self.stages)):
            x = down(x)
            h, w = int(x.shape[2]), int(x.shape[3])
            if h % grid_h or w % grid_w:
                raise ConfigError(
                    f"{type(self).__name__}: stage {i} grid {h}x{w} is not a multiple of the mask grid "
                    f"{grid_h}x{grid_w}; the mask cell must cover whole last-stage cells"
                )
            vis = visible
            if h != grid_h:
                vis = vis.repeat_interleave(h // grid_h, axis=2)
            if w != grid_w:
                vis = vis.repeat_interleave(w // grid_w, axis=3)
            vis = vis if vis.dtype == x.dtype else vis.astype(x.dtype)
            if i == 0:
                x = x * vis  # after the stem: masked patches are removed (sparse: not active)
            for block in stage:
                x = block(x, vis)
            if self.out_indices is not None and i in self.out_indices:
                outs.append(self.out_norms[self.out_indices.index(i)](x))
        return tuple(outs) if self.out_indices is not None else x

    def forward(self, x: paddle.Tensor) -> Union[paddle.Tensor, Tuple[paddle.Tensor, ...]]:
        feats = self.forward_features(x)
        if self.out_indices is not None:
            return feats
        return self.norm(feats.mean(axis=[-2, -1]))  # global average pool (N, C, H, W) -> (N, C), then LayerNorm
