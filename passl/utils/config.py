"""YAML configs as attribute dicts: one level of ``_base_``, strict ``-o a.b=value`` overrides, type checks.

Rules (see docs/configuration.md):
- ``_base_: path.yaml`` (relative to the file) is merged under the file; a base may not have its own ``_base_``.
- A string that looks like a number (PyYAML reads ``1e-6`` as a string) is an error naming the key: write ``1.0e-6``.
- An override must name an existing key and keep its type (int -> float is allowed; a null key takes anything).
- The result is checked against the one schema of config keys (passl/utils/schema.py): every key known, every value
  of the right type and range, before any tool does any work.
"""

from __future__ import annotations

import copy
import difflib
import os
import re
from typing import Any, Iterable, List, Mapping, Optional

import yaml

from passl.registry import ConfigError

__all__ = ["AttrDict", "ConfigError", "get_config", "parse_overrides", "apply_override", "dump_config", "to_dict"]

_NUMBER_LIKE = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)$|^[+-]?(\d+\.\d*|\.\d+|\d+)$")


class AttrDict(dict):
    """A dict whose keys are also attributes (``cfg.model.head``); nested mappings become AttrDicts."""

    def __getattr__(self, key: str) -> Any:
        try:
            return self[key]
        except KeyError:
            raise AttributeError(
                f"config has no key '{key}' (keys here: {', '.join(map(str, self.keys())) or 'none'})"
            ) from None

    def __setattr__(self, key: str, value: Any) -> None:
        self[key] = value

    def __delattr__(self, key: str) -> None:
        del self[key]

    def __deepcopy__(self, memo):
        return AttrDict({k: copy.deepcopy(v, memo) for k, v in self.items()})


def _wrap(value: Any) -> Any:
    if isinstance(value, Mapping):
        return AttrDict({k: _wrap(v) for k, v in value.items()})
    if isinstance(value, list):
        return [_wrap(v) for v in value]
    return value


