"""Read PyTorch ``.pth`` checkpoints without torch and without running pickled code.

``torch.save`` (>= 1.6) writes a zip: ``<name>/data.pkl`` (a pickle) and ``<name>/data/<key>`` (raw storages).
The pickle is read by an unpickler whose ``find_class`` only knows an allow-list (tensor rebuilders, storage types,
OrderedDict and a few plain containers); any other global -- the way a malicious pickle runs code -- is refused.
Tensors come back as NumPy arrays, each checked against its storage first (size, stride and offset inside the
storage's bounds, a known dtype): a crafted view is refused naming its key, never read out of bounds.
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


class _View:
    """A tensor as the pickle describes it (a view of a storage); materialised and checked once its key is known."""

    def __init__(self, storage, offset, size, stride) -> None:
        self.storage, self.offset, self.size, self.stride = storage, offset, size, stride


def _rebuild_tensor(storage, offset, size, stride, *args, **kwargs):
    return _View(storage, offset, size, stride)


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _materialise(view: _View, key: str, path: str) -> np.ndarray:
    """An own, contiguous copy of the view, after checking it lies inside its storage: sizes, strides and offset
    non-negative integers, and the largest element the view reaches (offset + sum((size - 1) * stride)) below the
    storage's element count. Python integers cannot overflow; the checks run before NumPy sees any number."""

    def bad(why: str) -> BadCheckpointError:
        return BadCheckpointError(f"{path}: tensor '{key}' is malformed ({why}); the file is damaged or crafted")

    arr, offset = view.storage, view.offset
    if not isinstance(arr, np.ndarray) or arr.ndim != 1:
        raise bad(f"its storage is a {type(arr).__name__}, not a storage")
    try:
        size, stride = tuple(view.size), tuple(view.stride)
    except TypeError:
        raise bad("size or stride is not a sequence") from None
    if not _is_int(offset) or offset < 0:
        raise bad(f"storage offset {offset!r} is not a non-negative integer")
    if len(size) != len(stride):
        raise bad(f"size {list(size)} and stride {list(stride)} differ in length")
    if not all(_is_int(v) and v >= 0 for v in size + stride):
        raise bad(f"size {list(size)} or stride {list(stride)} is not made of non-negative integers")
    numel = 1
    for n in size:
        numel *= n
    if numel == 0:
        if offset > arr.size:
            raise bad(f"storage offset {offset} is beyond its storage of {arr.size} elements")
        return np.zeros(size, dtype=arr.dtype)
    last = offset + sum((n - 1) * st for n, st in zip(size, stride))
    if last >= arr.size:
        raise bad(
            f"size {list(size)}, stride {list(stride)}, offset {offset} reach element {last}, its storage holds "
            f"{arr.size}"
        )
    if numel > arr.size:
        raise bad(f"it has {numel} elements, more than its storage of {arr.size}")
    if not size:
        return np.array(arr[offset])
    itemsize = arr.dtype.itemsize
    view_arr = np.lib.stride_tricks.as_strided(arr[offset:], shape=size, strides=[s * itemsize for s in stride])
    return np.array(view_arr)  # own, contiguous copy


def _materialise_all(obj: Any, path: str, key: str = "") -> Any:
    """Replace every _View in the unpickled containers by its checked array, naming the tensor by its key path."""
    if isinstance(obj, _View):
        return _materialise(obj, key or "<top level>", path)
    join = (lambda k: f"{key}.{k}") if key else str
    if isinstance(obj, dict):
        for k in list(obj):
            obj[k] = _materialise_all(obj[k], path, join(k))
        return obj
    if isinstance(obj, list):
        return [_materialise_all(v, path, join(i)) for i, v in enumerate(obj)]
    if isinstance(obj, tuple):
        return tuple(_materialise_all(v, path, join(i)) for i, v in enumerate(obj))
    if isinstance(obj, _Namespace):
        obj.__dict__.update(_materialise_all(dict(obj.__dict__), path, key))
        return obj
    if isinstance(obj, (set, frozenset)) and any(isinstance(v, _View) for v in obj):
        raise BadCheckpointError(f"{path}: a tensor inside a set at '{key}'; not a weights file")
    return obj


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
        if len(pid) < 3:
            raise UnsafePickleError(f"refusing to load: malformed storage id {pid!r}")
        storage_type, key = pid[1], str(pid[2])
        dtype = storage_type.dtype if isinstance(storage_type, _StorageType) else storage_type
        if not (
            any(dtype is known for known in _STORAGE_DTYPES.values())
            or (isinstance(dtype, str) and dtype == "bfloat16")
        ):
            raise BadCheckpointError(f"storage {key} has an unknown dtype {dtype!r}")
        if key not in self._cache:
            raw = self._read_record(key)
            itemsize = 2 if dtype == "bfloat16" else np.dtype(dtype).itemsize
            if len(raw) % itemsize:
                raise BadCheckpointError(f"storage {key} has {len(raw)} bytes, not a multiple of {itemsize}")
            self._cache[key] = _as_array(raw, dtype)
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
            obj = _SafeUnpickler(io.BytesIO(f.read()), read_record).load()
    except (zipfile.BadZipFile, EOFError, OSError) as e:
        raise BadCheckpointError(f"{path} is damaged ({e}); download it again") from None
    except BadCheckpointError as e:
        raise BadCheckpointError(str(e) if path in str(e) else f"{path}: {e}") from None
    return _materialise_all(obj, path)
