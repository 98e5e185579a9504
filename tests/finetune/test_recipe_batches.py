"""The official per-GPU batch sizes (facebookresearch/ConvNeXt TRAINING.md) with the official effective batch, in
the configs and in docs/training_recipes.md's table."""

import glob
import os
import re

import pytest

from passl.utils.config import get_config

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
GPUS = 8  # every file's top comment and the docs table assume one machine of 8 GPUs
# (per-process batch choices, effective batch) by recipe; XL at 384 may ship 16 x 4 or 8 x 8
OFFICIAL = {
    "22k_224": ({32}, 4096),
    "384_b_l": ({32}, 512),
    "384_xl": ({16, 8}, 512),
}


def _kind(name):
    if name.endswith("_22k_224.yaml"):
        return "22k_224"
    if "384" in name:
        return "384_xl" if "xlarge" in name else "384_b_l"
    return None


CONFIGS = [p for p in sorted(glob.glob(os.path.join(ROOT, "configs", "convnext", "*.yaml"))) if _kind(p)]


def test_the_recipes_are_covered():
    assert sum("384" in p for p in CONFIGS) == 7 and sum(p.endswith("_22k_224.yaml") for p in CONFIGS) == 3


@pytest.mark.parametrize("path", CONFIGS, ids=os.path.basename)
def test_official_per_gpu_batch_and_effective_batch(path):
    cfg = get_config(path)
    sizes, effective = OFFICIAL[_kind(path)]
    b, a = cfg.data.train.batch_size, cfg.train.accum_steps
    assert b in sizes, f"{path}: per-process batch {b}, official {sizes}"
    assert GPUS * b * a == effective
    with open(path) as f:
        assert f"{GPUS} GPUs x {b} x {a} = {effective}" in f.read()  # the file's comment says what it does
    with open(os.path.join(ROOT, "docs", "training_recipes.md")) as f:
        row = re.search(rf"\| `{re.escape(os.path.basename(path))}` \|[^\n]*", f.read())
    assert row and f"| {GPUS} x {b} x {a} | {effective} |" in row.group(0)