def to_dict(value: Any) -> Any:
    """AttrDicts (and nested ones) back to plain dicts and lists."""
    if isinstance(value, Mapping):
        return {k: to_dict(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_dict(v) for v in value]
    return value


def _merge(base: dict, top: Mapping) -> dict:
    out = copy.deepcopy(base)
    for k, v in top.items():
        if isinstance(v, Mapping) and isinstance(out.get(k), Mapping) and not v.get("_replace_", False):
            out[k] = _merge(out[k], v)
        else:
            out[k] = _strip_replace(copy.deepcopy(v))
    return out


def _strip_replace(node: Any) -> Any:
    """Drop ``_replace_`` markers at every depth of a value that is taken whole (no base to merge into)."""
    if isinstance(node, dict):
        node.pop("_replace_", None)
        for v in node.values():
            _strip_replace(v)
    elif isinstance(node, list):
        for v in node:
            _strip_replace(v)
    return node


def _read_yaml(path: str) -> dict:
    if not os.path.isfile(path):
        raise ConfigError(f"config file not found: {path}")
    with open(path, encoding="utf-8") as f:
        try:
            data = yaml.safe_load(f)
        except yaml.YAMLError as e:
            raise ConfigError(f"{path} is not valid YAML: {e}") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping, got {type(data).__name__}")
    return data


def _check_number_strings(node: Any, path: str, where: str) -> None:
    if isinstance(node, Mapping):
        for k, v in node.items():
            _check_number_strings(v, path, f"{where}.{k}" if where else str(k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            _check_number_strings(v, path, f"{where}[{i}]")
    elif isinstance(node, str) and _NUMBER_LIKE.match(node.strip()):
        raise ConfigError(
            f"{path}: key '{where}' has the value '{node}', which YAML reads as a string, not a number; "
            f"write numbers with a dot before the exponent (1.0e-6, not 1e-6)"
        )


def get_config(
    path: str, overrides: Optional[Iterable[str]] = None, show: bool = False, validate: bool = True
) -> AttrDict:
    """Read ``path`` (with one level of ``_base_``), apply ``overrides`` (``["a.b=1", ...]``), check it against the
    config schema (``validate=False`` skips that, for files that are not library configs), return an AttrDict."""
    path = os.path.abspath(path)
    data = _read_yaml(path)
    base_ref = data.pop("_base_", None)
    if base_ref is not None:
        bases = base_ref if isinstance(base_ref, list) else [base_ref]
        merged: dict = {}
        for ref in bases:
            bpath = os.path.normpath(os.path.join(os.path.dirname(path), str(ref)))
            bdata = _read_yaml(bpath)
            if "_base_" in bdata:
                raise ConfigError(
                    f"{bpath}: a base config may not have its own _base_ (one level only); "
                    f"merge it into {os.path.basename(bpath)} instead"
                )
            merged = _merge(merged, bdata)
        data = _merge(merged, data)
    else:
        data = _merge({}, data)
    # Strings that should have been numbers, and keys marking replacement, are checked after the merge.
    _check_number_strings(data, path, "")
    cfg = _wrap(data)
    for item in overrides or []:
        key, value = parse_overrides([item])[0]
        apply_override(cfg, key, value)
    if isinstance(cfg.get("data"), Mapping) and cfg.data.get("root") is not None:
        from passl.data.datasets.class_folders import resolve_data_root

        resolve_data_root(cfg)  # data.root -> dataset roots and, when null, model.head.num_classes (class folders)
    if validate:
        from passl.utils.schema import validate_config

        try:
            validate_config(cfg)
        except ConfigError as e:
            raise ConfigError(f"{path}: {e}") from None
    return cfg


def _parse_value(text: str) -> Any:
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError:
        return text
    if isinstance(value, str) and _NUMBER_LIKE.match(value.strip()):
        return float(value)
    return value


def parse_overrides(items: Iterable[str]) -> List[tuple]:
    out = []
    for item in items:
        if "=" not in item:
            raise ConfigError(f"override '{item}' must look like key.sub=value (e.g. -o train.epochs=10)")
        key, text = item.split("=", 1)
        key = key.strip()
        if not key:
            raise ConfigError(f"override '{item}' has an empty key")
        out.append((key, _parse_value(text.strip())))
    return out


def _type_name(v: Any) -> str:
    return "null" if v is None else type(v).__name__


def apply_override(cfg: AttrDict, key: str, value: Any) -> None:
    """Set ``cfg[a][b][c] = value`` for key ``a.b.c``; the key must exist and the type must match."""
    parts = key.split(".")
    node: Any = cfg
    for i, part in enumerate(parts[:-1]):
        if isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        elif isinstance(node, Mapping) and part in node:
            node = node[part]
        else:
            keys = [str(k) for k in node] if isinstance(node, Mapping) else []
            close = difflib.get_close_matches(str(part), keys, n=3, cutoff=0.6)
            hint = f" (did you mean {' or '.join(repr('.'.join([*parts[:i], c])) for c in close)}?)" if close else ""
            raise ConfigError(f"override '{key}': there is no key '{'.'.join(parts[: i + 1])}' in the config{hint}")
        if not isinstance(node, (Mapping, list)):
            raise ConfigError(f"override '{key}': '{'.'.join(parts[: i + 1])}' is a {_type_name(node)}, not a section")
    last = parts[-1]
    if isinstance(node, list):
        if not (last.isdigit() and int(last) < len(node)):
            raise ConfigError(f"override '{key}': index '{last}' is out of range (list of {len(node)})")
        last = int(last)
        old = node[last]
    else:
        if last not in node:
            close = difflib.get_close_matches(str(last), [str(k) for k in node], n=3, cutoff=0.6)
            hint = f" (did you mean {' or '.join(repr('.'.join([*parts[:-1], c])) for c in close)}?)" if close else ""
            raise ConfigError(
                f"override '{key}': there is no key '{key}' in the config{hint}; keys here: "
                f"{', '.join(map(str, node)) or 'none'}"
            )
        old = node[last]
    if old is not None and value is not None:
        ok = type(old) is type(value) or (type(old) is float and type(value) is int)
        if isinstance(old, Mapping) and isinstance(value, Mapping):
            ok = True
        if not ok:
            raise ConfigError(
                f"override '{key}': the config has a{'n' * (_type_name(old) == 'int')} {_type_name(old)} ({old!r}); "
                f"got a{'n' * (_type_name(value) == 'int')} {_type_name(value)} ({value!r}); give a value of the same type"
            )
        if type(old) is float and type(value) is int:
            value = float(value)
    node[last] = _wrap(value)


def dump_config(cfg: Mapping, path: Optional[str] = None) -> str:
    """The resolved config as YAML text (written to ``path`` when given)."""
    text = yaml.safe_dump(to_dict(cfg), sort_keys=False, default_flow_style=False)
    if path:
        tmp = f"{path}.tmp{os.getpid()}"
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
    return text
