"""save/load: nested dicts and lists of arrays and numbers in one NumPy .npz file, written atomically.

Arrays are stored as npz members; the structure (dict keys, lists, scalars) as a JSON document in the member
`__minigrad__`. Nothing is pickled (object arrays are refused before anything is written), so loading a file
cannot run code. The file is written to a temporary name beside the target — `.minigrad-<pid>-<random>.tmp` —
and renamed over it: a crash never leaves a torn checkpoint, a failed save removes its temporary, and the next
save in that folder removes temporaries left by processes that no longer exist (a killed save). The
checkpoint gets the permissions of a file made by `open()` (or keeps those of the file it replaces). Loading
any file that is not a well-formed checkpoint raises ValueError naming the path and what is wrong.
"""
from __future__ import annotations

import contextlib
import json
import os
import re
import tempfile
import zipfile
from typing import IO, Any

import numpy as np

from minigrad.devices import array_module
from minigrad.tensor import Tensor

_META = "__minigrad__"
_FORMAT = "minigrad-checkpoint-1"
_TEMP = re.compile(r"^\.minigrad-(\d+)-[^/]*\.tmp$")


def _encode(obj: Any, arrays: dict[str, np.ndarray], where: str = "obj") -> Any:
    if isinstance(obj, Tensor):
        obj = obj._data
    if isinstance(obj, np.ndarray) or type(obj).__module__.startswith("cupy"):
        arr = obj if array_module(obj) is np else obj.get()
        if arr.dtype.hasobject or arr.dtype.kind == "V":
            raise TypeError(f"save: {where} is an array of dtype {arr.dtype}, which only pickle could store; "
                            "nothing was written")
        key = f"a{len(arrays)}"
        arrays[key] = arr
        return {"__array__": key}
    if isinstance(obj, dict):
        if not all(isinstance(k, (str, int)) and not isinstance(k, bool) for k in obj):
            raise TypeError(f"save: the keys of {where} must be str or int")
        return {"__dict__": [[k, _encode(v, arrays, f"{where}[{k!r}]")] for k, v in obj.items()]}
    if isinstance(obj, (list, tuple)):
        return {"__list__": [_encode(v, arrays, f"{where}[{i}]") for i, v in enumerate(obj)],
                "tuple": isinstance(obj, tuple)}
    if isinstance(obj, np.generic):
        obj = obj.item()
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return {"__value__": obj}
    raise TypeError(f"save: cannot store {where}, an object of type {type(obj).__name__}")


def _decode(node: Any, arrays: dict) -> Any:
    """The object a JSON node describes; anything malformed is a ValueError saying where."""
    if not isinstance(node, dict) or len(node) not in (1, 2):
        raise ValueError(f"malformed node {str(node)[:60]!r}")
    if "__array__" in node:
        key = node["__array__"]
        if not isinstance(key, str) or key not in arrays:
            raise ValueError(f"the structure names an array {key!r} the file does not hold")
        return arrays[key]
    if "__dict__" in node:
        pairs = node["__dict__"]
        if not isinstance(pairs, list) or not all(isinstance(p, list) and len(p) == 2 and isinstance(p[0], (str, int))
                                                   and not isinstance(p[0], bool) for p in pairs):
            raise ValueError("a dict node must hold [key, value] pairs with str or int keys")
        return {k: _decode(v, arrays) for k, v in pairs}
    if "__list__" in node:
        items, is_tuple = node["__list__"], node.get("tuple")
        if not isinstance(items, list) or not isinstance(is_tuple, bool):
            raise ValueError("a list node must hold a list and a bool 'tuple'")
        decoded = [_decode(v, arrays) for v in items]
        return tuple(decoded) if is_tuple else decoded
    if "__value__" in node and len(node) == 1:
        value = node["__value__"]
        if value is not None and not isinstance(value, (bool, int, float, str)):
            raise ValueError(f"a value node holds a {type(value).__name__}")
        return value
    raise ValueError(f"unknown node {sorted(node)!r}")


