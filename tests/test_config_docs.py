"""docs/configuration.md documents every key of every shipped config, and documents no key nobody knows.

Key paths follow the scheme described at the top of docs/configuration.md: mapping keys joined with dots, ``[]`` for
the entries of a list of mappings (``data.train.transforms[].size``), ``_replace_`` whatever its depth. A documented
key is the backticked text in the first cell of a table row; in it, ``*`` stands for exactly one path segment
(``data.*.dataset.root`` covers ``data.train.dataset.root`` and ``data.val.dataset.root``).

The page is tested against the one config schema (passl/utils/schema.py), full dotted paths throughout: every key
the schema knows is documented, every documented key is a schema key (or one of the loader's markers), the type
column names the schema's type (and says "null" where null is allowed), and every shipped config passes the schema.
"""

from __future__ import annotations

import glob
import os
import re
from typing import Dict, Iterator, List, Pattern, Set, Tuple

import pytest
import yaml

from passl.utils.config import get_config, to_dict
from passl.utils.schema import (
    Bool,
    Component,
    Float,
    Int,
    ListOf,
    OneOf,
    Section,
    Str,
    schema_items,
    schema_paths,
    validate_config,
)

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
DOC = os.path.join(ROOT, "docs", "configuration.md")
CONFIGS = sorted(glob.glob(os.path.join(ROOT, "configs", "**", "*.yaml"), recursive=True))
MERGE_MARKER = "_replace_"
LOADER_KEYS = {"_base_", MERGE_MARKER}  # read and removed by the loader, never seen by the schema
TYPE_WORDS = [
    (Bool, {"bool"}),
    (Int, {"int"}),
    (Float, {"float"}),
    (Str, {"string"}),
    (ListOf, {"list", "["}),
    (Section, {"mapping"}),
    (Component, {"mapping"}),
]


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


def documented_rows() -> List[Tuple[str, str]]:
    """(backticked key of the first cell, the type cell) of every table row of configuration.md."""
    rows = []
    with open(DOC, encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if not line.startswith("|"):
                continue
            cells = [c.strip() for c in line.strip("|").split("|")]
            for key in re.findall(r"`([^`]+)`", cells[0]):
                rows.append((key, cells[1] if len(cells) > 1 else ""))
    return rows


def documented_keys() -> List[str]:
    """The backticked keys in the first cell of every table row of configuration.md."""
    return [key for key, _ in documented_rows()]


def as_pattern(doc_key: str) -> Pattern:
    return re.compile(re.escape(doc_key).replace(r"\*", r"[^.\[\]]+"))


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


def test_every_documented_key_is_a_schema_key():
    known = set(schema_paths()) | LOADER_KEYS
    unknown = [k for k in documented_keys() if not any(as_pattern(k).fullmatch(p) for p in known)]
    assert not unknown, (
        "documented in docs/configuration.md, but the config schema (passl/utils/schema.py) has no such key: "
        + ", ".join(unknown)
    )


def test_every_schema_key_is_documented():
    patterns = [as_pattern(k) for k in documented_keys()]
    missing = [p for p in schema_paths() if not any(pat.fullmatch(p) for pat in patterns)]
    assert not missing, "keys the config schema checks but docs/configuration.md does not document: " + ", ".join(
        missing
    )


def _type_words(spec) -> Set[str]:
    if isinstance(spec, OneOf):
        return set().union(*(_type_words(o) for o in spec.options))
    for cls, words in TYPE_WORDS:
        if isinstance(spec, cls):
            return words
    return set()


def test_documented_types_agree_with_the_schema():
    specs: Dict[str, list] = {}
    for path, spec in schema_items():
        specs.setdefault(path, []).append(spec)
    wrong = []
    for key, type_cell in documented_rows():
        pattern = as_pattern(key)
        matching = [s for p, group in specs.items() if pattern.fullmatch(p) for s in group]
        if not matching:
            continue  # loader markers; the test above reports keys the schema lacks
        words = set().union(*(_type_words(s) for s in matching))
        if not any(w in type_cell for w in words):
            wrong.append(f"{key}: documented as '{type_cell}', the schema says {' / '.join(sorted(words))}")
        elif any(s.null for s in matching) and "null" not in type_cell:
            wrong.append(f"{key}: documented as '{type_cell}', but the schema also allows null")
    assert not wrong, "type column disagrees with the config schema:\n  " + "\n  ".join(wrong)


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: os.path.relpath(p, ROOT))
def test_shipped_config_passes_the_schema(path):
    validate_config(get_config(path, validate=False))


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: os.path.relpath(p, ROOT))
def test_config_resolves(path):
    # A config that does not load would hide its keys from the checks above.
    assert isinstance(get_config(path), dict)
