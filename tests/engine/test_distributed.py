"""Two CPU processes (paddle.distributed.launch, gloo, loopback) equal one process with the same global batch."""

import os
import socket
import subprocess
import sys

import numpy as np

from tests.engine.helpers import ROOT


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_processes_match_one(tmp_path):
    script = os.path.join(ROOT, "tests", "engine", "_dist_train.py")
    one, two = tmp_path / "one", tmp_path / "two"
    one.mkdir()
    two.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "CUDA_VISIBLE_DEVICES"}
    res = subprocess.run(
        [sys.executable, script, str(one), "8"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600
    )
    assert res.returncode == 0, res.stderr[-3000:]
    cmd = [
        sys.executable,
        "-m",
        "paddle.distributed.launch",
        "--nproc_per_node",
        "2",
        "--master",
        f"127.0.0.1:{_free_port()}",
        "--log_dir",
        str(tmp_path / "logs"),
        script,
        str(two),
        "4",
    ]
    res = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    logs = "".join(open(os.path.join(tmp_path / "logs", f)).read()[-2000:] for f in os.listdir(tmp_path / "logs"))
    assert res.returncode == 0, logs
    single = np.load(one / "rank0.npz")
    r0, r1 = np.load(two / "rank0.npz"), np.load(two / "rank1.npz")
    for k in single.files:
        np.testing.assert_array_equal(r0[k], r1[k], err_msg=f"ranks differ at {k}")
        np.testing.assert_allclose(r0[k], single[k], atol=1e-5, err_msg=k)
    # evaluation over 11 images split 6/5: metrics equal to one process's
    assert open(two / "eval0.txt").read() == open(two / "eval1.txt").read()
    e1, e2 = eval(open(one / "eval0.txt").read()), eval(open(two / "eval0.txt").read())
    assert abs(e1["top1"] - e2["top1"]) < 1e-6
