"""Run by test_dist_rng.py under paddle.distributed.launch (2 processes, loader workers, accumulation, EMA, mixup,
drop path). Phase "train" stops at train.max_steps=2 (a collective checkpoint) and records each rank's EMA weights
and the random numbers it draws next; phase "resume" auto-resumes and records what each rank draws first.

Usage: _dist_rng.py OUT_DIR train|resume"""

import os
import sys

sys.path.insert(0, os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..")))

import numpy as np  # noqa: E402
import paddle  # noqa: E402

from passl.engine.trainer import Trainer  # noqa: E402
from passl.utils.dist import get_rank  # noqa: E402
from tests.engine.helpers import tiny_cfg  # noqa: E402


def make_cfg(out, max_steps):
    cfg = tiny_cfg(out, samples=32, epochs=1, accum_steps=2, max_steps=max_steps)
    cfg.train.ema = {"enable": True, "decay": 0.9}
    cfg.data.train.batch_size = 2
    cfg.data.train.num_workers = 2
    cfg.data.val = None
    assert cfg.data.mixup and cfg.model.architecture.drop_path_rate > 0
    return cfg


def draws(t):
    """What this rank's drop path (Paddle's generator) and mixup (its RandomState) draw next."""
    return np.concatenate([paddle.rand([8]).numpy().astype("float64"), t.mixup.rng.rand(4)])


def ema(t):
    return {k: v.numpy() for k, v in t.ema.state_dict().items()}


if __name__ == "__main__":
    out, phase = sys.argv[1], sys.argv[2]
    rank = get_rank()
    if phase == "train":
        t = Trainer(make_cfg(out, 2))
        np.savez(os.path.join(out, f"ema_init{rank}.npz"), **ema(t))
        t.train()
        np.savez(os.path.join(out, f"ema_end{rank}.npz"), **ema(t))
        np.save(os.path.join(out, f"cont{rank}.npy"), draws(t))
    else:
        t = Trainer(make_cfg(out, 4))
        assert t.state["step"] == 2, t.state
        np.save(os.path.join(out, f"res{rank}.npy"), draws(t))
        t.train()
        with open(os.path.join(out, f"done{rank}.txt"), "w") as f:
            f.write(str(t.state["step"]))
