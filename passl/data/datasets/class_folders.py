"""Your own images in class folders: ``root/train/<class>/*`` and ``root/val/<class>/*`` (configs/finetune).

``data.root`` (one key for the whole dataset) fills the ``root`` of every ``data.<split>.dataset`` that has none, and
``model.head.num_classes: null`` becomes the number of class folders of ``root/train`` (:func:`resolve_data_root`,
called by ``get_config``), so ``-o data.root=PATH`` is all a run needs. Without a ``root/val`` folder, a
deterministic class-stratified part of ``root/train`` (``val_ratio``, ``split_seed``) is held out for validation,
the same on every process and every rerun; the trainer records it in ``OUTPUT_DIR/split.json`` and the class list in
``OUTPUT_DIR/classes.txt``.
"""

from __future__ import annotations

import json
import os
from typing import Any, Callable, Dict, List, MutableMapping, Optional, Sequence, Tuple, Union

import numpy as np

from passl.data.datasets.imagenet import ImageFolder, class_folders
from passl.registry import DATASETS, ConfigError
from passl.utils.report import read_class_names, write_class_names
from passl.utils.schema import DEFAULT_MAX_PIXELS

__all__ = ["ClassFolders", "stratified_split", "resolve_data_root", "write_class_names", "read_class_names"]

SPLIT_FILE = "split.json"


def stratified_split(
    samples: Sequence[Tuple[str, int]], val_ratio: float, seed: int = 0
) -> Tuple[List[Tuple[str, int]], List[Tuple[str, int]]]:
    """(train, val) samples: from every class, ``round(val_ratio * n)`` images (at least one when the class has two
    or more, never all of them) go to val. Which ones depends only on the sorted file names, the class and ``seed``,
    so every process and every rerun gets the same split; both parts keep the input order."""
    if not 0.0 < val_ratio < 1.0:
        raise ConfigError(f"data.*.dataset.val_ratio must be in (0, 1), got {val_ratio}")
    by_class: Dict[int, List[int]] = {}
    for i, (_, label) in enumerate(samples):
        by_class.setdefault(int(label), []).append(i)
    held = set()
    for label, idx in sorted(by_class.items()):
        idx = sorted(idx, key=lambda i: samples[i][0])
        n_val = min(max(int(round(val_ratio * len(idx))), 1 if len(idx) >= 2 else 0), len(idx) - 1)
        order = np.random.RandomState((int(seed) * 1_000_003 + label) % (2**32)).permutation(len(idx))
        held.update(idx[j] for j in order[:n_val])
    train = [s for i, s in enumerate(samples) if i not in held]
    val = [s for i, s in enumerate(samples) if i in held]
    return train, val


@DATASETS.register
class ClassFolders(ImageFolder):
    """``root/train/<class>/*`` for ``split: train``, ``root/val/<class>/*`` for ``split: val``; without a val
    folder both splits come from ``root/train`` through :func:`stratified_split`. Classes are the sorted folder
    names of ``root/train`` (or ``classes``); val is labelled by name with them."""

    def __init__(
        self,
        root: Optional[str] = None,
        split: str = "train",
        transform: Optional[Callable] = None,
        val_ratio: float = 0.1,
        split_seed: int = 0,
        on_corrupt: str = "fail",
        num_classes: Optional[int] = None,
        skip_as: Optional[str] = None,
        classes: Optional[Union[str, Sequence[str]]] = None,
        max_pixels: int = DEFAULT_MAX_PIXELS,
    ) -> None:
        if not root:
            raise ConfigError(
                "the class-folder dataset has no root: pass -o data.root=PATH (PATH/train/<class>/* and optionally "
                "PATH/val/<class>/*), or set data.<split>.dataset.root"
            )
        if split not in ("train", "val"):
            raise ConfigError(f"ClassFolders split must be train or val, got '{split}'")
        train_dir, val_dir = os.path.join(root, "train"), os.path.join(root, "val")
        if not os.path.isdir(train_dir):
            raise ConfigError(
                f"{train_dir} not found: data.root must hold train/<class>/<image> (and optionally val/<class>/...)"
            )
        if classes is None:
            classes = class_folders(train_dir)
        self.split, self.val_ratio, self.split_seed = split, float(val_ratio), int(split_seed)
        self.data_root = root
        self.held_out = not os.path.isdir(val_dir)
        folder = val_dir if (split == "val" and not self.held_out) else train_dir
        skip = skip_as or ("substitute" if split == "train" else "ignore")
        super().__init__(folder, transform, on_corrupt, num_classes, skip, classes, max_pixels)
        if self.held_out:
            train, val = stratified_split(self.samples, self.val_ratio, self.split_seed)
            if not val:
                raise ConfigError(
                    f"{root} has no val folder and too few images to hold some out (every class needs 2 or more); "
                    f"add {val_dir}/<class>/... or more images"
                )
            self.samples = train if split == "train" else val

    def split_record(self) -> Dict[str, Any]:
        """What was held out, for ``split.json``: paths relative to ``root/train``."""
        train, val = stratified_split(self._all_train(), self.val_ratio, self.split_seed)
        rel = lambda s: os.path.relpath(s[0], os.path.join(self.data_root, "train"))  # noqa: E731
        return {
            "root": os.path.abspath(self.data_root),
            "val_ratio": self.val_ratio,
            "split_seed": self.split_seed,
            "classes": list(self.classes),
            "train": sorted(rel(s) for s in train),
            "val": sorted(rel(s) for s in val),
        }

    def _all_train(self) -> List[Tuple[str, int]]:
        full = ImageFolder(os.path.join(self.data_root, "train"), classes=list(self.classes))
        return full.samples

    def write_record(self, output_dir: str) -> None:
        """``classes.txt`` (label order) and, when val was held out of train, ``split.json``, both in
        ``output_dir`` (written atomically)."""
        os.makedirs(output_dir, exist_ok=True)
        write_class_names(output_dir, self.classes)
        if self.held_out:
            _write_json(os.path.join(output_dir, SPLIT_FILE), self.split_record())


def _write_json(path: str, obj: Any) -> None:
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(obj, f, indent=1, ensure_ascii=False)
    os.replace(tmp, path)


def resolve_data_root(cfg: MutableMapping[str, Any]) -> None:
    """With ``data.root`` set: every ``data.<split>.dataset`` without a ``root`` gets it, and a
    ``model.head.num_classes: null`` becomes the number of class folders of ``data.root/train``. Without it nothing
    changes (a ClassFolders dataset then says to pass ``-o data.root=PATH``)."""
    data = cfg.get("data")
    root = data.get("root") if isinstance(data, MutableMapping) else None
    if not root:
        return
    if not isinstance(root, str):
        raise ConfigError(f"config key 'data.root' is {root!r}; allowed: a folder path (a string)")
    for split in ("train", "val"):
        ds = (data.get(split) or {}).get("dataset") if isinstance(data.get(split), MutableMapping) else None
        if isinstance(ds, MutableMapping) and ds.get("root") is None:
            ds["root"] = root
    head = (cfg.get("model") or {}).get("head")
    if isinstance(head, MutableMapping) and "num_classes" in head and head["num_classes"] is None:
        train_dir = os.path.join(root, "train")
        if not os.path.isdir(train_dir):
            raise ConfigError(
                f"data.root: {train_dir} not found; data.root must hold train/<class>/<image> (and optionally val/)"
            )
        names = class_folders(train_dir)
        if not names:
            raise ConfigError(f"data.root: {train_dir} has no class folders (one sub-folder per class)")
        head["num_classes"] = len(names)
