"""Distributed helpers: the engine's only contact with paddle.distributed."""

from __future__ import annotations

import json
import os
from typing import Any, List, Sequence

import paddle
import paddle.distributed as dist

__all__ = [
    "get_rank",
    "get_world_size",
    "is_main_process",
    "init_distributed",
    "all_reduce_sum",
    "all_gather_json",
    "barrier",
    "main_process_first",
]


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


def all_gather_json(obj: Any) -> List[Any]:
    """Every process's ``obj`` (anything ``json`` can write), in rank order, on every process. Sent as UTF-8 bytes in
    a uint8 tensor: nothing is pickled."""
    data = json.dumps(obj, separators=(",", ":")).encode("utf-8")
    if get_world_size() == 1:
        return [json.loads(data)]
    length = paddle.to_tensor([len(data)], dtype="int64")
    lengths: List[paddle.Tensor] = []
    dist.all_gather(lengths, length)
    sizes = [int(t.item()) for t in lengths]
    buf = paddle.zeros([max(sizes)], dtype="uint8")
    if data:
        buf[: len(data)] = paddle.to_tensor(list(data), dtype="uint8")
    parts: List[paddle.Tensor] = []
    dist.all_gather(parts, buf)
    return [json.loads(bytes(p.numpy()[:n].tolist()).decode("utf-8")) for p, n in zip(parts, sizes)]


class main_process_first:
    """``with main_process_first():`` rank 0 runs the block first (a download, a cache fill), the others wait at a
    barrier, then run it (finding the file in place)."""

    def __enter__(self):
        if not is_main_process():
            barrier()
        return self

    def __exit__(self, *exc) -> None:
        if is_main_process():
            barrier()
