"""Evaluation: top-1, top-5, loss, image count and speed; each image counted once across processes."""

from __future__ import annotations

import logging
import sys
import time
from typing import Any, Callable, Dict, Optional, Union

import paddle
import paddle.nn as nn
import paddle.nn.functional as F

from passl.registry import ConfigError
from passl.utils.dist import all_reduce_sum, is_main_process

__all__ = ["evaluate"]

logger = logging.getLogger("passl.eval")


@paddle.no_grad()
def evaluate(
    model: Union[nn.Layer, Callable[[paddle.Tensor], paddle.Tensor]],
    loader: Any,
    *,
    loss_fn: Optional[Callable] = None,
    amp_dtype: Optional[str] = None,
    progress: bool = False,
    on_batch: Optional[Callable[[paddle.Tensor, paddle.Tensor], None]] = None,
) -> Dict[str, float]:
    """Run ``model`` (a Layer, or any callable from an image batch to logits) over ``loader`` (integer labels). With several processes, the loader must shard without padding
    (``passl.data.loader.ShardedEvalSampler``); sums are all-reduced so metrics equal a single-process run.
    ``loss_fn`` defaults to plain cross entropy; ``on_batch(logits, labels)`` sees every batch (predictions dumps)."""
    is_layer = isinstance(model, nn.Layer)  # else a callable Tensor -> Tensor (an inference predictor)
    was_training = is_layer and model.training
    if is_layer:
        model.eval()
    # Sums stay on the device (one float64 tensor) and are read once at the end: no host sync per batch.
    sums = None
    start = time.perf_counter()
    bar = None
    if progress and is_main_process() and sys.stderr.isatty():
        from tqdm import tqdm

        bar = tqdm(total=len(loader), desc="eval", leave=False)
    for images, labels in loader:
        labels = labels.reshape([-1]).astype("int64")
        if amp_dtype:
            with paddle.amp.auto_cast(dtype=amp_dtype):
                logits = model(images)
        else:
            logits = model(images)
        logits = logits.astype("float32")
        if on_batch is not None:
            on_batch(logits, labels)  # every image, in loader order (skipped ones with label -1)
        valid = labels >= 0  # label -1: an unreadable image the dataset was told to skip
        weight = valid.astype("float32")
        safe = paddle.where(valid, labels, paddle.zeros_like(labels))
        if loss_fn is None:
            loss_sum_b = (F.cross_entropy(logits, safe, reduction="none").reshape([-1]) * weight).sum()
        else:  # a custom loss sees the valid images only (this path reads the count on the host)
            keep = paddle.nonzero(valid).reshape([-1])
            if keep.shape[0]:
                loss_sum_b = loss_fn(paddle.gather(logits, keep), paddle.gather(labels, keep)) * keep.shape[0]
            else:
                loss_sum_b = paddle.zeros([], "float32")
        k = min(5, logits.shape[-1])
        topk = paddle.topk(logits, k=k, axis=-1)[1]
        hits = (topk == safe.unsqueeze(-1)).astype("float32") * weight.unsqueeze(-1)
        n = weight.sum()
        batch = paddle.stack([hits[:, 0].sum(), hits.sum(), loss_sum_b.reshape([]), n, labels.shape[0] - n]).astype(
            "float64"
        )
        sums = batch if sums is None else sums + batch
        if bar is not None:
            bar.update(1)
    if bar is not None:
        bar.close()
    elapsed = time.perf_counter() - start
    totals = [0.0] * 5 if sums is None else [float(v) for v in sums.numpy()]
    correct1, correct5, loss_sum, count, skipped = all_reduce_sum(totals)
    if was_training:
        model.train()
    if count == 0:
        raise ConfigError(f"evaluation found no readable image ({int(skipped)} skipped as corrupt); check the files")
    return {
        "top1": 100.0 * correct1 / count,
        "top5": 100.0 * correct5 / count,
        "loss": loss_sum / count,
        "count": int(count),
        "skipped": int(skipped),
        "images_per_sec": count / max(elapsed, 1e-9),
    }
