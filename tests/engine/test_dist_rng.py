"""Two processes: every rank's EMA starts from the same weights, checkpoints hold every rank's own RNG state (plain
lists, no pickle) and each rank gets its own back on resume; another world size or device kind warns and reseeds
deterministically instead of failing."""

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import paddle
import pytest

from passl.engine.checkpoint import rng_state, set_rng_state
from passl.engine.trainer import Trainer
from tests.engine._dist_rng import draws, make_cfg
from tests.engine.helpers import ROOT
from tests.engine.test_distributed import _env, _free_port

SCRIPT = os.path.join(ROOT, "tests", "engine", "_dist_rng.py")


def _launch(out, phase):
    logs = out / f"logs_{phase}"
    cmd = [sys.executable, "-m", "paddle.distributed.launch", "--nproc_per_node", "2"]
    cmd += ["--master", f"127.0.0.1:{_free_port()}", "--log_dir", str(logs), SCRIPT, str(out), phase]
    res = subprocess.run(cmd, cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=900)
    text = "".join(open(os.path.join(logs, f)).read()[-3000:] for f in os.listdir(logs)) if logs.exists() else ""
    assert res.returncode == 0, text or res.stderr[-3000:]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("rng")
    _launch(out, "train")
    shutil.copytree(out, out.parent / (out.name + "_saved"), ignore=shutil.ignore_patterns("logs_*"))
    _launch(out, "resume")
    return out


def test_every_ranks_ema_starts_and_stays_equal(run):
    for stage in ("init", "end"):
        r0, r1 = np.load(run / f"ema_{stage}0.npz"), np.load(run / f"ema_{stage}1.npz")
        for k in r0.files:
            np.testing.assert_allclose(r0[k], r1[k], rtol=0, atol=1e-7, err_msg=f"{stage}: {k}")


def test_each_rank_resumes_its_own_rng_streams(run):
    cont = [np.load(run / f"cont{r}.npy") for r in (0, 1)]
    res = [np.load(run / f"res{r}.npy") for r in (0, 1)]
    for r in (0, 1):
        np.testing.assert_array_equal(res[r], cont[r], err_msg=f"rank {r} did not get its own state back")
    assert not np.array_equal(res[0][:8], res[1][:8])  # drop path: ranks' streams differ after resume
    assert not np.array_equal(res[0][8:], res[1][8:])  # mixup too
    assert [(run / f"done{r}.txt").read_text() for r in (0, 1)] == ["4", "4"]


def test_checkpoint_rng_is_plain_data_for_every_rank(run):
    ckpt = paddle.load(str(run.parent / (run.name + "_saved") / "last.pdparams"))
    rng = ckpt["rng"]
    assert rng["world_size"] == 2 and len(rng["ranks"]) == 2
    assert json.loads(json.dumps(rng)) == rng  # lists, numbers, text: nothing to unpickle
    assert rng["ranks"][0]["paddle_cpu"] != rng["ranks"][1]["paddle_cpu"]


def test_another_world_size_warns_and_reseeds_deterministically(run, tmp_path):
    got = []
    for i in range(2):
        out = tmp_path / f"single{i}"
        shutil.copytree(run.parent / (run.name + "_saved"), out)
        # one process resuming a two-process checkpoint (the global batch changes: allowed explicitly)
        t = Trainer(make_cfg(out, 3), allow_config_change=True)
        assert t.state["step"] == 2
        got.append(draws(t))
        log = (out / "train.log").read_text()
        assert "written by 2 processes, this run has 1" in log and "reseeded" in log
    np.testing.assert_array_equal(got[0], got[1])


def test_another_device_kind_is_refused_by_set_rng_state():
    state = rng_state()
    before = paddle.rand([4]).numpy()
    state["device"] = "gpu"  # written on a GPU, resumed on this CPU
    assert set_rng_state(state) is False
    assert not np.array_equal(paddle.rand([4]).numpy(), before)  # nothing was restored
