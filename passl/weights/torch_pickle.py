"""Read PyTorch ``.pth`` checkpoints without torch and without running pickled code.

``torch.save`` (>= 1.6) writes a zip: ``<name>/data.pkl`` (a pickle) and ``<name>/data/<key>`` (raw storages).
The pickle is read by an unpickler whose ``find_class`` only knows an allow-list (tensor rebuilders, storage types,
OrderedDict and a few plain containers); any other global -- the way a malicious pickle runs code -- is refused.
Tensors come back as NumPy arrays.
"""

from __future__ import annotations

import collections
import io
import pickle
import zipfile
from typing import Any, Dict

import numpy as np

__all__ = ["load_pth", "UnsafePickleError", "BadCheckpointError"]


class UnsafePickleError(pickle.UnpicklingError):
    """The pickle asks for a global outside the allow-list (it could run code)."""


class BadCheckpointError(ValueError):
    """Not a readable PyTorch zip checkpoint (truncated, legacy format, or not a checkpoint)."""


_STORAGE_DTYPES = {
    "FloatStorage": np.float32,
    "DoubleStorage": np.float64,
    "HalfStorage": np.float16,
    "BFloat16Storage": "bfloat16",
    "LongStorage": np.int64,
    "IntStorage": np.int32,
    "ShortStorage": np.int16,
    "CharStorage": np.int8,
    "ByteStorage": np.uint8,
    "BoolStorage": np.bool_,
}
_TORCH_DTYPES = {
    "float32": np.float32,
    "float": np.float32,
    "float64": np.float64,
    "double": np.float64,
    "float16": np.float16,
    "half": np.float16,
    "bfloat16": "bfloat16",
    "int64": np.int64,
    "long": np.int64,
    "int32": np.int32,
    "int": np.int32,
    "int16": np.int16,
    "int8": np.int8,
    "uint8": np.uint8,
    "bool": np.bool_,
}


class _StorageType:
    def __init__(self, dtype) -> None:
        self.dtype = dtype


class _Namespace:
    """Stands in for argparse.Namespace (training args stored beside the weights): plain data, no behaviour."""

    def __setstate__(self, state):
        self.__dict__.update(state if isinstance(state, dict) else {})


def _as_array(raw: bytes, dtype) -> np.ndarray:
    if dtype == "bfloat16":  # bfloat16 is the top half of a float32
        u16 = np.frombuffer(raw, dtype="<u2")
        return (u16.astype(np.uint32) << 16).view(np.float32)
    return np.frombuffer(raw, dtype=np.dtype(dtype).newbyteorder("<"))


def _rebuild_tensor(storage, offset, size, stride, *args, **kwargs):
    arr = storage
    size, stride = tuple(size), tuple(stride)
    if not size:
        return np.array(arr[offset])
    itemsize = arr.dtype.itemsize
    view = np.lib.stride_tricks.as_strided(arr[offset:], shape=size, strides=[s * itemsize for s in stride])
    return np.array(view)  # own, contiguous copy


def _rebuild_parameter(data, requires_grad=False, backward_hooks=None, *args):
    return data


class _SafeUnpickler(pickle.Unpickler):
    def __init__(self, file, read_record) -> None:
        super().__init__(file)
        self._read_record = read_record
        self._cache: Dict[str, np.ndarray] = {}

    def find_class(self, module: str, name: str):
        if module == "collections" and name == "OrderedDict":
            return collections.OrderedDict
        if module == "torch._utils" and name in ("_rebuild_tensor_v2", "_rebuild_tensor"):
            return _rebuild_tensor
        if module == "torch._utils" and name == "_rebuild_parameter":
            return _rebuild_parameter
        if module == "torch" and name in _STORAGE_DTYPES:
            return _StorageType(_STORAGE_DTYPES[name])
        if module == "torch" and name in _TORCH_DTYPES:
            return _TORCH_DTYPES[name]
        if module == "argparse" and name == "Namespace":
            return _Namespace
        if module == "builtins" and name in ("set", "frozenset", "slice", "tuple", "list", "dict"):
            return {"set": set, "frozenset": frozenset, "slice": slice, "tuple": tuple, "list": list, "dict": dict}[
                name
            ]
        raise UnsafePickleError(
            f"refusing to load: the checkpoint's pickle asks for '{module}.{name}', which is not plain weights data "
            f"(tensors, dicts, numbers, strings); a file that does this can run code. Convert it in a trusted "
            f"environment with torch, or get the file from its official source"
        )

    def persistent_load(self, pid):
        if not isinstance(pid, tuple) or not pid or pid[0] != "storage":
            raise UnsafePickleError(f"refusing to load: unknown persistent id {pid!r}")
        storage_type, key = pid[1], str(pid[2])
        dtype = storage_type.dtype if isinstance(storage_type, _StorageType) else storage_type
        if key not in self._cache:
            self._cache[key] = _as_array(self._read_record(key), dtype)
        return self._cache[key]


def load_pth(path: str) -> Any:
    """Unpickle a torch zip checkpoint with the allow-list; tensors become NumPy arrays."""
    if not zipfile.is_zipfile(path):
        with open(path, "rb") as f:
            head = f.read(2)
        if head[:1] == b"\x80":
            raise BadCheckpointError(
                f"{path} is a legacy (pre-1.6, non-zip) torch file; re-save it with a recent torch "
                f"(torch.save(torch.load(f), g)) or convert it with tools/convert_weights.py where torch is installed"
            )
        raise BadCheckpointError(f"{path} is not a PyTorch checkpoint (not a zip archive); it may be truncated")
    try:
        zf = zipfile.ZipFile(path)
        names = zf.namelist()
    except (zipfile.BadZipFile, OSError) as e:
        raise BadCheckpointError(f"{path} is damaged ({e}); download it again") from None
    pkl = [n for n in names if n.endswith("data.pkl")]
    if not pkl:
        raise BadCheckpointError(f"{path} is a zip file but not a torch checkpoint (no data.pkl)")
    prefix = pkl[0][: -len("data.pkl")]

    def read_record(key: str) -> bytes:
        try:
            return zf.read(f"{prefix}data/{key}")
        except (KeyError, zipfile.BadZipFile, OSError, EOFError) as e:
            raise BadCheckpointError(f"{path}: storage {key} is missing or damaged ({e}); download it again") from None

    try:
        with zf.open(pkl[0]) as f:
            return _SafeUnpickler(io.BytesIO(f.read()), read_record).load()
    except (zipfile.BadZipFile, EOFError, OSError) as e:
        raise BadCheckpointError(f"{path} is damaged ({e}); download it again") from None
