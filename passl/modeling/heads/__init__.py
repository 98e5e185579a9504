"""Heads and losses, registered in ``passl.registry.HEADS`` and ``LOSSES``."""

from __future__ import annotations

from typing import Any, Mapping

from passl.modeling.heads.cls_head import ConvNeXtClsHead  # noqa: F401
from passl.modeling.heads.losses import CrossEntropyLoss, SoftTargetCrossEntropy  # noqa: F401
from passl.registry import HEADS, LOSSES

__all__ = ["build_head", "build_loss"]


def build_head(cfg: Mapping[str, Any]):
    """Build a head from ``{name: ConvNeXtClsHead, in_channels: 768, num_classes: 1000, ...}``."""
    return HEADS.build(cfg)


def build_loss(cfg: Mapping[str, Any]):
    """Build a loss from ``{name: CrossEntropyLoss, label_smoothing: 0.1}``."""
    return LOSSES.build(cfg)
