"""Loader worker processes: a flat process count over epochs of a real Trainer run, workers that die with a killed
trainer, and persistent workers that still draw each epoch's augmentations (the epoch travels with the indices)."""

import ctypes
import gc
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import psutil
import pytest

from passl.data import build_dataset
from passl.data.loader import build_loader
from passl.engine.hooks import Hook, default_hooks
from passl.engine.trainer import Trainer
from tests.engine.helpers import ROOT, tiny_cfg

TRANSFORMS = [{"name": "RandomResizedCrop", "size": 16}, {"name": "RandomHorizontalFlip"}, {"name": "Normalize"}]


class _Census(Hook):
    """After every epoch (evaluation included): this process's children, open files and resident memory."""

    def __init__(self):
        self.children, self.pids, self.fds, self.rss = [], [], [], []
        # children that exist before the run (another test's loader not yet collected) are not this run's
        self.before = {p.pid for p in psutil.Process().children(recursive=True)}

    def after_epoch(self, trainer):
        me = psutil.Process()
        mine = {p.pid for p in me.children(recursive=True)} - self.before
        self.children.append(len(mine))
        self.pids.append(mine)
        self.fds.append(me.num_fds())
        self.rss.append(me.memory_info().rss)


def _cfg(out, persistent, epochs=4):
    cfg = tiny_cfg(out, samples=16, epochs=epochs, auto_resume=False)
    for split in ("train", "val"):
        cfg.data[split].num_workers = 2
        cfg.data[split].persistent_workers = persistent
    return cfg


@pytest.mark.parametrize("persistent", [False, True])
def test_process_count_is_flat_over_epochs(tmp_path, persistent):
    census = _Census()
    cfg = _cfg(tmp_path, persistent)
    t = Trainer(cfg, hooks=default_hooks(dict(cfg.train)) + [census])
    t.train()
    # persistent: 2 train + 2 val workers for the whole run; otherwise none left once an epoch's loops end
    assert census.children == [4 if persistent else 0] * 4, census.children
    if persistent:  # the same 4 workers serve every epoch's training and both evaluations: forked once
        assert all(pids == census.pids[0] for pids in census.pids), census.pids
    for loader in (t.train_loader, t.val_loader):
        loader.close()
    assert {p.pid for p in psutil.Process().children(recursive=True)} - census.before == set()
    # An ended iterator's reader thread notices within Paddle's 5 s poll, then its pipes are freed: no descriptors
    # pile up over epochs.
    for thread in threading.enumerate():
        if thread is not threading.main_thread() and thread.daemon:
            thread.join(timeout=30)
    gc.collect()
    assert psutil.Process().num_fds() <= census.fds[0], (psutil.Process().num_fds(), census.fds)


def _epochs(workers, persistent, epochs=(0, 1, 2)):
    ds = build_dataset({"name": "SyntheticImages", "num_samples": 12, "image_size": 24}, TRANSFORMS)
    loader = build_loader(ds, 4, train=True, num_workers=workers, persistent_workers=persistent, seed=3)
    out = []
    for e in epochs:
        loader.batch_sampler.set_epoch(e)  # the sampler only: the dataset copy in a forked worker is not told
        out.append([(x.numpy(), y.numpy()) for x, y in loader])
    if workers:
        loader.close()
    return out


def test_persistent_workers_draw_each_epochs_augmentations():
    ref = _epochs(0, False)
    for persistent in (True, False):
        got = _epochs(2, persistent)
        for e, (a, b) in enumerate(zip(ref, got)):
            assert len(a) == len(b) == 3
            for (xa, ya), (xb, yb) in zip(a, b):
                np.testing.assert_array_equal(xa, xb, err_msg=f"epoch {e} persistent={persistent}")
                np.testing.assert_array_equal(ya, yb)
    assert not np.array_equal(ref[0][0][0], ref[1][0][0])


def test_abandoned_persistent_iteration_then_a_full_one():
    ds = build_dataset({"name": "SyntheticImages", "num_samples": 12, "image_size": 24}, TRANSFORMS)
    before = {p.pid for p in psutil.Process().children(recursive=True)}
    loader = build_loader(ds, 4, train=True, num_workers=2, persistent_workers=True, seed=3)
    it = iter(loader)
    next(it)
    del it  # stopped mid-epoch (train.max_steps): the workers are ended, the next epoch starts clean
    assert {p.pid for p in psutil.Process().children(recursive=True)} - before == set()
    loader.batch_sampler.set_epoch(1)
    got = [x.numpy() for x, _ in loader]
    np.testing.assert_array_equal(np.stack(got), np.stack([x for x, _ in _epochs(0, False, [1])[0]]))
    loader.close()


class _AskDeathSignal:
    def __len__(self):
        return 4

    def __getitem__(self, i):
        value = ctypes.c_int(0)
        ctypes.CDLL(None).prctl(2, ctypes.byref(value), 0, 0, 0)  # PR_GET_PDEATHSIG
        return np.zeros([1], "float32"), value.value


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="prctl is Linux's")
def test_workers_ask_to_be_killed_with_their_parent():
    loader = build_loader(_AskDeathSignal(), 2, train=False, num_workers=2, persistent_workers=False)
    labels = np.concatenate([y.numpy() for _, y in loader])
    assert labels.tolist() == [int(signal.SIGKILL)] * 4


_KILLED_RUN = """
import sys
sys.path.insert(0, {root!r})
from passl.engine.trainer import Trainer
from tests.data.test_loader_workers import _cfg
Trainer(_cfg({out!r}, persistent=False, epochs=1000)).train()
"""


def test_workers_die_with_a_killed_trainer(tmp_path):
    script = tmp_path / "run.py"
    script.write_text(_KILLED_RUN.format(root=ROOT, out=str(tmp_path / "run")))
    proc = subprocess.Popen([sys.executable, str(script)], cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    me = psutil.Process(proc.pid)
    workers = []
    try:
        deadline = time.monotonic() + 300
        while len(workers) < 2 and proc.poll() is None and time.monotonic() < deadline:
            # wait until some epochs have passed (old code: workers left behind) and workers are running
            if (tmp_path / "run" / "last.pdparams").exists():
                workers = me.children(recursive=True)
            time.sleep(0.2)
        assert len(workers) >= 2, proc.stderr.read().decode()[-2000:] if proc.poll() is not None else workers
    finally:
        proc.kill()  # SIGKILL: no handler, no cleanup in the trainer
        proc.wait()
    gone, alive = psutil.wait_procs(workers, timeout=60)  # a deadline for the kernel, not a speed assertion
    for p in alive:
        p.kill()
    assert alive == [], f"{len(alive)} worker(s) outlived the killed trainer"


def test_persistent_workers_end_with_their_loader():
    ds = build_dataset({"name": "SyntheticImages", "num_samples": 8, "image_size": 16}, TRANSFORMS)
    before = {p.pid for p in psutil.Process().children(recursive=True)}
    loader = build_loader(ds, 4, train=True, num_workers=2, persistent_workers=True)
    assert len([x for x, _ in loader]) == 2
    assert len({p.pid for p in psutil.Process().children(recursive=True)} - before) == 2
    del loader  # a Trainer dropped at the end of a run (tests, notebooks) takes its workers with it
    gc.collect()
    assert {p.pid for p in psutil.Process().children(recursive=True)} - before == set()
