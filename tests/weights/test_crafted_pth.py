"""The torch-free .pth reader checks every tensor view against its storage: crafted sizes, strides and offsets
that would read outside the storage (heap memory copied into the weights, or a SIGSEGV) are refused by key."""

import pickle
import struct
import subprocess
import sys
import zipfile

import numpy as np
import pytest

from passl.weights import WeightsError, read_state_dict
from passl.weights.torch_pickle import BadCheckpointError, load_pth
from tests.engine.helpers import ROOT


# A protocol-2 pickle written opcode by opcode, the way torch.save lays out tensors, so that any size, stride,
# offset and storage type can be written (and no torch is needed).
def _global(module, name):
    return b"c" + module.encode() + b"\n" + name.encode() + b"\n"


def _str(s):
    b = s.encode()
    return b"X" + struct.pack("<I", len(b)) + b


def _int(n):
    enc = pickle.encode_long(n)
    return b"\x8a" + bytes([len(enc)]) + enc  # LONG1: any size, any sign


def _tuple(items):
    return b"(" + b"".join(items) + b"t"


def _tensor(key, offset, size, stride, numel, storage_type=("torch", "FloatStorage")):
    pid = _tuple([_str("storage"), _global(*storage_type), _str(key), _str("cpu"), _int(numel)]) + b"Q"
    args = _tuple(
        [
            pid,
            _int(offset),
            _tuple([_int(v) for v in size]),
            _tuple([_int(v) for v in stride]),
            b"\x89",  # requires_grad False
            _global("collections", "OrderedDict") + b")R",
        ]
    )
    return _global("torch._utils", "_rebuild_tensor_v2") + args + b"R"


def _pth(path, tensors, numel=12):
    """tensors: name -> (offset, size, stride); all views of one float32 storage holding arange(numel)."""
    body = b"\x80\x02}"
    for name, (offset, size, stride) in tensors.items():
        body += _str(name) + _tensor("0", offset, size, stride, numel) + b"s"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("archive/data.pkl", body + b".")
        zf.writestr("archive/data/0", np.arange(numel, dtype="<f4").tobytes())
        zf.writestr("archive/version", "3\n")
    return str(path)


def test_valid_views_read_correctly(tmp_path):
    path = _pth(
        tmp_path / "ok.pth",
        {"t": (1, [3, 2], [1, 3]), "s": (11, [], []), "e": (12, [0, 5], [5, 1]), "full": (0, [12], [1])},
    )
    sd = load_pth(path)
    storage = np.arange(12, dtype="float32")
    np.testing.assert_array_equal(sd["t"], [[1, 4], [2, 5], [3, 6]])
    assert sd["s"].shape == () and float(sd["s"]) == 11.0
    assert sd["e"].shape == (0, 5)
    np.testing.assert_array_equal(sd["full"], storage)


# Cases that made the old reader copy heap memory into the weights or fail with a raw NumPy error (the one that
# crashed it, a huge stride, runs in a child process below).
BAD = {
    "out_of_bounds_size": ((0, [64], [1]), r"reach element 63, its storage holds 12"),
    "negative_offset": ((-4, [4], [1]), r"storage offset -4 is not a non-negative integer"),
    "offset_past_end": ((12, [1], [1]), r"reach element 12"),
    "negative_stride": ((11, [4], [-1]), r"non-negative integers"),
    "overflow": ((0, [1 << 62, 1 << 62], [1 << 62, 1]), r"reach element"),
    "wrapping_overflow": ((0, [2, 1 << 63], [1 << 63, 0]), r"reach element"),
    "too_many_elements": ((0, [1 << 20, 1 << 20], [0, 0]), r"more than its storage of 12"),
    "rank_mismatch": ((0, [2, 2], [1]), r"differ in length"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_crafted_view_is_refused_naming_the_key(tmp_path, case):
    view, why = BAD[case]
    path = _pth(tmp_path / f"{case}.pth", {"good.weight": (0, [3, 4], [4, 1]), f"model.{case}": view})
    with pytest.raises(BadCheckpointError, match=rf"tensor 'model\.{case}' is malformed \(.*{why}"):
        load_pth(path)
    with pytest.raises(WeightsError, match=rf"{path}: tensor 'model\.{case}'"):
        read_state_dict(path)


_CHILD = """
import sys
sys.path.insert(0, {root!r})
from passl.weights import WeightsError, read_state_dict
try:
    sd = read_state_dict({path!r})
    print("READ", sd["w"].shape, flush=True)
except WeightsError as e:
    print("REFUSED", e, flush=True)
"""


def test_view_that_crashed_the_process_is_refused(tmp_path):
    """A stride 2**40 elements past the storage made the old reader copy from an unmapped address (SIGSEGV): run in
    a child process so a crash fails this test instead of killing pytest."""
    path = _pth(tmp_path / "segv.pth", {"w": (0, [4, 4], [1 << 40, 1 << 38])})
    res = subprocess.run(
        [sys.executable, "-c", _CHILD.format(root=ROOT, path=path)], capture_output=True, text=True, timeout=300
    )
    assert res.returncode == 0, f"the reader died with return code {res.returncode}: {res.stderr[-1000:]}"
    assert "REFUSED" in res.stdout and "tensor 'w' is malformed" in res.stdout, res.stdout


def test_storage_of_unknown_dtype_or_odd_length_is_refused(tmp_path):
    path = tmp_path / "dtype.pth"
    body = b"\x80\x02}" + _str("w") + _tensor("0", 0, [2], [1], 2, ("torch", "EvilStorage")) + b"s."
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("archive/data.pkl", body)
        zf.writestr("archive/data/0", b"\x00" * 8)
    with pytest.raises(WeightsError, match=r"refusing to load.*'torch\.EvilStorage'"):
        read_state_dict(str(path))
    odd = tmp_path / "odd.pth"
    body = b"\x80\x02}" + _str("w") + _tensor("0", 0, [1], [1], 1) + b"s."
    with zipfile.ZipFile(odd, "w") as zf:
        zf.writestr("archive/data.pkl", body)
        zf.writestr("archive/data/0", b"\x00" * 7)
    with pytest.raises(WeightsError, match=r"storage 0 has 7 bytes, not a multiple of 4"):
        read_state_dict(str(odd))
