"""Fashion-MNIST from its idx files (Debian's dataset-fashion-mnist installs them; no download at run time).

Semi-supervised experiments (tools/benchmark_fcmae.py) need parts of the training set chosen once and for all:
``holdout_per_class`` holds that many training images of every class out as a validation split (``split: holdout``
reads them, ``split: train`` the rest), and ``subset_per_class`` keeps that many images of every class of the split
(a class-balanced labelled subset). Both are drawn from per-class permutations seeded by ``holdout_seed`` and
``subset_seed`` only, so every process and every rerun reads the same images, and a smaller subset is the start of
a larger one with the same seed (600 labelled images are among the 6,000).
"""

from __future__ import annotations

import gzip
import os
import struct
from typing import Any, Callable, Optional, Tuple

import numpy as np
from PIL import Image

from passl.registry import DATASETS, ConfigError

__all__ = ["FashionMNIST", "read_idx", "select_indices"]

DEFAULT_ROOT = "/usr/share/datasets/fashion-mnist"
FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
SPLITS = ("train", "holdout", "test")  # holdout: training images held out by holdout_per_class
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


def _count(value: Any, key: str, minimum: int, null: bool = False) -> Optional[int]:
    if value is None and null:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        extra = " or null" if null else ""
        raise ConfigError(f"FashionMNIST: {key} must be an integer >= {minimum}{extra}, got {value!r}")
    return int(value)


def _per_class_order(labels: np.ndarray, seed: int, stream: int) -> dict:
    """class -> that class's indices (into ``labels``) in a random order fixed by (seed, stream, class) only."""
    out = {}
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        rng = np.random.RandomState((seed * 1_000_003 + stream * 7_919 + int(c)) % (2**32))
        out[int(c)] = idx[rng.permutation(len(idx))]
    return out


def select_indices(
    labels: np.ndarray,
    split: str,
    holdout_per_class: int = 0,
    holdout_seed: int = 0,
    subset_per_class: Optional[int] = None,
    subset_seed: int = 0,
) -> np.ndarray:
    """Indices (sorted, into the idx file) of the images ``split`` reads: for ``holdout`` the first
    ``holdout_per_class`` of every class's ``holdout_seed`` permutation, for ``train`` the others (``test`` has no
    holdout); then, with ``subset_per_class``, the first that many of every class's ``subset_seed`` permutation of
    those. Raises ConfigError naming the key when a class has too few images."""
    labels = np.asarray(labels)
    keep = np.arange(len(labels))
    if split != "test":
        held = np.zeros(len(labels), dtype=bool)
        if holdout_per_class:
            for c, order in _per_class_order(labels, holdout_seed, 0).items():
                if holdout_per_class >= len(order):
                    raise ConfigError(
                        f"FashionMNIST: holdout_per_class {holdout_per_class} leaves no training image of class {c} "
                        f"({len(order)} images); use a smaller value"
                    )
                held[order[:holdout_per_class]] = True
        keep = keep[held] if split == "holdout" else keep[~held]
    if subset_per_class is not None:
        chosen = []
        for c, order in _per_class_order(labels[keep], subset_seed, 1).items():
            if subset_per_class > len(order):
                raise ConfigError(
                    f"FashionMNIST: subset_per_class {subset_per_class} is more than the {len(order)} images of class "
                    f"{c} in split '{split}'; use at most {len(order)}"
                )
            chosen.append(keep[order[:subset_per_class]])
        keep = np.sort(np.concatenate(chosen))
    return keep


@DATASETS.register
class FashionMNIST:
    """Fashion-MNIST: 60k train / 10k test 28x28 grayscale images, 10 classes.

    Items are (transform(PIL image), label). ``mode`` "L" gives grayscale images, "RGB" three equal channels
    (for ImageNet-style transforms and 3-channel models). ``split`` is ``train``, ``test`` or ``holdout`` (the
    training images held out by ``holdout_per_class``, seeded by ``holdout_seed``; ``train`` then reads the others);
    ``subset_per_class`` keeps that many images of every class of the split (seeded by ``subset_seed``).
    ``indices`` are the positions of the images read in the idx file.
    """

    classes = CLASSES

    def __init__(
        self,
        root: str = DEFAULT_ROOT,
        split: str = "train",
        transform: Optional[Callable] = None,
        mode: str = "L",
        holdout_per_class: int = 0,
        holdout_seed: int = 0,
        subset_per_class: Optional[int] = None,
        subset_seed: int = 0,
    ) -> None:
        if split not in SPLITS:
            raise ConfigError(f"FashionMNIST: split must be one of {', '.join(SPLITS)}, got '{split}'")
        if mode not in ("L", "RGB"):
            raise ConfigError(f"FashionMNIST: mode must be 'L' or 'RGB', got '{mode}'")
        holdout_per_class = _count(holdout_per_class, "holdout_per_class", 0)
        holdout_seed = _count(holdout_seed, "holdout_seed", 0)
        subset_per_class = _count(subset_per_class, "subset_per_class", 1, null=True)
        subset_seed = _count(subset_seed, "subset_seed", 0)
        if split == "test" and holdout_per_class:
            raise ConfigError(
                "FashionMNIST: holdout_per_class holds out training images, but split 'test' reads the test file: "
                "set holdout_per_class to 0 there (or read split 'holdout')"
            )
        if split == "holdout" and not holdout_per_class:
            raise ConfigError("FashionMNIST: split 'holdout' needs holdout_per_class >= 1 (the images to hold out)")
        img_file, lbl_file = (_find(root, stem) for stem in FILES["test" if split == "test" else "train"])
        self.images = read_idx(img_file)
        self.labels = read_idx(lbl_file).astype(np.int64)
        if self.images.ndim != 3 or len(self.images) != len(self.labels):
            raise ConfigError(f"{img_file} and {lbl_file} do not match: {self.images.shape} vs {self.labels.shape}")
        if self.labels.max() >= len(CLASSES):
            raise ConfigError(f"{lbl_file}: label {int(self.labels.max())} outside 0..{len(CLASSES) - 1}")
        self.indices = select_indices(
            self.labels, split, holdout_per_class, holdout_seed, subset_per_class, subset_seed
        )
        if len(self.indices) < len(self.labels):
            self.images, self.labels = self.images[self.indices], self.labels[self.indices]
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
