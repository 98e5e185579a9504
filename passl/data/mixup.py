"""Mixup and CutMix on a batch, with label smoothing, producing soft targets (timm's Mixup semantics, batch mode).

Per batch: with probability ``prob`` mix; when both alphas are > 0, CutMix with probability ``switch_prob`` else
Mixup; lambda ~ Beta(alpha, alpha). CutMix pastes a box of the batch-reversed images and corrects lambda to the
box's true area. Targets: smoothed one-hot (on = 1 - s + s / K, off = s / K) mixed with the reversed batch's.
"""

from __future__ import annotations

from typing import Optional, Sequence, Tuple, Union

import numpy as np
import paddle

from passl.registry import ConfigError

__all__ = ["Mixup", "mixup_target", "mixup_target_tensor", "cutmix_box"]

Array = Union[np.ndarray, paddle.Tensor]


def mixup_target(target: np.ndarray, num_classes: int, lam: float = 1.0, smoothing: float = 0.0) -> np.ndarray:
    off = smoothing / num_classes
    on = 1.0 - smoothing + off
    target = np.asarray(target).reshape(-1).astype(np.int64)
    y1 = np.full((len(target), num_classes), off, dtype=np.float32)
    y1[np.arange(len(target)), target] = on
    y2 = y1[::-1]
    return (y1 * lam + y2 * (1.0 - lam)).astype(np.float32)


def mixup_target_tensor(target: paddle.Tensor, num_classes: int, lam: float = 1.0, smoothing: float = 0.0):
    """:func:`mixup_target` computed with Paddle ops on ``target``'s device (same float32 values)."""
    off = smoothing / num_classes
    on = 1.0 - smoothing + off
    hot = paddle.nn.functional.one_hot(target.reshape([-1]).astype("int64"), num_classes) > 0
    y1 = paddle.where(hot, paddle.full([], on, "float32"), paddle.full([], off, "float32"))
    return y1 * lam + y1.flip([0]) * (1.0 - lam)


