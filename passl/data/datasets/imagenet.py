"""ImageNet-style datasets: class folders (train/ and val/ with one folder per wnid) and PaddleClas list files."""

from __future__ import annotations

import logging
import os
import warnings
from typing import Any, Callable, List, Optional, Sequence, Tuple, Union

from PIL import Image

from passl.registry import DATASETS, ConfigError
from passl.utils.schema import DEFAULT_MAX_PIXELS

__all__ = ["ImageNet", "ImageFolder", "ImageList", "load_image", "CorruptImageError", "class_folders", "read_classes"]

logger = logging.getLogger("passl.data")
IMG_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")


class CorruptImageError(OSError):
    """An image that cannot be decoded, or whose header claims more pixels than the cap; the message has the path."""


def load_image(
    path: str, mode: str = "RGB", max_pixels: Optional[int] = DEFAULT_MAX_PIXELS, cap_key: str = "max_pixels"
) -> Image.Image:
    """Open and fully decode an image (truncated files fail here, not later), converted to ``mode``.

    The header's width x height is checked against ``max_pixels`` before any pixel is decoded, so a decompression
    bomb (a small PNG claiming 100000 x 100000) is refused like any corrupt file; ``cap_key`` names the config key
    that raises the cap. Every failure is a :class:`CorruptImageError` (an OSError) naming ``path``.
    """
    if max_pixels is not None and Image.MAX_IMAGE_PIXELS is not None and max_pixels > Image.MAX_IMAGE_PIXELS:
        Image.MAX_IMAGE_PIXELS = int(max_pixels)  # PIL's own bomb limit must not be lower than the configured cap
    try:
        with open(path, "rb") as f:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # our cap decides, below
                img = Image.open(f)
            width, height = img.size
            if max_pixels is not None and width * height > max_pixels:
                raise CorruptImageError(
                    f"image {path} claims {width}x{height} = {width * height} pixels, above the cap of {max_pixels} "
                    f"(a decompression bomb, or a genuine huge image: then raise {cap_key})"
                )
            img.load()
            out = img if img.mode == mode else img.convert(mode)
    except (FileNotFoundError, CorruptImageError):
        raise
    except Image.DecompressionBombError as e:
        raise CorruptImageError(
            f"image {path} claims more pixels than the cap of {max_pixels} ({e}) (a decompression bomb, or a genuine "
            f"huge image: then raise {cap_key})"
        ) from None
    except Exception as e:  # PIL's decoders raise OSError, SyntaxError, ValueError, struct.error, EOFError, ...
        raise CorruptImageError(f"cannot decode image {path}: {type(e).__name__}: {e}") from None
    return out


def read_classes(classes: Union[str, Sequence[str]], key: str = "classes") -> List[str]:
    """A class list from a list of names or a file with one name per line (blank lines and ``#`` comments
    skipped); names must be unique."""
    if isinstance(classes, str):
        if not os.path.isfile(classes):
            raise ConfigError(f"{key}: class list file not found: {classes} (one class name per line)")
        with open(classes, encoding="utf-8") as f:
            names = [ln.strip() for ln in f if ln.strip() and not ln.lstrip().startswith("#")]
    else:
        names = [str(c) for c in classes]
    if not names:
        raise ConfigError(f"{key}: the class list is empty")
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise ConfigError(f"{key}: class name(s) listed twice: {', '.join(twice[:5])}")
    return names


def class_folders(root: str) -> List[str]:
    """The class folders of ``root``, sorted; hidden folders (``.ipynb_checkpoints``, any dot-folder) are never
    classes."""
    return sorted(d.name for d in os.scandir(root) if d.is_dir() and not d.name.startswith("."))


