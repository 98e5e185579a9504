"""Shared test helpers: a tiny ConvNeXt training config on synthetic data."""

import os

from passl.utils.config import AttrDict, get_config

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


def tiny_cfg(output_dir, base="configs/convnext/convnext_tiny.yaml", samples=32, image_size=32, **train):
    """A shipped config shrunk to a 4-block ConvNeXt on synthetic images (the recipe's other settings kept)."""
    cfg = get_config(os.path.join(ROOT, base))
    cfg.output_dir = str(output_dir)
    cfg.model.architecture = AttrDict(name="ConvNeXt", depths=[1, 1, 1, 1], dims=[8, 16, 32, 64], drop_path_rate=0.1)
    cfg.model.head.in_channels = 64
    cfg.model.head.num_classes = 10
    cfg.model.pretrained = None
    cfg.model.drop_head = False
    cfg.data.train.dataset = AttrDict(
        name="SyntheticImages", num_samples=samples, image_size=image_size, num_classes=10
    )
    cfg.data.train.batch_size = 4
    cfg.data.train.num_workers = 0
    if cfg.data.get("val"):
        cfg.data.val.dataset = AttrDict(name="SyntheticImages", num_samples=10, image_size=image_size, num_classes=10)
        cfg.data.val.batch_size = 4
        cfg.data.val.num_workers = 0
    if cfg.data.get("mixup"):
        cfg.data.mixup.label_smoothing = 0.1
    cfg.train.epochs = 1
    cfg.train.accum_steps = 1
    cfg.train.log_interval = 1
    cfg.train.visualdl = False
    cfg.lr_scheduler.warmup_epochs = 0
    for k, v in train.items():
        cfg.train[k] = v
    return cfg
