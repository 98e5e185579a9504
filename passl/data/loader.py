"""Train and eval loaders: epoch-seeded distributed sampling, per-sample seeding, worker processes.

Every sample's random augmentations are seeded from (seed, epoch, sample index), so a batch's pixels do not depend
on the number of workers, the process count or where a resumed run starts; worker processes are also seeded by
(seed, rank, epoch, worker) for anything else that draws random numbers.
"""

from __future__ import annotations

import math
import os
import random
import signal
import time
from typing import Any, Callable, Iterator, List, Optional

import numpy as np
import paddle
from paddle.io import BatchSampler, DataLoader, Dataset

from passl.utils.dist import get_rank, get_world_size

__all__ = [
    "SeededDataset",
    "DistributedBatchSampler",
    "ShardedEvalSampler",
    "InProcessLoader",
    "build_loader",
    "TimedLoader",
]


def _mix(*values: int) -> int:
    """A 32-bit seed from a few integers (SplitMix-style mixing, so nearby inputs give unrelated seeds)."""
    h = 0x9E3779B97F4A7C15
    for v in values:
        h ^= (int(v) + 0x9E3779B97F4A7C15 + (h << 6) + (h >> 2)) & 0xFFFFFFFFFFFFFFFF
        h = (h * 0xBF58476D1CE4E5B9) & 0xFFFFFFFFFFFFFFFF
        h ^= h >> 31
    return h & 0xFFFFFFFF


class SeededDataset(Dataset):
    """Wraps a dataset so item ``i`` of epoch ``e`` always sees the same Python/NumPy random state."""

    def __init__(self, dataset: Any, seed: int = 0) -> None:
        self.dataset, self.seed, self.epoch = dataset, int(seed), 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, idx: int):
        # Transforms draw from the global Python/NumPy generators. Paddle's loader may run this in a prefetch
        # thread of the main process, so nothing in the training step may rely on those generators (Mixup owns a
        # RandomState; drop path uses Paddle's generator).
        s = _mix(self.seed, self.epoch, idx)
        random.seed(s)
        np.random.seed(s)
        img, label = self.dataset[idx]
        return np.asarray(img, dtype="float32") if not isinstance(img, np.ndarray) else img, np.int64(label)


class DistributedBatchSampler(BatchSampler):
    """Shuffles with seed + epoch (the same order on every rank), shards by rank, pads the order by repetition so all
    ranks get the same number of batches (training only), and can start mid-epoch for resume."""

    def __init__(
        self,
        num_samples: int,
        batch_size: int,
        shuffle: bool = True,
        drop_last: bool = True,
        seed: int = 0,
        rank: Optional[int] = None,
        world_size: Optional[int] = None,
    ) -> None:
        self.num_samples, self.batch_size = int(num_samples), int(batch_size)
        self.shuffle, self.drop_last, self.seed = shuffle, drop_last, int(seed)
        self.rank = get_rank() if rank is None else rank
        self.world_size = get_world_size() if world_size is None else world_size
        self.epoch, self.start_batch = 0, 0
        self.per_rank = math.ceil(self.num_samples / self.world_size)

    def set_epoch(self, epoch: int, start_batch: int = 0) -> None:
        self.epoch, self.start_batch = int(epoch), int(start_batch)

    def _indices(self) -> List[int]:
        if self.shuffle:
            order = np.random.RandomState(_mix(self.seed, self.epoch)).permutation(self.num_samples)
        else:
            order = np.arange(self.num_samples)
        total = self.per_rank * self.world_size
        if total > len(order):
            order = np.concatenate([order, order[: total - len(order)]])
        return order[self.rank : total : self.world_size].tolist()

    def __iter__(self) -> Iterator[List[int]]:
        idx = self._indices()
        n = len(self)
        for b in range(self.start_batch, n):
            yield idx[b * self.batch_size : (b + 1) * self.batch_size]

    def __len__(self) -> int:
        if self.drop_last:
            return self.per_rank // self.batch_size
        return math.ceil(self.per_rank / self.batch_size)


