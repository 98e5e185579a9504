"""Losses equal PyTorch's / timm's on the same logits and targets, and are built from config by the loss registry.

torch and timm are test-only references (pip install -r requirements-dev.txt).
"""

import os

import numpy as np
import paddle
import pytest

from passl.modeling import build_model
from passl.modeling.heads import build_loss
from passl.modeling.heads.losses import CrossEntropyLoss, SoftTargetCrossEntropy
from passl.registry import LOSSES, ConfigError

torch = pytest.importorskip("torch", reason="torch is a test-only reference (pip install -r requirements-dev.txt)")
timm = pytest.importorskip("timm", reason="timm is a test-only reference (pip install -r requirements-dev.txt)")
from timm.data.mixup import mixup_target as timm_mixup_target  # noqa: E402
from timm.loss import SoftTargetCrossEntropy as TimmSoftTargetCrossEntropy  # noqa: E402

N, K = 16, 10


def _logits(seed=0):
    # spread-out logits (std 3) so the smoothing term and the per-class log-probabilities differ clearly
    return (np.random.RandomState(seed).randn(N, K) * 3.0).astype("float32")


def _labels(seed=1):
    return np.random.RandomState(seed).randint(0, K, size=N).astype("int64")


def _ours(loss_fn, logits, target):
    """Loss value and d loss / d logits from our implementation."""
    x = paddle.to_tensor(logits, stop_gradient=False)
    loss = loss_fn(x, paddle.to_tensor(target))
    loss.backward()
    return float(loss), x.grad.numpy()


def _torch(fn, logits, target):
    x = torch.tensor(logits, requires_grad=True)
    loss = fn(x, torch.as_tensor(target))
    loss.backward()
    return loss.item(), x.grad.numpy()


@pytest.mark.parametrize("smoothing", [0.0, 0.1])
def test_cross_entropy_label_smoothing_matches_torch(smoothing):
    loss_fn = build_loss({"name": "CrossEntropyLoss", "label_smoothing": smoothing})
    assert isinstance(loss_fn, CrossEntropyLoss) and loss_fn.label_smoothing == smoothing
    logits, labels = _logits(), _labels()
    got, got_grad = _ours(loss_fn, logits, labels)
    exp, exp_grad = _torch(
        lambda x, y: torch.nn.functional.cross_entropy(x, y, label_smoothing=smoothing), logits, labels
    )
    assert got == pytest.approx(exp, abs=1e-6)
    np.testing.assert_allclose(got_grad, exp_grad, atol=1e-6)


def test_label_smoothing_is_not_ignored():
    """Smoothing 0.1 must change the loss (by a clearly non-float-noise amount) versus plain cross entropy."""
    logits, labels = _logits(), _labels()
    plain, _ = _ours(build_loss({"name": "CrossEntropyLoss"}), logits, labels)
    smooth, _ = _ours(build_loss({"name": "CrossEntropyLoss", "label_smoothing": 0.1}), logits, labels)
    assert abs(plain - smooth) > 0.05


def _mixup_targets(lam, smoothing=0.1):
    """Soft targets as the training loop makes them: smoothed one-hots mixed with the batch-reversed ones (timm)."""
    return timm_mixup_target(torch.from_numpy(_labels()), K, lam=lam, smoothing=smoothing).numpy().astype("float32")


@pytest.mark.parametrize("lam", [1.0, 0.7, 0.35])
def test_soft_target_cross_entropy_matches_timm(lam):
    loss_fn = build_loss({"name": "SoftTargetCrossEntropy"})
    assert isinstance(loss_fn, SoftTargetCrossEntropy)
    logits, target = _logits(), _mixup_targets(lam)
    got, got_grad = _ours(loss_fn, logits, target)
    exp, exp_grad = _torch(TimmSoftTargetCrossEntropy(), logits, target)
    assert got == pytest.approx(exp, abs=1e-6)
    np.testing.assert_allclose(got_grad, exp_grad, atol=1e-6)
    # CrossEntropyLoss given [N, K] float targets uses the same soft-target form (smoothing lives in the targets)
    ce, ce_grad = _ours(build_loss({"name": "CrossEntropyLoss", "label_smoothing": 0.1}), logits, target)
    assert ce == pytest.approx(exp, abs=1e-6)
    np.testing.assert_allclose(ce_grad, exp_grad, atol=1e-6)