class _ImageDataset:
    """Shared item logic: decode, transform, and the corrupt-image policy.

    ``on_corrupt: fail`` raises an error naming the file. ``on_corrupt: skip`` logs it and, for evaluation
    (``skip_as: ignore``), returns a blank image with label -1, which the evaluator leaves out of the metrics and
    counts as skipped; for training (``skip_as: substitute``) it returns the next image instead.
    """

    samples: List[Tuple[str, int]]
    # The config section this dataset was built from; build_dataset sets it, messages name its keys.
    config_key: str = "data.*.dataset"

    def __init__(
        self,
        transform: Optional[Callable],
        on_corrupt: str,
        skip_as: str = "substitute",
        max_pixels: int = DEFAULT_MAX_PIXELS,
    ) -> None:
        if on_corrupt not in ("fail", "skip"):
            raise ConfigError(f"dataset on_corrupt must be 'fail' or 'skip', got '{on_corrupt}'")
        if skip_as not in ("substitute", "ignore"):
            raise ConfigError(f"dataset skip_as must be 'substitute' or 'ignore', got '{skip_as}'")
        if isinstance(max_pixels, bool) or not isinstance(max_pixels, int) or max_pixels < 1:
            raise ConfigError(f"dataset max_pixels must be an integer >= 1, got {max_pixels!r}")
        self.transform, self.on_corrupt, self.skip_as, self.max_pixels = transform, on_corrupt, skip_as, max_pixels

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, idx: int) -> Tuple[Any, int]:
        # A loop, not recursion: a long run of unreadable files (substituted one after another) cannot overflow
        # the stack, and a dataset with no readable image at all is an error instead of an endless search.
        n = len(self.samples)
        for k in range(n):
            path, label = self.samples[(idx + k) % n]
            try:
                img = load_image(path, max_pixels=self.max_pixels, cap_key=f"{self.config_key}.max_pixels")
            except OSError as e:
                if self.on_corrupt == "fail":
                    raise CorruptImageError(
                        f"{e}; remove or replace the file, or set {self.config_key}.on_corrupt: skip"
                    ) from None
                logger.warning("skipping corrupt image: %s", e)
                if self.skip_as == "substitute":
                    continue
                blank = Image.new("RGB", (256, 256))
                return (self.transform(blank) if self.transform is not None else blank), -1
            return (self.transform(img) if self.transform is not None else img), label
        raise CorruptImageError(
            f"none of the {n} images of {getattr(self, 'root', 'the dataset')} can be read ({self.config_key}."
            f"on_corrupt: skip found nothing to substitute); check the files"
        )


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
        classes: Optional[Union[str, Sequence[str]]] = None,
        max_pixels: int = DEFAULT_MAX_PIXELS,
    ) -> None:
        super().__init__(transform, on_corrupt, skip_as, max_pixels)
        if not os.path.isdir(root):
            raise ConfigError(f"dataset folder not found: {root} (expected one sub-folder per class)")
        folders = class_folders(root)
        if not folders:
            raise ConfigError(f"{root} has no class folders")
        if classes is None:
            self.classes = folders
        else:
            # Labels come from the given list by name, so a folder holding a subset of the classes (a val folder
            # missing one) keeps every label right instead of shifting the ones after the gap.
            self.classes = read_classes(classes, "dataset classes")
            unknown = sorted(set(folders) - set(self.classes))
            if unknown:
                raise ConfigError(
                    f"{root} has class folder(s) {', '.join(unknown[:5])}{' ...' if len(unknown) > 5 else ''} that "
                    f"are not in the class list ({len(self.classes)} classes); remove them or fix the list"
                )
            missing = len(self.classes) - len(folders)
            if missing:
                logger.warning(
                    f"{root}: {missing} of the {len(self.classes)} classes have no folder (evaluated: the rest)"
                )
        if num_classes is not None and len(self.classes) != num_classes:
            raise ConfigError(f"{root} has {len(self.classes)} classes, the config expects {num_classes}")
        index = {c: i for i, c in enumerate(self.classes)}
        self.samples = []
        for cls in folders:
            folder = os.path.join(root, cls)
            for name in sorted(os.listdir(folder)):
                if name.lower().endswith(IMG_EXTENSIONS) and not name.startswith("."):
                    self.samples.append((os.path.join(folder, name), index[cls]))
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
        classes: Optional[Union[str, Sequence[str]]] = None,
        max_pixels: int = DEFAULT_MAX_PIXELS,
    ) -> None:
        folder = os.path.join(root, split)
        if not os.path.isdir(folder):
            raise ConfigError(
                f"ImageNet {split} folder not found: {folder}. Put the class folders there (one per wnid) or set "
                f"data.{'train' if split == 'train' else 'val'}.dataset.root; see docs/getting_started.md"
            )
        if classes is None and num_classes == 1000:
            from passl.data import imagenet_wnids

            wnids = imagenet_wnids()
            if set(class_folders(folder)) <= set(wnids):  # ImageNet-1k wnids: a subset maps by wnid
                classes = wnids
        skip_as = "substitute" if split == "train" else "ignore"
        super().__init__(folder, transform, on_corrupt, num_classes, skip_as, classes, max_pixels)
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
        max_pixels: int = DEFAULT_MAX_PIXELS,
    ) -> None:
        super().__init__(transform, on_corrupt, skip_as, max_pixels)
        self.num_classes = num_classes
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
