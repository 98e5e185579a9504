"""FCMAE: the fully convolutional masked autoencoder of ConvNeXt V2 (arXiv 2301.00808), in dense masked form.

The official pre-training runs the encoder as a sparse network (MinkowskiEngine). Here the encoder is the ConvNeXt V2
backbone run in masked mode (``ConvNeXt.forward_features(x, mask)``): the stem output is multiplied by the visible
map, every block masks its depthwise conv's input and output, and GRN takes its statistics over each sample's visible
sites (the per-sample form of the official JAX code). Every layer is then either per site, a convolution that reads
visible sites only, or a 2x2 downsampling whose windows lie inside one mask cell, so a visible output is computed from
visible inputs only -- the value the sparse encoder computes there.

Decoder and loss follow the official ``models/fcmae.py``: 1x1 ``proj`` to ``decoder_embed_dim``, masked sites
replaced by ``mask_token``, ``decoder_depth`` dense V2 blocks, 1x1 ``pred`` to ``patch_size**2 * in_chans`` values
per mask cell; the target is the patchified input image (element order (p, q, c), c fastest), normalised per patch
with the unbiased variance when ``norm_pix_loss``; the loss is the mean squared error over a patch, averaged over
the masked patches of the batch.

Init: the encoder, ``proj``, ``pred`` and the decoder blocks use passl's usual truncated normal (std .02, zero bias)
on every Conv2D and Linear weight; ``mask_token`` is normal with std .02. The official PyTorch ``fcmae.py`` applies a
truncated normal of std 1.0 to several tensors (depthwise kernels, sparse Linear layers and the dense Conv2Ds: stem,
``proj``, ``pred``, decoder depthwise conv); we keep .02, the ConvNeXt init the rest of the library uses.
"""

from __future__ import annotations

from typing import Any, Dict, Mapping, Optional

import paddle
import paddle.nn as nn

from passl.modeling.architectures.classification import backbone_config
from passl.modeling.backbones import build_backbone
from passl.modeling.backbones.convnext import Block, ConvNeXt
from passl.modeling.layers import init_weights_trunc_normal
from passl.registry import ARCHITECTURES, ConfigError

__all__ = ["FCMAE", "patchify", "unpatchify", "patch_mean_std"]


def patchify(imgs: paddle.Tensor, patch: int) -> paddle.Tensor:
    """(N, C, H, W) -> (N, L, patch * patch * C), L = (H / patch) * (W / patch) in row-major order; within a
    patch the values run (p, q, c) with c fastest, as the official ``patchify``."""
    n, c, h, w = imgs.shape
    gh, gw = h // patch, w // patch
    x = imgs.reshape([n, c, gh, patch, gw, patch]).transpose([0, 2, 4, 3, 5, 1])  # (N, gh, gw, p, q, C)
    return x.reshape([n, gh * gw, patch * patch * c])


def unpatchify(x: paddle.Tensor, patch: int, grid_h: int, grid_w: int) -> paddle.Tensor:
    """The inverse of :func:`patchify`: (N, L, patch * patch * C) -> (N, C, grid_h * patch, grid_w * patch)."""
    n, _, d = x.shape
    c = d // (patch * patch)
    x = x.reshape([n, grid_h, grid_w, patch, patch, c]).transpose([0, 5, 1, 3, 2, 4])  # (N, C, gh, p, gw, q)
    return x.reshape([n, c, grid_h * patch, grid_w * patch])


def patch_mean_std(patches: paddle.Tensor):
    """Per-patch mean and sqrt(unbiased variance + 1e-6) of (N, L, D) patches, each (N, L, 1) (the official
    ``norm_pix_loss`` statistics; ``torch.var`` is unbiased by default)."""
    mean = patches.mean(axis=-1, keepdim=True)
    dev = patches - mean
    var = (dev * dev).sum(axis=-1, keepdim=True) / (int(patches.shape[-1]) - 1)
    return mean, paddle.sqrt(var + 1.0e-6)


