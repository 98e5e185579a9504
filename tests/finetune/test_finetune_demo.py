"""tools/finetune_demo.py writes Fashion-MNIST as PNG class folders that the ClassFolders dataset reads back with
the right pixels and labels (the demonstration itself takes minutes: docs/finetune.md)."""

import importlib.util
import os

import numpy as np
import pytest

from passl.data.datasets.class_folders import ClassFolders
from passl.data.datasets.fashion_mnist import CLASSES, _find, read_idx

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
FMNIST = "/usr/share/datasets/fashion-mnist"


@pytest.mark.skipif(not os.path.isdir(FMNIST), reason="Debian's dataset-fashion-mnist is not installed")
def test_demo_folders_hold_the_right_images(tmp_path):
    spec = importlib.util.spec_from_file_location("ft_demo", os.path.join(ROOT, "tools", "finetune_demo.py"))
    demo = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(demo)
    root = demo.write_folders(FMNIST, str(tmp_path / "own"), range(5, 10), 3, 2, seed=1)
    ds = ClassFolders(root, "train")
    assert ds.classes == [demo._folder_name(c) for c in range(5, 10)] and len(ds) == 15
    assert len(ClassFolders(root, "val")) == 10 and not ds.held_out
    images = read_idx(_find(FMNIST, "train-images-idx3-ubyte"))
    labels = read_idx(_find(FMNIST, "train-labels-idx1-ubyte"))
    for path, label in ds.samples:
        i = int(os.path.basename(path).split(".")[0])
        assert ds.classes[label] == demo._folder_name(int(labels[i])) and CLASSES[labels[i]][:3] in ds.classes[label]
    img, _ = ds[0]
    i = int(os.path.basename(ds.samples[0][0]).split(".")[0])
    assert np.array_equal(np.asarray(img)[..., 0], images[i])  # lossless PNG, grayscale read back as RGB
