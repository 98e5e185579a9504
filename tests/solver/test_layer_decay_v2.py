"""ConvNeXt V2 optimizer groups follow the official V2 fine-tuning code (facebookresearch/ConvNeXt-V2
optim_factory.py and main_finetune.py): layer decay "single" (one id per block) or "group" (V1's 12 groups), and no
weight decay on GRN gamma/beta, biases and 1-D parameters."""

import pytest

from passl.modeling import build_model
from passl.registry import ConfigError
from passl.solver import build_lr_scheduler, build_optimizer, param_groups


def official_single_id(name, depths):
    """get_num_layer_for_convnext_single, restated from the reference."""
    if name.startswith("downsample_layers"):
        return sum(depths[: int(name.split(".")[1])]) + 1
    if name.startswith("stages"):
        stage, block = int(name.split(".")[1]), int(name.split(".")[2])
        return sum(depths[:stage]) + block + 1
    return sum(depths) + 1


def official_group_id(name):
    """get_num_layer_for_convnext (12 groups), restated from the reference."""
    if name.startswith("downsample_layers"):
        return {0: 0, 1: 2, 2: 3, 3: 12}[int(name.split(".")[1])]
    if name.startswith("stages"):
        stage, block = int(name.split(".")[1]), int(name.split(".")[2])
        return {0: 1, 1: 2, 3: 12}.get(stage, 3 + block // 3)
    return 13


def _v2(arch, dims=(8, 16, 32, 64)):
    return build_model(
        {
            "architecture": {"name": "ConvNeXtV2", "arch": arch, "dims": list(dims)},
            "head": {"name": "ConvNeXtClsHead", "in_channels": dims[-1], "num_classes": 5},
        }
    )


def _scales(groups):
    return {n: g["learning_rate"] for g in groups for n in g["names"]}


@pytest.mark.parametrize("arch", ["atto", "nano", "tiny", "base", "huge"])
@pytest.mark.parametrize("decay_type", ["single", None])  # None: the V2 default, which is "single"
def test_single_layer_decay_matches_official(arch, decay_type):
    model = _v2(arch)
    depths = model.backbone.depths
    num_layers = sum(depths)  # main_finetune: layer_decay ** (num_layers + 1 - id)
    decay = 0.9
    scales = _scales(param_groups(model, 0.05, decay, layer_decay_type=decay_type))
    for name, scale in scales.items():
        inner = name[len("backbone.") :] if name.startswith("backbone.") else name
        assert scale == pytest.approx(decay ** (num_layers + 1 - official_single_id(inner, depths))), name
    # one id per block: the blocks of the model all have distinct scales
    blocks = {n.split(".pwconv1")[0] for n in scales if n.endswith("pwconv1.weight")}
    assert len({scales[b + ".pwconv1.weight"] for b in blocks}) == sum(depths)


@pytest.mark.parametrize("arch", ["base", "large", "huge"])
def test_group_layer_decay_matches_official(arch):
    model = _v2(arch)
    scales = _scales(param_groups(model, 0.05, 0.6, layer_decay_type="group"))
    for name, scale in scales.items():
        inner = name[len("backbone.") :] if name.startswith("backbone.") else name
        assert scale == pytest.approx(0.6 ** (12 + 1 - official_group_id(inner))), name


def test_v1_default_stays_group():
    v1 = build_model(
        {
            "architecture": {"name": "ConvNeXt", "arch": "base", "dims": [8, 16, 32, 64]},
            "head": {"name": "ConvNeXtClsHead", "in_channels": 64, "num_classes": 5},
        }
    )
    assert _scales(param_groups(v1, 0.05, 0.7)) == _scales(param_groups(v1, 0.05, 0.7, layer_decay_type="group"))


def test_no_weight_decay_on_grn_biases_and_1d():
    model = _v2("tiny")
    groups = param_groups(model, 0.05, 0.9)
    decayed = {n for g in groups if g["weight_decay"] > 0 for n in g["names"]}
    names = dict(model.named_parameters())
    grn = [n for n in names if ".grn." in n]
    assert len(grn) == 2 * 18 and not set(grn) & decayed
    assert decayed == {n for n, p in names.items() if p.ndim > 1}
    assert all(n.endswith("weight") and "norm" not in n for n in decayed)


def test_layer_decay_type_is_checked():
    model = _v2("atto")
    sched = build_lr_scheduler({"name": "WarmupCosine"}, 0.1, 1, 1)
    with pytest.raises(ConfigError, match="layer_decay_type"):
        build_optimizer({"name": "AdamW", "lr": 0.1, "layer_decay": 0.9, "layer_decay_type": "blocks"}, model, sched)
    opt = build_optimizer({"name": "AdamW", "lr": 0.1, "layer_decay": 0.9, "layer_decay_type": "group"}, model, sched)
    assert len(opt._param_groups) > 1
