"""Shared set-up of the tool smoke tests: a tiny demo-config model (dims 8..64, Fashion-MNIST shaped), its weights,
its verified export, and a runner for the real tools as subprocesses."""

import os
import subprocess
import sys

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
DEMO = "configs/demo/fashion_mnist_convnext.yaml"
TINY = [
    "-o",
    "model.architecture.depths=[1, 1, 1, 1]",
    "-o",
    "model.architecture.dims=[8, 16, 32, 64]",
    "-o",
    "model.head.in_channels=64",
]
TINY_HEAD = {"name": "ConvNeXtClsHead", "in_channels": 64, "num_classes": 10}
TINY_ARCH = {"name": "ConvNeXt", "depths": [1, 1, 1, 1], "dims": [8, 16, 32, 64], "in_chans": 1, "patch_size": 2}


def run_tool(args, cwd=ROOT, env=None, timeout=600):
    """Run ``python ARGS`` from the repository root with this checkout first on PYTHONPATH."""
    env = dict(os.environ if env is None else env)
    env["PYTHONPATH"] = ROOT + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env.setdefault("OMP_NUM_THREADS", "1")
    return subprocess.run([sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


def tiny_weights(path, head_init_scale=100.0, seed=0):
    """Weights of the tiny demo model; a large head init spreads the logits so top-k orders are unambiguous."""
    import paddle

    from passl.modeling import build_model

    paddle.seed(seed)
    model = build_model({"architecture": TINY_ARCH, "head": dict(TINY_HEAD, head_init_scale=head_init_scale)})
    paddle.save(model.state_dict(), str(path))
    return model


def export_tiny(weights, out_dir, onnx=False):
    res = run_tool(
        ["tools/export_model.py", "-c", DEMO, *TINY, "--weights", str(weights), "--output", str(out_dir)]
        + (["--onnx"] if onnx else [])
    )
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]
    return res
