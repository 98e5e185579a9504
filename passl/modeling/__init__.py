"""Models built from config: ``build_model(cfg.model)``."""

from __future__ import annotations

from typing import Any, Mapping

from passl.modeling import architectures, backbones, heads  # noqa: F401  (register everything)
from passl.registry import ARCHITECTURES

__all__ = ["build_model"]


def build_model(cfg: Mapping[str, Any]):
    """Build the architecture named by ``cfg['name']`` (default ``Classification``) from the ``model`` section."""
    cfg = dict(cfg)
    cfg.setdefault("name", "Classification")
    return ARCHITECTURES.build(cfg)
