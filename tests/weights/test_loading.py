"""Safe reading, clear errors, head dropping, downloads into the cache, and the zoo table."""

import hashlib
import os
import pickle
import zipfile

import numpy as np
import paddle
import pytest

from passl.modeling import build_model
from passl.modeling.backbones import build_backbone
from passl.weights import ZOO, WeightsError, load_pretrained, read_state_dict
from passl.weights.zoo import render_markdown

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


def _model(classes=10, dims=(8, 16, 32, 64)):
    return build_model(
        {
            "architecture": {"name": "ConvNeXt", "depths": [1, 1, 1, 1], "dims": list(dims)},
            "head": {"name": "ConvNeXtClsHead", "in_channels": dims[-1], "num_classes": classes},
        }
    )


def _save_ours(tmp_path, model, name="w.pdparams", wrap=None):
    path = str(tmp_path / name)
    sd = model.state_dict()
    paddle.save(wrap(sd) if wrap else sd, path)
    return path


def _torch_like_zip(path, payload: bytes):
    """A zip laid out like torch.save's, with an arbitrary data.pkl."""
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("archive/data.pkl", payload)
        zf.writestr("archive/version", "3\n")


class _RunsCode:
    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.system, (f"touch '{self.marker}'",))


def test_pickle_that_runs_code_is_refused(tmp_path):
    marker = tmp_path / "payload_ran"
    pickle.loads(pickle.dumps(_RunsCode(marker)))  # the payload does run when unpickled without the allow-list
    assert marker.exists()
    marker.unlink()
    path = str(tmp_path / "evil.pth")
    _torch_like_zip(path, pickle.dumps({"model": {"w": _RunsCode(marker)}}))
    with pytest.raises(WeightsError, match=r"refusing to load.*'posix.system'|refusing to load.*os.system"):
        read_state_dict(path)
    assert not marker.exists()  # refused before it ran, not after


