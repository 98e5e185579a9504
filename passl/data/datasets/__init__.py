"""Datasets. Each module registers its classes in DATASETS; add new modules to the import list below."""

from passl.data.datasets import (
    class_folders,  # noqa: F401
    classes,  # noqa: F401
    fashion_mnist,  # noqa: F401
    imagenet,  # noqa: F401
    synthetic,  # noqa: F401
)
