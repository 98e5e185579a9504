"""The tools print our lines only: none of Paddle's console chatter (the ccache import warning, glog lines, the
"Modified FLAGS" banner of a distributed run, the PIR "input out tensor" warning, the oneDNN debug print) reaches
what eval, export_model, predict and model_info show; and quiet_native still passes real lines through."""

import importlib.util
import os
import re
import socket

import pytest
from PIL import Image

from tests.tools.tool_helpers import DEMO, ROOT, TINY, run_tool, tiny_weights

CHATTER = [
    "No ccache found",
    "Modified FLAGS",
    "FLAGS(name=",
    "Paddle static graph(PIR) not support input out tensor",
    "ReduceMeanCheckIfOneDNNSupport",
]
GLOG = re.compile(r"^[IWE]\d{4} \d\d:\d\d:\d\d\.\d+ +\d+ \S+:\d+\]", re.M)


def _assert_quiet(text, what):
    found = [c for c in CHATTER if c in text] + GLOG.findall(text)
    assert not found, f"{what} printed Paddle chatter {found}:\n{text[-3000:]}"


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("quiet")
    tiny_weights(tmp / "w.pdparams", head_init_scale=1.0)
    imgs = tmp / "imgs"
    imgs.mkdir()
    Image.new("L", (40, 30), 120).save(imgs / "a.png")
    return tmp


def test_eval_export_predict_model_info_print_our_lines_only(tiny):
    w, inf = str(tiny / "w.pdparams"), str(tiny / "inf")
    runs = {
        "model_info": ["tools/model_info.py", "-c", DEMO, *TINY],
        "export_model": ["tools/export_model.py", "-c", DEMO, *TINY, "--weights", w, "--output", inf],
        "predict paddle": ["tools/predict.py", "-c", DEMO, *TINY, "--model-dir", inf, str(tiny / "imgs")],
        "predict dygraph": ["tools/predict.py", "-c", DEMO, *TINY, "--weights", w, str(tiny / "imgs")],
        # the CPU default exports to a temporary folder and verifies it with Paddle Inference
        "eval": ["tools/eval.py", "-c", DEMO, *TINY, "--weights", w, "--report", str(tiny / "r.json")],
        "eval model-dir": ["tools/eval.py", "-c", DEMO, *TINY, "--model-dir", inf, "--report", str(tiny / "r.json")],
    }
    out = {}
    for what, args in runs.items():
        res = run_tool(args)
        assert res.returncode == 0, (what, res.stderr[-3000:])
        _assert_quiet(res.stdout + res.stderr, what)
        out[what] = res.stdout
    # and our own lines are all there
    assert "params: " in out["model_info"] and "verified against dygraph" in out["export_model"]
    assert out["predict paddle"].startswith("a.png: ") and out["predict dygraph"].startswith("a.png: ")
    assert out["eval"].startswith("top1 ") and out["eval model-dir"].startswith("top1 ")


def test_distributed_eval_prints_no_banner(tiny):
    """Under paddle.distributed.launch, init_parallel_env prints a "Modified FLAGS" banner and glog INFO lines."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    logs = tiny / "launch_logs"
    env = {k: v for k, v in os.environ.items() if k != "CUDA_VISIBLE_DEVICES"}
    res = run_tool(
        ["-m", "paddle.distributed.launch", "--nproc_per_node", "2", "--master", f"127.0.0.1:{port}"]
        + ["--log_dir", str(logs), "tools/eval.py", "-c", DEMO, *TINY, "--weights", str(tiny / "w.pdparams")]
        + ["--report", str(tiny / "two.json"), "-o", "data.val.batch_size=2000"],
        env=env,
    )
    assert res.returncode == 0, res.stderr[-3000:]
    for rank in (0, 1):
        text = (logs / f"workerlog.{rank}").read_text()
        _assert_quiet(text, f"eval rank {rank}")
    assert "top1 " in (logs / "workerlog.0").read_text()


def test_quiet_native_drops_chatter_and_keeps_real_lines(capfd):
    spec = importlib.util.spec_from_file_location("tools_common", os.path.join(ROOT, "tools", "_common.py"))
    common = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(common)
    with common.quiet_native():
        os.write(1, b"ReduceMeanCheckIfOneDNNSupport\nreal stdout line\n")
        os.write(2, b"I1126 00:58:18.854597  9480 tcp_utils.cc:185] listening\n")
        os.write(2, b"======================= Modified FLAGS detected =======================\n")
        os.write(2, b"FLAGS(name='FLAGS_enable_pir_in_executor', current_value=True, default_value=False)\n")
        os.write(2, b"E1126 00:58:18.854597  9480 x.cc:1] a real error\n")
    out, err = capfd.readouterr()
    assert out == "real stdout line\n"
    assert err == "E1126 00:58:18.854597  9480 x.cc:1] a real error\n"
    # a failing block still shows what it printed
    with pytest.raises(RuntimeError):
        with common.quiet_native():
            os.write(2, b"the reason\n")
            raise RuntimeError("boom")
    assert capfd.readouterr().err == "the reason\n"


def test_train_prints_our_lines_only(tmp_path):
    """tools/train.py run directly (one process): our log lines, no glog lines or ccache warning."""
    out = tmp_path / "run"
    args = ["tools/train.py", "-c", DEMO, *TINY, "-o", f"output_dir={out}", "-o", "train.max_steps=1"]
    res = run_tool(args)
    assert res.returncode == 0, res.stderr[-3000:]
    _assert_quiet(res.stdout + res.stderr, "train")
    assert "stopped at train.max_steps=1" in res.stdout + res.stderr
