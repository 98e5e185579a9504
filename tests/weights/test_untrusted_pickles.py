"""No file we read is unpickled without an allow-list: a pickle whose payload would write a marker file is refused
through every entry point, in every extension, before it runs, and leaves nothing behind; real Paddle files
(PaddleClas-style weights, our training checkpoints) still read back to the same values as ``paddle.load``."""

import os
import pickle
import shlex
import subprocess
import sys
import zipfile

import numpy as np
import paddle
import pytest

from passl.engine.checkpoint import load_checkpoint, save_atomic
from passl.modeling import build_model
from passl.registry import ConfigError
from passl.weights import WeightsError, load_pretrained, read_state_dict
from passl.weights.paddle_pickle import load_paddle
from tests.engine.helpers import ROOT, tiny_cfg


class _WritesMarker:
    """Unpickling this runs ``touch MARKER`` (the way a malicious checkpoint runs code)."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.system, (f"touch {shlex.quote(self.marker)}",))


def _evil(path, marker, zipped=False):
    payload = pickle.dumps({"model": {"w": _WritesMarker(marker)}, "epoch": 1, "optimizer": {}})
    if zipped:  # laid out like torch.save's zip
        with zipfile.ZipFile(path, "w") as zf:
            zf.writestr("archive/data.pkl", payload)
            zf.writestr("archive/version", "3\n")
    else:
        with open(path, "wb") as f:
            f.write(payload)
    return str(path)


REFUSED = r"refusing to load.*'(posix|os)\.system'"


def _model(classes=10):
    return build_model(
        {
            "architecture": {"name": "ConvNeXt", "depths": [1, 1, 1, 1], "dims": [8, 16, 32, 64]},
            "head": {"name": "ConvNeXtClsHead", "in_channels": 64, "num_classes": classes},
        }
    )


def test_the_payload_really_runs_under_plain_pickle(tmp_path):
    """Guards the tests below: were the payload inert, 'marker absent' would prove nothing."""
    marker = tmp_path / "ran"
    pickle.loads(pickle.dumps(_WritesMarker(marker)))
    assert marker.exists()


@pytest.mark.parametrize("ext", [".pdparams", ".pdopt", ".pdckpt", ".ckpt", ".pkl", ".pth", ".pt", ".bin"])
@pytest.mark.parametrize("zipped", [False, True])
def test_refused_in_every_extension_before_running(tmp_path, ext, zipped):
    marker = tmp_path / "ran"
    path = _evil(tmp_path / f"evil{ext}", marker, zipped)
    with pytest.raises(WeightsError) as info:
        load_pretrained(_model(), path)
    msg = str(info.value)
    assert not marker.exists()
    assert path in msg
    if zipped or ext not in (".pth", ".pt", ".bin"):
        assert "refusing to load" in msg and ("posix.system" in msg or "os.system" in msg)
    else:  # a non-zip .pth is a legacy torch pickle: refused unread
        assert "legacy" in msg


def test_refused_by_the_convert_tool(tmp_path):
    marker = tmp_path / "ran"
    path = _evil(tmp_path / "evil.pdparams", marker)
    out = tmp_path / "out.pdparams"
    res = subprocess.run(
        [sys.executable, "tools/convert_weights.py", path, str(out), "--arch", "atto"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert res.returncode == 2, res.stderr[-2000:]
    assert not marker.exists() and not out.exists()
    err = [ln for ln in res.stderr.splitlines() if ln.startswith("error:")]
    assert len(err) == 1 and "refusing to load" in err[0] and "system'" in err[0] and path in err[0]
    assert "Traceback" not in res.stderr


def test_refused_by_load_checkpoint_resume_and_auto_resume(tmp_path):
    from passl.engine.trainer import Trainer

    marker = tmp_path / "ran"
    path = _evil(tmp_path / "evil.pdparams", marker)
    with pytest.raises(ConfigError, match=REFUSED) as info:
        load_checkpoint(path)
    assert path in str(info.value)
    with pytest.raises(ConfigError, match=REFUSED):
        Trainer(tiny_cfg(tmp_path / "run"), resume=path)
    out = tmp_path / "auto"
    out.mkdir()
    _evil(out / "last.pdparams", marker)
    with pytest.raises(ConfigError, match=REFUSED) as info:
        Trainer(tiny_cfg(out))
    assert str(out / "last.pdparams") in str(info.value)
    assert not marker.exists()


def test_refused_download_leaves_no_cache_entry(tmp_path, monkeypatch, http_server):
    served, base, _ = http_server
    cache = tmp_path / "cache"
    monkeypatch.setenv("PASSL_WEIGHTS_DIR", str(cache))
    marker = tmp_path / "ran"
    _evil(served / "evil.pdparams", marker)
    with pytest.raises(WeightsError, match=REFUSED + r".*removed it from the cache"):
        load_pretrained(_model(), f"{base}/evil.pdparams")
    assert not marker.exists()
    assert os.listdir(cache) == []  # neither the file, nor its checksum record, nor a partial download


def test_other_disallowed_globals_and_object_arrays(tmp_path):
    path = str(tmp_path / "x.pdparams")
    with open(path, "wb") as f:
        pickle.dump({"a": np.array([object()], dtype=object)}, f)
    with pytest.raises(WeightsError, match="refusing to load"):
        read_state_dict(path)

    class Eval:
        def __reduce__(self):
            return (eval, ("__import__('os').getpid()",))

    with open(path, "wb") as f:  # eval is allowed only in the exact form paddle.save writes for a DenseTensor
        pickle.dump({"a": Eval()}, f)
    with pytest.raises(WeightsError, match="builtins.eval"):
        read_state_dict(path)

    rebuild = np.zeros(1).__reduce__()[0]

    class HugeArray:
        def __reduce__(self):
            return (rebuild, (np.ndarray, (1 << 42,), b"b"))

    with open(path, "wb") as f:
        pickle.dump({"a": HugeArray()}, f)
    with pytest.raises(WeightsError, match=r"_reconstruct with shape \(4398046511104,\)"):
        read_state_dict(path)


def _same(a, b, where="ckpt"):
    assert type(a) is type(b), (where, type(a), type(b))
    if isinstance(a, dict):
        assert list(a) == list(b), where
        for k in a:
            _same(a[k], b[k], f"{where}.{k}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            _same(x, y, f"{where}[{i}]")
    elif isinstance(a, paddle.Tensor):
        assert a.dtype == b.dtype and a.shape == b.shape and a.name == b.name, where
        np.testing.assert_array_equal(a.numpy(), b.numpy(), err_msg=where)
    elif isinstance(a, np.ndarray):
        np.testing.assert_array_equal(a, b, err_msg=where)
    else:
        assert a == b, where


def test_real_training_checkpoint_reads_like_paddle_load(tmp_path):
    from passl.engine.trainer import Trainer

    cfg = tiny_cfg(tmp_path / "run", samples=8, max_steps=1)
    cfg.train.ema = {"enable": True, "decay": 0.9}
    t = Trainer(cfg)
    t.train()
    path = tmp_path / "run" / "last.pdparams"
    assert path.is_file()
    ours, reference = load_checkpoint(str(path)), paddle.load(str(path))
    _same(ours, reference)
    assert isinstance(ours["model"][next(iter(ours["model"]))], paddle.Tensor)
    assert ours["step"] == 1 and isinstance(ours["rng"], dict)  # plain lists and text, no pickle
    # a checkpoint holding every kind of value our checkpoints hold, incl. bfloat16 / int tensors and None
    extra = dict(ours, misc={"none": None, "list": [1, 2.5, "x", (3, True)], "bf16": paddle.ones([2], "bfloat16")})
    extra["misc"]["ints"] = paddle.to_tensor([1, 2])
    save_atomic(extra, str(tmp_path / "extra.pdparams"))
    _same(load_checkpoint(str(tmp_path / "extra.pdparams")), paddle.load(str(tmp_path / "extra.pdparams")))
    # (the default EMA decay differs from the run's 0.9: allowed explicitly, the point is reading the file)
    resumed = Trainer(tiny_cfg(tmp_path / "run", samples=8, max_steps=1), resume=str(path), allow_config_change=True)
    assert resumed.state["step"] == 1


def test_real_paddleclas_style_weights_load(tmp_path):
    src = _model()
    state = {
        k: paddle.to_tensor(np.random.RandomState(0).randn(*v.shape).astype("float32"))
        for k, v in src.state_dict().items()
    }
    v1 = {"backbone." + k[len("backbone.") :] if k.startswith("backbone.") else k: v for k, v in state.items()}
    for protocol in (2, 4):
        path = str(tmp_path / f"w{protocol}.pdparams")
        paddle.save(v1, path, protocol=protocol)
        _same(load_paddle(path), paddle.load(path))
        _same(load_paddle(path, return_numpy=True), paddle.load(path, return_numpy=True))
        dst = _model()
        report = load_pretrained(dst, path)
        assert not report.missing and not report.unexpected
        for k, v in dst.state_dict().items():
            np.testing.assert_array_equal(v.numpy(), state[k].numpy(), err_msg=k)
    # Paddle 2.0 style: bare arrays (and the name table), as older PaddleClas releases hold them
    old = str(tmp_path / "old.pdparams")
    with open(old, "wb") as f:
        pickle.dump({**{k: v.numpy() for k, v in state.items()}, "StructuredToParameterName@@": {}}, f, protocol=2)
    _same(load_paddle(old), paddle.load(old))
    dst = _model()
    load_pretrained(dst, old)
    np.testing.assert_array_equal(dst.head.fc.weight.numpy(), state["head.fc.weight"].numpy())
