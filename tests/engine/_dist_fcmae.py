"""Run by test_fcmae_pretrain.py under paddle.distributed.launch (2 gloo processes): FCMAE pre-training through
DataParallel; each rank dumps its parameters and its first micro-batch's mask.

Usage: _dist_fcmae.py OUT_DIR"""

import os
import sys

sys.path.insert(0, os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..")))

import numpy as np  # noqa: E402

from passl.engine.trainer import Trainer  # noqa: E402
from passl.utils.dist import get_rank  # noqa: E402
from tests.engine.test_fcmae_pretrain import fcmae_cfg  # noqa: E402

if __name__ == "__main__":
    out = sys.argv[1]
    t = Trainer(fcmae_cfg(out, fashion=False, epochs=1))
    masks = []
    model = t.model_without_ddp
    draw = model.random_mask

    def recording(*a, **kw):
        m = draw(*a, **kw)
        masks.append(m.numpy())
        return m

    model.random_mask = recording
    t.train()
    np.savez(
        os.path.join(out, f"rank{get_rank()}.npz"),
        mask=masks[0],
        **{k: v.numpy() for k, v in model.state_dict().items()},
    )
