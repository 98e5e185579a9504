"""Run by test_interrupt.py as a training subprocess (one process, or two under paddle.distributed.launch) through
tools/train.py's main(), so its messages and exit codes are the ones a user sees.

Usage: _interrupt_train.py OUT_DIR MODE [extra tools/train.py args]
MODE: "run" trains; "slow" also sleeps after every optimizer step and writes each rank's pid to OUT_DIR/pid<rank>
(so a test can signal it mid-epoch); "nan1" makes rank 1's loss NaN at its 3rd optimizer step."""

import os
import sys
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "tools"))

import paddle  # noqa: E402

from passl.engine import hooks as hooks_mod  # noqa: E402
from passl.engine import trainer as trainer_mod  # noqa: E402
from passl.utils.config import dump_config  # noqa: E402
from passl.utils.dist import get_rank, get_world_size  # noqa: E402
from tests.engine.helpers import tiny_cfg  # noqa: E402


def make_cfg(out, world_size=1):
    """16 optimizer steps over 2 epochs (24 images, 2 per micro-batch x 2 accumulation steps / processes), loader
    workers on. Drop path and mixup are off: they draw from per-process generators that only rank 0's checkpoint
    state restores today, while the data order and augmentations are seeded per sample."""
    cfg = tiny_cfg(out, samples=32 * world_size, epochs=2)
    cfg.model.architecture.drop_path_rate = 0.0
    cfg.data.mixup = None
    cfg.model.loss = {"name": "CrossEntropyLoss", "label_smoothing": 0.1}
    cfg.data.train.batch_size = 2
    cfg.data.train.num_workers = 1
    cfg.train.accum_steps = 2
    cfg.train.ema = {"enable": True, "decay": 0.9}
    cfg.train.visualdl = True
    return cfg


class _Slow(hooks_mod.Hook):
    def before_run(self, trainer):
        with open(os.path.join(trainer.output_dir, f"pid{get_rank()}"), "w") as f:
            f.write(str(os.getpid()))

    def after_step(self, trainer):
        time.sleep(0.3)


if __name__ == "__main__":
    out, mode, extra = sys.argv[1], sys.argv[2], sys.argv[3:]
    os.makedirs(out, exist_ok=True)
    cfg_path = os.path.join(out, f"cfg{get_rank()}.yaml")
    dump_config(make_cfg(out, get_world_size()), cfg_path)
    if mode == "slow":
        real = hooks_mod.default_hooks
        trainer_mod.default_hooks = lambda tcfg: [*real(tcfg), _Slow()]
    if mode == "nan1" and get_rank() == 1:
        real_fb = trainer_mod.Trainer._forward_backward
        calls = {"n": 0}

        def poisoned(self, images, labels, sync):
            calls["n"] += 1
            loss = real_fb(self, images, labels, sync)
            return loss * float("nan") if calls["n"] >= 5 else loss  # 2 micro-batches per step: step 3

        trainer_mod.Trainer._forward_backward = poisoned
    import train as train_tool  # tools/train.py

    paddle.set_device("cpu")
    sys.exit(train_tool.main(["-c", cfg_path, *extra]))
