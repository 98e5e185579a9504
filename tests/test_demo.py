"""README command 1 (make demo -> tools/demo.py), shortened to 12 optimizer steps: every stage runs and reports."""

import json
import os
import subprocess
import sys

import pytest

from passl.data.datasets.fashion_mnist import DEFAULT_ROOT
from tests.engine.helpers import ROOT


@pytest.mark.skipif(
    not os.path.isfile(os.path.join(DEFAULT_ROOT, "train-images-idx3-ubyte.gz")),
    reason="Debian's dataset-fashion-mnist is not installed (CI installs it)",
)
def _run_demo(out, env):
    """The short demo the test runs twice (the second run must reuse the first)."""
    args = ["tools/demo.py", "--output", str(out), "-o", "train.max_steps=12", "-o", "train.log_interval=4"]
    return subprocess.run([sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)


def test_demo_pipeline_short(tmp_path):
    out = tmp_path / "demo"
    env = {k: v for k, v in os.environ.items() if k != "CUDA_VISIBLE_DEVICES"}
    res = _run_demo(out, env)
    assert res.returncode == 0, (res.stdout[-3000:], res.stderr[-3000:])
    report = json.load(open(out / "demo_report.json"))
    # It learnt: 10% is chance on 10 classes, and the training loss fell over the 12 steps.
    assert report["test_images"] == 10000 and 25 < report["test_top1"] <= 100
    losses = [json.loads(x)["loss"] for x in open(out / "metrics.jsonl") if '"train"' in x]
    assert len(losses) == 3 and losses[-1] < losses[0] - 0.2
    assert set(report["seconds"]) == {"train", "evaluate", "export", "predict"}
    for f in (
        "train.log",
        "config.yaml",
        "metrics.jsonl",
        "eval_report.json",
        "training_curves.png",
        "inference/model.json",
        "inference/model.pdiparams",
    ):
        assert (out / f).is_file(), f
    assert len(os.listdir(out / "samples")) == 8
    assert "verified against dygraph" in res.stdout
    assert "effective batch 128 = 2 processes x 64 per process" in res.stdout + open(out / "train.log").read()
    from passl.data.datasets.fashion_mnist import CLASSES

    predictions = [ln for ln in res.stdout.splitlines() if ln.startswith("test_")]
    assert len(predictions) == 8 and all(any(c in ln for c in CLASSES) for ln in predictions)  # by class name

    # The training console: our lines once each; the launcher's and Paddle's lines in the named launch logs.
    train_part = res.stdout.split("=== train:")[1].split("=== evaluate:")[0]
    lines = [ln for ln in train_part.splitlines()[1:] if ln.strip()]
    assert "launch_logs/launcher.log" in lines[0]
    assert len(lines[1:]) == len(set(lines[1:])) >= 4, train_part
    assert all(ln.startswith(("effective batch", "epoch ", "stopped at")) for ln in lines[1:]), train_part
    assert "LAUNCH INFO" in (out / "launch_logs" / "launcher.log").read_text()
    assert "No ccache found" not in train_part

    # A second run reuses the finished demo, says so and how to start afresh, and changes nothing.
    before = {f: (out / f).read_bytes() for f in ("demo_report.json", "config.yaml", "run_info.json", "metrics.jsonl")}
    again = _run_demo(out, env)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "holds a finished demo run" in again.stdout and "--output NEW_DIR" in again.stdout
    assert f"trained in {report['seconds']['train']}s" in again.stdout
    assert {f: (out / f).read_bytes() for f in before} == before
