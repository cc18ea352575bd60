"""save/load: nested dicts and lists of arrays and numbers in one NumPy .npz file, written atomically.

Arrays are stored as npz members; the structure (dict keys, lists, scalars) as a JSON document in the member
`__minigrad__`. Nothing is pickled, so loading a file cannot run code. The file is written to a temporary
name beside the target and renamed over it: a crash never leaves a torn checkpoint.
"""
from __future__ import annotations

import json
import os
import tempfile
import zipfile
from typing import Any

import numpy as np

from minigrad.tensor import Tensor, array_module

_META = "__minigrad__"
_FORMAT = "minigrad-checkpoint-1"


def _encode(obj: Any, arrays: dict[str, np.ndarray]) -> Any:
    if isinstance(obj, Tensor):
        obj = obj._data
    if isinstance(obj, np.ndarray) or type(obj).__module__.startswith("cupy"):
        key = f"a{len(arrays)}"
        arrays[key] = obj if array_module(obj) is np else obj.get()
        return {"__array__": key}
    if isinstance(obj, dict):
        if not all(isinstance(k, (str, int)) for k in obj):
            raise TypeError("save: dict keys must be str or int")
        return {"__dict__": [[k, _encode(v, arrays)] for k, v in obj.items()]}
    if isinstance(obj, (list, tuple)):
        return {"__list__": [_encode(v, arrays) for v in obj], "tuple": isinstance(obj, tuple)}
    if isinstance(obj, np.generic):
        obj = obj.item()
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return {"__value__": obj}
    raise TypeError(f"save: cannot store an object of type {type(obj).__name__}")


def _decode(node: Any, arrays: Any) -> Any:
    if "__array__" in node:
        return arrays[node["__array__"]]
    if "__dict__" in node:
        return {k: _decode(v, arrays) for k, v in node["__dict__"]}
    if "__list__" in node:
        items = [_decode(v, arrays) for v in node["__list__"]]
        return tuple(items) if node["tuple"] else items
    return node["__value__"]


def save(obj: Any, path: str | os.PathLike) -> None:
    """Write `obj` (a state_dict, or nested dicts/lists of arrays and numbers) to `path` atomically."""
    arrays: dict[str, np.ndarray] = {}
    meta = json.dumps({"format": _FORMAT, "root": _encode(obj, arrays)})
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".minigrad-", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays, **{_META: np.frombuffer(meta.encode(), dtype=np.uint8)})
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def load(path: str | os.PathLike) -> Any:
    """Read what `save` wrote. A missing, corrupt or foreign file raises a clear error."""
    path = os.fspath(path)
    try:
        with np.load(path, allow_pickle=False) as npz:
            meta = json.loads(npz[_META].tobytes().decode()) if _META in npz.files else None
            arrays = {k: npz[k] for k in npz.files if k != _META}
    except FileNotFoundError:
        raise
    except (ValueError, zipfile.BadZipFile, OSError, EOFError, KeyError, json.JSONDecodeError,
            UnicodeDecodeError, AttributeError) as err:
        raise ValueError(f"load: {path!r} is not a readable minigrad checkpoint ({err})") from None
    if not isinstance(meta, dict):
        raise ValueError(f"load: {path!r} is a NumPy file but not a minigrad checkpoint")
    if meta.get("format") != _FORMAT:
        raise ValueError(f"load: {path!r} has unknown format {meta.get('format')!r}")
    return _decode(meta["root"], arrays)
