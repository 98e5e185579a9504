"""Ctrl-C / SIGTERM stop a run after a whole optimizer step with one checkpoint; the resumed run is exactly the
uninterrupted one (weights, EMA, optimizer, loss curve, VisualDL curve); a NaN on one process stops every process."""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import paddle
import pytest

from passl.engine.hooks import Hook, default_hooks
from passl.engine.trainer import Trainer, TrainingInterrupted
from passl.utils.plot import read_metrics
from tests.engine._interrupt_train import make_cfg
from tests.engine.helpers import ROOT
from tests.engine.test_distributed import _free_port

DRIVER = os.path.join(ROOT, "tests", "engine", "_interrupt_train.py")
ENV = {k: v for k, v in os.environ.items() if k != "CUDA_VISIBLE_DEVICES"}


def _ckpt_arrays(path):
    ckpt = paddle.load(str(path))
    out = {}
    for part in ("model", "ema", "optimizer"):
        for k, v in ckpt[part].items():
            if isinstance(v, paddle.Tensor):
                out[f"{part}:{k}"] = v.numpy()
    return ckpt, out


def _assert_same_run(a_dir, b_dir):
    """Same final checkpoint (weights, EMA, optimizer state) and the same loss curve, one record per step."""
    a, a_arr = _ckpt_arrays(a_dir / "last.pdparams")
    b, b_arr = _ckpt_arrays(b_dir / "last.pdparams")
    assert (a["epoch"], a["step"]) == (b["epoch"], b["step"])
    assert a_arr.keys() == b_arr.keys()
    for k in a_arr:
        np.testing.assert_allclose(b_arr[k], a_arr[k], atol=1e-6, err_msg=k)
    for name in ("metrics.jsonl",):
        ra, rb = read_metrics(a_dir / name), read_metrics(b_dir / name)
        raw_b = [json.loads(x) for x in open(b_dir / name)]
        assert len(raw_b) == len(rb), "metrics.jsonl holds duplicate records"
        assert [(r["type"], r["step"]) for r in ra] == [(r["type"], r["step"]) for r in rb]
        for x, y in zip(ra, rb):
            if x["type"] == "train":
                assert y["loss"] == pytest.approx(x["loss"], abs=1e-6) and y["lr"] == pytest.approx(x["lr"], rel=1e-9)
            else:
                assert y["model_top1"] == x["model_top1"]


def _vdl_losses(out):
    from visualdl import LogReader

    files = os.listdir(out / "vdl")
    assert files == ["vdlrecords.passl.log"], files
    reader = LogReader(file_path=str(out / "vdl" / files[0]))
    return [(r.id, round(r.value, 6)) for r in reader.get_data("scalar", "train/loss")]


class _SignalAt(Hook):
    """Sends a real signal to this process after optimizer step ``step``."""

    def __init__(self, step, sig):
        self.step, self.sig = step, sig

    def after_step(self, trainer):
        if trainer.state["step"] == self.step:
            os.kill(os.getpid(), self.sig)


@pytest.mark.parametrize("at", [3, 7], ids=["mid-epoch", "last-step-of-epoch"])
def test_sigint_mid_epoch_saves_once_and_resume_is_exact(tmp_path, at):
    full = Trainer(make_cfg(tmp_path / "full"))
    full.train()

    cfg = make_cfg(tmp_path / "split")
    t = Trainer(cfg, hooks=[*default_hooks(dict(cfg.train)), _SignalAt(at, signal.SIGINT)])
    before = signal.getsignal(signal.SIGINT)
    with pytest.raises(TrainingInterrupted, match=f"stopped by SIGINT after step {at + 1} .*Run the same command"):
        t.train()
    assert signal.getsignal(signal.SIGINT) is before  # handlers restored
    ckpt = paddle.load(str(tmp_path / "split" / "last.pdparams"))
    # The step in flight when the signal came was finished, and saved; the epoch end (eval, epoch_1) was not done.
    assert (ckpt["epoch"], ckpt["step"], ckpt["step_in_epoch"]) == (0, at + 1, at + 1)
    assert not [n for n in os.listdir(tmp_path / "split") if n.startswith("epoch_")]

    resumed = Trainer(make_cfg(tmp_path / "split"))
    assert resumed.state["step"] == at + 1
    resumed.train()
    _assert_same_run(tmp_path / "full", tmp_path / "split")
    assert _vdl_losses(tmp_path / "split") == _vdl_losses(tmp_path / "full")


def test_step_checkpoints_then_crash_resume_is_exact(tmp_path):
    full = Trainer(make_cfg(tmp_path / "full"))
    full.train()

    class Crash(Hook):
        def after_step(self, trainer):
            if trainer.state["step"] == 11:
                raise RuntimeError("planted crash")

    cfg = make_cfg(tmp_path / "split")
    cfg.train.save_every_steps = 3
    t = Trainer(cfg, hooks=[*default_hooks(dict(cfg.train)), Crash()])
    with pytest.raises(RuntimeError, match="planted crash"):
        t.train()
    ckpt = paddle.load(str(tmp_path / "split" / "last.pdparams"))
    assert (ckpt["epoch"], ckpt["step"], ckpt["step_in_epoch"]) == (1, 9, 1)  # step 9 = epoch 2, step 1 of 8
    cfg = make_cfg(tmp_path / "split")
    cfg.train.save_every_steps = 3
    Trainer(cfg).train()
    _assert_same_run(tmp_path / "full", tmp_path / "split")
    assert _vdl_losses(tmp_path / "split") == _vdl_losses(tmp_path / "full")


