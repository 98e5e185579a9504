"""Auto-resume across processes: when only some ranks see a checkpoint (no shared storage), the run stops with a
message instead of letting rank 0 resume while the others start from scratch."""

import os
import subprocess
import sys

from passl.engine.trainer import Trainer
from tests.engine._dist_train import make_cfg
from tests.engine.helpers import ROOT
from tests.engine.test_distributed import _free_port


def test_ranks_disagreeing_on_resume_is_an_error(tmp_path):
    Trainer(make_cfg(tmp_path / "rank0", 8)).train()  # only rank 0's folder holds a checkpoint
    assert (tmp_path / "rank0" / "last.pdparams").exists()
    env = {k: v for k, v in os.environ.items() if k != "CUDA_VISIBLE_DEVICES"}
    cmd = [sys.executable, "-m", "paddle.distributed.launch", "--nproc_per_node", "2"]
    cmd += ["--master", f"127.0.0.1:{_free_port()}", "--log_dir", str(tmp_path / "logs")]
    cmd += [os.path.join(ROOT, "tests", "engine", "_dist_resume.py"), str(tmp_path)]
    res = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert res.returncode != 0
    for rank in (0, 1):
        msg = (tmp_path / f"error{rank}.txt").read_text()
        assert "only 1 of 2 processes found a checkpoint" in msg and "shares" in msg
