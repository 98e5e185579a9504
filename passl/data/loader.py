"""Train and eval loaders: epoch-seeded distributed sampling, per-sample seeding, worker processes.

Every sample's random augmentations are seeded from (seed, epoch, sample index), so a batch's pixels do not depend
on the number of workers, the process count or where a resumed run starts; worker processes are also seeded by
(seed, rank, epoch at fork, worker) for anything else that draws random numbers.

The epoch travels with each index from the sampler (which runs in the main process) to the workers, so workers
forked in an earlier epoch (``persistent_workers``) still draw the current epoch's augmentations. Worker processes
end with their iteration (or, when persistent, with the loader) and die with their parent, even on ``kill -9``.
"""

from __future__ import annotations

import ctypes
import math
import os
import random
import signal
import sys
import time
import weakref
from typing import Any, Callable, Iterator, List, Optional

import numpy as np
import paddle
from paddle.io import BatchSampler, DataLoader, Dataset

from passl.utils.dist import get_rank, get_world_size
from passl.utils.memory import restore_malloc_defaults

__all__ = [
    "SeededDataset",
    "DistributedBatchSampler",
    "ShardedEvalSampler",
    "InProcessLoader",
    "build_loader",
    "TimedLoader",
    "WorkerLoader",
    "mix_seed",
]


def _mix(*values: int) -> int:
    """A 32-bit seed from a few integers (SplitMix-style mixing, so nearby inputs give unrelated seeds)."""
    h = 0x9E3779B97F4A7C15
    for v in values:
        h ^= (int(v) + 0x9E3779B97F4A7C15 + (h << 6) + (h >> 2)) & 0xFFFFFFFFFFFFFFFF
        h = (h * 0xBF58476D1CE4E5B9) & 0xFFFFFFFFFFFFFFFF
        h ^= h >> 31
    return h & 0xFFFFFFFF


mix_seed = _mix


class SeededDataset(Dataset):
    """Wraps a dataset so item ``i`` of epoch ``e`` always sees the same Python/NumPy random state."""

    def __init__(self, dataset: Any, seed: int = 0) -> None:
        self.dataset, self.seed, self.epoch = dataset, int(seed), 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, key):
        # ``key`` is (epoch, index) from a WorkerLoader's sampler, or a plain index read with ``self.epoch``.
        epoch, idx = key if isinstance(key, tuple) else (self.epoch, key)
        # Transforms draw from the global Python/NumPy generators. Paddle's loader may run this in a prefetch
        # thread of the main process, so nothing in the training step may rely on those generators (Mixup owns a
        # RandomState; drop path uses Paddle's generator).
        s = _mix(self.seed, epoch, idx)
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


_PR_SET_PDEATHSIG = 1


def _die_with_parent(parent_pid: int) -> None:
    """Ask Linux to SIGKILL this worker when its parent dies (also on ``kill -9`` of the trainer), and exit at once if
    the parent is already gone. Paddle's own parent check runs only between batches, and a worker blocked on a full
    result pipe never gets there: such workers outlived a killed trainer."""
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
        except (OSError, AttributeError):  # no prctl in this libc: Paddle's parent check remains
            pass
    if os.getppid() != parent_pid:
        os._exit(0)


def _worker_init(seed: int, rank: int, epoch_ref: SeededDataset, parent_pid: int) -> Callable[[int], None]:
    def init(worker_id: int) -> None:
        # Ctrl-C and the launcher's SIGTERM reach the whole process group; they are for the trainer, which finishes
        # its step, saves and shuts its loader down. A worker they killed would crash the trainer mid-step.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        _die_with_parent(parent_pid)
        restore_malloc_defaults()  # the trainer keeps its freed memory (passl.utils.memory); a worker need not
        s = _mix(seed, rank, epoch_ref.epoch, worker_id)
        random.seed(s)
        np.random.seed(s)
        paddle.seed(s)

    return init


class _EpochTagged(BatchSampler):
    """Yields the wrapped sampler's batches as lists of (epoch, index): the epoch reaches the workers with the data."""

    def __init__(self, sampler: BatchSampler) -> None:
        self.sampler = sampler

    def __iter__(self) -> Iterator[List[tuple]]:
        epoch = int(getattr(self.sampler, "epoch", 0))
        for batch in self.sampler:
            yield [(epoch, int(i)) for i in batch]

    def __len__(self) -> int:
        return len(self.sampler)


