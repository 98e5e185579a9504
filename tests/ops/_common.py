"""What the kernel tests share: the skip where no compiler exists, the ``PASSL_OPS=auto`` fixture, the relative
error."""

import shutil

import numpy as np
import pytest

from passl import ops

needs_compiler = pytest.mark.skipif(
    shutil.which("g++") is None, reason="no g++: passl.ops runs its pure-Paddle fallbacks"
)


@pytest.fixture
def ops_auto():
    """The kernels on for the test (whatever PASSL_OPS says), the switch reset afterwards."""
    ops.set_ops("auto")
    yield
    ops.set_ops(None)


def rel(a, b) -> float:
    """max |a - b| / max |b| of two arrays or tensors, in float64."""
    a = np.asarray(a.numpy() if hasattr(a, "numpy") else a, dtype="float64")
    b = np.asarray(b.numpy() if hasattr(b, "numpy") else b, dtype="float64")
    return float(np.abs(a - b).max() / max(np.abs(b).max(), 1e-12))
