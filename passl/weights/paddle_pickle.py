"""Read Paddle's pickle-based files (``paddle.save``: .pdparams, .pdopt, .pdckpt, ...) without running pickled code.

``paddle.save`` pickles plain containers and NumPy arrays: a Tensor becomes the tuple ``(name, ndarray)`` (Paddle
>= 2.1), a DenseTensor ``eval('data', {'data': ndarray})``, older files hold bare arrays. This module unpickles
with a ``find_class`` that knows only those globals (containers, NumPy's array/dtype/scalar rebuilders, and safe
stand-ins for ``eval`` and ``_codecs.encode`` that accept exactly what Paddle writes); any other global -- the way a
malicious pickle runs code -- is refused before anything is built. The result is then checked to hold only plain
data, and converted the way ``paddle.load`` converts it (arrays, or Tensors with their saved names).
"""

from __future__ import annotations

import collections
import pickle
from typing import Any

import numpy as np

from passl.weights.torch_pickle import UnsafePickleError

__all__ = ["load_paddle", "read_paddle_pickle", "UnsafePickleError"]


class _NdarrayType:
    """Stands in for ``numpy.ndarray``: usable only as the subtype argument of ``_reconstruct``, never called."""


_NDARRAY = _NdarrayType()


def _reconstruct(subtype, shape, dtype):
    if subtype is not _NDARRAY:
        raise UnsafePickleError(f"refusing to load: numpy _reconstruct of {type(subtype).__name__}, not ndarray")
    if tuple(shape) != (0,):  # NumPy always pickles an empty array here and sets shape and data in __setstate__
        raise UnsafePickleError(f"refusing to load: numpy _reconstruct with shape {shape!r}")
    return np.ndarray.__new__(np.ndarray, shape, _dtype(dtype))


def _dtype(spec, align=False, copy=False):
    d = np.dtype(spec, bool(align), bool(copy))
    if d.hasobject:
        raise UnsafePickleError(f"refusing to load: NumPy dtype '{spec}' holds Python objects")
    return d


def _scalar(dtype, data=None):
    if isinstance(data, str):  # a Python 2 pickle read with encoding latin1
        data = data.encode("latin1")
    if not isinstance(dtype, np.dtype) or dtype.hasobject:
        raise UnsafePickleError("refusing to load: a NumPy scalar of an object dtype")
    if not isinstance(data, bytes) or len(data) != dtype.itemsize:
        raise UnsafePickleError(f"refusing to load: a NumPy {dtype} scalar with {len(data or b'')} bytes")
    return np.frombuffer(data, dtype=dtype)[0].copy()


def _data_expr(expr, env=None, *rest):
    """``paddle.save`` writes a DenseTensor as ``eval('data', {'data': ndarray})``: accept that and nothing else."""
    if expr == "data" and not rest and isinstance(env, dict) and set(env) == {"data"}:
        return env["data"]
    raise UnsafePickleError(
        "refusing to load: the pickle calls 'builtins.eval' with something other than Paddle's DenseTensor form"
    )


def _latin1(text, encoding="utf-8", *rest):
    """Protocol-2 pickles write bytes as ``_codecs.encode(str, 'latin1')``."""
    if isinstance(text, str) and not rest and str(encoding).lower().replace("_", "-") in ("latin1", "latin-1"):
        return text.encode("latin1")
    raise UnsafePickleError("refusing to load: the pickle calls '_codecs.encode' with other arguments than bytes")


_BUILTINS = {
    "tuple": tuple,
    "list": list,
    "dict": dict,
    "set": set,
    "frozenset": frozenset,
    "bytearray": bytearray,
    "complex": complex,
    "eval": _data_expr,
}
_NUMPY_CORE = ("numpy.core.multiarray", "numpy._core.multiarray")


class _PaddleUnpickler(pickle.Unpickler):
    def __init__(self, file, path: str) -> None:
        super().__init__(file, encoding="latin1")  # as paddle.load: Python 2 pickles hold str arrays
        self._path = path

    def find_class(self, module: str, name: str):
        if module == "collections" and name == "OrderedDict":
            return collections.OrderedDict
        if module in ("builtins", "__builtin__") and name in _BUILTINS:
            return _BUILTINS[name]
        if module == "_codecs" and name == "encode":
            return _latin1
        if module in _NUMPY_CORE and name == "_reconstruct":
            return _reconstruct
        if module in _NUMPY_CORE and name == "scalar":
            return _scalar
        if module == "numpy" and name == "ndarray":
            return _NDARRAY
        if module == "numpy" and name == "dtype":
            return _dtype
        raise UnsafePickleError(
            f"refusing to load {self._path}: its pickle asks for '{module}.{name}', which is not plain weights data "
            f"(tensors, dicts, lists, numbers, strings); a file that does this can run code. Get the file from its "
            f"official source, or convert it where you trust it"
        )

    def persistent_load(self, pid):
        raise UnsafePickleError(f"refusing to load {self._path}: unexpected persistent id {pid!r} in a Paddle file")