@ARCHITECTURES.register
class FCMAE(nn.Layer):
    """FCMAE pre-training model: ``forward(imgs)`` returns the scalar loss.

    Args:
        architecture: the encoder's backbone config (alias ``backbone``), a ConvNeXt V2 (``name`` defaults to
            ``ConvNeXtV2``); its final norm is dropped (pre-training does not use it).
        patch_size: the mask cell in input pixels; ``None`` = the encoder's total stride (stem patch x 2 per
            downsampling), the only value the official model allows.
        mask_ratio: fraction of mask cells removed per sample (int(L * (1 - ratio)) stay visible).
        decoder_embed_dim, decoder_depth: width of ``proj``/``mask_token``/decoder blocks, and their number.
        norm_pix_loss: normalise each target patch by its mean and (unbiased) variance.
        pretrained, pretrained_ema, drop_head: read by the trainer and tools when they load weights, as for
            ``Classification``.
    """

    self_supervised = True  # labels unused: the trainer skips class checks; eval/export/predict refuse its configs

    def __init__(
        self,
        architecture: Optional[Mapping[str, Any]] = None,
        patch_size: Optional[int] = None,
        mask_ratio: float = 0.6,
        decoder_embed_dim: int = 512,
        decoder_depth: int = 1,
        norm_pix_loss: bool = True,
        pretrained: Optional[str] = None,
        pretrained_ema: bool = False,
        drop_head: bool = False,
        backbone: Optional[Mapping[str, Any]] = None,
    ) -> None:
        super().__init__()
        arch_cfg = dict(backbone_config(architecture, backbone, what="FCMAE encoder's backbone"))
        arch_cfg.setdefault("name", "ConvNeXtV2")
        if arch_cfg.get("out_indices") is not None:
            raise ConfigError("model.architecture.out_indices must be null for FCMAE (the encoder feeds the decoder)")
        if not 0.0 < float(mask_ratio) < 1.0:
            raise ConfigError(f"model.mask_ratio must be in (0, 1), got {mask_ratio}")
        if int(decoder_embed_dim) < 1 or int(decoder_depth) < 0:
            raise ConfigError(
                f"model.decoder_embed_dim must be >= 1 and model.decoder_depth >= 0, got {decoder_embed_dim} and "
                f"{decoder_depth}"
            )
        self.encoder = build_backbone(arch_cfg)
        if not isinstance(self.encoder, ConvNeXt):
            raise ConfigError(
                f"model.architecture.name: FCMAE needs a ConvNeXt encoder (ConvNeXtV2), got {arch_cfg['name']}"
            )
        self.encoder.norm = None  # the final norm is not used in pre-training: no parameter left without gradient

        stem = self.encoder.downsample_layers[0][0]
        self.in_chans = int(stem.weight.shape[1])
        stride = int(stem.weight.shape[2]) * 2 ** (len(self.encoder.dims) - 1)
        if patch_size is None:
            patch_size = stride
        if int(patch_size) != stride:
            raise ConfigError(
                f"model.patch_size is {patch_size} but the encoder's total stride is {stride} (stem patch "
                f"{int(stem.weight.shape[2])} x 2^{len(self.encoder.dims) - 1}); set model.patch_size: {stride} or "
                f"null"
            )
        self.patch_size = int(patch_size)
        if norm_pix_loss and self.patch_size**2 * self.in_chans < 2:
            raise ConfigError(
                "model.norm_pix_loss needs at least two values per patch (patch_size^2 x in_chans); set it false"
            )
        self.mask_ratio = float(mask_ratio)
        self.norm_pix_loss = bool(norm_pix_loss)
        self.decoder_embed_dim, self.decoder_depth = int(decoder_embed_dim), int(decoder_depth)
        self.pretrained, self.pretrained_ema, self.drop_head = pretrained, pretrained_ema, drop_head

        d = self.decoder_embed_dim
        self.proj = nn.Conv2D(self.encoder.dims[-1], d, 1)
        self.mask_token = self.create_parameter(
            [1, d, 1, 1], default_initializer=nn.initializer.Normal(mean=0.0, std=0.02)
        )
        self.decoder = nn.Sequential(
            *[Block(d, drop_path=0.0, layer_scale_init_value=0.0, use_grn=True) for _ in range(self.decoder_depth)]
        )
        self.pred = nn.Conv2D(d, self.patch_size**2 * self.in_chans, 1)
        for layer in (self.proj, self.decoder, self.pred):
            layer.apply(init_weights_trunc_normal)

    # ------------------------------------------------------------------------------------------------ masks
    def random_mask(self, n: int, grid_h: int, grid_w: int) -> paddle.Tensor:
        """(N, L) float32, 1 = masked, 0 = visible, L = grid_h * grid_w: per sample, the cells with the
        int(L * (1 - mask_ratio)) smallest of L standard-normal draws stay visible (the official rule). Draws from
        Paddle's global generator, so a seeded (or resumed) run gets the same masks."""
        length = int(grid_h) * int(grid_w)
        keep = int(length * (1 - self.mask_ratio))
        noise = paddle.randn([int(n), length])
        rank = paddle.argsort(paddle.argsort(noise, axis=1), axis=1)  # each cell's position in the shuffled order
        return (rank >= keep).astype("float32")

    def _grid(self, imgs: paddle.Tensor):
        if imgs.ndim != 4 or int(imgs.shape[1]) != self.in_chans:
            raise ConfigError(
                f"FCMAE: the input must be (N, {self.in_chans}, H, W) images, got shape {list(imgs.shape)}"
            )
        h, w, p = int(imgs.shape[2]), int(imgs.shape[3]), self.patch_size
        if h % p or w % p:
            raise ConfigError(
                f"FCMAE: input size {h}x{w} is not divisible by the mask patch_size {p}; use an input size that is "
                f"a multiple of {p} (e.g. {max(p, h // p * p)}x{max(p, w // p * p)})"
            )
        return h // p, w // p

    def _check_mask(self, mask: paddle.Tensor, n: int, gh: int, gw: int) -> paddle.Tensor:
        if list(mask.shape) not in ([n, gh * gw], [n, gh, gw]):
            raise ConfigError(
                f"FCMAE: mask must have shape (N, L) = ({n}, {gh * gw}) for a {gh}x{gw} mask grid (input / "
                f"patch_size {self.patch_size}), got {list(mask.shape)}"
            )
        return mask.reshape([n, gh * gw]).astype("float32")

    # --------------------------------------------------------------------------------------------- forward
    def forward_encoder_decoder(self, imgs: paddle.Tensor, mask: paddle.Tensor, gh: int, gw: int) -> paddle.Tensor:
        """Prediction (N, L, patch^2 * C) for the (N, L) mask (1 = masked)."""
        n = int(imgs.shape[0])
        m = mask.reshape([n, gh, gw])
        x = self.proj(self.encoder.forward_features(imgs, m))
        mk = m.unsqueeze(1).astype(x.dtype)
        x = x * (1.0 - mk) + self.mask_token.astype(x.dtype) * mk  # masked sites -> the mask token
        x = self.pred(self.decoder(x))  # (N, p*p*C, gh, gw)
        return x.reshape([n, int(x.shape[1]), gh * gw]).transpose([0, 2, 1])

    def target_of(self, imgs: paddle.Tensor) -> paddle.Tensor:
        """The float32 target (N, L, patch^2 * C): patches, normalised per patch when ``norm_pix_loss``."""
        target = patchify(imgs.astype("float32"), self.patch_size)
        if self.norm_pix_loss:
            mean, std = patch_mean_std(target)
            target = (target - mean) / std
        return target

    def forward_loss(self, pred: paddle.Tensor, target: paddle.Tensor, mask: paddle.Tensor) -> paddle.Tensor:
        """Mean squared error per patch, averaged over the masked patches; float32."""
        loss = ((pred.astype("float32") - target) ** 2).mean(axis=-1)  # (N, L)
        return (loss * mask).sum() / mask.sum()

    def forward(
        self,
        imgs: paddle.Tensor,
        mask: Optional[paddle.Tensor] = None,
        target: Optional[paddle.Tensor] = None,
        return_all: bool = False,
    ):
        """The loss of ``imgs`` (N, C, H, W, normalised) under ``mask`` (N, L) (default: :meth:`random_mask`);
        ``target``: the images the targets are built from (default ``imgs``). ``return_all`` returns a dict of
        ``loss``, ``pred`` (N, L, p*p*C), ``mask`` (N, L) and ``target`` (N, L, p*p*C)."""
        gh, gw = self._grid(imgs)
        n = int(imgs.shape[0])
        mask = self.random_mask(n, gh, gw) if mask is None else self._check_mask(mask, n, gh, gw)
        if target is not None and list(target.shape) != list(imgs.shape):
            raise ConfigError(f"FCMAE: target shape {list(target.shape)} differs from the input's {list(imgs.shape)}")
        pred = self.forward_encoder_decoder(imgs, mask, gh, gw)
        with paddle.amp.auto_cast(enable=False):  # the loss in float32 whatever the AMP level
            tgt = self.target_of(imgs if target is None else target)
            loss = self.forward_loss(pred, tgt, mask)
        if return_all:
            return {"loss": loss, "pred": pred, "mask": mask, "target": tgt}
        return loss

    def compute_loss(self, output: paddle.Tensor, targets: Any = None) -> paddle.Tensor:
        """The trainer's hook: ``forward`` already returned the loss; labels are not used in pre-training."""
        return output

    @paddle.no_grad()
    def reconstruct(self, imgs: paddle.Tensor, mask: Optional[paddle.Tensor] = None) -> Dict[str, paddle.Tensor]:
        """For pictures: ``mask_img`` (N, 1, H, W), 1 = masked pixel, and ``pred_img`` (N, C, H, W), the prediction
        in the input's normalised space (with ``norm_pix_loss`` un-normalised per patch with the mean and standard
        deviation of the input's own patch, as the paper's figures). Runs in eval mode (no drop path); every
        sub-layer's train/eval mode is restored afterwards."""
        modes = [(layer, layer.training) for layer in self.sublayers(include_self=True)]
        tracer = paddle.base.framework._dygraph_tracer() if paddle.in_dynamic_mode() else None
        tracer_mode = tracer._train_mode if tracer is not None else None
        self.eval()
        try:
            gh, gw = self._grid(imgs)
            n = int(imgs.shape[0])
            mask = self.random_mask(n, gh, gw) if mask is None else self._check_mask(mask, n, gh, gw)
            pred = self.forward_encoder_decoder(imgs, mask, gh, gw).astype("float32")
            if self.norm_pix_loss:
                mean, std = patch_mean_std(patchify(imgs.astype("float32"), self.patch_size))
                pred = pred * std + mean
            p2 = self.patch_size**2
            mask_img = unpatchify(mask.unsqueeze(-1).tile([1, 1, p2]), self.patch_size, gh, gw)
            return {"mask_img": mask_img, "pred_img": unpatchify(pred, self.patch_size, gh, gw)}
        finally:
            for layer, training in modes:
                layer.training = training
            if tracer is not None:
                tracer._train_mode = tracer_mode