def test_soft_target_cross_entropy_on_arbitrary_distributions_matches_timm():
    rng = np.random.RandomState(3)
    target = rng.dirichlet(np.full(K, 0.5), size=N).astype("float32")
    logits = _logits(4)
    got, got_grad = _ours(build_loss({"name": "SoftTargetCrossEntropy"}), logits, target)
    exp, exp_grad = _torch(TimmSoftTargetCrossEntropy(), logits, target)
    assert got == pytest.approx(exp, abs=1e-6)
    np.testing.assert_allclose(got_grad, exp_grad, atol=1e-6)


def test_smoothed_one_hot_targets_equal_label_smoothing():
    """SoftTargetCrossEntropy on lam=1 smoothed one-hots == CrossEntropyLoss(label_smoothing) on the integer labels."""
    logits, labels = _logits(), _labels()
    soft, _ = _ours(build_loss({"name": "SoftTargetCrossEntropy"}), logits, _mixup_targets(1.0, 0.1))
    hard, _ = _ours(build_loss({"name": "CrossEntropyLoss", "label_smoothing": 0.1}), logits, labels)
    assert soft == pytest.approx(hard, abs=1e-6)


def test_losses_are_registered_and_config_errors_name_the_problem():
    assert LOSSES.get("CrossEntropyLoss") is CrossEntropyLoss
    assert LOSSES.get("SoftTargetCrossEntropy") is SoftTargetCrossEntropy
    cfg = {"name": "CrossEntropyLoss", "label_smoothing": 0.1}
    build_loss(cfg)
    assert cfg == {"name": "CrossEntropyLoss", "label_smoothing": 0.1}  # not mutated
    with pytest.raises(ConfigError, match="label_smoothing must be in"):
        build_loss({"name": "CrossEntropyLoss", "label_smoothing": 1.0})
    with pytest.raises(ConfigError, match=r"SoftTargetCrossEntropy' does not accept the argument\(s\) label_smoothing"):
        build_loss({"name": "SoftTargetCrossEntropy", "label_smoothing": 0.1})
    with pytest.raises(KeyError, match="did you mean: CrossEntropyLoss"):
        build_loss({"name": "CrossEntropyLos"})
    with pytest.raises(ValueError, match="needs \\[N, num_classes\\] soft targets"):
        SoftTargetCrossEntropy()(paddle.to_tensor(_logits()), paddle.to_tensor(_labels()))


@pytest.mark.parametrize(
    "loss_cfg, cls, target",
    [
        ({"name": "CrossEntropyLoss", "label_smoothing": 0.1}, CrossEntropyLoss, "labels"),
        ({"name": "SoftTargetCrossEntropy"}, SoftTargetCrossEntropy, "soft"),
    ],
)
def test_model_loss_section_builds_through_the_registry(loss_cfg, cls, target):
    """``model.loss`` in a config becomes ``Classification.loss_fn``; ``compute_loss`` is that loss (torch/timm value)."""
    model = build_model(
        {
            "architecture": {"name": "ConvNeXt", "depths": [1, 1], "dims": [8, 16]},
            "head": {"name": "ConvNeXtClsHead", "in_channels": 16, "num_classes": K},
            "loss": loss_cfg,
        }
    )
    assert type(model.loss_fn) is cls
    logits = _logits()
    if target == "labels":
        tgt = _labels()
        exp = float(
            torch.nn.functional.cross_entropy(torch.from_numpy(logits), torch.from_numpy(tgt), label_smoothing=0.1)
        )
    else:
        tgt = _mixup_targets(0.6)
        exp = float(TimmSoftTargetCrossEntropy()(torch.from_numpy(logits), torch.from_numpy(tgt)))
    got = float(model.compute_loss(paddle.to_tensor(logits), paddle.to_tensor(tgt)))
    assert got == pytest.approx(exp, abs=1e-6)
    no_loss = build_model(
        {
            "architecture": {"name": "ConvNeXt", "depths": [1, 1], "dims": [8, 16]},
            "head": {"name": "ConvNeXtClsHead", "in_channels": 16, "num_classes": K},
        }
    )
    with pytest.raises(ConfigError, match="model.loss is not set"):
        no_loss.compute_loss(paddle.to_tensor(logits), paddle.to_tensor(_labels()))


def test_shipped_recipe_losses(repo_root):
    """The ImageNet recipe trains with SoftTargetCrossEntropy on mixup targets; the demo with smoothed CE."""
    from passl.utils.config import get_config

    tiny = get_config(os.path.join(repo_root, "configs/convnext/convnext_tiny.yaml")).model.loss
    assert type(build_loss(tiny)) is SoftTargetCrossEntropy
    demo = build_loss(get_config(os.path.join(repo_root, "configs/demo/fashion_mnist_convnext.yaml")).model.loss)
    assert type(demo) is CrossEntropyLoss and demo.label_smoothing == 0.1
