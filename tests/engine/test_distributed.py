"""Two CPU processes (paddle.distributed.launch, gloo, loopback) equal one process with the same global batch, with
and without gradient accumulation; accumulation all-reduces only on each optimizer step's last micro-batch."""

import os
import socket
import subprocess
import sys

import numpy as np
import pytest

from tests.engine.helpers import ROOT

SCRIPT = os.path.join(ROOT, "tests", "engine", "_dist_train.py")


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env():
    return {k: v for k, v in os.environ.items() if k != "CUDA_VISIBLE_DEVICES"}


def _launch(tmp, batch, accum):
    """Two processes training with `batch` images per process and `accum` accumulation steps; returns the run dir."""
    out, logs = tmp / "two", tmp / "logs"
    out.mkdir()
    cmd = [sys.executable, "-m", "paddle.distributed.launch", "--nproc_per_node", "2"]
    cmd += ["--master", f"127.0.0.1:{_free_port()}", "--log_dir", str(logs), SCRIPT, str(out), str(batch), str(accum)]
    res = subprocess.run(cmd, cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=600)
    text = "".join(open(os.path.join(logs, f)).read()[-2000:] for f in os.listdir(logs)) if logs.exists() else ""
    assert res.returncode == 0, text or res.stderr[-3000:]
    return out


@pytest.fixture(scope="module")
def single(tmp_path_factory):
    """One process, 8 images per optimizer step, no accumulation: the reference for both two-process runs."""
    one = tmp_path_factory.mktemp("one")
    res = subprocess.run(
        [sys.executable, SCRIPT, str(one), "8", "1"], cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=600
    )
    assert res.returncode == 0, res.stderr[-3000:]
    return one


def _check_params(single, two):
    ref = np.load(single / "rank0.npz")
    r0, r1 = np.load(two / "rank0.npz"), np.load(two / "rank1.npz")
    assert set(r0.files) == set(ref.files) == set(r1.files)
    for k in ref.files:
        np.testing.assert_array_equal(r0[k], r1[k], err_msg=f"ranks differ at {k}")
        np.testing.assert_allclose(r0[k], ref[k], atol=1e-5, err_msg=k)


def test_two_processes_match_one(single, tmp_path):
    two = _launch(tmp_path, batch=4, accum=1)  # 2 processes x 4 images = one process's 8
    _check_params(single, two)
    g0, g1, ref = (np.load(p) for p in (two / "grads0.npy", two / "grads1.npy", single / "grads0.npy"))
    assert g0.shape == g1.shape == ref.shape == (2, ref.shape[1])  # 2 optimizer steps, one micro-batch each
    np.testing.assert_allclose(g0, ref, rtol=1e-4, atol=1e-7)
    # evaluation over 11 images split 6/5: metrics equal to one process's
    assert open(two / "eval0.txt").read() == open(two / "eval1.txt").read()
    e1, e2 = eval(open(single / "eval0.txt").read()), eval(open(two / "eval0.txt").read())
    assert abs(e1["top1"] - e2["top1"]) < 1e-6
    assert e1["count"] == e2["count"] == 11  # every image evaluated once, none twice, none dropped


def test_accumulation_syncs_once_per_step_and_matches_one_process(single, tmp_path):
    # 2 processes x 2 images x 2 accumulation steps: each optimizer step sees the same 8 images as one process's
    # batch of 8 (the sampler deals the shuffled order out to the ranks in turn).
    two = _launch(tmp_path, batch=2, accum=2)
    _check_params(single, two)
    g0, g1, ref = (np.load(p) for p in (two / "grads0.npy", two / "grads1.npy", single / "grads0.npy"))
    assert g0.shape == g1.shape == (4, ref.shape[1])  # 8 images per rank = 4 micro-batches = 2 optimizer steps
    scale = np.abs(ref).max()
    for micro in (0, 2):  # first micro-batch of each step: inside no_sync, each rank keeps its own gradient
        diff = np.abs(g0[micro] - g1[micro]).max()
        assert diff > 1e-3 * scale, f"micro-batch {micro} was all-reduced (ranks' gradients equal, diff {diff:g})"
    for micro, step in ((1, 0), (3, 1)):  # last micro-batch: all-reduced, the one-process batch-8 gradient
        np.testing.assert_allclose(g0[micro], g1[micro], rtol=1e-6, atol=1e-9, err_msg=f"micro-batch {micro}")
        # float32 summation order differs (2 ranks x 2 micro-batches vs one batch of 8): ~1 ulp of the largest term
        np.testing.assert_allclose(g0[micro], ref[step], rtol=1e-4, atol=1e-6 * scale, err_msg=f"step {step + 1}")
