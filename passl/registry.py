"""The one Registry class and every registry of the library, on one page.

A registry maps a name to a class or function. Configs name components with a ``name`` key; the other keys are the
component's arguments. Registering a name twice is an error, so two modules can never silently shadow each other.
"""

from __future__ import annotations

import copy
import difflib
import inspect
from typing import Any, Callable, Dict, Mapping, Optional


class ConfigError(ValueError):
    """A user-caused configuration problem; the message names the key or value and what to do."""


class Registry:
    """Name -> class/function table with strict registration and helpful lookup errors."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._items: Dict[str, Callable] = {}

    def register(self, obj: Optional[Callable] = None, *, name: Optional[str] = None):
        """Register ``obj`` under ``name`` (default: its ``__name__``). Usable as ``@REG.register`` or
        ``@REG.register(name="x")``."""

        def _add(item: Callable) -> Callable:
            key = name or item.__name__
            if key in self._items:
                raise KeyError(
                    f"{self.name} registry: the name '{key}' is already registered "
                    f"(by {self._items[key].__module__}.{self._items[key].__qualname__}); pick another name"
                )
            self._items[key] = item
            return item

        if obj is not None:
            return _add(obj)
        return _add

    def __contains__(self, key: str) -> bool:
        return key in self._items

    def __len__(self) -> int:
        return len(self._items)

    def names(self) -> list:
        return sorted(self._items)

    def get(self, key: str) -> Callable:
        if key not in self._items:
            close = difflib.get_close_matches(str(key), self._items.keys(), n=5, cutoff=0.4)
            hint = f"; did you mean: {', '.join(close)}?" if close else ""
            raise KeyError(
                f"{self.name} registry has no '{key}'{hint} (registered: {', '.join(self.names()) or 'none'})"
            )
        return self._items[key]

    def build(self, cfg: Mapping[str, Any], **extra: Any) -> Any:
        """Build from a config mapping ``{name: X, arg: value, ...}``; ``extra`` adds arguments from code.

        The config is deep-copied, never mutated. Arguments the constructor does not accept are reported with the
        component's name before anything is constructed.
        """
        if cfg is None or not isinstance(cfg, Mapping):
            raise ConfigError(f"{self.name}: expected a mapping with a 'name' key, got {cfg!r}")
        if "name" not in cfg:
            raise ConfigError(
                f"{self.name}: the config {dict(cfg)!r} has no 'name' key; set name to one of {', '.join(self.names())}"
            )
        kwargs = {str(k): _plain(v) for k, v in copy.deepcopy(dict(cfg)).items() if k != "name"}
        kwargs.update(extra)
        target = self.get(cfg["name"])
        try:
            sig = inspect.signature(target)
        except (TypeError, ValueError):  # builtins without a signature
            sig = None
        if sig is not None:
            params = sig.parameters.values()
            if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params):
                allowed = {p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
                unknown = sorted(set(kwargs) - allowed)
                if unknown:
                    raise ConfigError(
                        f"{self.name} '{cfg['name']}' does not accept the argument(s) {', '.join(unknown)}; "
                        f"it accepts: {', '.join(sorted(allowed))}"
                    )
            try:
                sig.bind(**kwargs)
            except TypeError as e:
                raise ConfigError(f"{self.name} '{cfg['name']}': {e}") from None
        return target(**kwargs)

    def __repr__(self) -> str:
        return f"Registry({self.name}: {', '.join(self.names())})"


def _plain(value: Any) -> Any:
    """Turn attribute dicts back into plain dicts/lists so components receive ordinary Python values."""
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_plain(v) for v in value) if isinstance(value, tuple) else [_plain(v) for v in value]
    return value


BACKBONES = Registry("backbone")
HEADS = Registry("head")
LOSSES = Registry("loss")
ARCHITECTURES = Registry("architecture")
DATASETS = Registry("dataset")
TRANSFORMS = Registry("transform")
OPTIMIZERS = Registry("optimizer")
SCHEDULERS = Registry("scheduler")
HOOKS = Registry("hook")
