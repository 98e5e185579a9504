"""Datasets. Each module registers its classes in DATASETS; add new modules to the import list below."""
