"""PASSL ConvNeXt: a registry-driven PaddlePaddle library for the ConvNeXt family."""

__version__ = "0.1.0"
