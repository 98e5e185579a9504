"""The trainer: every recipe runs, accumulation is exact and syncs once per step, NaN stops the run, bad keys fail."""

import contextlib
import glob
import json
import os
import subprocess
import sys

import numpy as np
import paddle
import pytest

from passl.engine.trainer import Trainer, TrainingDiverged
from passl.registry import ConfigError
from tests.engine.helpers import ROOT, tiny_cfg

CONFIGS = sorted(glob.glob(os.path.join(ROOT, "configs", "convnext", "*.yaml")))


@pytest.mark.parametrize("path", CONFIGS, ids=os.path.basename)
def test_two_iteration_smoke_run_of_every_config(path, tmp_path):
    cfg = tiny_cfg(tmp_path, base=os.path.relpath(path, ROOT), max_steps=2)
    cfg.data.train.batch_size = 2
    state = Trainer(cfg).train()
    assert state["step"] == 2
    assert os.path.isfile(tmp_path / "last.pdparams")
    lines = [json.loads(x) for x in open(tmp_path / "metrics.jsonl")]
    assert [x["step"] for x in lines if x["type"] == "train"] == [1, 2]
    assert all(np.isfinite(x["loss"]) for x in lines)


def test_full_epoch_writes_checkpoints_metrics_and_run_info(tmp_path):
    cfg = tiny_cfg(tmp_path, samples=16, epochs=2, keep_last=1)
    state = Trainer(cfg).train()
    assert state["epoch"] == 2 and state["step"] == 8
    names = sorted(os.listdir(tmp_path))
    for f in ("best.pdparams", "best_ema.pdparams", "config.yaml", "last.pdparams", "run_info.json", "train.log"):
        assert f in names
    assert [n for n in names if n.startswith("epoch_")] == ["epoch_2.pdparams"]  # keep_last=1 pruned epoch 1
    info = json.load(open(tmp_path / "run_info.json"))
    assert info["seed"] == 0 and info["paddle"] == paddle.__version__ and info["global_batch"] == 4
    evals = [json.loads(x) for x in open(tmp_path / "metrics.jsonl") if '"eval"' in x]
    assert [e["epoch"] for e in evals] == [1, 2] and all(e["model_count"] == 10 for e in evals)
    log = open(tmp_path / "train.log").read()
    assert "effective batch 4 = 1 processes x 4 per process x 1 accumulation steps" in log
    assert "batch_cost" in log and "reader_cost" in log and "samples/s" in log and "eta" in log


def _params(trainer):
    return {k: v.numpy().copy() for k, v in trainer.model_without_ddp.state_dict().items()}


def test_accumulation_equals_one_large_batch(tmp_path):
    runs = {}
    for name, (bs, accum) in {"big": (8, 1), "accum": (4, 2)}.items():
        cfg = tiny_cfg(tmp_path / name, samples=16, max_steps=2)
        cfg.model.architecture.drop_path_rate = 0.0
        cfg.data.mixup = None
        cfg.model.loss = {"name": "CrossEntropyLoss", "label_smoothing": 0.1}
        cfg.data.train.transforms = [{"name": "Normalize"}]
        cfg.data.train.batch_size = bs
        cfg.train.accum_steps = accum
        t = Trainer(cfg)
        start = _params(t)
        t.train()
        runs[name] = _params(t)
    moved = max(np.abs(runs["big"][k] - start[k]).max() for k in start)
    assert moved > 1e-4
    for k in runs["big"]:
        np.testing.assert_allclose(runs["accum"][k], runs["big"][k], atol=1e-5, err_msg=k)


def test_nan_loss_stops_with_message_and_keeps_last_checkpoint(tmp_path):
    cfg = tiny_cfg(tmp_path, samples=16, epochs=2)
    t = Trainer(cfg)
    original = t.model_without_ddp.compute_loss
    calls = {"n": 0}

    def poisoned(logits, target):
        calls["n"] += 1
        loss = original(logits, target)
        return loss * float("nan") if calls["n"] > 5 else loss

    t.model_without_ddp.compute_loss = poisoned
    with pytest.raises(TrainingDiverged, match="loss is nan at epoch 2, step 6"):
        t.train()
    ckpt = paddle.load(str(tmp_path / "last.pdparams"))
    assert ckpt["epoch"] == 1 and ckpt["step"] == 4  # the good end of epoch 1 was kept


