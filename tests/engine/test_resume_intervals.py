"""One loader with workers driven across epochs as the trainer drives it (set_epoch, mid-epoch start), and resume
with eval_interval / save_interval > 1 and keep_last: 0."""

import os

import numpy as np
import paddle

from passl.data import build_dataset
from passl.data.loader import build_loader
from passl.engine.trainer import Trainer
from passl.utils.plot import read_metrics
from tests.data.test_loader import TRANSFORMS
from tests.engine.helpers import tiny_cfg


def _drive(loader, epoch, start_batch=0):
    """What Trainer._train_epoch does with its one loader at the start of an epoch."""
    loader.batch_sampler.set_epoch(epoch, start_batch=start_batch)
    loader.dataset.set_epoch(epoch)
    return [(x.numpy(), y.numpy()) for x, y in loader]


def _loader(workers):
    ds = build_dataset({"name": "SyntheticImages", "num_samples": 12, "image_size": 24}, TRANSFORMS)
    return build_loader(ds, 2, train=True, num_workers=workers, seed=0)


def test_one_loader_with_workers_across_epochs_and_a_mid_epoch_start():
    persistent = _loader(2)
    epochs = [_drive(persistent, e) for e in range(3)]
    for e, batches in enumerate(epochs):
        fresh = _drive(_loader(0), e)  # a new in-process loader per epoch: the reference
        assert len(batches) == len(fresh) == 6
        for (x, y), (xf, yf) in zip(batches, fresh):
            np.testing.assert_array_equal(x, xf)
            np.testing.assert_array_equal(y, yf)
    assert not np.array_equal(epochs[0][0][0], epochs[1][0][0])  # the epoch reached the workers
    # Resume mid-epoch 1 at micro-batch 4 (step 2 with accum_steps 2): the tail of the same epoch, same pixels.
    tail = _drive(persistent, 1, start_batch=4)
    assert len(tail) == 2
    for (x, y), (xf, yf) in zip(tail, epochs[1][4:]):
        np.testing.assert_array_equal(x, xf)
        np.testing.assert_array_equal(y, yf)
    again = _drive(persistent, 2)  # and the next epoch starts from its beginning again
    np.testing.assert_array_equal(again[0][0], epochs[2][0][0])
    persistent.close()  # its workers would otherwise live on until garbage collection, into later tests


def _cfg(out, **kw):
    cfg = tiny_cfg(out, samples=16, epochs=5, eval_interval=2, save_interval=2, keep_last=0, **kw)
    cfg.data.train.num_workers = 1
    cfg.data.train.batch_size = 2
    cfg.train.accum_steps = 2
    return cfg


def test_resume_with_eval_and_save_intervals_and_keep_all(tmp_path):
    full = Trainer(_cfg(tmp_path / "full"))
    full.train()
    split = tmp_path / "split"
    Trainer(_cfg(split, max_steps=10)).train()  # 4 steps per epoch: stops in epoch 3, after epoch 2's eval/save
    assert sorted(n for n in os.listdir(split) if n.startswith("epoch_")) == ["epoch_2.pdparams"]
    resumed = Trainer(_cfg(split))
    assert (resumed.state["epoch"], resumed.state["step_in_epoch"]) == (2, 2)
    resumed.train()
    for out in (tmp_path / "full", split):
        names = sorted(n for n in os.listdir(out) if n.startswith("epoch_"))
        assert names == ["epoch_2.pdparams", "epoch_4.pdparams", "epoch_5.pdparams"], names  # keep_last 0: all
        evals = [r["epoch"] for r in read_metrics(str(out / "metrics.jsonl")) if r["type"] == "eval"]
        assert evals == [2, 4, 5]  # every 2nd epoch and the last
    assert resumed.state["best"] == full.state["best"]
    a, b = paddle.load(str(tmp_path / "full" / "last.pdparams")), paddle.load(str(split / "last.pdparams"))
    for k, v in a["model"].items():
        np.testing.assert_allclose(b["model"][k].numpy(), v.numpy(), atol=1e-6, err_msg=k)