def _wait_for(path, proc, timeout=300):
    t0 = time.time()
    while not os.path.exists(path):
        assert proc.poll() is None, proc.communicate()
        assert time.time() - t0 < timeout
        time.sleep(0.2)


def _wait_for_step(out, step, proc, timeout=300):
    t0 = time.time()
    while True:
        path = out / "metrics.jsonl"
        if path.exists() and any(r["type"] == "train" and r["step"] >= step for r in read_metrics(path)):
            return
        assert proc.poll() is None, proc.communicate()
        assert time.time() - t0 < timeout
        time.sleep(0.2)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_real_signal_to_a_training_process(tmp_path, sig):
    out = tmp_path / "split"
    proc = subprocess.Popen(
        [sys.executable, DRIVER, str(out), "slow"],
        cwd=ROOT,
        env=ENV,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    _wait_for_step(out, 2, proc)
    proc.send_signal(sig)
    stdout, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 128 + sig, (stdout, stderr)
    assert "Traceback" not in stderr and "KeyboardInterrupt" not in stderr
    last = [ln for ln in stderr.splitlines() if ln.strip()][-1]
    assert last.startswith(f"stopped by {signal.Signals(sig).name} after step") and "Run the same command" in last
    ckpt = paddle.load(str(out / "last.pdparams"))
    assert 2 <= ckpt["step"] < 16 and ckpt["epoch"] * 8 + ckpt["step_in_epoch"] == ckpt["step"]

    res = subprocess.run([sys.executable, DRIVER, str(out), "run"], cwd=ROOT, env=ENV, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr[-3000:]
    ref = tmp_path / "full"
    res = subprocess.run([sys.executable, DRIVER, str(ref), "run"], cwd=ROOT, env=ENV, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr[-3000:]
    _assert_same_run(ref, out)
    assert _vdl_losses(out) == _vdl_losses(ref)


def _launch(out, mode, log_dir, **kw):
    cmd = [sys.executable, "-m", "paddle.distributed.launch", "--nproc_per_node", "2"]
    cmd += ["--master", f"127.0.0.1:{_free_port()}", "--log_dir", str(log_dir), DRIVER, str(out), mode]
    return subprocess.Popen(cmd, cwd=ROOT, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)


def test_sigterm_to_one_of_two_processes_stops_both_and_resume_is_exact(tmp_path):
    out = tmp_path / "split"
    proc = _launch(out, "slow", tmp_path / "logs1")
    _wait_for_step(out, 2, proc)
    _wait_for(out / "pid1", proc)
    os.kill(int((out / "pid1").read_text()), signal.SIGTERM)  # pre-emption of rank 1 only
    proc.communicate(timeout=300)
    assert proc.returncode != 0
    for rank in (0, 1):
        log = (tmp_path / "logs1" / f"workerlog.{rank}").read_text()
        assert "Traceback" not in log, log[-3000:]
    assert "stopped by SIGTERM after step" in (tmp_path / "logs1" / "workerlog.0").read_text()
    ckpt = paddle.load(str(out / "last.pdparams"))
    assert 2 <= ckpt["step"] < 16

    for d, logs in ((out, "logs2"), (tmp_path / "full", "logs3")):
        p = _launch(d, "run", tmp_path / logs)
        p.communicate(timeout=600)
        assert p.returncode == 0, (tmp_path / logs / "workerlog.0").read_text()[-3000:]
    _assert_same_run(tmp_path / "full", out)
    assert _vdl_losses(out) == _vdl_losses(tmp_path / "full")


def test_nan_loss_on_one_process_stops_every_process_with_one_message(tmp_path):
    proc = _launch(tmp_path / "run", "nan1", tmp_path / "logs")
    proc.communicate(timeout=600)
    assert proc.returncode != 0
    for rank in (0, 1):
        log = (tmp_path / "logs" / f"workerlog.{rank}").read_text()
        errors = [ln for ln in log.splitlines() if ln.startswith("error: loss is")]
        assert len(errors) == 1 and "on 1 of 2 processes at epoch 1, step 3" in errors[0], log[-3000:]
        assert "Traceback" not in log


def test_ctrl_c_to_the_launcher_stops_workers_with_loader_processes_cleanly(tmp_path):
    """Ctrl-C in a terminal reaches paddle.distributed.launch, which sends SIGTERM to each worker's process group:
    the training processes and their DataLoader worker processes alike."""
    out = tmp_path / "split"
    proc = _launch(out, "slow", tmp_path / "logs")
    _wait_for_step(out, 2, proc)
    proc.send_signal(signal.SIGINT)
    proc.communicate(timeout=300)
    for rank in (0, 1):
        log = (tmp_path / "logs" / f"workerlog.{rank}").read_text()
        assert "Traceback" not in log and "exited unexpectedly" not in log, log[-3000:]
    assert "stopped by SIGTERM after step" in (tmp_path / "logs" / "workerlog.0").read_text()
    ckpt = paddle.load(str(out / "last.pdparams"))
    assert 2 <= ckpt["step"] < 16
    # The loader workers ignored the signal (so the step could finish) and ended with their trainer process.
    for _ in range(100):
        left = [p for p in _processes_mentioning(str(out))]
        if not left:
            break
        time.sleep(0.2)
    assert not left, left


def _processes_mentioning(text):
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            cmd = open(f"/proc/{pid}/cmdline", "rb").read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if text in cmd:
            found.append((int(pid), cmd))
    return found
