"""A run stopped mid-epoch and resumed ends exactly where an uninterrupted run ends; best metrics survive resume."""

import numpy as np
import paddle

from passl.engine import hooks
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


# Forced top-1 per epoch: epoch 2 is worse than epoch 1 for both the model and its EMA, so a run that lost its
# best metrics on resume would take epoch 2 as the best and overwrite best.pdparams / best_ema.pdparams.
SCORES = {1: {"top1": 60.0, "top1_ema": 50.0}, 2: {"top1": 30.0, "top1_ema": 45.0}}
BEST = {"top1": 60.0, "top1_epoch": 1, "top1_ema": 50.0, "top1_ema_epoch": 1}


def _forced_scores(monkeypatch, holder):
    real = hooks.evaluate

    def fake(model, loader, **kw):
        res = real(model, loader, **kw)
        t = holder["trainer"]
        res["top1"] = SCORES[t.state["epoch"] + 1]["top1" if model is t.model_without_ddp else "top1_ema"]
        return res

    monkeypatch.setattr(hooks, "evaluate", fake)


def _weights(layer_state):
    return {k: v.numpy().copy() for k, v in layer_state.items()}


def test_resume_after_an_evaluation_carries_best_into_later_epochs(tmp_path, monkeypatch):
    holder = {}
    _forced_scores(monkeypatch, holder)
    holder["trainer"] = full = Trainer(_cfg(tmp_path / "full"))
    full.train()
    assert full.state["best"] == BEST

    # Stop at the end of epoch 1 (4 steps of 4 images): epoch 1 is evaluated and checkpointed, then the run ends.
    holder["trainer"] = first = Trainer(_cfg(tmp_path / "split", max_steps=4))
    first.train()
    assert first.state["epoch"] == 1 and first.state["best"] == BEST
    epoch1 = _weights(first.model_without_ddp.state_dict())
    epoch1_ema = _weights(first.ema.state_dict())

    holder["trainer"] = resumed = Trainer(_cfg(tmp_path / "split"))  # auto-resume from split/last.pdparams
    assert resumed.state["epoch"] == 1 and resumed.state["best"] == BEST
    resumed.train()
    assert resumed.state["epoch"] == 2 and resumed.state["last_eval"] == {"top1": 30.0, "top1_ema": 45.0}
    assert resumed.state["best"] == full.state["best"] == BEST
    assert paddle.load(str(tmp_path / "split" / "last.pdparams"))["best"] == BEST

    final = _weights(resumed.model_without_ddp.state_dict())
    for fname, expected in (("best.pdparams", epoch1), ("best_ema.pdparams", epoch1_ema)):
        saved, reference = paddle.load(str(tmp_path / "split" / fname)), paddle.load(str(tmp_path / "full" / fname))
        assert saved["epoch"] == reference["epoch"] == 1 and saved["best"] == reference["best"] == BEST, fname
        assert saved["model"].keys() == expected.keys()
        for k, v in expected.items():
            np.testing.assert_array_equal(np.asarray(saved["model"][k]), v, err_msg=f"{fname}:{k}")
            np.testing.assert_allclose(np.asarray(reference["model"][k]), v, atol=1e-6, err_msg=f"{fname}:{k}")
    assert max(np.abs(final[k] - epoch1[k]).max() for k in final) > 1e-4  # epoch 2 did move the weights
