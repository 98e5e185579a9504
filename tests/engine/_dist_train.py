"""Run by test_distributed.py under paddle.distributed.launch: train and dump each rank's parameters."""

import os
import sys

sys.path.insert(0, os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..")))

import numpy as np  # noqa: E402

from passl.engine.trainer import Trainer  # noqa: E402
from passl.utils.dist import get_rank  # noqa: E402
from tests.engine.helpers import tiny_cfg  # noqa: E402


def make_cfg(out, batch):
    cfg = tiny_cfg(out, samples=16, epochs=1)
    cfg.model.architecture.drop_path_rate = 0.0
    cfg.data.mixup = None
    cfg.model.loss = {"name": "CrossEntropyLoss", "label_smoothing": 0.1}
    cfg.data.train.transforms = [{"name": "Normalize"}]
    cfg.data.train.batch_size = batch
    cfg.data.val.dataset.num_samples = 11  # not divisible by 2: each image must be counted once
    return cfg


if __name__ == "__main__":
    out, batch = sys.argv[1], int(sys.argv[2])
    t = Trainer(make_cfg(out, batch))
    t.train()
    np.savez(
        os.path.join(out, f"rank{get_rank()}.npz"),
        **{k: v.numpy() for k, v in t.model_without_ddp.state_dict().items()},
    )
    with open(os.path.join(out, f"eval{get_rank()}.txt"), "w") as f:
        f.write(repr(t.state["last_eval"]))
