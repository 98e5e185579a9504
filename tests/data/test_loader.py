"""The training loader: the same batches for the same seed and epoch (any worker count), others for another epoch."""

import numpy as np

from passl.data import build_dataset
from passl.data.loader import DistributedBatchSampler, ShardedEvalSampler, build_loader

TRANSFORMS = [
    {"name": "RandomResizedCrop", "size": 16},
    {"name": "RandomHorizontalFlip"},
    {"name": "RandAugment", "config_str": "rand-m9-mstd0.5-inc1"},
    {"name": "Normalize"},
    {"name": "RandomErasing", "prob": 0.5},
]


def _epoch(workers, epoch, seed=0):
    ds = build_dataset({"name": "SyntheticImages", "num_samples": 12, "image_size": 24}, TRANSFORMS)
    loader = build_loader(ds, 4, train=True, num_workers=workers, seed=seed)
    loader.batch_sampler.set_epoch(epoch)
    loader.dataset.set_epoch(epoch)
    return [(x.numpy(), y.numpy()) for x, y in loader]


def test_same_seed_same_batches_other_epoch_differs():
    a, b = _epoch(2, 0), _epoch(2, 0)
    assert len(a) == 3
    for (xa, ya), (xb, yb) in zip(a, b):
        np.testing.assert_array_equal(xa, xb)
        np.testing.assert_array_equal(ya, yb)
    single = _epoch(0, 0)  # worker count does not change the pixels
    for (xa, _), (xs, _) in zip(a, single):
        np.testing.assert_array_equal(xa, xs)
    other = _epoch(2, 1)
    assert not all(np.array_equal(xa, xo) for (xa, _), (xo, _) in zip(a, other))
    assert not np.array_equal(np.concatenate([y for _, y in a]), np.concatenate([y for _, y in other]))
    assert not all(np.array_equal(xa, xo) for (xa, _), (xo, _) in zip(a, _epoch(2, 0, seed=1)))


def test_sampler_shards_and_resumes():
    n, world = 10, 3
    parts = [
        list(DistributedBatchSampler(n, 2, shuffle=True, drop_last=False, seed=5, rank=r, world_size=world))
        for r in range(world)
    ]
    flat = sorted(i for p in parts for b in p for i in b)
    assert set(flat) == set(range(n)) and len(flat) == 12  # padded by repetition so ranks stay in step
    s = DistributedBatchSampler(n, 2, seed=5, rank=0, world_size=1)
    full = list(s)
    s.set_epoch(0, start_batch=2)
    assert list(s) == full[2:]
    evals = [list(ShardedEvalSampler(11, 4, rank=r, world_size=2)) for r in range(2)]
    got = sorted(i for p in evals for b in p for i in b)
    assert got == list(range(11))  # each sample exactly once, no padding