def _remove_stale_temporaries(folder: str) -> None:
    """Delete `.minigrad-<pid>-*.tmp` files whose writing process no longer exists (a killed save)."""
    try:
        names = os.listdir(folder)
    except OSError:
        return
    for name in names:
        match = _TEMP.match(name)
        if match is None:
            continue
        pid = int(match.group(1))
        try:
            os.kill(pid, 0)
            continue  # alive (perhaps saving right now): not ours to touch
        except ProcessLookupError:
            pass
        except (PermissionError, OverflowError):
            continue
        with contextlib.suppress(OSError):
            os.unlink(os.path.join(folder, name))


def _file_mode(path: str) -> int:
    """The mode the checkpoint should have: the replaced file's, or what open() would give a new file."""
    try:
        return os.stat(path).st_mode & 0o7777
    except OSError:
        umask = os.umask(0)
        os.umask(umask)
        return 0o666 & ~umask


def save(obj: Any, path: str | os.PathLike | IO[bytes]) -> None:
    """Write `obj` (a state_dict, or nested dicts/lists of arrays and numbers) to `path` atomically, or into an
    open binary file (torch.save(obj, f)), which is the caller's to close."""
    arrays: dict[str, np.ndarray] = {}
    meta = json.dumps({"format": _FORMAT, "root": _encode(obj, arrays)})  # refuses what it cannot store
    members = {**arrays, _META: np.frombuffer(meta.encode(), dtype=np.uint8)}
    if hasattr(path, "write"):
        np.savez(path, **members)
        return
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    _remove_stale_temporaries(folder)
    fd, tmp = tempfile.mkstemp(prefix=f".minigrad-{os.getpid()}-", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **members)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, _file_mode(path))
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def load(path: str | os.PathLike | IO[bytes], map_location: Any = None, weights_only: Any = None) -> Any:
    """Read what `save` wrote, from a path or an open binary file. Arrays come back as host (NumPy) arrays
    whatever `map_location` says (accepted for torch's signature): `load_state_dict` puts each where its
    parameter lives. `weights_only` is accepted too: a checkpoint never holds code. A missing file is
    FileNotFoundError; a corrupt, foreign or crafted one is a ValueError naming the path and the reason."""
    if not hasattr(path, "read"):
        path = os.fspath(path)

    def refuse(reason: str) -> ValueError:
        return ValueError(f"load: {getattr(path, 'name', path)!r} is not a minigrad checkpoint: {reason}")

    try:
        loaded = np.load(path, allow_pickle=False)
        if not isinstance(loaded, np.lib.npyio.NpzFile):
            raise refuse("it is a single NumPy array (.npy), not an .npz archive")
        with loaded as npz:
            if _META not in npz.files:
                raise refuse("it is a NumPy archive without minigrad's structure member")
            meta = json.loads(npz[_META].tobytes().decode())
            arrays = {k: npz[k] for k in npz.files if k != _META}
    except (FileNotFoundError, IsADirectoryError, PermissionError):
        raise
    except ValueError as err:
        if str(err).startswith("load:"):
            raise
        raise refuse(f"unreadable ({err})") from None
    except RecursionError:
        raise refuse("its structure is nested too deeply") from None
    except (zipfile.BadZipFile, OSError, EOFError, KeyError, json.JSONDecodeError, UnicodeDecodeError,
            AttributeError, TypeError) as err:
        raise refuse(f"unreadable ({type(err).__name__}: {err})") from None
    if not isinstance(meta, dict) or meta.get("format") != _FORMAT or "root" not in meta:
        found = meta.get("format") if isinstance(meta, dict) else type(meta).__name__
        raise refuse(f"unknown format {found!r}")
    try:
        return _decode(meta["root"], arrays)
    except RecursionError:
        raise refuse("its structure is nested too deeply") from None
    except ValueError as err:
        raise refuse(str(err)) from None
