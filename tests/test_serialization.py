"""save/load: round trips, atomic writes, no pickle, permissions, and clear errors for any file that is not a
checkpoint (foreign, corrupt or crafted)."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

import minigrad as mg


def test_round_trip_of_nested_state(tmp_path):
    obj = {"model": {"w": np.arange(6.0).reshape(2, 3), "b": np.zeros(2, np.float32)},
           "step": 7, "name": "run", "hist": [1.5, None, (2, 3)], "opt": {0: {"step": 3}}, "t": mg.ones(2)}
    mg.save(obj, tmp_path / "x.npz")
    back = mg.load(tmp_path / "x.npz")
    np.testing.assert_array_equal(back["model"]["w"], obj["model"]["w"])
    assert back["model"]["b"].dtype == np.float32
    assert back["step"] == 7 and back["name"] == "run" and back["hist"] == [1.5, None, (2, 3)]
    assert back["opt"] == {0: {"step": 3}}
    np.testing.assert_array_equal(back["t"], np.ones(2, np.float32))


@pytest.mark.parametrize("bad,message", [({"a": object()}, "cannot store"),
                                         ({"a": np.array([1, "x", None], dtype=object)}, "only pickle"),
                                         ({"a": {(1, 2): 3}}, "keys")])
def test_failed_save_leaves_the_old_file_and_no_temporaries(tmp_path, bad, message):
    path = tmp_path / "ck.npz"
    mg.save({"a": np.ones(2)}, path)
    with pytest.raises(TypeError, match=message):
        mg.save(bad, path)
    np.testing.assert_array_equal(mg.load(path)["a"], np.ones(2))
    assert os.listdir(tmp_path) == ["ck.npz"]


def test_a_killed_saves_temporary_is_removed_by_the_next_save(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    stale = tmp_path / f".minigrad-{int(dead.stdout)}-abc.tmp"
    alive = tmp_path / f".minigrad-{os.getpid()}-xyz.tmp"  # this process: perhaps saving right now
    stale.write_bytes(b"half a checkpoint")
    alive.write_bytes(b"in progress")
    mg.save({"a": 1}, tmp_path / "ck.npz")
    assert sorted(os.listdir(tmp_path)) == sorted(["ck.npz", alive.name])


def test_checkpoints_get_normal_permissions(tmp_path):
    umask = os.umask(0o022)
    try:
        mg.save({"a": 1}, tmp_path / "new.npz")
        assert os.stat(tmp_path / "new.npz").st_mode & 0o777 == 0o644
        os.chmod(tmp_path / "new.npz", 0o640)
        mg.save({"a": 2}, tmp_path / "new.npz")  # replacing a file keeps its mode
        assert os.stat(tmp_path / "new.npz").st_mode & 0o777 == 0o640
    finally:
        os.umask(umask)


def _crafted(path, meta, **arrays):
    """An npz with a hand-written structure member: what a hostile or buggy writer could produce."""
    raw = meta if isinstance(meta, bytes) else json.dumps(meta).encode()
    np.savez(path, __minigrad__=np.frombuffer(raw, np.uint8), **arrays)


CRAFTED = [
    ({"format": "minigrad-checkpoint-1"}, "unknown format"),
    ({"format": "something-else", "root": {"__value__": 1}}, "unknown format"),
    (["a", "list"], "unknown format"),
    ({"format": "minigrad-checkpoint-1", "root": {"__array__": "a7"}}, "does not hold"),
    ({"format": "minigrad-checkpoint-1", "root": {"__dict__": [["a"]]}}, "pairs"),
    ({"format": "minigrad-checkpoint-1", "root": {"__dict__": {"a": 1}}}, "pairs"),
    ({"format": "minigrad-checkpoint-1", "root": {"__list__": [], "tuple": "no"}}, "bool"),
    ({"format": "minigrad-checkpoint-1", "root": {"__value__": {"x": 1}}}, "value node"),
    ({"format": "minigrad-checkpoint-1", "root": {"__weird__": 1}}, "unknown node"),
    ({"format": "minigrad-checkpoint-1", "root": 5}, "malformed"),
    (b"\xff\xfe not json", "unreadable"),
]


@pytest.mark.parametrize("meta,reason", CRAFTED)
def test_crafted_checkpoints_raise_value_error_naming_path_and_reason(tmp_path, meta, reason):
    path = tmp_path / "crafted.npz"
    _crafted(path, meta, a0=np.ones(2))
    with pytest.raises(ValueError, match=f"{path.name}.*{reason}"):
        mg.load(path)


def test_deeply_nested_structure_is_refused_not_a_crash(tmp_path):
    depth = 100_000
    root = '{"__list__": [' * depth + '{"__value__": 1}' + '], "tuple": false}' * depth
    path = tmp_path / "deep.npz"
    _crafted(path, ('{"format": "minigrad-checkpoint-1", "root": ' + root + "}").encode())
    with pytest.raises(ValueError, match="deep.npz.*nested too deeply"):
        mg.load(path)


def test_corrupt_and_foreign_files_raise_clear_errors(tmp_path):
    (tmp_path / "junk.npz").write_bytes(b"not a zip at all")
    np.savez(tmp_path / "plain.npz", a=np.ones(2))
    np.save(tmp_path / "array.npy", np.ones(3))
    np.savez(tmp_path / "pickled.npz", a=np.array([1, None], dtype=object))
    good = tmp_path / "good.npz"
    mg.save({"a": np.ones(1000)}, good)
    data = good.read_bytes()
    (tmp_path / "cut.npz").write_bytes(data[: len(data) // 2])
    for name, reason in (("junk.npz", "unreadable"), ("plain.npz", "structure member"), ("array.npy", ".npy"),
                         ("pickled.npz", "not a minigrad checkpoint"), ("cut.npz", "not a minigrad checkpoint")):
        with pytest.raises(ValueError, match=f"{name}.*{reason}"):
            mg.load(tmp_path / name)
    with pytest.raises(FileNotFoundError):
        mg.load(tmp_path / "missing.npz")


def test_open_files_and_torchs_load_arguments(tmp_path):
    """torch.save(obj, f) into a buffer or an open file, and torch.load(f, map_location=..., weights_only=...)."""
    import io

    obj = {"w": np.arange(4.0), "epoch": 3}
    buf = io.BytesIO()
    mg.save(obj, buf)
    buf.seek(0)
    back = mg.load(buf, map_location="cpu", weights_only=True)
    np.testing.assert_array_equal(back["w"], obj["w"])
    assert back["epoch"] == 3 and not buf.closed
    with open(tmp_path / "f.pt", "wb") as f:
        mg.save(obj, f)
    with open(tmp_path / "f.pt", "rb") as f:
        assert mg.load(f, map_location=mg.device("cpu"))["epoch"] == 3
    with pytest.raises(ValueError, match="not a minigrad checkpoint"):
        mg.load(io.BytesIO(b"not a checkpoint"))
    with pytest.raises(TypeError, match="cannot store"):
        mg.save({"a": object()}, io.BytesIO())
