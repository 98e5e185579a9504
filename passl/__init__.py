"""PASSL ConvNeXt: a registry-driven PaddlePaddle library for the ConvNeXt family.

``import passl`` is cheap (it does not import paddle); the subpackages load on first use, so
``passl.modeling.build_model(cfg.model)`` works after a plain ``import passl``.
"""

import importlib

__version__ = "0.1.0"

_SUBPACKAGES = ("data", "engine", "inference", "modeling", "solver", "utils", "weights", "registry")
__all__ = ["__version__", *_SUBPACKAGES]


def __getattr__(name: str):
    if name in _SUBPACKAGES:
        return importlib.import_module(f"passl.{name}")
    raise AttributeError(f"module 'passl' has no attribute '{name}'")


def __dir__():
    return sorted(list(globals()) + list(_SUBPACKAGES))
