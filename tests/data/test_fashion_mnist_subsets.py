"""FashionMNIST's held-out validation split and class-balanced labelled subsets (holdout_per_class, subset_per_class
and their seeds): balanced, disjoint from the holdout, fixed by the seed, and refused with a clear error when they
cannot be drawn."""

import gzip
import struct

import numpy as np
import pytest

from passl.data import build_dataset
from passl.data.datasets.fashion_mnist import select_indices
from passl.registry import ConfigError
from passl.utils.config import AttrDict
from passl.utils.schema import validate_config

PER_CLASS = 40  # training images per class in the generated files


def _write_idx(path, arr):
    header = struct.pack(">HBB", 0, 8, arr.ndim) + struct.pack(f">{arr.ndim}I", *arr.shape)
    with gzip.open(path, "wb") as f:
        f.write(header + arr.astype(np.uint8).tobytes())


@pytest.fixture
def fmnist(tmp_path):
    """Generated idx files: 10 classes x PER_CLASS shuffled training images whose first pixel is their index (mod
    256) and second its index // 256, so an item tells which file position it came from; 30 test images."""
    rng = np.random.RandomState(0)
    labels = rng.permutation(np.repeat(np.arange(10), PER_CLASS))
    n = len(labels)
    imgs = rng.randint(0, 256, size=(n, 28, 28))
    imgs[:, 0, 0], imgs[:, 0, 1] = np.arange(n) % 256, np.arange(n) // 256
    _write_idx(tmp_path / "train-images-idx3-ubyte.gz", imgs)
    _write_idx(tmp_path / "train-labels-idx1-ubyte.gz", labels)
    _write_idx(tmp_path / "t10k-images-idx3-ubyte.gz", imgs[:30])
    _write_idx(tmp_path / "t10k-labels-idx1-ubyte.gz", labels[:30])
    return str(tmp_path), labels


def _ds(root, **kw):
    return build_dataset({"name": "FashionMNIST", "root": root, **kw})


def _positions(ds):
    """The file position of every item, read back from its pixels."""
    out = []
    for i in range(len(ds)):
        px = np.asarray(ds[i][0])
        out.append(int(px[0, 0]) + 256 * int(px[0, 1]))
    return out


def test_subsets_are_balanced_and_disjoint_from_the_holdout(fmnist):
    root, labels = fmnist
    hold = _ds(root, split="holdout", holdout_per_class=10, holdout_seed=3)
    rest = _ds(root, split="train", holdout_per_class=10, holdout_seed=3)
    sub = _ds(root, split="train", holdout_per_class=10, holdout_seed=3, subset_per_class=6, subset_seed=0)
    assert np.bincount(hold.labels).tolist() == [10] * 10
    assert np.bincount(rest.labels).tolist() == [PER_CLASS - 10] * 10
    assert np.bincount(sub.labels).tolist() == [6] * 10
    # holdout and train split the file between them; the subset lies in train, never in the holdout
    assert set(hold.indices).isdisjoint(rest.indices)
    assert sorted([*hold.indices, *rest.indices]) == list(range(len(labels)))
    assert set(sub.indices) <= set(rest.indices) and set(sub.indices).isdisjoint(hold.indices)
    # the items are the images at those file positions, with their own labels
    assert _positions(sub) == sub.indices.tolist()
    assert [sub[i][1] for i in range(len(sub))] == labels[sub.indices].tolist()


def test_the_same_seed_gives_the_same_subset_another_seed_another(fmnist):
    root, _ = fmnist
    kw = dict(split="train", holdout_per_class=10, subset_per_class=6)
    a, b = _ds(root, subset_seed=0, **kw), _ds(root, subset_seed=0, **kw)
    assert a.indices.tolist() == b.indices.tolist()
    assert _positions(a) == _positions(b)
    c = _ds(root, subset_seed=1, **kw)
    assert a.indices.tolist() != c.indices.tolist()
    assert np.bincount(c.labels).tolist() == [6] * 10
    # a larger subset with the same seed contains the smaller one (1% of the labels inside the 10%)
    big = _ds(root, subset_seed=0, **{**kw, "subset_per_class": 20})
    assert set(a.indices) < set(big.indices)
    # the holdout depends on its own seed only, not on the subset's
    h0 = _ds(root, split="holdout", holdout_per_class=10, holdout_seed=0)
    h1 = _ds(root, split="holdout", holdout_per_class=10, holdout_seed=1)
    assert h0.indices.tolist() != h1.indices.tolist()
    assert set(h0.indices).isdisjoint(a.indices)


def test_defaults_read_the_whole_split(fmnist):
    root, labels = fmnist
    assert _ds(root, split="train").indices.tolist() == list(range(len(labels)))
    test = _ds(root, split="test", subset_per_class=1)
    assert len(test) == len(np.unique(labels[:30]))


@pytest.mark.parametrize(
    "kw, match",
    [
        (dict(split="train", subset_per_class=PER_CLASS + 1), "subset_per_class 41 is more than the 40 images"),
        (dict(split="train", holdout_per_class=30, subset_per_class=11), "subset_per_class 11 is more than the 10"),
        (dict(split="train", holdout_per_class=PER_CLASS), "holdout_per_class 40 leaves no training image"),
        (dict(split="test", holdout_per_class=5), "holdout_per_class holds out training images"),
        (dict(split="holdout"), "split 'holdout' needs holdout_per_class >= 1"),
        (dict(split="train", subset_per_class=0), "subset_per_class must be an integer >= 1 or null"),
        (dict(split="train", holdout_per_class=True), "holdout_per_class must be an integer >= 0"),
        (dict(split="train", subset_seed=-1), "subset_seed must be an integer >= 0"),
        (dict(split="val"), "split must be one of train, holdout, test"),
    ],
)
def test_bad_values_name_the_key(fmnist, kw, match):
    root, _ = fmnist
    with pytest.raises(ConfigError, match=match):
        _ds(root, **kw)


def test_schema_knows_the_keys():
    def cfg(**ds):
        return AttrDict(
            {"data": {"train": {"dataset": {"name": "FashionMNIST", **ds}, "batch_size": 8}}},
        )

    validate_config(cfg(split="holdout", holdout_per_class=500, holdout_seed=1, subset_per_class=None, subset_seed=2))
    with pytest.raises(ConfigError, match="subset_per_class"):
        validate_config(cfg(subset_per_class=0))
    with pytest.raises(ConfigError, match="holdout_per_class"):
        validate_config(cfg(holdout_per_class=-1))


def test_select_indices_on_real_sized_labels():
    """The benchmark's subsets: 500 held out per class, 60 and 600 labelled per class, nested and disjoint."""
    labels = np.repeat(np.arange(10), 6000)[np.random.RandomState(1).permutation(60000)]
    hold = select_indices(labels, "holdout", 500)
    one = select_indices(labels, "train", 500, 0, 60, 0)
    ten = select_indices(labels, "train", 500, 0, 600, 0)
    assert len(hold) == 5000 and len(one) == 600 and len(ten) == 6000
    assert set(one) < set(ten) and set(ten).isdisjoint(hold)
    assert np.bincount(labels[one]).tolist() == [60] * 10
