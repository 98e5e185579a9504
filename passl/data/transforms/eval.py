"""Evaluation ops as the official ConvNeXt datasets.py builds them: PIL bicubic resize of the short side to
int(size / crop_pct) and a center crop below 384; a squash to size x size at 384 and above; ToTensor + Normalize."""

from __future__ import annotations

from typing import Any, Dict, List, Sequence, Union

import numpy as np
from PIL import Image

from passl.registry import TRANSFORMS, ConfigError

__all__ = ["Resize", "CenterCrop", "Normalize", "ToRGB", "eval_transform_cfgs", "pil_interp"]

_INTERP = {
    "nearest": Image.NEAREST,
    "bilinear": Image.BILINEAR,
    "bicubic": Image.BICUBIC,
    "lanczos": Image.LANCZOS,
    "box": Image.BOX,
    "hamming": Image.HAMMING,
}
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def pil_interp(name: str) -> int:
    if name not in _INTERP:
        raise ConfigError(f"interpolation '{name}' is not one of {', '.join(_INTERP)}")
    return _INTERP[name]


@TRANSFORMS.register
class ToRGB:
    """Convert any PIL mode (L, P, RGBA, CMYK, ...) to RGB with PIL's own conversion, as the official loader
    (and timm's) does: alpha is dropped, palettes and CMYK are mapped to RGB."""

    def __call__(self, img: Image.Image) -> Image.Image:
        return img if img.mode == "RGB" else img.convert("RGB")

    def __repr__(self) -> str:
        return "ToRGB()"


@TRANSFORMS.register
class Resize:
    """``size`` int: the short side becomes ``size`` and the long side int(size * long / short) (torchvision's
    rule); ``size`` [h, w]: resize to exactly that (the official squash at 384)."""

    def __init__(self, size: Union[int, Sequence[int]], interpolation: str = "bicubic") -> None:
        self.size = size if isinstance(size, int) else tuple(int(s) for s in size)
        self.interpolation = interpolation
        self._interp = pil_interp(interpolation)

    def __call__(self, img: Image.Image) -> Image.Image:
        w, h = img.size
        if isinstance(self.size, int):
            short, long = (w, h) if w <= h else (h, w)
            if short == self.size:
                return img
            new_short, new_long = self.size, int(self.size * long / short)
            new_w, new_h = (new_short, new_long) if w <= h else (new_long, new_short)
        else:
            new_h, new_w = self.size
        return img.resize((new_w, new_h), self._interp)

    def __repr__(self) -> str:
        return f"Resize(size={self.size}, interpolation={self.interpolation})"


@TRANSFORMS.register
class CenterCrop:
    """Center crop to ``size`` (int or [h, w]); a smaller image is zero-padded first, as torchvision does."""

    def __init__(self, size: Union[int, Sequence[int]]) -> None:
        self.size = (int(size), int(size)) if isinstance(size, int) else (int(size[0]), int(size[1]))

    def __call__(self, img: Image.Image) -> Image.Image:
        ch, cw = self.size
        w, h = img.size
        if cw > w or ch > h:
            pad_l, pad_t = (cw - w) // 2 if cw > w else 0, (ch - h) // 2 if ch > h else 0
            pad_r, pad_b = (cw - w + 1) // 2 if cw > w else 0, (ch - h + 1) // 2 if ch > h else 0
            canvas = Image.new(img.mode, (w + pad_l + pad_r, h + pad_t + pad_b))
            canvas.paste(img, (pad_l, pad_t))
            img, (w, h) = canvas, canvas.size
            if (w, h) == (cw, ch):
                return img
        top, left = int(round((h - ch) / 2.0)), int(round((w - cw) / 2.0))
        return img.crop((left, top, left + cw, top + ch))

    def __repr__(self) -> str:
        return f"CenterCrop(size={self.size})"


@TRANSFORMS.register
class Normalize:
    """PIL image (or HWC/HW uint8 array) -> float32 CHW array: scale to [0, 1], then (x - mean) / std."""

    def __init__(self, mean: Sequence[float] = IMAGENET_MEAN, std: Sequence[float] = IMAGENET_STD) -> None:
        self.mean = np.asarray(mean, dtype=np.float32).reshape(-1, 1, 1)
        self.std = np.asarray(std, dtype=np.float32).reshape(-1, 1, 1)

    def __call__(self, img: Any) -> np.ndarray:
        arr = np.asarray(img)
        arr = arr[None] if arr.ndim == 2 else arr.transpose(2, 0, 1)  # (H, W, C) -> (C, H, W), still a view
        if arr.shape[0] != self.mean.shape[0]:
            raise ConfigError(
                f"Normalize: the image has {arr.shape[0]} channels but mean/std have {self.mean.shape[0]} values"
            )
        # Reorder the small uint8 array, convert once, then ToTensor + Normalize's three operations in place
        # (bit-identical to (x / 255 - mean) / std, about 3x faster than the expression with temporaries).
        out = np.ascontiguousarray(arr).astype(np.float32)
        out /= 255.0
        out -= self.mean
        out /= self.std
        return out

    def __repr__(self) -> str:
        return f"Normalize(mean={self.mean.ravel().tolist()}, std={self.std.ravel().tolist()})"


def eval_transform_cfgs(
    size: int = 224,
    crop_pct: float = 0.875,
    crop_mode: str = "auto",
    interpolation: str = "bicubic",
    mean: Sequence[float] = IMAGENET_MEAN,
    std: Sequence[float] = IMAGENET_STD,
) -> List[Dict[str, Any]]:
    """The official eval pipeline as op configs. ``crop_mode``: "center" (resize short side to
    int(size / crop_pct), center crop), "squash" (resize to size x size), or "auto" (squash at 384 and above,
    center below, as the official code)."""
    if crop_mode == "auto":
        crop_mode = "squash" if size >= 384 else "center"
    ops: List[Dict[str, Any]] = [{"name": "ToRGB"}]
    if crop_mode == "squash":
        ops.append({"name": "Resize", "size": [size, size], "interpolation": interpolation})
    elif crop_mode == "center":
        ops.append({"name": "Resize", "size": int(size / crop_pct), "interpolation": interpolation})
        ops.append({"name": "CenterCrop", "size": size})
    else:
        raise ConfigError(f"crop_mode must be auto, center or squash, got '{crop_mode}'")
    ops.append({"name": "Normalize", "mean": list(mean), "std": list(std)})
    return ops
