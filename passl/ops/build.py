"""Build-and-cache of the fused CPU kernels (Paddle custom C++ operators, ``csrc/*.cc``).

The kernels are compiled once, on first use, with ``paddle.utils.cpp_extension`` into a cache directory keyed by the
sources' hash, the compiler flags and the Paddle version (``$PASSL_OPS_CACHE``, default ``~/.cache/passl/ops``), under
a file lock so that the processes of a multi-process launch build it once. When there is no compiler or the build
fails, :func:`load` returns ``None`` after ONE warning line and the callers use their pure-Paddle fallbacks.
"""

from __future__ import annotations

import contextlib
import fcntl
import glob
import hashlib
import logging
import os
import shutil
import sys
import tempfile
import threading
from types import ModuleType
from typing import Optional

import paddle

__all__ = ["load", "cache_dir", "SOURCES"]

logger = logging.getLogger("passl")

_HERE = os.path.dirname(os.path.abspath(__file__))
SOURCES = sorted(glob.glob(os.path.join(_HERE, "csrc", "*.cc")))
HEADERS = sorted(glob.glob(os.path.join(_HERE, "csrc", "*.h")))  # part of the cache key, not compiled alone
# -ffast-math (compile only, so no crtfastmath FTZ side effect on the process) lets GCC call glibc's vector erff/expf.
CFLAGS = ["-O3", "-march=native", "-fopenmp", "-ffast-math", "-std=c++17"]


def _omp_ldflags() -> list:
    """Link the OpenMP runtime Paddle itself loads (Intel's libiomp5 in the CPU wheels, which also serves the GNU
    entry points): one thread pool for Paddle's kernels and ours. A second runtime (libgomp) spinning beside it made
    the 2-thread kernels 3-10x slower here."""
    libs = os.path.join(os.path.dirname(os.path.abspath(paddle.__file__)), "libs")
    if os.path.exists(os.path.join(libs, "libiomp5.so")):
        return [f"-L{libs}", "-l:libiomp5.so", f"-Wl,-rpath,{libs}", "-lmvec"]
    return ["-fopenmp", "-lmvec"]


def _cblas_flags() -> tuple:
    """(compile, link) flags for the sgemm-based Linear kernel: Paddle's CPU wheel ships MKL (libmklml_intel);
    without it the Linear kernel is left out and ``passl.ops.fused_linear`` falls back."""
    libs = os.path.join(os.path.dirname(os.path.abspath(paddle.__file__)), "libs")
    if os.path.exists(os.path.join(libs, "libmklml_intel.so")):
        return ["-DPASSL_WITH_CBLAS"], [f"-L{libs}", "-l:libmklml_intel.so"]
    return [], []


CFLAGS = CFLAGS + _cblas_flags()[0]
LDFLAGS = _omp_ldflags() + _cblas_flags()[1]
_NAME = "passl_ops"

_lock = threading.Lock()
_state: dict = {}


def _cpu_flags() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            return next((line for line in f if line.startswith("flags")), "")
    except OSError:
        return ""


def _key() -> str:
    h = hashlib.sha256()
    for src in SOURCES + HEADERS:
        with open(src, "rb") as f:
            h.update(f.read())
    h.update(" ".join(CFLAGS + LDFLAGS).encode())
    h.update(paddle.__version__.encode())
    h.update(_cpu_flags().encode())  # -march=native: a cache shared between machines must not mix CPUs
    # Paddle's build records the sources' absolute paths and rebuilds when they differ: two checkouts of the same
    # sources (worktrees, a clone beside an install) would keep invalidating one shared build, so each gets its own.
    h.update(_HERE.encode())
    return h.hexdigest()[:16]


def cache_dir() -> str:
    """The build directory for this source hash, source folder and Paddle version."""
    root = os.environ.get("PASSL_OPS_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "passl", "ops")
    return os.path.join(root, f"{_NAME}-{paddle.__version__}-{_key()}")


def _build() -> ModuleType:
    from paddle.utils import cpp_extension

    if shutil.which(os.environ.get("CXX", "g++")) is None:
        raise RuntimeError("no C++ compiler (g++) found")
    build_dir = cache_dir()
    os.makedirs(build_dir, exist_ok=True)
    with open(os.path.join(build_dir, ".lock"), "w") as lock_file:
        fcntl.flock(lock_file, fcntl.LOCK_EX)
        # The build runs setup.py in a child process that writes every compiler command to the real stdout and
        # stderr: send both file descriptors to a log file, and quote its first error line when the build fails.
        with tempfile.TemporaryFile(mode="w+") as log:
            saved = [os.dup(1), os.dup(2)]
            try:
                sys.stdout.flush()
                sys.stderr.flush()
                os.dup2(log.fileno(), 1)
                os.dup2(log.fileno(), 2)
                with contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
                    return cpp_extension.load(
                        name=_NAME,
                        sources=SOURCES,
                        extra_cxx_cflags=CFLAGS,
                        extra_ldflags=LDFLAGS,
                        build_directory=build_dir,
                        verbose=False,
                    )
            except Exception as exc:
                log.flush()
                log.seek(0)
                errors = [line.strip() for line in log if "error" in line.lower()]
                raise RuntimeError(errors[0] if errors else str(exc)) from None
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
                os.dup2(saved[0], 1)
                os.dup2(saved[1], 2)
                for fd in saved:
                    os.close(fd)
                fcntl.flock(lock_file, fcntl.LOCK_UN)


def load() -> Optional[ModuleType]:
    """The compiled kernels module, or ``None`` (one warning, once per process) when they cannot be built."""
    with _lock:
        if "module" not in _state:
            try:
                _state["module"] = _build()
            except Exception as exc:  # any build failure: fall back to pure Paddle, say so once
                _state["module"] = None
                reason = str(exc).strip().splitlines()[-1:] or [type(exc).__name__]
                logger.warning(
                    "passl.ops: fused CPU kernels unavailable (%s); using the pure-Paddle layers "
                    "(set PASSL_OPS=off to silence)",
                    reason[0][:200],
                )
        return _state["module"]
