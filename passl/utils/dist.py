"""Distributed helpers: the engine's only contact with paddle.distributed."""

from __future__ import annotations

import os
from typing import List, Sequence

import paddle
import paddle.distributed as dist

__all__ = ["get_rank", "get_world_size", "is_main_process", "init_distributed", "all_reduce_sum", "barrier"]


def get_world_size() -> int:
    return int(os.environ.get("PADDLE_TRAINERS_NUM", "1"))


def get_rank() -> int:
    return int(os.environ.get("PADDLE_TRAINER_ID", "0"))


def is_main_process() -> bool:
    return get_rank() == 0


_INITIALIZED = False


def init_distributed() -> None:
    """Join the process group started by ``python -m paddle.distributed.launch`` (gloo on CPU, NCCL on GPU)."""
    global _INITIALIZED
    if get_world_size() > 1 and not _INITIALIZED:
        dist.init_parallel_env()
        _INITIALIZED = True


def all_reduce_sum(values: Sequence[float]) -> List[float]:
    """Sum a few Python numbers over all processes (float64 so counts stay exact)."""
    if get_world_size() == 1:
        return [float(v) for v in values]
    t = paddle.to_tensor([float(v) for v in values], dtype="float64")
    dist.all_reduce(t)
    return [float(v) for v in t.numpy()]


def barrier() -> None:
    if get_world_size() > 1:
        dist.barrier()
