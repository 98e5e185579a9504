"""Run by test_distributed.py (one process, or two under paddle.distributed.launch): train and dump each rank's
parameters, its gradients after every micro-batch's backward (before the optimizer step) and its last evaluation.

Usage: _dist_train.py OUT_DIR BATCH_PER_PROCESS [ACCUM_STEPS]"""

import os
import sys

sys.path.insert(0, os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..")))

import numpy as np  # noqa: E402

from passl.engine.trainer import Trainer  # noqa: E402
from passl.utils.dist import get_rank  # noqa: E402
from tests.engine.helpers import tiny_cfg  # noqa: E402


def make_cfg(out, batch, accum=1):
    cfg = tiny_cfg(out, samples=16, epochs=1)
    cfg.model.architecture.drop_path_rate = 0.0
    cfg.data.mixup = None
    cfg.model.loss = {"name": "CrossEntropyLoss", "label_smoothing": 0.1}
    cfg.data.train.transforms = [{"name": "Normalize"}]
    cfg.data.train.batch_size = batch
    cfg.train.accum_steps = accum
    cfg.data.val.dataset.num_samples = 11  # not divisible by 2: each image must be counted once
    return cfg


def record_grads(t, grads):
    """After each micro-batch's forward/backward, append this rank's gradients (all parameters, flattened)."""
    inner = t._forward_backward
    params = [p for p in t.model_without_ddp.parameters() if not p.stop_gradient]

    def wrapped(images, labels, sync):
        value = inner(images, labels, sync=sync)
        flat = [np.zeros(p.shape, "float32") if p.grad is None else p.grad.numpy() for p in params]
        grads.append(np.concatenate([g.ravel() for g in flat]))
        return value

    t._forward_backward = wrapped


if __name__ == "__main__":
    out, batch = sys.argv[1], int(sys.argv[2])
    accum = int(sys.argv[3]) if len(sys.argv) > 3 else 1
    t = Trainer(make_cfg(out, batch, accum))
    grads = []
    record_grads(t, grads)
    t.train()
    rank = get_rank()
    np.savez(
        os.path.join(out, f"rank{rank}.npz"), **{k: v.numpy() for k, v in t.model_without_ddp.state_dict().items()}
    )
    np.save(os.path.join(out, f"grads{rank}.npy"), np.stack(grads))
    with open(os.path.join(out, f"eval{rank}.txt"), "w") as f:
        f.write(repr({**t.state["last_eval"], "count": t.last_eval_results["model"]["count"]}))
