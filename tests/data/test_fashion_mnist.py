import gzip
import os
import struct

import numpy as np
import pytest

from passl.data import build_dataset
from passl.data.datasets.fashion_mnist import DEFAULT_ROOT, read_idx
from passl.registry import ConfigError


def _write_idx(path, arr, gz=True):
    header = struct.pack(">HBB", 0, 8, arr.ndim) + struct.pack(f">{arr.ndim}I", *arr.shape)
    data = header + arr.astype(np.uint8).tobytes()
    with (gzip.open if gz else open)(path, "wb") as f:
        f.write(data)


@pytest.fixture
def tiny_fmnist(tmp_path):
    rng = np.random.RandomState(0)
    imgs = rng.randint(0, 256, size=(5, 28, 28))
    labels = np.array([0, 3, 9, 1, 2])
    _write_idx(tmp_path / "t10k-images-idx3-ubyte.gz", imgs)
    _write_idx(tmp_path / "t10k-labels-idx1-ubyte", labels, gz=False)  # plain files work too
    return tmp_path, imgs, labels


def test_reads_generated_idx_files(tiny_fmnist):
    root, imgs, labels = tiny_fmnist
    ds = build_dataset({"name": "FashionMNIST", "root": str(root), "split": "test"})
    assert len(ds) == 5
    img, label = ds[2]
    assert img.mode == "L" and img.size == (28, 28) and label == 9
    np.testing.assert_array_equal(np.asarray(img), imgs[2])
    rgb = build_dataset({"name": "FashionMNIST", "root": str(root), "split": "test", "mode": "RGB"})
    assert rgb[0][0].mode == "RGB"


def test_transform_is_applied(tiny_fmnist):
    root, imgs, _ = tiny_fmnist
    from passl.data.datasets.fashion_mnist import FashionMNIST

    ds = FashionMNIST(str(root), "test", transform=lambda im: np.asarray(im).sum())
    assert ds[1][0] == imgs[1].sum()


def test_missing_files_name_the_package(tmp_path):
    with pytest.raises(ConfigError, match="apt-get install dataset-fashion-mnist"):
        build_dataset({"name": "FashionMNIST", "root": str(tmp_path), "split": "train"})


def test_truncated_file_is_reported(tmp_path):
    path = tmp_path / "x-idx3-ubyte"
    _write_idx(path, np.zeros((4, 28, 28)), gz=False)
    path.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(ConfigError, match="truncated"):
        read_idx(str(path))


@pytest.mark.skipif(
    not os.path.isfile(os.path.join(DEFAULT_ROOT, "t10k-images-idx3-ubyte.gz")),
    reason="Debian's dataset-fashion-mnist is not installed (CI installs it)",
)
def test_real_debian_files():
    test = build_dataset({"name": "FashionMNIST", "split": "test"})
    assert len(test) == 10000
    counts = np.bincount(test.labels, minlength=10)
    assert counts.tolist() == [1000] * 10  # the test split is balanced
