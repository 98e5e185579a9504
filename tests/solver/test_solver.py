"""Parameter groups, layer-wise decay and the schedule follow the official ConvNeXt code."""

import math

import numpy as np
import paddle
import pytest

from passl.modeling import build_model
from passl.registry import ConfigError
from passl.solver import build_lr_scheduler, build_optimizer, cosine_schedule, param_groups


def official_layer_id(name):
    """The official optim_factory.get_num_layer_for_convnext, written out as in the reference (27 blocks)."""
    if name.startswith("downsample_layers"):
        stage = int(name.split(".")[1])
        return {0: 0, 1: 2, 2: 3, 3: 12}[stage]
    if name.startswith("stages"):
        stage, block = int(name.split(".")[1]), int(name.split(".")[2])
        return {0: 1, 1: 2, 3: 12}.get(stage, 3 + block // 3)
    return 13


def _model(arch, dims=(8, 16, 32, 64)):
    return build_model(
        {
            "architecture": {"name": "ConvNeXt", "arch": arch, "dims": list(dims)},
            "head": {"name": "ConvNeXtClsHead", "in_channels": dims[-1], "num_classes": 5},
        }
    )


@pytest.mark.parametrize("arch", ["small", "base", "large", "xlarge"])
def test_layer_decay_matches_official_assignment(arch):
    model = _model(arch)  # official depths, small widths: the assignment depends on names only
    decay = 0.7
    for g in param_groups(model, 0.05, decay):
        for name in g["names"]:
            inner = name[len("backbone.") :] if name.startswith("backbone.") else name
            expected = decay ** (13 - official_layer_id(inner))
            assert g["learning_rate"] == pytest.approx(expected), name


def test_tiny_spreads_nine_blocks_over_ids_3_to_11():
    bb = _model("tiny").backbone
    assert [bb.get_layer_id(f"stages.2.{j}.dwconv.weight") for j in range(9)] == list(range(3, 12))
    assert bb.get_layer_id("stages.3.0.gamma") == 12 and bb.get_layer_id("norm.weight") == 13


def test_no_weight_decay_on_1d_parameters():
    model = _model("atto", dims=(40, 80, 160, 320))
    groups = param_groups(model, 0.05)
    decayed = {n for g in groups if g["weight_decay"] > 0 for n in g["names"]}
    params = dict(model.named_parameters())
    assert decayed == {n for n, p in params.items() if p.ndim > 1}
    assert not any(n.endswith(("gamma", "bias")) or ".norm." in n for n in decayed)


def test_adamw_group_decay_and_lr_scale_are_applied():
    model = _model("atto", dims=(40, 80, 160, 320))
    sched = build_lr_scheduler({"name": "WarmupCosine"}, 0.1, 1, 1)
    opt = build_optimizer({"name": "AdamW", "lr": 0.1, "weight_decay": 0.5, "layer_decay": 0.5}, model, sched)
    before = {n: p.numpy().copy() for n, p in model.named_parameters()}
    (sum(p.sum() for p in model.parameters()) * 0.0).backward()  # zero gradients: only decay moves weights
    opt.step()
    after = {n: p.numpy() for n, p in model.named_parameters()}
    np.testing.assert_array_equal(after["backbone.norm.weight"], before["backbone.norm.weight"])  # 1-D: no decay
    np.testing.assert_allclose(after["head.fc.weight"], before["head.fc.weight"] * (1 - 0.1 * 0.5), rtol=1e-6)
    w = "backbone.downsample_layers.0.0.weight"  # id 0: lr scale 0.5 ** 13
    np.testing.assert_allclose(after[w], before[w] * (1 - 0.1 * 0.5**13 * 0.5), rtol=1e-6)


def _official(base, final, epochs, niter, warmup_epochs, start=0.0):
    """The official cosine_scheduler, restated."""
    warmup_iters = warmup_epochs * niter
    warm = np.linspace(start, base, warmup_iters)
    iters = np.arange(epochs * niter - warmup_iters)
    return np.concatenate((warm, final + 0.5 * (base - final) * (1 + np.cos(np.pi * iters / len(iters)))))


def test_schedule_equals_official_formula_at_key_points():
    epochs, niter, warm = 300, 1251, 20
    ours = build_lr_scheduler({"name": "WarmupCosine", "warmup_epochs": warm, "min_lr": 1e-6}, 4e-3, epochs, niter)
    ref = _official(4e-3, 1e-6, epochs, niter, warm)
    total = epochs * niter
    checks = [0, 1, warm * niter - 1, warm * niter, (total + warm * niter) // 2, total - 1]
    values = {}
    for i in range(total):
        if i in checks:
            values[i] = ours.get_lr()
        ours.step()
    for i in checks:
        assert values[i] == pytest.approx(ref[i], rel=1e-12, abs=1e-15), i
    assert values[0] == 0.0 and values[warm * niter - 1] == pytest.approx(4e-3)
    mid = (total + warm * niter) // 2
    assert values[mid] == pytest.approx(
        1e-6 + 0.5 * (4e-3 - 1e-6) * (1 + math.cos(math.pi * (mid - warm * niter) / (total - warm * niter)))
    )
    np.testing.assert_allclose(cosine_schedule(4e-3, 1e-6, epochs, niter, warm), ref)


def test_schedule_errors():
    with pytest.raises(ConfigError, match="warmup"):
        cosine_schedule(1.0, 0.0, 2, 10, warmup_epochs=3)
    with pytest.raises(ConfigError, match="smaller than one"):
        build_lr_scheduler({"name": "WarmupCosine"}, 1.0, 1, 0)


def test_unknown_optimizer_key():
    model = _model("atto", dims=(40, 80, 160, 320))
    sched = build_lr_scheduler({"name": "WarmupCosine"}, 0.1, 1, 1)
    with pytest.raises(ConfigError, match="unknown key\\(s\\) momentum"):
        build_optimizer({"name": "AdamW", "lr": 0.1, "momentum": 0.9}, model, sched)
    assert isinstance(
        build_optimizer({"name": "Momentum", "lr": 0.1, "momentum": 0.9}, model, sched), paddle.optimizer.Momentum
    )
