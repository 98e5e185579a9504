"""The dataset's classes against the model's, checked once before any work (training or evaluation)."""

from __future__ import annotations

from typing import Any, Optional

from passl.registry import ConfigError

__all__ = ["check_classes"]


def _unwrap(dataset: Any) -> Any:
    """The dataset itself, under the loader's wrappers (SeededDataset and the like hold it as ``.dataset``)."""
    for _ in range(8):
        if any(hasattr(dataset, a) for a in ("classes", "samples", "num_classes")) or not hasattr(dataset, "dataset"):
            break
        dataset = dataset.dataset
    return dataset


def _check_one(model: Any, dataset: Any, key: str) -> None:
    dataset = _unwrap(dataset)
    num = getattr(model, "num_classes", None)
    model_names = getattr(model, "class_names", None)
    names = getattr(dataset, "classes", None)
    where = getattr(dataset, "root", None) or type(dataset).__name__
    if names is not None:
        names = list(names)
        if model_names is not None:
            if names != list(model_names):
                diff = next(
                    (i for i, (a, b) in enumerate(zip(names, model_names)) if a != b), min(len(names), len(model_names))
                )
                raise ConfigError(
                    f"{key}: the classes of {where} ({len(names)}) differ from the model's ({len(model_names)}) at "
                    f"label {diff}: {names[diff] if diff < len(names) else 'none'} vs "
                    f"{model_names[diff] if diff < len(model_names) else 'none'}; set {key}.classes to the model's "
                    f"class list"
                )
            return
        if num is not None and len(names) != int(num):
            raise ConfigError(
                f"{key}: {where} has {len(names)} classes ({', '.join(map(str, names[:3]))}"
                f"{', ...' if len(names) > 3 else ''}), the model {num} (model.head.num_classes); fix the folders, "
                f"or, for a folder holding a subset of the classes, set {key}.classes to the full list "
                f"(a list, or a file with one name per line)"
            )
        return
    if num is None:
        return
    top: Optional[int] = None
    samples = getattr(dataset, "samples", None)
    if samples:
        top = max(int(label) for _, label in samples) + 1
    elif getattr(dataset, "num_classes", None) is not None:
        top = int(dataset.num_classes)
    if top is not None and top > int(num):
        raise ConfigError(
            f"{key}: {where} has labels up to {top - 1}, the model only {num} classes (model.head.num_classes); "
            f"set model.head.num_classes to at least {top}"
        )


def check_classes(model: Any, train: Any = None, val: Any = None) -> None:
    """Refuse a dataset whose classes do not match the model: by name when the model carries ``class_names``,
    else by count (``num_classes``); for datasets without class names, by their largest label. ``train`` and
    ``val`` are datasets (or the loaders' wrapped datasets) built from ``data.train`` and ``data.val``."""
    if train is not None:
        _check_one(model, train, "data.train.dataset")
    if val is not None:
        _check_one(model, val, "data.val.dataset")
