"""Backbones, registered by name in ``passl.registry.BACKBONES``."""

from __future__ import annotations

from typing import Any, Mapping

from passl.modeling.backbones.convnext import ConvNeXt  # noqa: F401  (registers ConvNeXt)
from passl.modeling.backbones.convnext_v2 import ConvNeXtV2  # noqa: F401  (registers ConvNeXtV2)
from passl.registry import BACKBONES

__all__ = ["build_backbone", "BACKBONES", "ConvNeXt", "ConvNeXtV2"]


def build_backbone(cfg: Mapping[str, Any]):
    """Build a backbone from ``{name: ConvNeXt, arch: tiny, ...}``; the config is not modified."""
    return BACKBONES.build(cfg)
