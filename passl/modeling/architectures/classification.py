"""Classification: backbone + head; ``forward(x)`` returns logits."""

from __future__ import annotations

from typing import Any, Mapping, Optional

import paddle
import paddle.nn as nn

from passl.modeling.backbones import build_backbone
from passl.modeling.heads import build_head, build_loss
from passl.registry import ARCHITECTURES, ConfigError

__all__ = ["Classification", "backbone_config"]


def backbone_config(
    architecture: Optional[Mapping[str, Any]], backbone: Optional[Mapping[str, Any]], what: str = "backbone"
) -> Mapping[str, Any]:
    """The backbone config given as ``model.architecture`` or its PASSL v1 spelling ``model.backbone`` (one of the
    two); ``what`` names it in the errors."""
    if architecture is not None and backbone is not None:
        raise ConfigError(f"model: give the {what} config as 'architecture' or 'backbone', not both")
    arch_cfg = architecture if architecture is not None else backbone
    if arch_cfg is None:
        raise ConfigError(f"model: the 'architecture' key (the {what} config) is missing")
    return arch_cfg


@ARCHITECTURES.register
class Classification(nn.Layer):
    """Compose a backbone (config key ``architecture``, alias ``backbone``) and a head; optional ``loss``.

    ``pretrained`` (zoo name, URL or path), ``pretrained_ema`` (take the EMA weights) and ``drop_head`` (skip the
    classifier, for another class count) are read by the trainer and tools when they load weights, not here.
    """

    def __init__(
        self,
        architecture: Optional[Mapping[str, Any]] = None,
        head: Optional[Mapping[str, Any]] = None,
        loss: Optional[Mapping[str, Any]] = None,
        backbone: Optional[Mapping[str, Any]] = None,
        pretrained: Optional[str] = None,
        pretrained_ema: bool = False,
        drop_head: bool = False,
    ) -> None:
        super().__init__()
        arch_cfg = backbone_config(architecture, backbone)
        if head is None:
            raise ConfigError("model: the 'head' key is missing")
        self.backbone = build_backbone(arch_cfg)
        feat = getattr(self.backbone, "num_features", None)
        head = dict(head)
        if head.get("in_channels", "unset") is None:  # null: the head's input is the backbone's feature width
            if feat is None:
                raise ConfigError(
                    "model.head.in_channels is null but the backbone does not report its feature width "
                    "(num_features); set model.head.in_channels"
                )
            head["in_channels"] = int(feat)
        head_in = head.get("in_channels")
        if feat is not None and head_in is not None and int(feat) != int(head_in):
            raise ConfigError(
                f"model.head.in_channels is {head_in} but the backbone's feature size is {feat}; set "
                f"model.head.in_channels={feat}, or null to take it from the backbone (-o model.head.in_channels=null)"
            )
        self.head = build_head(head)
        self.loss_fn = build_loss(loss) if loss is not None else None
        self.pretrained, self.pretrained_ema, self.drop_head = pretrained, pretrained_ema, drop_head

    @property
    def num_classes(self) -> int:
        return self.head.num_classes

    def forward_features(self, x: paddle.Tensor) -> paddle.Tensor:
        return self.backbone(x)

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        return self.head(self.backbone(x))

    def compute_loss(self, logits: paddle.Tensor, target: paddle.Tensor) -> paddle.Tensor:
        if self.loss_fn is None:
            raise ConfigError("model.loss is not set; add e.g. loss: {name: CrossEntropyLoss} to the model section")
        return self.loss_fn(logits, target)