def _shutdown(iterator: Any) -> None:
    """End a Paddle multi-process iterator's workers and thread now. Paddle ends them only on StopIteration or in
    ``__del__``, which never runs while the iterator's own reader thread holds it: an iteration stopped after the
    last batch (as the trainer's is) or early left ``num_workers`` processes behind, every epoch."""
    stop = getattr(iterator, "_try_shutdown_all", None)
    if stop is not None:
        stop()


class WorkerLoader:
    """Paddle's DataLoader with ``num_workers`` worker processes, with the same surface as :class:`InProcessLoader`
    (``dataset``, ``batch_sampler``, ``len``, iteration).

    Not persistent: each iteration forks the workers and ends them when it ends (exhausted, abandoned, or its
    generator garbage-collected). Persistent: the workers are forked once and serve every epoch until
    :meth:`close` or the end of the process."""

    def __init__(
        self,
        dataset: SeededDataset,
        batch_sampler: BatchSampler,
        *,
        num_workers: int,
        seed: int = 0,
        use_shared_memory: bool = True,
        persistent_workers: bool = False,
    ) -> None:
        self.dataset, self.batch_sampler = dataset, batch_sampler
        self.persistent_workers = bool(persistent_workers)
        self.loader = DataLoader(
            dataset,
            batch_sampler=_EpochTagged(batch_sampler),
            num_workers=int(num_workers),
            use_shared_memory=bool(use_shared_memory),
            persistent_workers=self.persistent_workers,
            worker_init_fn=_worker_init(seed, get_rank(), dataset, os.getpid()),
        )
        # Paddle's persistent iterator is kept alive by its own reader thread: end it when this loader goes away
        weakref.finalize(self, _close_persistent, self.loader)

    def __len__(self) -> int:
        return len(self.batch_sampler)

    def __iter__(self):
        it = iter(self.loader)
        # this pass's batches: a resumed epoch starts at the sampler's start_batch
        n = len(self.batch_sampler) - int(getattr(self.batch_sampler, "start_batch", 0))
        done = False
        try:
            for k in range(n):  # exactly one epoch: a persistent iterator is never asked past its end
                batch = next(it)
                done = k == n - 1  # a caller that stops after the last batch (the trainer does) finished the epoch
                yield batch
            done = True
        finally:
            if not self.persistent_workers:
                _shutdown(it)
            elif not done:  # an abandoned persistent iteration leaves batches in flight: start clean next time
                self.close()

    def close(self) -> None:
        """End persistent workers now (they also end when this loader is garbage-collected, or with the process)."""
        _close_persistent(self.loader)


def _close_persistent(loader: DataLoader) -> None:
    it = getattr(loader, "_iterator", None)
    if it is not None:
        _shutdown(it)
        loader._iterator = None


def build_loader(
    dataset: Any,
    batch_size: int,
    *,
    train: bool,
    num_workers: int = 0,
    seed: int = 0,
    drop_last: Optional[bool] = None,
    use_shared_memory: bool = True,
    persistent_workers: bool = True,
) -> Any:
    """A :class:`WorkerLoader` (or, with ``num_workers=0``, an :class:`InProcessLoader`) over ``dataset``: for
    training a shuffled, rank-sharded, epoch-seeded sampler; for evaluation a non-padding shard. Call
    ``loader.batch_sampler.set_epoch(e)`` each epoch (the trainer does). ``use_shared_memory``: workers hand batches
    over through /dev/shm (fast; needs /dev/shm larger than a few batches); ``persistent_workers``: fork the workers
    once for the whole run instead of once per iteration."""
    wrapped = SeededDataset(dataset, seed)
    if train:
        sampler = DistributedBatchSampler(
            len(dataset), batch_size, True, True if drop_last is None else drop_last, seed
        )
    else:
        sampler = ShardedEvalSampler(len(dataset), batch_size)
    if int(num_workers) == 0:
        return InProcessLoader(wrapped, sampler)
    return WorkerLoader(
        wrapped,
        sampler,
        num_workers=int(num_workers),
        seed=seed,
        use_shared_memory=use_shared_memory,
        persistent_workers=persistent_workers,
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
        epoch = int(getattr(self.batch_sampler, "epoch", self.dataset.epoch))
        for indices in self.batch_sampler:
            items = [self.dataset[(epoch, i)] for i in indices]
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