def test_bad_config_key_fails_before_any_work(tmp_path):
    cfg = tiny_cfg(tmp_path)
    cfg.train["epocs"] = 3
    with pytest.raises(ConfigError, match="unknown key\\(s\\) epocs"):
        Trainer(cfg)
    assert not os.path.exists(tmp_path / "train.log")
    res = subprocess.run(
        [sys.executable, "tools/train.py", "-c", "configs/convnext/convnext_tiny.yaml", "-o", "train.epocs=1"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert res.returncode == 2 and "no key 'train.epocs'" in res.stderr


def test_missing_data_folder_is_a_clear_error(tmp_path):
    cfg = tiny_cfg(tmp_path)
    cfg.data.train.dataset = {"name": "ImageNet", "root": str(tmp_path / "nope"), "split": "train"}
    with pytest.raises(ConfigError, match="ImageNet train folder not found"):
        Trainer(cfg)


def test_unknown_keys_in_any_section_and_resume_from_weights_only_file(tmp_path):
    for section, key in (("", "sed"), ("data", "mixupp"), ("data.train", "num_worker"), ("data.mixup", "seed")):
        cfg = tiny_cfg(tmp_path)
        node = cfg
        for part in filter(None, section.split(".")):
            if node.get(part) is None:
                node[part] = {}
            node = node[part]
        node[key] = 1
        with pytest.raises(ConfigError, match=f"unknown key\\(s\\) {key}"):
            Trainer(cfg)
    cfg = tiny_cfg(tmp_path)
    Trainer(cfg).train()
    assert (tmp_path / "best.pdparams").exists()
    with pytest.raises(ConfigError, match="holds weights and metrics only"):
        Trainer(tiny_cfg(tmp_path), resume=str(tmp_path / "best.pdparams"))


class _RecordingDataParallel:
    """Stands in for paddle.DataParallel in one process with its sync switch: ``grad_need_sync``, cleared inside
    ``no_sync()``. Paddle decides at forward time whether the coming backward all-reduces, so both the forward's
    and the backward's view of the switch are recorded, one entry per micro-batch."""

    def __init__(self, layer):
        self.layer, self.grad_need_sync, self.forwards, self.backwards = layer, True, [], []
        param = next(p for p in layer.parameters() if not p.stop_gradient)
        param.register_hook(self._on_grad)

    def _on_grad(self, grad):
        self.backwards.append(self.grad_need_sync)
        return grad

    @contextlib.contextmanager
    def no_sync(self):
        saved, self.grad_need_sync = self.grad_need_sync, False
        try:
            yield
        finally:
            self.grad_need_sync = saved

    def __call__(self, *args, **kwargs):
        self.forwards.append(self.grad_need_sync)
        return self.layer(*args, **kwargs)

    def train(self):
        self.layer.train()

    def eval(self):
        self.layer.eval()


def test_accumulation_all_reduces_only_on_the_last_micro_batch(tmp_path):
    cfg = tiny_cfg(tmp_path, samples=12, max_steps=2)
    cfg.data.train.batch_size = 2
    cfg.train.accum_steps = 3
    t = Trainer(cfg, hooks=[])
    t.world_size = 2  # as if launched on two processes: the trainer must then sync through the wrapper
    t.model = fake = _RecordingDataParallel(t.model_without_ddp)
    events = []
    step = t.optimizer.step
    t.optimizer.step = lambda: (events.append(("step", list(fake.backwards))), step())[1]
    assert t.train()["step"] == 2
    pattern = [False, False, True] * 2  # per micro-batch: does it all-reduce?
    assert fake.forwards == pattern and fake.backwards == pattern
    assert events == [("step", pattern[:3]), ("step", pattern)]  # each step right after its one synced backward
