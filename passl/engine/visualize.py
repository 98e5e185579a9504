"""Pictures of a masked-image-modelling run: originals, masked inputs and reconstructions as one PNG.

Used by ``ReconstructionHook`` (``train.recon_png``) and by tools/benchmark_fcmae.py. The model must have
``reconstruct(images, mask=None) -> {"mask_img": (N, 1, H, W), 1 = masked pixel, "pred_img": (N, C, H, W)}`` in the
input's normalized space (FCMAE un-normalises its per-patch prediction itself when norm_pix_loss is on)."""

from __future__ import annotations

import os
from typing import Any, Mapping, Optional, Sequence, Tuple

import numpy as np
import paddle

from passl.engine.checkpoint import rng_state, set_rng_state

__all__ = ["normalize_stats", "reconstruction_grid", "write_reconstruction_png"]

GREY = 0.5  # masked patches are shown in mid grey


def normalize_stats(transforms: Optional[Sequence[Mapping[str, Any]]]) -> Tuple[np.ndarray, np.ndarray]:
    """(mean, std) of the ``Normalize`` op in a transform list (the images' pixel scale is [0, 1] before it), or
    (0, 1) when there is none."""
    for op in transforms or ():
        if isinstance(op, Mapping) and op.get("name") == "Normalize":
            from passl.data.transforms.eval import IMAGENET_MEAN, IMAGENET_STD

            mean = np.asarray(op.get("mean", IMAGENET_MEAN), dtype=np.float32).reshape(-1, 1, 1)
            std = np.asarray(op.get("std", IMAGENET_STD), dtype=np.float32).reshape(-1, 1, 1)
            return mean, std
    return np.zeros((1, 1, 1), np.float32), np.ones((1, 1, 1), np.float32)


def _to_uint8(x: np.ndarray, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    """(C, H, W) normalized -> (H, W, C) uint8."""
    img = np.clip(x * std + mean, 0.0, 1.0)
    return np.round(img * 255.0).astype(np.uint8).transpose(1, 2, 0)


def reconstruction_grid(
    images: np.ndarray, mask_img: np.ndarray, pred_img: np.ndarray, mean: np.ndarray, std: np.ndarray
) -> np.ndarray:
    """Three rows (original, masked input, reconstruction = visible pixels + prediction in the masked patches) of
    N columns, as one (rows, cols, C) uint8 array with 2-pixel white gaps; each cell enlarged to at least 112 px."""
    n, c, h, w = images.shape
    scale = max(1, 112 // max(h, w))
    gap = 2
    grid = np.full((3 * h * scale + 4 * gap, n * (w * scale + gap) + gap, c), 255, np.uint8)
    grey = np.full_like(images[0], 0.0) + ((GREY - mean) / std)
    for i in range(n):
        m = mask_img[i]  # (1, H, W), 1 = masked
        rows = (images[i], images[i] * (1 - m) + grey * m, images[i] * (1 - m) + pred_img[i] * m)
        for r, cell in enumerate(rows):
            pix = _to_uint8(cell, mean, std)
            if scale > 1:
                pix = pix.repeat(scale, axis=0).repeat(scale, axis=1)
            y, x = gap + r * (h * scale + gap), gap + i * (w * scale + gap)
            grid[y : y + h * scale, x : x + w * scale] = pix
    return grid


def write_reconstruction_png(
    model: paddle.nn.Layer,
    dataset: Any,
    path: str,
    num_images: int = 8,
    seed: int = 0,
    transforms: Optional[Sequence[Mapping[str, Any]]] = None,
) -> str:
    """Reconstruct ``num_images`` images of ``dataset`` (spread over it; the same images, crops and masks every
    call: everything is drawn under ``seed``) and write the PNG atomically. The caller's Python, NumPy and Paddle
    random states are restored afterwards, so a training run draws the same numbers with or without pictures."""
    from PIL import Image

    saved = rng_state()
    try:
        paddle.seed(seed)
        np.random.seed(seed)
        import random

        random.seed(seed)
        count = min(int(num_images), len(dataset))
        idx = [int(i * len(dataset) / count) for i in range(count)]
        batch = np.stack([np.asarray(dataset[i][0], dtype=np.float32) for i in idx])
        out = model.reconstruct(paddle.to_tensor(batch))
        mask_img = out["mask_img"].astype("float32").numpy()
        pred_img = out["pred_img"].astype("float32").numpy()
    finally:
        set_rng_state(saved)
    mean, std = normalize_stats(transforms)
    grid = reconstruction_grid(batch, mask_img, pred_img, mean, std)
    img = Image.fromarray(grid[..., 0] if grid.shape[-1] == 1 else grid)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = f"{path}.tmp{os.getpid()}"
    try:
        img.save(tmp, format="PNG")
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return path
