"""Mixup/CutMix on the device: an empty CutMix box pastes nothing (it crashed Paddle's slice assignment), and
targets are built with Paddle ops, no copy of the labels to the host."""

import numpy as np
import paddle
import pytest

from passl.data.mixup import Mixup, cutmix_box, mixup_target


def _batch(n=4, size=8):
    rng = np.random.RandomState(0)
    return rng.rand(n, 3, size, size).astype("float32"), np.array([1, 3, 0, 2], "int64")[:n]


@pytest.mark.parametrize("as_tensor", [True, False])
def test_empty_cutmix_box_pastes_nothing_and_goes_on(as_tensor):
    images, labels = _batch()
    lam = 1.0 - 1e-6  # sqrt(1 - lam) * 8 < 1: a box of zero height and width
    mix = Mixup(mixup_alpha=0.0, cutmix_alpha=1.0, label_smoothing=0.1, num_classes=5, seed=0)
    box, corrected = cutmix_box(images.shape, lam, rng=np.random.RandomState(0))
    assert box[0] == box[1] or box[2] == box[3]  # the planted condition: an empty box
    x, y = (paddle.to_tensor(images), paddle.to_tensor(labels)) if as_tensor else (images, labels)
    out, targets, lam_out = mix.apply(x, y, lam, use_cutmix=True)
    out = out.numpy() if as_tensor else out
    targets = targets.numpy() if as_tensor else targets
    np.testing.assert_array_equal(out, images)
    assert lam_out == corrected == 1.0
    np.testing.assert_array_equal(targets, mixup_target(labels, 5, 1.0, 0.1))
    # a planted empty box of zero width with rows to spare
    out2, _, _ = mix.apply(x, y, 0.5, use_cutmix=True, box=(2, 6, 3, 3))
    np.testing.assert_array_equal(out2.numpy() if as_tensor else out2, images)


def test_targets_are_built_on_the_device_and_equal_numpys(monkeypatch):
    images, labels = _batch()
    for lam, cut in ((0.3, False), (0.7, True), (1.0, False)):
        mix = Mixup(label_smoothing=0.1, num_classes=5, seed=0)
        x, y = paddle.to_tensor(images), paddle.to_tensor(labels)

        def no_host_copy(self, *a, **k):
            raise AssertionError("labels copied to the host")

        with monkeypatch.context() as m:
            m.setattr(paddle.Tensor, "numpy", no_host_copy)
            _, targets, used = mix.apply(x, y, lam, use_cutmix=cut)
            assert isinstance(targets, paddle.Tensor) and targets.dtype == paddle.float32
        np.testing.assert_allclose(targets.numpy(), mixup_target(labels, 5, used, 0.1), rtol=0, atol=1e-7)
