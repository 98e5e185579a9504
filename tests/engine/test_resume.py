"""A run stopped mid-epoch and resumed ends exactly where an uninterrupted run ends."""

import numpy as np
import paddle

from passl.engine.checkpoint import optimizer_state
from passl.engine.trainer import Trainer
from tests.engine.helpers import tiny_cfg


def _cfg(out, **kw):
    cfg = tiny_cfg(out, samples=16, epochs=2, **kw)  # mixup, RandAugment, random erasing, drop path all on
    cfg.train.ema = {"enable": True, "decay": 0.9}
    return cfg


def _snapshot(t):
    return {
        "model": {k: v.numpy() for k, v in t.model_without_ddp.state_dict().items()},
        "ema": {k: v.numpy() for k, v in t.ema.state_dict().items()},
        "opt": {
            k: v.numpy()
            for k, v in optimizer_state(t.optimizer, t.model_without_ddp, True).items()
            if isinstance(v, paddle.Tensor)
        },
        "best": dict(t.state["best"]),
        "lr": t.optimizer.get_lr(),
    }


def test_stop_and_resume_matches_uninterrupted(tmp_path):
    full = Trainer(_cfg(tmp_path / "full"))
    full.train()
    a = _snapshot(full)

    first = Trainer(_cfg(tmp_path / "split", max_steps=3))  # stops inside epoch 1
    first.train()
    assert first.state["step"] == 3
    resumed = Trainer(_cfg(tmp_path / "split"))  # auto-resume from split/last.pdparams
    assert resumed.state["step"] == 3 and resumed.state["step_in_epoch"] == 3
    resumed.train()
    b = _snapshot(resumed)

    assert a["best"] == b["best"] and "top1" in a["best"] and "top1_ema" in a["best"]
    assert a["lr"] == b["lr"]
    for part in ("model", "ema", "opt"):
        assert a[part].keys() == b[part].keys()
        for k in a[part]:
            np.testing.assert_allclose(b[part][k], a[part][k], atol=1e-6, err_msg=f"{part}:{k}")


def test_resume_keeps_best_metrics(tmp_path):
    t = Trainer(_cfg(tmp_path / "r"))
    t.train()
    again = Trainer(_cfg(tmp_path / "r"))  # everything done: resumes at the end with the same best
    assert again.state["best"] == t.state["best"] and again.state["epoch"] == 2