_PLAIN = (str, bytes, bytearray, int, float, complex, bool, type(None))


def _check_plain(obj: Any, path: str, depth: int = 0) -> None:
    """Everything the unpickler built is plain data (defence in depth: find_class already allowed only that)."""
    if depth > 100:
        raise UnsafePickleError(f"refusing to load {path}: containers nested more than 100 deep")
    if isinstance(obj, _PLAIN):
        return
    if isinstance(obj, np.ndarray):
        if obj.dtype.hasobject or type(obj) is not np.ndarray:
            raise UnsafePickleError(f"refusing to load {path}: an array of Python objects")
        return
    if isinstance(obj, np.generic) and not isinstance(obj, np.object_):
        return
    if isinstance(obj, dict):
        for k, v in obj.items():
            _check_plain(k, path, depth + 1)
            _check_plain(v, path, depth + 1)
        return
    if isinstance(obj, (list, tuple, set, frozenset)):
        for v in obj:
            _check_plain(v, path, depth + 1)
        return
    raise UnsafePickleError(f"refusing to load {path}: it holds a {type(obj).__name__}, not plain data")


def read_paddle_pickle(path: str) -> Any:
    """Unpickle a ``paddle.save`` file with the allow-list: plain containers, numbers, strings and NumPy arrays
    (Tensors appear as ``(name, ndarray)`` tuples, as Paddle stores them). Raises UnsafePickleError on anything
    else; other damage surfaces as the usual unpickling errors."""
    with open(path, "rb") as f:
        obj = _PaddleUnpickler(f, path).load()
    _check_plain(obj, path)
    return obj


def _is_tensor_tuple(obj: Any) -> bool:
    return type(obj) is tuple and len(obj) == 2 and isinstance(obj[0], str) and isinstance(obj[1], np.ndarray)


def _contains(obj: Any, pred) -> bool:
    if pred(obj):
        return True
    if isinstance(obj, dict):
        return any(_contains(v, pred) for v in obj.values())
    if isinstance(obj, (list, tuple, set)):
        return any(_contains(v, pred) for v in obj)
    return False


def _convert(obj: Any, pred, conv) -> Any:
    if pred(obj):
        return conv(obj)
    if type(obj) in (dict, collections.OrderedDict):
        for k in list(obj):
            obj[k] = _convert(obj[k], pred, conv)
        return obj
    if type(obj) is list:
        return [_convert(v, pred, conv) for v in obj]
    if type(obj) is tuple:
        return tuple(_convert(v, pred, conv) for v in obj)
    return obj


def _unpack_big_params(obj: Any) -> Any:
    """Paddle 2.0 split arrays above 4 GB into slices listed under 'UnpackBigParamInfor@@'."""
    info_key = "UnpackBigParamInfor@@"  # (sic) Paddle's spelling
    if isinstance(obj, dict) and isinstance(obj.get(info_key), dict):
        for key, value in obj.pop(info_key).items():
            slices = [obj.pop(part) for part in value["slices"]]
            obj[key] = np.concatenate(slices).reshape(value["OriginShape"])
    return obj


def load_paddle(path: str, return_numpy: bool = False) -> Any:
    """``paddle.load(path)`` for pickle-based files, with the allow-list: Tensors come back as paddle Tensors
    (with their saved names) or, with ``return_numpy``, as NumPy arrays -- the same values and types as
    ``paddle.load`` gives."""
    obj = _unpack_big_params(read_paddle_pickle(path))
    if not return_numpy:
        import paddle

    def tensor(array, name):
        out = paddle.to_tensor(array)
        if name:
            out.name = name
        return out

    table = obj.pop("StructuredToParameterName@@", None) if isinstance(obj, dict) else None
    if isinstance(table, dict):  # a flat state dict: arrays plus a key -> tensor name table
        if not return_numpy:
            for key, name in table.items():
                if isinstance(obj.get(key), np.ndarray):
                    obj[key] = tensor(obj[key], name if isinstance(name, str) else "")
        return obj
    if return_numpy:
        return _convert(obj, _is_tensor_tuple, lambda t: t[1])
    if _contains(obj, _is_tensor_tuple):  # nested containers: only the (name, array) tuples are tensors
        return _convert(obj, _is_tensor_tuple, lambda t: tensor(t[1], t[0]))
    return _convert(obj, lambda v: isinstance(v, np.ndarray), lambda a: tensor(a, ""))  # Paddle 2.0: every array
