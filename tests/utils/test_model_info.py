"""Parameter and MAC counts equal the official ConvNeXt table (1000 classes, 224)."""

import os
import subprocess
import sys

import pytest

from passl.modeling import build_model
from passl.utils.config import get_config
from passl.utils.model_info import count_macs, count_params

OFFICIAL = {
    "tiny": (28_589_128, 4.456e9),
    "small": (50_223_688, 8.684e9),
    "base": (88_591_464, 15.355e9),
    "large": (197_767_336, 34.361e9),
    "xlarge": (350_196_968, 60.921e9),
}


@pytest.mark.parametrize("arch", list(OFFICIAL))
def test_params_and_macs_match_official(arch, repo_root):
    cfg = get_config(os.path.join(repo_root, "configs", "convnext", f"convnext_{arch}.yaml"))
    model = build_model(cfg.model)
    params, macs = OFFICIAL[arch]
    assert count_params(model) == params
    got = count_macs(model, (1, 3, 224, 224))["total"]
    assert abs(got - macs) / macs < 0.01, got


def test_model_info_tool(repo_root):
    res = subprocess.run(
        [sys.executable, "tools/model_info.py", "-c", "configs/convnext/convnext_tiny.yaml"],
        cwd=repo_root,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert res.returncode == 0, res.stderr[-2000:]
    assert "params: 28,589,128" in res.stdout and "MACs@224: 4.456 G" in res.stdout