class ShardedEvalSampler(BatchSampler):
    """Evaluation: rank r takes samples r, r + W, r + 2W, ... with no padding, so each sample is counted once."""

    def __init__(self, num_samples: int, batch_size: int, rank: Optional[int] = None, world_size: Optional[int] = None):
        self.rank = get_rank() if rank is None else rank
        self.world_size = get_world_size() if world_size is None else world_size
        self.indices = list(range(self.rank, int(num_samples), self.world_size))
        self.batch_size = int(batch_size)

    def __iter__(self) -> Iterator[List[int]]:
        for i in range(0, len(self.indices), self.batch_size):
            yield self.indices[i : i + self.batch_size]

    def __len__(self) -> int:
        return math.ceil(len(self.indices) / self.batch_size)


def _die_with_parent() -> None:
    """Linux: the kernel kills this loader worker when the trainer process ends, however it ends."""
    parent = os.getppid()
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, int(signal.SIGKILL))  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return
    if os.getppid() != parent:  # the parent ended before the request took effect
        os._exit(0)


def _worker_init(seed: int, rank: int, epoch_ref: SeededDataset) -> Callable[[int], None]:
    def init(worker_id: int) -> None:
        # Ctrl-C and the launcher's SIGTERM reach the whole process group; they are for the trainer, which finishes
        # its step, saves and shuts its loader down. A worker they killed would crash the trainer mid-step.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        _die_with_parent()
        s = _mix(seed, rank, epoch_ref.epoch, worker_id)
        random.seed(s)
        np.random.seed(s)
        paddle.seed(s)

    return init


def build_loader(
    dataset: Any,
    batch_size: int,
    *,
    train: bool,
    num_workers: int = 0,
    seed: int = 0,
    drop_last: Optional[bool] = None,
    use_shared_memory: bool = True,
) -> Any:
    """A DataLoader (or, with ``num_workers=0``, an :class:`InProcessLoader`) over ``dataset``: for training a shuffled, rank-sharded, epoch-seeded sampler; for evaluation a
    non-padding shard. Call ``loader.batch_sampler.set_epoch(e)`` and ``loader.dataset.set_epoch(e)`` each epoch
    (the trainer does)."""
    wrapped = SeededDataset(dataset, seed)
    if train:
        sampler = DistributedBatchSampler(
            len(dataset), batch_size, True, True if drop_last is None else drop_last, seed
        )
    else:
        sampler = ShardedEvalSampler(len(dataset), batch_size)
    if int(num_workers) == 0:
        return InProcessLoader(wrapped, sampler)
    return DataLoader(
        wrapped,
        batch_sampler=sampler,
        num_workers=int(num_workers),
        use_shared_memory=use_shared_memory and num_workers > 0,
        worker_init_fn=_worker_init(seed, get_rank(), wrapped) if num_workers > 0 else None,
    )


class InProcessLoader:
    """Loads batches in the calling thread (``num_workers: 0``).

    Paddle's single-process DataLoader decodes in a prefetch thread; an exception there (a corrupt image) leaves the
    main thread waiting forever on Paddle 3.2. Here an error surfaces where it happens, with its message and path.
    """

    def __init__(self, dataset: SeededDataset, batch_sampler: BatchSampler) -> None:
        self.dataset, self.batch_sampler = dataset, batch_sampler

    def __len__(self) -> int:
        return len(self.batch_sampler)

    def __iter__(self):
        for indices in self.batch_sampler:
            items = [self.dataset[i] for i in indices]
            images = np.stack([np.asarray(img) for img, _ in items])
            labels = np.asarray([label for _, label in items], dtype="int64")
            yield [paddle.to_tensor(images), paddle.to_tensor(labels)]


class TimedLoader:
    """Iterates a loader and records the time spent waiting for each batch (the "reader cost")."""

    def __init__(self, loader: DataLoader) -> None:
        self.loader = loader
        self.last_wait = 0.0

    def __len__(self) -> int:
        return len(self.loader)

    def __iter__(self):
        it = iter(self.loader)
        while True:
            t = time.perf_counter()
            try:
                batch = next(it)
            except StopIteration:
                return
            self.last_wait = time.perf_counter() - t
            yield batch
