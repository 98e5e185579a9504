"""PASSL ConvNeXt: a registry-driven PaddlePaddle library for the ConvNeXt family."""

__version__ = "0.1.0"

from passl.api import create_model, create_transform, list_models  # noqa: E402,F401  (timm-style entry points)
