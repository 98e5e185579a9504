"""PASSL ConvNeXt: a registry-driven PaddlePaddle library for the ConvNeXt family.

``import passl`` is cheap (it does not import paddle); the subpackages load on first use, so
``passl.modeling.build_model(cfg.model)`` works after a plain ``import passl``.
"""

import importlib

__version__ = "0.1.0"

_SUBPACKAGES = ("data", "engine", "inference", "modeling", "solver", "utils", "weights", "registry")
_API = ("create_model", "create_transform", "list_models")  # timm-style entry points, in passl/api.py
__all__ = ["__version__", *_SUBPACKAGES, *_API]


def __getattr__(name: str):
    if name in _SUBPACKAGES:
        return importlib.import_module(f"passl.{name}")
    if name in _API:
        return getattr(importlib.import_module("passl.api"), name)
    raise AttributeError(f"module 'passl' has no attribute '{name}'")


def __dir__():
    return sorted(list(globals()) + list(_SUBPACKAGES) + list(_API))