def test_truncated_files_give_clear_errors(tmp_path):
    model = _model()
    good = _save_ours(tmp_path, model)
    data = open(good, "rb").read()
    bad = tmp_path / "cut.pdparams"
    bad.write_bytes(data[: len(data) // 2])
    with pytest.raises(WeightsError, match="could not be read.*truncated"):
        load_pretrained(_model(), str(bad))
    torch = pytest.importorskip("torch")
    pth = tmp_path / "w.pth"
    torch.save({"model": {"a": torch.zeros(3)}}, str(pth))
    cut = tmp_path / "cut.pth"
    cut.write_bytes(pth.read_bytes()[:200])
    with pytest.raises(WeightsError, match="not a PyTorch checkpoint|damaged|truncated"):
        read_state_dict(str(cut))


def test_other_arch_is_a_shape_error_naming_the_key(tmp_path):
    path = _save_ours(tmp_path, _model(dims=(8, 16, 32, 64)))
    with pytest.raises(
        WeightsError,
        match=r"shape mismatch for 'backbone.downsample_layers.0.0.weight': file \[8, 3, 4, 4\], model \[16, 3, 4, 4\]",
    ):
        load_pretrained(_model(dims=(16, 32, 64, 128)), path)


def test_file_matching_nothing_is_an_error(tmp_path):
    path = str(tmp_path / "x.pdparams")
    paddle.save({"stages.0.0.foo": paddle.zeros([2])}, path)
    with pytest.raises(WeightsError, match="no tensor matches the model"):
        load_pretrained(_model(), path)
    paddle.save({"something.else": paddle.zeros([2])}, path)
    with pytest.raises(WeightsError, match="unknown checkpoint layout"):
        load_pretrained(_model(), path)


def test_drop_head_for_another_class_count_and_ema_and_bare_backbone(tmp_path):
    src = _model(classes=21)
    path = _save_ours(tmp_path, src, wrap=lambda sd: {"model": sd, "ema": sd, "epoch": 3})
    with pytest.raises(WeightsError, match="head.fc.weight.*drop_head: true"):
        load_pretrained(_model(classes=10), path)
    dst = _model(classes=10)
    head_before = dst.head.fc.weight.numpy().copy()
    report = load_pretrained(dst, path, drop_head=True, use_ema=True)
    assert sorted(report.skipped_head) == ["head.fc.bias", "head.fc.weight"] and not report.missing
    np.testing.assert_array_equal(dst.head.fc.weight.numpy(), head_before)  # kept its own init
    np.testing.assert_array_equal(dst.backbone.norm.weight.numpy(), src.backbone.norm.weight.numpy())
    bb = build_backbone({"name": "ConvNeXt", "depths": [1, 1, 1, 1], "dims": [8, 16, 32, 64]})
    report = load_pretrained(bb, path)
    assert not report.missing and len(report.skipped_head) == 2
    no_ema = _save_ours(tmp_path, src, "plain.pdparams")
    with pytest.raises(WeightsError, match="no EMA weights"):
        load_pretrained(_model(classes=21), no_ema, use_ema=True)


def test_download_caches_and_verifies(http_server, tmp_path, monkeypatch, capfd):
    served, base, requests = http_server
    cache = tmp_path / "cache"
    monkeypatch.setenv("PASSL_WEIGHTS_DIR", str(cache))
    src = _model()
    _save_ours(served, src, "tiny.pdparams")
    url = f"{base}/tiny.pdparams"
    load_pretrained(_model(), url)
    assert (cache / "tiny.pdparams").is_file() and len(requests) == 1
    assert "tiny.pdparams" in capfd.readouterr().err  # the progress bar
    dst = _model()
    load_pretrained(dst, url)  # from the cache: no new request
    assert len(requests) == 1
    np.testing.assert_array_equal(dst.head.fc.weight.numpy(), src.head.fc.weight.numpy())

    from passl.registry import ConfigError
    from passl.weights.download import download

    digest = hashlib.sha256((served / "tiny.pdparams").read_bytes()).hexdigest()
    assert download(url, "again.pdparams", sha256=digest) == str(cache / "again.pdparams")
    with pytest.raises(ConfigError, match="checksum mismatch"):
        download(url, "bad.pdparams", sha256="0" * 64)
    cached = sorted(n for n in os.listdir(cache) if not n.endswith(".sha256.json"))  # checksum records beside
    assert cached == ["again.pdparams", "tiny.pdparams"]  # nothing half-written left behind
    monkeypatch.setenv("PASSL_OFFLINE", "1")
    with pytest.raises(ConfigError, match=r"offline.*put it at .*cache/other.pdparams"):
        load_pretrained(_model(), f"{base}/other.pdparams")


def test_unknown_name_suggests_zoo_names():
    with pytest.raises(WeightsError, match="zoo names that contain it: convnext_tiny_1k_224_ema"):
        load_pretrained(_model(), "tiny_1k")


def test_zoo_table_and_docs_agree():
    assert {w.resolution for w in ZOO.values() if w.family == "ConvNeXt"} == {224, 384}
    official_1k = {
        n: w.top1 for n, w in ZOO.items() if w.source == "official" and w.pretrain == "1k" and w.family == "ConvNeXt"
    }
    assert official_1k == {
        "convnext_tiny_1k_224_ema": 82.1,
        "convnext_small_1k_224_ema": 83.1,
        "convnext_base_1k_224_ema": 83.8,
        "convnext_large_1k_224_ema": 84.3,
        "convnext_base_1k_384": 85.1,
        "convnext_large_1k_384": 85.5,
    }
    assert all(w.crop_mode == ("squash" if w.resolution >= 384 else "center") for w in ZOO.values())
    doc = open(os.path.join(ROOT, "docs", "model_zoo.md")).read()
    assert render_markdown() in doc, "docs/model_zoo.md is out of date: paste passl.weights.zoo.render_markdown()"


def test_zoo_name_downloads_its_url_with_its_checksum(http_server, tmp_path, monkeypatch):
    import dataclasses

    from passl.registry import ConfigError

    served, base, requests = http_server
    monkeypatch.setenv("PASSL_WEIGHTS_DIR", str(tmp_path / "cache"))
    src = _model()
    _save_ours(served, src, "zoo_tiny.pdparams")
    digest = hashlib.sha256((served / "zoo_tiny.pdparams").read_bytes()).hexdigest()
    entry = dataclasses.replace(
        ZOO["convnext_tiny_1k_224_ema"], url=f"{base}/zoo_tiny.pdparams", sha256=digest
    )  # a real entry, pointed at the local server
    monkeypatch.setitem(ZOO, "convnext_tiny_1k_224_ema", entry)
    dst = _model()
    report = load_pretrained(dst, "convnext_tiny_1k_224_ema")
    assert not report.missing and len(requests) == 1
    assert (tmp_path / "cache" / entry.filename).is_file()
    np.testing.assert_array_equal(dst.head.fc.weight.numpy(), src.head.fc.weight.numpy())
    monkeypatch.setitem(ZOO, "convnext_tiny_1k_224_ema", dataclasses.replace(entry, sha256="1" * 64))
    (tmp_path / "cache" / entry.filename).unlink()
    with pytest.raises(ConfigError, match="checksum mismatch"):
        load_pretrained(_model(), "convnext_tiny_1k_224_ema")
    assert not (tmp_path / "cache" / entry.filename).exists()
