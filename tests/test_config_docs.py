"""docs/configuration.md documents every key of every shipped config, and documents no key nobody knows.

Key paths follow the scheme described at the top of docs/configuration.md: mapping keys joined with dots, ``[]`` for
the entries of a list of mappings (``data.train.transforms[].size``), ``_replace_`` whatever its depth. A documented
key is the backticked text in the first cell of a table row; in it, ``*`` stands for exactly one path segment
(``data.*.dataset.root`` covers ``data.train.dataset.root`` and ``data.val.dataset.root``).

The reverse check is deliberately loose: a documented key must match a key of some shipped config, or its last
segment must be a name the library or the tools use (a string constant, an attribute or a parameter name in
passl/ or tools/). It catches typos and keys of removed features, not every wrong path.
"""

from __future__ import annotations

import ast
import glob
import os
import re
from typing import Dict, Iterator, List, Pattern, Set

import pytest
import yaml

from passl.utils.config import get_config, to_dict

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
DOC = os.path.join(ROOT, "docs", "configuration.md")
CONFIGS = sorted(glob.glob(os.path.join(ROOT, "configs", "**", "*.yaml"), recursive=True))
MERGE_MARKER = "_replace_"


def key_paths(node, prefix: str = "") -> Iterator[str]:
    """Every key path in a YAML tree, in the documentation's scheme."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == MERGE_MARKER:
                yield MERGE_MARKER
                continue
            path = f"{prefix}.{key}" if prefix else str(key)
            yield path
            yield from key_paths(value, path)
    elif isinstance(node, list):
        for item in node:
            yield from key_paths(item, prefix + "[]")


def config_keys() -> Dict[str, str]:
    """key path -> the first config file (relative path) it appears in, from the raw files and the resolved configs
    (the raw files add ``_base_`` and ``_replace_``, which resolving removes)."""
    found: Dict[str, str] = {}
    for path in CONFIGS:
        rel = os.path.relpath(path, ROOT)
        with open(path, encoding="utf-8") as f:
            raw = yaml.safe_load(f) or {}
        for tree in (raw, to_dict(get_config(path))):
            for key in key_paths(tree):
                found.setdefault(key, rel)
    return found


def documented_keys() -> List[str]:
    """The backticked keys in the first cell of every table row of configuration.md."""
    keys = []
    with open(DOC, encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if not line.startswith("|"):
                continue
            first_cell = line.strip("|").split("|")[0]
            keys.extend(re.findall(r"`([^`]+)`", first_cell))
    return keys


def as_pattern(doc_key: str) -> Pattern:
    return re.compile(re.escape(doc_key).replace(r"\*", r"[^.\[\]]+"))


def names_known_to_code() -> Set[str]:
    """String constants, attribute names and parameter names of every module in passl/ and tools/."""
    names: Set[str] = set()
    files = glob.glob(os.path.join(ROOT, "passl", "**", "*.py"), recursive=True)
    files += glob.glob(os.path.join(ROOT, "tools", "*.py"))
    for path in files:
        with open(path, encoding="utf-8") as f:
            tree = ast.parse(f.read(), filename=path)
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                names.add(node.value)
            elif isinstance(node, ast.Attribute):
                names.add(node.attr)
            elif isinstance(node, ast.arg):
                names.add(node.arg)
    return names


def test_scheme_on_a_small_tree():
    tree = {"a": {"b": 1, "_replace_": True}, "t": [{"name": "X", "size": 2}, 3], "l": [1, 2]}
    assert sorted(key_paths(tree)) == sorted(["a", "a.b", "_replace_", "t", "t[].name", "t[].size", "l"])
    assert as_pattern("data.*.dataset.root").fullmatch("data.val.dataset.root")
    assert not as_pattern("data.*.dataset.root").fullmatch("data.train.extra.dataset.root")


def test_there_are_configs_and_documented_keys():
    assert any(p.endswith(os.path.join("convnext", "convnext_tiny.yaml")) for p in CONFIGS)
    assert os.path.isfile(DOC), "docs/configuration.md is missing"
    assert len(documented_keys()) > 50


def test_every_config_key_is_documented():
    patterns = [as_pattern(k) for k in documented_keys()]
    missing = {key: where for key, where in config_keys().items() if not any(p.fullmatch(key) for p in patterns)}
    assert not missing, "keys used in configs but not documented in docs/configuration.md:\n" + "\n".join(
        f"  {key}  (first seen in {where})" for key, where in sorted(missing.items())
    )


def test_no_key_is_documented_twice():
    keys = documented_keys()
    twice = sorted({k for k in keys if keys.count(k) > 1})
    assert not twice, f"documented more than once in docs/configuration.md: {', '.join(twice)}"


def test_every_documented_key_is_known():
    used = list(config_keys())
    code_names = names_known_to_code()
    unknown = []
    for doc_key in documented_keys():
        pattern = as_pattern(doc_key)
        if any(pattern.fullmatch(k) for k in used):
            continue
        leaf = re.split(r"[.\[\]]+", doc_key.rstrip("[]"))[-1]
        if leaf not in code_names:
            unknown.append(doc_key)
    assert not unknown, (
        "documented in docs/configuration.md, but no shipped config has the key and no code uses its name: "
        + ", ".join(unknown)
    )


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: os.path.relpath(p, ROOT))
def test_config_resolves(path):
    # A config that does not load would hide its keys from the checks above.
    assert isinstance(get_config(path), dict)
