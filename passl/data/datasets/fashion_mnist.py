"""Fashion-MNIST from its idx files (Debian's dataset-fashion-mnist installs them; no download at run time)."""

from __future__ import annotations

import gzip
import os
import struct
from typing import Any, Callable, Optional, Tuple

import numpy as np
from PIL import Image

from passl.registry import DATASETS, ConfigError

__all__ = ["FashionMNIST", "read_idx"]

DEFAULT_ROOT = "/usr/share/datasets/fashion-mnist"
FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")


def _find(root: str, stem: str) -> str:
    for name in (stem + ".gz", stem):
        path = os.path.join(root, name)
        if os.path.isfile(path):
            return path
    raise ConfigError(
        f"Fashion-MNIST file {stem}(.gz) not found in {root}. On Debian/Ubuntu install it with "
        f"'sudo apt-get install dataset-fashion-mnist' (files go to {DEFAULT_ROOT}), or put the four idx files "
        f"there or in the folder named by the dataset's 'root' key"
    )


def read_idx(path: str) -> np.ndarray:
    """Read an idx file (optionally gzipped) into a uint8 array; checks the magic number and the size."""
    opener = gzip.open if path.endswith(".gz") else open
    try:
        with opener(path, "rb") as f:
            data = f.read()
    except (OSError, EOFError) as e:
        raise ConfigError(f"{path}: cannot read the idx file ({e}); reinstall it or download it again") from None
    if len(data) < 8:
        raise ConfigError(f"{path}: too short to be an idx file")
    zero, dtype_code, ndim = struct.unpack(">HBB", data[:4])
    if zero != 0 or dtype_code != 0x08:
        raise ConfigError(f"{path}: not an unsigned-byte idx file (magic {data[:4].hex()})")
    dims = struct.unpack(f">{ndim}I", data[4 : 4 + 4 * ndim])
    body = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim)
    if body.size != int(np.prod(dims)):
        raise ConfigError(f"{path}: truncated: header says {dims}, found {body.size} bytes of data")
    return body.reshape(dims)


@DATASETS.register
class FashionMNIST:
    """Fashion-MNIST: 60k train / 10k test 28x28 grayscale images, 10 classes.

    Items are (transform(PIL image), label). ``mode`` "L" gives grayscale images, "RGB" three equal channels
    (for ImageNet-style transforms and 3-channel models).
    """

    classes = CLASSES

    def __init__(
        self,
        root: str = DEFAULT_ROOT,
        split: str = "train",
        transform: Optional[Callable] = None,
        mode: str = "L",
    ) -> None:
        if split not in FILES:
            raise ConfigError(f"FashionMNIST: split must be one of {', '.join(FILES)}, got '{split}'")
        if mode not in ("L", "RGB"):
            raise ConfigError(f"FashionMNIST: mode must be 'L' or 'RGB', got '{mode}'")
        img_file, lbl_file = (_find(root, stem) for stem in FILES[split])
        self.images = read_idx(img_file)
        self.labels = read_idx(lbl_file).astype(np.int64)
        if self.images.ndim != 3 or len(self.images) != len(self.labels):
            raise ConfigError(f"{img_file} and {lbl_file} do not match: {self.images.shape} vs {self.labels.shape}")
        if self.labels.max() >= len(CLASSES):
            raise ConfigError(f"{lbl_file}: label {int(self.labels.max())} outside 0..{len(CLASSES) - 1}")
        self.root, self.split, self.transform, self.mode = root, split, transform, mode

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, idx: int) -> Tuple[Any, int]:
        img = Image.fromarray(self.images[idx])  # uint8 HxW -> mode "L"
        if self.mode == "RGB":
            img = img.convert("RGB")
        if self.transform is not None:
            img = self.transform(img)
        return img, int(self.labels[idx])
