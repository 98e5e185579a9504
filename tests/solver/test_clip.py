"""Gradient clipping by the global norm over all parameter groups; SGD and Momentum from config."""

import numpy as np
import paddle
import pytest

from passl.modeling import build_model
from passl.registry import ConfigError
from passl.solver import build_lr_scheduler, build_optimizer, clip_grad_norm_, param_groups


def _model(seed=0):
    paddle.seed(seed)
    return build_model(
        {
            "architecture": {"name": "ConvNeXt", "depths": [1, 1, 1, 1], "dims": [8, 16, 32, 64]},
            "head": {"name": "ConvNeXtClsHead", "in_channels": 64, "num_classes": 5},
        }
    )


def _batches(n=2):
    rng = np.random.RandomState(0)
    return [
        (paddle.to_tensor(rng.randn(4, 3, 32, 32).astype("float32")), paddle.to_tensor(rng.randint(0, 5, [4])))
        for _ in range(n)
    ]


def _backward(model, images, labels):
    loss = paddle.nn.functional.cross_entropy(model(images), labels)
    (loss * 10.0).backward()  # gradients well above the clip threshold


def _numpy_params(model):
    return {n: p.numpy().copy() for n, p in model.named_parameters()}


def _global_norm(model):
    return float(np.sqrt(sum((p.grad.numpy().astype("float64") ** 2).sum() for p in model.parameters())))


def _build(model, **cfg):
    sched = build_lr_scheduler({"name": "ConstantLR"}, cfg["lr"], 1, 1)
    return build_optimizer(cfg, model, sched)


def test_clip_grad_norm_scales_in_place_and_returns_the_norm():
    model = _model()
    images, labels = _batches(1)[0]
    _backward(model, images, labels)
    before = {n: p.grad.numpy().copy() for n, p in model.named_parameters()}
    norm = _global_norm(model)
    assert norm > 1.0
    returned = clip_grad_norm_(model.parameters(), norm * 2)  # below the threshold: untouched
    assert returned.item() == pytest.approx(norm, rel=1e-5)
    for n, p in model.named_parameters():
        np.testing.assert_array_equal(p.grad.numpy(), before[n])
    clip_grad_norm_(model.parameters(), 0.5)
    assert _global_norm(model) == pytest.approx(0.5, rel=1e-5)
    for n, p in model.named_parameters():
        np.testing.assert_allclose(p.grad.numpy(), before[n] * 0.5 / norm, rtol=1e-5, atol=1e-12)


@pytest.mark.parametrize("name", ["SGD", "Momentum", "AdamW"])
def test_clipped_update_equals_update_with_manually_clipped_gradients(name):
    """Layer decay and weight decay split the parameters into many groups: the clip must use the norm over all of
    them (Paddle's own grad_clip would clip each group by its own norm)."""
    cfg = {"name": name, "lr": 0.05, "weight_decay": 0.05, "layer_decay": 0.7}
    clip = 0.5
    models = {k: _model() for k in ("clip", "manual", "off")}
    opts = {k: _build(m, **cfg, clip_grad=clip if k == "clip" else None) for k, m in models.items()}
    assert len(param_groups(models["clip"], 0.05, 0.7)) > 2
    start = _numpy_params(models["clip"])
    for images, labels in _batches(2):
        for k, model in models.items():
            _backward(model, images, labels)
            if k == "manual":
                norm = _global_norm(model)
                assert norm > clip  # the clip acts on every step
                for p in model.parameters():
                    p.grad.set_value(p.grad.numpy() * np.float32(clip / norm))
            opts[k].step()
            opts[k].clear_grad()
    got, want, off = (_numpy_params(models[k]) for k in ("clip", "manual", "off"))
    # AdamW divides by sqrt(v): near-zero gradients turn float32 rounding into ~4e-6 on its 0.1 step
    atol = 2e-5 if name == "AdamW" else 1e-7
    for n in start:
        np.testing.assert_allclose(got[n], want[n], rtol=0, atol=atol, err_msg=n)
    assert max(np.abs(got[n] - start[n]).max() for n in start) > 1e-4
    assert max(np.abs(off[n] - got[n]).max() for n in start) > 1e-4  # without clipping the update differs


def test_sgd_and_momentum_build_from_config_and_step():
    for name, extra, expected in (
        ("SGD", {}, lambda lr, mu: 2 * lr),  # two steps of lr * grad, grad = 1
        ("Momentum", {"momentum": 0.9}, lambda lr, mu: lr * (1 + (1 + mu))),  # v1 = 1, v2 = mu * v1 + 1
        ("Momentum", {"momentum": 0.9, "nesterov": True}, lambda lr, mu: lr * ((1 + mu) + (1 + mu * (1 + mu)))),
    ):
        model = _model()
        opt = _build(model, name=name, lr=0.1, weight_decay=0.0, **extra)
        assert isinstance(opt, getattr(paddle.optimizer, name))
        start = _numpy_params(model)
        for _ in range(2):
            sum(p.sum() for p in model.parameters()).backward()  # every gradient is 1
            opt.step()
            opt.clear_grad()
        for n, p in model.named_parameters():
            np.testing.assert_allclose(start[n] - p.numpy(), expected(0.1, 0.9), rtol=1e-5, err_msg=f"{name} {n}")


@pytest.mark.parametrize("bad", [-1.0, "1.0", True])
def test_bad_clip_grad_is_a_config_error(bad):
    with pytest.raises(ConfigError, match="clip_grad must be a non-negative number"):
        _build(_model(), name="AdamW", lr=0.1, clip_grad=bad)
