"""A failed kernel build falls back to the pure-Paddle layers with ONE warning line, and the layers still compute."""

from __future__ import annotations

import logging

import numpy as np
import paddle
import paddle.nn.functional as F

from passl import ops
from passl.modeling.layers import GELU, DepthwiseConv2D, LayerNorm
from passl.ops import build


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.lines = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


def test_planted_build_failure_falls_back_with_one_log_line(tmp_path, monkeypatch):
    broken = tmp_path / "broken.cc"
    broken.write_text("#include <this_header_does_not_exist.h>\n")
    monkeypatch.setattr(build, "SOURCES", [str(broken)])
    monkeypatch.setenv("PASSL_OPS_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(build, "_state", {})  # forget this process's loaded kernels
    ops.set_ops("auto")
    collect = _Collect()  # on the "passl" logger itself: the trainer's logging set-up may stop propagation
    logging.getLogger("passl").addHandler(collect)
    try:
        x = paddle.randn([1, 3, 5, 5])
        conv = DepthwiseConv2D(3, 7)
        y = conv(x)
        np.testing.assert_allclose(y.numpy(), F.conv2d(x, conv.weight, conv.bias, padding=3, groups=3).numpy())
        norm, act = LayerNorm(5, epsilon=1e-6), GELU()
        np.testing.assert_allclose(norm(x).numpy(), F.layer_norm(x, [5], norm.weight, norm.bias, 1e-6).numpy())
        np.testing.assert_allclose(act(x).numpy(), F.gelu(x).numpy())
        lines = [line for line in collect.lines if "passl.ops" in line]
        assert len(lines) == 1, lines
        assert "unavailable" in lines[0] and "PASSL_OPS=off" in lines[0]
        assert build.load() is None
    finally:
        logging.getLogger("passl").removeHandler(collect)
        ops.set_ops(None)


def test_no_compiler_is_a_build_failure(tmp_path, monkeypatch):
    monkeypatch.setenv("CXX", "no-such-compiler-passl")
    monkeypatch.setenv("PASSL_OPS_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(build, "_state", {})
    assert build.load() is None


def test_two_checkouts_of_the_same_sources_build_into_separate_caches(monkeypatch):
    """Paddle's build records absolute source paths and rebuilds when they change, so two checkouts (worktrees, a
    clone beside an install) sharing one cache folder rebuilt each other's kernels on every start."""
    here = build.cache_dir()
    monkeypatch.setattr(build, "_HERE", "/elsewhere/passl/ops")
    assert build.cache_dir() != here