def cutmix_box(
    shape: Sequence[int],
    lam: float,
    minmax: Optional[Sequence[float]] = None,
    correct_lam: bool = True,
    rng: Optional[np.random.RandomState] = None,
) -> Tuple[Tuple[int, int, int, int], float]:
    """A box (top, bottom, left, right) for CutMix and the lambda it implies (1 - box area / image area).

    As timm >= 1.0.30: the box is exactly int(H * sqrt(1 - lam)) x int(W * sqrt(1 - lam)) before clipping (older timm,
    including the 0.3.2 the official ConvNeXt pinned, made odd sides one pixel shorter), and a min/max box may start
    at any valid origin, the last one included. With ``correct_lam`` the lambda follows the box either way.
    """
    rng = np.random if rng is None else rng
    img_h, img_w = int(shape[-2]), int(shape[-1])
    if minmax is not None:
        lo, hi = minmax
        cut_h = int(rng.randint(int(img_h * lo), int(img_h * hi)))
        cut_w = int(rng.randint(int(img_w * lo), int(img_w * hi)))
        top, left = int(rng.randint(0, img_h - cut_h + 1)), int(rng.randint(0, img_w - cut_w + 1))
        box = (top, top + cut_h, left, left + cut_w)
    else:
        ratio = np.sqrt(1.0 - lam)
        cut_h, cut_w = int(img_h * ratio), int(img_w * ratio)
        cy, cx = int(rng.randint(0, img_h)), int(rng.randint(0, img_w))
        box = (
            int(np.clip(cy - cut_h // 2, 0, img_h)),
            int(np.clip(cy + (cut_h + 1) // 2, 0, img_h)),
            int(np.clip(cx - cut_w // 2, 0, img_w)),
            int(np.clip(cx + (cut_w + 1) // 2, 0, img_w)),
        )
    if correct_lam or minmax is not None:
        lam = 1.0 - (box[1] - box[0]) * (box[3] - box[2]) / float(img_h * img_w)
    return box, float(lam)


class Mixup:
    """Batch-mode Mixup/CutMix. Call on (images [N, C, H, W], integer labels [N]) -> (images, soft targets)."""

    def __init__(
        self,
        mixup_alpha: float = 0.8,
        cutmix_alpha: float = 1.0,
        cutmix_minmax: Optional[Sequence[float]] = None,
        prob: float = 1.0,
        switch_prob: float = 0.5,
        mode: str = "batch",
        label_smoothing: float = 0.1,
        correct_lam: bool = True,
        num_classes: int = 1000,
        seed: Optional[int] = None,
    ) -> None:
        if mode != "batch":
            raise ConfigError(f"data.mixup.mode '{mode}' is not supported; use 'batch' (the official recipe's)")
        self.mixup_alpha, self.cutmix_alpha = float(mixup_alpha), float(cutmix_alpha)
        self.cutmix_minmax = tuple(cutmix_minmax) if cutmix_minmax is not None else None
        if self.cutmix_minmax is not None:
            self.cutmix_alpha = 1.0  # timm: minmax overrides alpha
        self.prob, self.switch_prob = float(prob), float(switch_prob)
        self.label_smoothing, self.correct_lam = float(label_smoothing), bool(correct_lam)
        self.num_classes = int(num_classes)
        # Its own generator: the loader may reseed the global ones from a prefetch thread. Checkpointed by the trainer.
        self.rng = np.random.RandomState(seed)

    def params(self) -> Tuple[float, bool]:
        """Draw (lambda, use_cutmix) for one batch from ``self.rng`` (in timm's order)."""
        lam, use_cutmix = 1.0, False
        rng = self.rng
        if rng.rand() < self.prob:
            if self.mixup_alpha > 0 and self.cutmix_alpha > 0:
                use_cutmix = bool(rng.rand() < self.switch_prob)
                alpha = self.cutmix_alpha if use_cutmix else self.mixup_alpha
                lam = float(rng.beta(alpha, alpha))
            elif self.mixup_alpha > 0:
                lam = float(rng.beta(self.mixup_alpha, self.mixup_alpha))
            elif self.cutmix_alpha > 0:
                use_cutmix, lam = True, float(rng.beta(self.cutmix_alpha, self.cutmix_alpha))
        return lam, use_cutmix

    def apply(self, images: Array, labels: Array, lam: float, use_cutmix: bool, box=None):
        """Mix with given decisions (tests use this to compare with a reference); returns (images, targets, lam).
        Paddle tensors stay on their device; NumPy arrays stay NumPy."""
        if len(images) % 2 != 0:
            raise ValueError(f"Mixup needs an even batch size, got {len(images)}; use drop_last or an even batch_size")
        is_tensor = isinstance(images, paddle.Tensor)
        x = images if is_tensor else np.asarray(images, dtype=np.float32)
        reversed_x = x.flip([0]) if is_tensor else x[::-1]
        if lam != 1.0:
            if use_cutmix:
                if box is None:
                    box, lam = cutmix_box(x.shape, lam, self.cutmix_minmax, self.correct_lam, self.rng)
                t, b, left, r = box
                if b > t and r > left:  # an empty box (lambda near 1, small cutmix_minmax) pastes nothing
                    x = x.clone() if is_tensor else x.copy()
                    x[:, :, t:b, left:r] = reversed_x[:, :, t:b, left:r]
            else:
                x = x * lam + reversed_x * (1.0 - lam)
        if is_tensor:  # targets built where the images are: no device-to-host copy of the labels
            labels = labels if isinstance(labels, paddle.Tensor) else paddle.to_tensor(np.asarray(labels))
            return x, mixup_target_tensor(labels, self.num_classes, lam, self.label_smoothing), lam
        y = labels.numpy() if isinstance(labels, paddle.Tensor) else np.asarray(labels)
        return x.astype(np.float32), mixup_target(y, self.num_classes, lam, self.label_smoothing), lam

    def __call__(self, images: Array, labels: Array):
        lam, use_cutmix = self.params()
        x, targets, _ = self.apply(images, labels, lam, use_cutmix)
        return x, targets
