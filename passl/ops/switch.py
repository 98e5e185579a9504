"""The ONE switch for the fused CPU kernels: ``PASSL_OPS=auto|off`` (env, default auto) or :func:`set_ops`.

``auto`` uses the kernels for float32 CPU tensors in dygraph when they build; anything else (GPU, other dtypes,
static graphs and exports, ``off``, a failed build) runs the pure-Paddle layers, which compute the same function.
"""

from __future__ import annotations

import os
from types import ModuleType
from typing import Optional

import paddle

from passl.ops import build

__all__ = ["set_ops", "get_ops", "kernels_for"]

_MODES = ("auto", "off")
_override: Optional[str] = None


def set_ops(mode: Optional[str]) -> None:
    """Force ``"auto"`` or ``"off"`` for this process; ``None`` returns to the ``PASSL_OPS`` environment variable."""
    global _override
    if mode is not None and mode not in _MODES:
        raise ValueError(f"passl.ops.set_ops: mode must be one of {_MODES} or None, got {mode!r}")
    _override = mode


def get_ops() -> str:
    """The active mode: the :func:`set_ops` override, else ``$PASSL_OPS`` (default ``auto``)."""
    if _override is not None:
        return _override
    mode = os.environ.get("PASSL_OPS", "auto").strip().lower() or "auto"
    if mode not in _MODES:
        raise ValueError(f"PASSL_OPS must be one of {_MODES}, got {mode!r}")
    return mode


def kernels_for(x: paddle.Tensor) -> Optional[ModuleType]:
    """The compiled kernels if they should run on ``x`` (float32, CPU, dygraph, switch on), else ``None``."""
    if get_ops() == "off" or not paddle.in_dynamic_mode():
        return None
    if x.dtype != paddle.float32 or not x.place.is_cpu_place():
        return None
    return build.load()
