"""Downloads: a short body or an HTML error page never stays in the cache, abandoned partial files are cleaned, and
a file without a published checksum is pinned on first use (size + sha256 beside it) and checked on every later load
and download."""

import hashlib
import http.server
import json
import logging
import os
import socket
import subprocess
import sys
import threading

import numpy as np
import paddle
import pytest

from passl.modeling import build_model
from passl.registry import ConfigError
from passl.weights import WeightsError, load_pretrained
from passl.weights.download import download, record_path


def _model():
    return build_model(
        {
            "architecture": {"name": "ConvNeXt", "depths": [1, 1, 1, 1], "dims": [8, 16, 32, 64]},
            "head": {"name": "ConvNeXtClsHead", "in_channels": 64, "num_classes": 10},
        }
    )


def _weights_bytes(tmp_path, seed=0):
    paddle.seed(seed)
    path = tmp_path / f"w{seed}.pdparams"
    paddle.save(_model().state_dict(), str(path))
    return path.read_bytes()


class _Server:
    """127.0.0.1 on a free port; ``files`` maps a path to (body, Content-Length or None to send the true one)."""

    def __init__(self):
        self.files = {}
        self.requests = []
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                outer.requests.append(self.path)
                if self.path not in outer.files:
                    self.send_error(404)
                    return
                body, length, ctype = outer.files[self.path]
                self.send_response(200)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body) if length is None else length))
                self.end_headers()
                self.wfile.write(body)
                self.wfile.flush()
                self.close_connection = True

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def serve(self, path, body, length=None, ctype="application/octet-stream"):
        self.files[path] = (body, length, ctype)


@pytest.fixture
def server():
    s = _Server()
    yield s
    s.httpd.shutdown()


@pytest.fixture
def cache(tmp_path, monkeypatch):
    folder = tmp_path / "cache"
    monkeypatch.setenv("PASSL_WEIGHTS_DIR", str(folder))
    return folder


def test_short_body_is_an_error_and_leaves_nothing(server, cache, tmp_path):
    body = _weights_bytes(tmp_path)
    server.serve("/cut.pdparams", body[:1000], length=len(body))
    with pytest.raises(ConfigError, match=rf"incomplete download .*received 1000 of {len(body)} bytes"):
        load_pretrained(_model(), f"{server.base}/cut.pdparams")
    assert os.listdir(cache) == []


def test_html_error_page_is_removed_from_the_cache(server, cache):
    page = b"<!DOCTYPE html><html><body>503 Service Unavailable</body></html>"
    server.serve("/w.pdparams", page, ctype="text/html")
    url = f"{server.base}/w.pdparams"
    with pytest.raises(WeightsError, match=r"w\.pdparams could not be read.*removed it from the cache"):
        load_pretrained(_model(), url)
    assert os.listdir(cache) == []
    with pytest.raises(WeightsError, match="removed it from the cache"):  # asks the server again, not the cache
        load_pretrained(_model(), url)
    assert server.requests == ["/w.pdparams", "/w.pdparams"]


def test_abandoned_partial_downloads_are_removed(server, cache, tmp_path):
    body = _weights_bytes(tmp_path)
    server.serve("/w.pdparams", body)
    cache.mkdir()
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_pid = int(dead.stdout)
    host = socket.gethostname()
    stale = [cache / f"w.pdparams.part-{host}-{dead_pid}", cache / f"other.pth.part{dead_pid}"]
    live = cache / f"x.pdparams.part-{host}-{os.getpid()}"  # a download under way in a live process
    old_foreign = cache / "y.pdparams.part-otherhost-1"
    for p in stale + [live, old_foreign]:
        p.write_bytes(b"partial")
    os.utime(old_foreign, (1, 1))  # untouched for decades: abandoned on whatever host
    fresh_foreign = cache / "z.pdparams.part-otherhost-2"
    fresh_foreign.write_bytes(b"partial")
    load_pretrained(_model(), f"{server.base}/w.pdparams")
    left = sorted(os.listdir(cache))
    assert left == sorted(["w.pdparams", "w.pdparams.sha256.json", live.name, fresh_foreign.name])


def test_trust_on_first_use_record_and_checks(server, cache, tmp_path, caplog):
    body = _weights_bytes(tmp_path, seed=0)
    digest = hashlib.sha256(body).hexdigest()
    server.serve("/w.pdparams", body)
    url = f"{server.base}/w.pdparams"
    with caplog.at_level(logging.INFO, logger="passl.weights"):
        load_pretrained(_model(), url)
    cached = cache / "w.pdparams"
    record = json.loads(open(record_path(str(cached))).read())
    assert record["sha256"] == digest and record["size"] == len(body) and record["url"] == url
    assert "trust on first use" in caplog.text and digest in caplog.text

    # the cached file changes (same size): the next load names both hashes and drops the file, keeps the record
    data = bytearray(cached.read_bytes())
    data[-10] ^= 0xFF
    cached.write_bytes(bytes(data))
    changed = hashlib.sha256(bytes(data)).hexdigest()
    with pytest.raises(ConfigError, match=rf"has sha256 {changed}.*sha256 is {digest}.*removed"):
        load_pretrained(_model(), url)
    assert not cached.exists() and os.path.isfile(record_path(str(cached)))
    # a truncated cached file is caught by its size
    load_pretrained(_model(), url)  # downloads again: matches the record
    cached.write_bytes(body[:100])
    with pytest.raises(ConfigError, match=rf"size 100 B \(recorded {len(body)} B\).*sha256 is {digest}"):
        load_pretrained(_model(), url)

    # the publisher's file changes: a new download must match the first one, and nothing is kept
    other = _weights_bytes(tmp_path, seed=1)
    server.serve("/w.pdparams", other)
    with pytest.raises(
        ConfigError, match=rf"got sha256 {hashlib.sha256(other).hexdigest()} .*first download recorded sha256 {digest}"
    ):
        load_pretrained(_model(), url)
    assert sorted(os.listdir(cache)) == ["w.pdparams.sha256.json"]
    # after deleting the record (the user trusts the new file) it is recorded anew and loads
    os.remove(record_path(str(cached)))
    dst = _model()
    load_pretrained(dst, url)
    paddle.seed(1)
    np.testing.assert_array_equal(dst.head.fc.weight.numpy(), _model().head.fc.weight.numpy())


def test_published_checksum_is_checked_on_every_load(server, cache, tmp_path):
    body = _weights_bytes(tmp_path)
    digest = hashlib.sha256(body).hexdigest()
    server.serve("/w.pdparams", body)
    path = download(f"{server.base}/w.pdparams", sha256=digest, progress=False)
    assert not os.path.exists(record_path(path))  # the published checksum is the record
    with open(path, "r+b") as f:
        f.seek(50)
        f.write(b"\x00\x01")
    with pytest.raises(ConfigError, match=rf"published sha256 is {digest}"):
        download(f"{server.base}/w.pdparams", sha256=digest, progress=False)
    assert not os.path.exists(path)
