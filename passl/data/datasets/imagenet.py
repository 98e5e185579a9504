"""ImageNet-style datasets: class folders (train/ and val/ with one folder per wnid) and PaddleClas list files."""

from __future__ import annotations

import logging
import os
from typing import Any, Callable, List, Optional, Tuple

from PIL import Image, UnidentifiedImageError

from passl.registry import DATASETS, ConfigError

__all__ = ["ImageNet", "ImageFolder", "ImageList", "load_image"]

logger = logging.getLogger("passl.data")
IMG_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")


def load_image(path: str) -> Image.Image:
    """Open and fully decode an image (truncated files fail here, not later), converted to RGB."""
    try:
        with open(path, "rb") as f:
            img = Image.open(f)
            img.load()
    except FileNotFoundError:
        raise
    except (OSError, UnidentifiedImageError, SyntaxError, ValueError) as e:
        raise OSError(f"cannot decode image {path}: {e}") from None
    return img if img.mode == "RGB" else img.convert("RGB")


class _ImageDataset:
    """Shared item logic: decode, transform, and the corrupt-image policy.

    ``on_corrupt: fail`` raises an error naming the file. ``on_corrupt: skip`` logs it and, for evaluation
    (``skip_as: ignore``), returns a blank image with label -1, which the evaluator leaves out of the metrics and
    counts as skipped; for training (``skip_as: substitute``) it returns the next image instead.
    """

    samples: List[Tuple[str, int]]

    def __init__(self, transform: Optional[Callable], on_corrupt: str, skip_as: str = "substitute") -> None:
        if on_corrupt not in ("fail", "skip"):
            raise ConfigError(f"dataset on_corrupt must be 'fail' or 'skip', got '{on_corrupt}'")
        if skip_as not in ("substitute", "ignore"):
            raise ConfigError(f"dataset skip_as must be 'substitute' or 'ignore', got '{skip_as}'")
        self.transform, self.on_corrupt, self.skip_as = transform, on_corrupt, skip_as

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, idx: int) -> Tuple[Any, int]:
        path, label = self.samples[idx]
        try:
            img = load_image(path)
        except OSError as e:
            if self.on_corrupt == "fail":
                raise OSError(
                    f"{e}; remove or replace the file, or set on_corrupt: skip in the dataset config"
                ) from None
            logger.warning("skipping corrupt image %s", path)
            if self.skip_as == "substitute":
                return self[(idx + 1) % len(self)]
            blank = Image.new("RGB", (256, 256))
            return (self.transform(blank) if self.transform is not None else blank), -1
        return (self.transform(img) if self.transform is not None else img), label


@DATASETS.register
class ImageFolder(_ImageDataset):
    """``root/<class>/<image>``: classes are the sorted folder names, labelled 0..K-1."""

    def __init__(
        self,
        root: str,
        transform: Optional[Callable] = None,
        on_corrupt: str = "fail",
        num_classes: Optional[int] = None,
        skip_as: str = "substitute",
    ) -> None:
        super().__init__(transform, on_corrupt, skip_as)
        if not os.path.isdir(root):
            raise ConfigError(f"dataset folder not found: {root} (expected one sub-folder per class)")
        self.classes = sorted(d.name for d in os.scandir(root) if d.is_dir())
        if not self.classes:
            raise ConfigError(f"{root} has no class folders")
        if num_classes is not None and len(self.classes) != num_classes:
            raise ConfigError(f"{root} has {len(self.classes)} class folders, the config expects {num_classes}")
        self.samples = []
        for label, cls in enumerate(self.classes):
            folder = os.path.join(root, cls)
            for name in sorted(os.listdir(folder)):
                if name.lower().endswith(IMG_EXTENSIONS):
                    self.samples.append((os.path.join(folder, name), label))
        if not self.samples:
            raise ConfigError(f"{root} has class folders but no images ({', '.join(IMG_EXTENSIONS)})")
        self.root = root


@DATASETS.register
class ImageNet(ImageFolder):
    """ImageNet in class-folder layout: ``root/{train,val}/<wnid>/*.JPEG`` (tools/prepare_imagenet.py makes val)."""

    def __init__(
        self,
        root: str,
        split: str = "train",
        transform: Optional[Callable] = None,
        on_corrupt: str = "fail",
        num_classes: Optional[int] = 1000,
    ) -> None:
        folder = os.path.join(root, split)
        if not os.path.isdir(folder):
            raise ConfigError(
                f"ImageNet {split} folder not found: {folder}. Put the class folders there (one per wnid) or set "
                f"data.{'train' if split == 'train' else 'val'}.dataset.root; see docs/getting_started.md"
            )
        super().__init__(folder, transform, on_corrupt, num_classes, "substitute" if split == "train" else "ignore")
        self.split = split


@DATASETS.register
class ImageList(_ImageDataset):
    """A PaddleClas list file: one ``relative/path.JPEG label`` per line, paths relative to ``root``."""

    def __init__(
        self,
        root: str,
        list_file: str,
        transform: Optional[Callable] = None,
        on_corrupt: str = "fail",
        num_classes: Optional[int] = None,
        skip_as: str = "substitute",
    ) -> None:
        super().__init__(transform, on_corrupt, skip_as)
        if not os.path.isfile(list_file):
            raise ConfigError(f"list file not found: {list_file}")
        self.samples = []
        with open(list_file, encoding="utf-8") as f:
            for n, line in enumerate(f, 1):
                line = line.strip()
                if not line:
                    continue
                parts = line.rsplit(maxsplit=1)
                if len(parts) != 2 or not parts[1].lstrip("-").isdigit():
                    raise ConfigError(f"{list_file}:{n}: expected 'relative/path label', got '{line}'")
                label = int(parts[1])
                if label < 0 or (num_classes is not None and label >= num_classes):
                    raise ConfigError(f"{list_file}:{n}: label {label} outside 0..{(num_classes or 1) - 1}")
                self.samples.append((os.path.join(root, parts[0]), label))
        if not self.samples:
            raise ConfigError(f"{list_file} lists no images")
