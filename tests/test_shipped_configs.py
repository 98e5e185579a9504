"""Every shipped config loads, has well-typed values, builds its model (at small dims when it is large) and runs a
forward pass whose logits have one row per image and one column per class of the config."""

import glob
import numbers
import os

import paddle
import pytest

from passl.modeling import build_model
from passl.utils.config import get_config, to_dict

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
CONFIGS = sorted(glob.glob(os.path.join(ROOT, "configs", "**", "*.yaml"), recursive=True))
CONFIGS = [c for c in CONFIGS if "_base_" not in c.split(os.sep)]
FLOAT_KEYS = {"lr", "min_lr", "weight_decay", "drop_path_rate", "layer_scale_init_value", "head_init_scale", "decay"}


def _walk(node, where=""):
    if isinstance(node, dict):
        for k, v in node.items():
            yield from _walk(v, f"{where}.{k}" if where else k)
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _walk(v, f"{where}[{i}]")
    else:
        yield where, node


def test_there_are_configs():
    assert any(c.endswith("convnext_tiny.yaml") for c in CONFIGS)


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: os.path.relpath(p, ROOT))
def test_config_values_have_the_right_types(path):
    cfg = get_config(path)
    for key, value in _walk(to_dict(cfg)):
        if key.split(".")[-1] in FLOAT_KEYS and value is not None:
            assert isinstance(value, numbers.Real) and not isinstance(value, bool), f"{key}={value!r}"


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: os.path.relpath(p, ROOT))
def test_config_builds_its_model_and_runs_a_forward_pass(path):
    cfg = get_config(path)
    arch = cfg.model.architecture
    # The big variants build at reduced width to keep CI fast; their depths and code path are unchanged.
    if arch.get("arch") in ("base", "large", "xlarge", "huge"):
        arch["dims"] = [16, 32, 64, 128]
        if cfg.model.get("head"):
            cfg.model.head.in_channels = 128
    if cfg.model.get("name") == "FCMAE":  # pre-training: the forward pass returns the loss on a random mask
        model = build_model(cfg.model)
        stages = len(arch.get("dims") or (0, 0, 0, 0))  # an arch name: four stages
        chans, stride = int(arch.get("in_chans", 3)), int(arch.get("patch_size", 4)) * 2 ** (stages - 1)
        assert cfg.model.patch_size in (None, stride)
        out = model(paddle.randn([2, chans, 2 * stride, 2 * stride]), return_all=True)
        assert out["loss"].shape == [] and bool(paddle.isfinite(out["loss"]))
        assert out["pred"].shape == [2, 4, stride * stride * chans] and float(out["mask"].sum()) > 0
        return
    if cfg.model.head.get("num_classes") is None:  # configs/finetune: read from data.root's folders at load time
        cfg.model.head.num_classes = 7
    model = build_model(cfg.model)
    assert model.num_classes == cfg.model.head.num_classes
    assert cfg.model.head.in_channels in (None, model.backbone.num_features)  # null: the backbone's width
    assert model.head.in_channels == model.backbone.num_features
    model.eval()
    chans = int(arch.get("in_chans", 3))
    # A small input: 8x the stem stride leaves one pixel per image at the last stage (16 px for the demo).
    side = 8 * int(arch.get("patch_size", 4))
    with paddle.no_grad():
        logits = model(paddle.randn([2, chans, side, side]))
    assert logits.shape == [2, int(cfg.model.head.num_classes)]
    assert bool(paddle.isfinite(logits).all())
