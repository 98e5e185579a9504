"""Resume policy (passl/engine/resume.py): a finished run changes nothing, a changed config is refused with its
differences, epoch-end writes are consistent after a crash at any write, stale temp files are removed, a corrupt
last.pdparams falls back, and disk-full / read-only / changed-architecture errors are one line."""

import errno
import json
import os
import subprocess
import sys

import numpy as np
import paddle
import pytest

from passl.engine import checkpoint, hooks
from passl.engine.checkpoint import CheckpointWriteError, save_atomic
from passl.engine.trainer import Trainer
from passl.registry import ConfigError
from passl.utils.config import dump_config
from tests.engine.helpers import ROOT, tiny_cfg


def _cfg(out, **kw):
    cfg = tiny_cfg(out, samples=16, **{"epochs": 2, **kw})
    cfg.train.ema = {"enable": True, "decay": 0.9}
    cfg.train.visualdl = True
    return cfg


def _state(out):
    """Every file of a run folder with its bytes (what "changes nothing" is checked against)."""
    found = {}
    for d, _, names in os.walk(out):
        for n in names:
            p = os.path.join(d, n)
            if n != "train.log":
                found[os.path.relpath(p, out)] = open(p, "rb").read()
    return found


def test_finished_run_trains_nothing_and_changes_nothing(tmp_path, capsys):
    Trainer(_cfg(tmp_path)).train()
    (tmp_path / "demo_report.json").write_text('{"seconds": {"train": 12.5}}')
    before = _state(tmp_path)
    t = Trainer(_cfg(tmp_path))
    assert t.finished
    state = t.train()
    assert state["step"] == 8
    assert _state(tmp_path) == before
    out = capsys.readouterr().out
    assert "holds a finished run" in out and "-o output_dir=NEW_DIR" in out

    res = subprocess.run(
        [sys.executable, "tools/train.py", "-c", str(tmp_path / "config.yaml")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert res.returncode == 0 and "holds a finished run" in res.stdout + res.stderr
    assert _state(tmp_path) == before


def test_changed_config_is_refused_with_the_differences_and_both_ways_out(tmp_path):
    Trainer(_cfg(tmp_path, max_steps=3)).train()
    before = _state(tmp_path)
    changed = _cfg(tmp_path)
    changed.optimizer.lr = 0.5
    changed.model.architecture.dims = [8, 16, 32, 48]
    changed.model.head.in_channels = 48
    changed.data.train.batch_size = 2  # 1 x 2 x 1 = 2 images per step instead of 4
    with pytest.raises(ConfigError) as e:
        Trainer(changed)
    msg = str(e.value)
    assert "optimizer.lr: 0.004 -> 0.5" in msg and "model.architecture.dims" in msg and "model.head.in_channels" in msg
    assert "1 x 4 x 1 = 4 -> 1 x 2 x 1 = 2" in msg
    assert "-o output_dir=NEW_DIR" in msg and "--allow-config-change" in msg
    assert "\n" not in msg
    assert _state(tmp_path) == before  # config.yaml, run_info.json, metrics untouched

    # What may differ does not count: logging, evaluation and save intervals, workers, max_steps; and the same
    # global batch split differently (2 per micro-batch x 2 accumulation steps).
    same = _cfg(tmp_path)
    same.train.log_interval = 5
    same.data.train.num_workers = 1
    same.data.train.batch_size = 2
    same.train.accum_steps = 2
    assert Trainer(same).state["step"] == 3

    lr_only = _cfg(tmp_path)
    lr_only.optimizer.lr = 0.5
    t = Trainer(lr_only, allow_config_change=True)  # the explicit way to continue anyway
    assert t.state["step"] == 3 and not t.finished


def test_changed_architecture_with_allow_flag_is_one_line(tmp_path):
    Trainer(_cfg(tmp_path, max_steps=2)).train()
    changed = _cfg(tmp_path)
    changed.model.architecture.dims = [8, 16, 32, 48]
    changed.model.head.in_channels = 48
    with pytest.raises(ConfigError, match="does not fit this model .*shape mismatch") as e:
        Trainer(changed, allow_config_change=True)
    assert "\n" not in str(e.value) and "[64] vs [48]" in str(e.value)


def test_tool_refuses_changed_config_and_allows_it_with_the_flag(tmp_path):
    cfg = _cfg(tmp_path, max_steps=2)
    Trainer(cfg).train()
    path = tmp_path / "cfg.yaml"
    dump_config(_cfg(tmp_path, max_steps=3), str(path))
    cmd = [sys.executable, "tools/train.py", "-c", str(path), "-o", "optimizer.lr=0.01"]
    res = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert res.returncode == 2 and "optimizer.lr: 0.004 -> 0.01" in res.stderr and "Traceback" not in res.stderr
    res = subprocess.run([*cmd, "--allow-config-change"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    assert paddle.load(str(tmp_path / "last.pdparams"))["step"] == 3


def _arrays(path):
    ckpt = paddle.load(str(path))
    return {k: v.numpy() for k, v in ckpt["model"].items()}, ckpt


# The epoch-end writes of a 2-epoch run: epoch 1 writes best, best_ema, epoch_1, last; epoch 2 the same.
@pytest.mark.parametrize("crash_at", range(4))
def test_crash_at_any_epoch_end_write_leaves_consistent_files(tmp_path, monkeypatch, crash_at):
    ref = tmp_path / "ref"
    Trainer(_cfg(ref)).train()

    out = tmp_path / "run"
    real = hooks.save_atomic
    calls = {"n": 0}

    def crashing(obj, path):
        if os.path.basename(path) != "last.pdparams" or obj.get("step_in_epoch", 0) == 0:
            calls["n"] += 1
            if calls["n"] == 4 + crash_at + 1:  # a write at the end of epoch 2
                # A kill in the middle of the write: a temporary file is left, the target is not touched.
                open(f"{path}.tmp999999", "wb").write(b"partial")
                raise KeyboardInterrupt("planted kill")
        real(obj, path)

    monkeypatch.setattr(hooks, "save_atomic", crashing)
    with pytest.raises(KeyboardInterrupt):
        Trainer(_cfg(out)).train()
    monkeypatch.setattr(hooks, "save_atomic", real)
    assert any(".tmp999999" in n for n in os.listdir(out))
    t = Trainer(_cfg(out))  # resume: removes the stale temp files, redoes epoch 2
    assert not any(".tmp" in n for n in os.listdir(out))
    t.train()
    for name in ("last.pdparams", "best.pdparams", "best_ema.pdparams", "epoch_2.pdparams"):
        a, ca = _arrays(ref / name)
        b, cb = _arrays(out / name)
        assert ca["epoch"] == cb["epoch"] and ca["best"] == cb["best"], name
        for k in a:
            np.testing.assert_allclose(b[k], a[k], atol=1e-6, err_msg=f"{name}:{k}")
    last = paddle.load(str(out / "last.pdparams"))
    best = paddle.load(str(out / "best.pdparams"))
    assert best["epoch"] == last["best"]["top1_epoch"]  # best.pdparams holds what last records as best


def test_best_is_written_before_last_records_it(tmp_path, monkeypatch):
    order = []
    real = hooks.save_atomic
    monkeypatch.setattr(hooks, "save_atomic", lambda obj, path: (order.append(os.path.basename(path)), real(obj, path)))
    Trainer(_cfg(tmp_path, epochs=1)).train()
    assert order == ["best.pdparams", "best_ema.pdparams", "epoch_1.pdparams", "last.pdparams"]


def test_corrupt_last_falls_back_to_newest_intact_checkpoint(tmp_path, capsys):
    Trainer(_cfg(tmp_path, save_interval=1, keep_last=0)).train()
    assert (tmp_path / "epoch_1.pdparams").exists()  # keep_last: 0 keeps every epoch checkpoint
    os.remove(tmp_path / "epoch_2.pdparams")
    with open(tmp_path / "last.pdparams", "r+b") as f:
        f.truncate(100)
    cfg = _cfg(tmp_path)
    cfg.train.epochs = 2
    t = Trainer(cfg)
    assert t.state["epoch"] == 1 and t.state["step"] == 4
    out = capsys.readouterr().out
    assert "unreadable checkpoint(s) skipped: last.pdparams" in out and "resuming from" in out and "epoch_1" in out


def test_stale_temp_files_of_dead_processes_are_removed_live_ones_kept(tmp_path):
    Trainer(_cfg(tmp_path, max_steps=1)).train()
    (tmp_path / "last.pdparams.tmp999999").write_bytes(b"x")
    (tmp_path / "run_info.json.tmp999998").write_bytes(b"x")
    (tmp_path / f"best.pdparams.tmp{os.getppid()}").write_bytes(b"x")  # a live process: not ours to remove
    Trainer(_cfg(tmp_path))
    names = os.listdir(tmp_path)
    assert "last.pdparams.tmp999999" not in names and "run_info.json.tmp999998" not in names
    assert f"best.pdparams.tmp{os.getppid()}" in names


def test_failed_save_keeps_previous_checkpoint_and_no_temp_file(tmp_path, monkeypatch):
    path = tmp_path / "last.pdparams"
    save_atomic({"model": {"w": paddle.ones([2])}, "epoch": 1}, str(path))
    before = path.read_bytes()
    real = paddle.save

    def half_then_full(obj, p, *a, **kw):
        with open(p, "wb") as f:
            f.write(b"half a checkpoint")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(checkpoint.paddle, "save", half_then_full)
    with pytest.raises(CheckpointWriteError, match="No space left on device.*previous one is intact") as e:
        save_atomic({"model": {"w": paddle.zeros([2])}, "epoch": 2}, str(path))
    assert "\n" not in str(e.value)
    monkeypatch.setattr(checkpoint.paddle, "save", real)
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["last.pdparams"]


def test_disk_full_during_training_is_one_line(tmp_path):
    script = (
        "import errno, sys; sys.path.insert(0, 'tools'); import paddle\n"
        "def full(*a, **k): raise OSError(errno.ENOSPC, 'No space left on device')\n"
        "paddle.save = full\n"
        "import train; sys.exit(train.main(sys.argv[1:]))\n"
    )
    path = tmp_path / "cfg.yaml"
    dump_config(_cfg(tmp_path / "run", max_steps=2), str(path))
    res = subprocess.run(
        [sys.executable, "-c", script, "-c", str(path)], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert res.returncode == 4 and "Traceback" not in res.stderr
    err = [ln for ln in res.stderr.splitlines() if ln.startswith("error:")]
    assert len(err) == 1 and "No space left on device" in err[0] and "last.pdparams" in err[0]


def test_read_only_output_dir_fails_before_work(tmp_path, monkeypatch):
    from passl.engine import resume as resume_mod

    built = []
    monkeypatch.setattr("passl.engine.trainer.build_dataset", lambda *a, **k: built.append(1))
    real_open = open

    def ro_open(path, mode="r", *a, **k):
        if "w" in mode and str(path).startswith(str(tmp_path)):
            raise OSError(errno.EROFS, "Read-only file system", str(path))
        return real_open(path, mode, *a, **k)

    monkeypatch.setattr(resume_mod, "open", ro_open, raising=False)
    with pytest.raises(ConfigError, match=r"output_dir .* cannot be written \(it is read-only\).*-o output_dir="):
        Trainer(_cfg(tmp_path / "out"))
    assert built == []  # failed before the data (or anything else) was built


def test_metrics_records_of_redone_steps_replace_old_ones(tmp_path):
    from passl.utils.plot import read_metrics

    lines = [{"type": "train", "epoch": 1, "step": s, "loss": 1.0} for s in (1, 2, 3, 4)] + [
        {"type": "eval", "epoch": 1, "step": 4, "model_top1": 10.0}
    ]
    lines += [{"type": "train", "epoch": 1, "step": s, "loss": 2.0} for s in (3, 4)]  # resumed from step 2
    lines += [{"type": "eval", "epoch": 1, "step": 4, "model_top1": 20.0}]
    (tmp_path / "m.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    recs = read_metrics(str(tmp_path / "m.jsonl"))
    assert [(r["type"], r["step"], r.get("loss", r.get("model_top1"))) for r in recs] == [
        ("train", 1, 1.0),
        ("train", 2, 1.0),
        ("train", 3, 2.0),
        ("train", 4, 2.0),
        ("eval", 4, 20.0),
    ]
