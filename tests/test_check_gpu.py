"""tools/check_gpu.py runs on a CPU: every section is there, what needs a GPU is marked n/a, the save-resume round
trip passes, and under a 2-process launcher the cross-rank EMA check runs and passes."""

import json
import os
import subprocess
import sys

from tests.engine.helpers import ROOT
from tests.engine.test_distributed import _env
from tools._common import local_launch

TOOL = os.path.join(ROOT, "tools", "check_gpu.py")
ARGS = ["--arch", "atto", "--image-size", "32", "--batch", "2", "--steps", "1"]


def test_check_gpu_on_cpu(tmp_path):
    out = tmp_path / "report.json"
    res = subprocess.run(
        [sys.executable, TOOL, *ARGS, "--json", str(out)], cwd=ROOT, env=_env(), capture_output=True, text=True
    )
    assert res.returncode == 0, res.stderr[-3000:]
    report = json.loads(out.read_text())
    assert report["versions"]["paddle"] and report["devices"]["this_process_device"] == "cpu"
    assert "dev_shm_mb" in report["shm"] or "n/a" in report["shm"]["dev_shm"]
    assert "n/a" in report["amp_measured"]["measured"] and "n/a" in report["tf32"]["cublas_switch"]
    table = report["amp_ops_white_list_depthwise_conv2d"]["float16/O1"]
    assert table["depthwise_conv2d"] == "low" and report["amp_ops_default"]["float16/O1"]["depthwise_conv2d"] != "low"
    assert report["step"]["float32"]["images_per_sec"] > 0 and "cpu" in report["step"]["note"]
    assert report["resume"]["ok"] is True and report["resume"]["max_weight_diff"] == 0.0
    assert "n/a with one process" in report["ema_across_ranks"]["result"]
    assert report["summary"] == "all applicable checks passed"
    assert "== resume" in res.stdout


def test_check_gpu_ema_across_two_processes(tmp_path):
    out = tmp_path / "report.json"
    cmd = local_launch([TOOL, *ARGS, "--json", str(out)], 2, str(tmp_path / "logs"))
    res = subprocess.run(cmd, cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=900)
    logs = tmp_path / "logs"
    text = "".join(p.read_text()[-2000:] for p in logs.iterdir()) if logs.exists() else res.stderr[-3000:]
    assert res.returncode == 0, text
    report = json.loads(out.read_text())
    assert report["ema_across_ranks"] == {"ranks": 2, "ok": True, "result": "ok: identical"}
    assert "n/a under a launcher" in report["resume"]["result"]
