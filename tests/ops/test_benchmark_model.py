"""tools/benchmark_model.py runs each contender in its own process and reports img/s and the ratio to timm."""

from __future__ import annotations

import csv
import importlib.util
import os
import subprocess
import sys

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
TOOL = os.path.join(ROOT, "tools", "benchmark_model.py")


def test_tiny_arch_infer_and_train_rows_with_csv(tmp_path):
    has_timm = importlib.util.find_spec("timm") is not None and importlib.util.find_spec("torch") is not None
    backends = "dygraph,dygraph_noops" + (",timm" if has_timm else "")
    out_csv = tmp_path / "bench.csv"
    cmd = [sys.executable, TOOL, "--arch", "atto", "--size", "32", "--batch", "2", "--train-batch", "2",
           "--rounds", "2", "--iters", "1", "--warmup", "1", "--threads", "1", "--backends", backends,
           "--drop-path", "0.3", "--csv", str(out_csv)]  # fmt: skip
    res = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-2000:]
    rows = list(csv.DictReader(open(out_csv)))
    got = {(r["mode"], r["backend"]) for r in rows}
    expected = {(m, b) for m in ("infer", "train") for b in backends.split(",")}
    assert got == expected
    for r in rows:
        assert float(r["img_s"]) > 0 and int(r["rounds"]) == 2
        if has_timm:
            assert float(r["vs_timm"]) > 0
            if r["backend"] == "timm":
                assert abs(float(r["vs_timm"]) - 1.0) < 1e-9
    assert "| train | dygraph " in res.stdout and "vs timm" in res.stdout
    assert "train drop path 0.3," in res.stdout


def test_unknown_backend_is_a_clear_error():
    res = subprocess.run([sys.executable, TOOL, "--backends", "tensorrt"], cwd=ROOT, capture_output=True, text=True)
    assert res.returncode != 0 and "--backends: unknown backend 'tensorrt'" in res.stderr
