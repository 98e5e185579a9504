"""passl.utils.memory: after reuse_freed_memory() a large block freed and allocated again costs no page faults (it
does without: glibc maps blocks above its mmap threshold afresh); PASSL_MALLOC=system and restore_malloc_defaults()
give glibc's behaviour back; the trainer turns it on for CPU training."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))

_PROBE = r"""
import ctypes, json, resource, sys
from passl.utils import memory
libc = ctypes.CDLL("libc.so.6")
libc.malloc.restype = ctypes.c_void_p
libc.free.argtypes = [ctypes.c_void_p]
step = sys.argv[1]
if step in ("tuned", "restored"):
    memory.reuse_freed_memory()
if step == "restored":
    memory.restore_malloc_defaults()
faults = []
for _ in range(4):
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    a = libc.malloc(48 << 20)  # 48 MB: above glibc's largest mmap threshold (32 MB); as a tensor allocates it
    ctypes.memset(a, 1, 48 << 20)
    libc.free(a)
    faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
print(json.dumps({"faults": faults[1:], "tuned": memory.malloc_tuned()}))
"""

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc malloc only")


def _probe(step: str, **env) -> dict:
    res = subprocess.run(
        [sys.executable, "-c", _PROBE, step],
        cwd=ROOT,
        env=dict(os.environ, PYTHONPATH=ROOT, **env),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert res.returncode == 0, res.stderr[-2000:]
    return json.loads(res.stdout.strip().splitlines()[-1])


def test_reused_blocks_take_no_page_faults():
    pages = (48 << 20) // 4096
    default = _probe("default")
    tuned = _probe("tuned")
    assert min(default["faults"]) > pages // 2, default  # glibc: every 48 MB block is faulted in again
    assert tuned["tuned"] and max(tuned["faults"]) < pages // 20, tuned


def test_opt_out_and_restore_give_glibc_behaviour_back():
    pages = (48 << 20) // 4096
    off = _probe("tuned", PASSL_MALLOC="system")
    assert not off["tuned"] and min(off["faults"]) > pages // 2, off
    restored = _probe("restored")
    assert not restored["tuned"] and min(restored["faults"]) > pages // 2, restored


def test_cpu_trainer_keeps_freed_memory(tmp_path, monkeypatch):
    import passl.engine.trainer as trainer_mod
    from tests.engine.helpers import tiny_cfg

    calls = []
    monkeypatch.setattr(trainer_mod, "reuse_freed_memory", lambda: calls.append(1) or True)
    trainer_mod.Trainer(tiny_cfg(tmp_path / "run"))
    assert calls == [1]
