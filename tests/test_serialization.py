"""save/load: round trips, atomic writes, and clear errors for files that are not checkpoints."""
import os

import numpy as np
import pytest

import minigrad as mg


def test_round_trip_of_nested_state(tmp_path):
    obj = {"model": {"w": np.arange(6.0).reshape(2, 3), "b": np.zeros(2, np.float32)},
           "step": 7, "name": "run", "hist": [1.5, None, (2, 3)], "opt": {0: {"step": 3}}}
    mg.save(obj, tmp_path / "x.npz")
    back = mg.load(tmp_path / "x.npz")
    np.testing.assert_array_equal(back["model"]["w"], obj["model"]["w"])
    assert back["model"]["b"].dtype == np.float32
    assert back["step"] == 7 and back["name"] == "run" and back["hist"] == [1.5, None, (2, 3)]
    assert back["opt"] == {0: {"step": 3}}


def test_failed_save_leaves_the_old_file_and_no_temporaries(tmp_path):
    path = tmp_path / "ck.npz"
    mg.save({"a": np.ones(2)}, path)
    with pytest.raises(TypeError, match="cannot store"):
        mg.save({"a": object()}, path)
    np.testing.assert_array_equal(mg.load(path)["a"], np.ones(2))
    assert os.listdir(tmp_path) == ["ck.npz"]


def test_corrupt_and_foreign_files_raise_clear_errors(tmp_path):
    (tmp_path / "junk.npz").write_bytes(b"not a zip at all")
    with pytest.raises(ValueError, match="not a readable minigrad checkpoint"):
        mg.load(tmp_path / "junk.npz")
    np.savez(tmp_path / "plain.npz", a=np.ones(2))
    with pytest.raises(ValueError, match="not a minigrad checkpoint"):
        mg.load(tmp_path / "plain.npz")
    good = tmp_path / "good.npz"
    mg.save({"a": np.ones(1000)}, good)
    data = good.read_bytes()
    (tmp_path / "cut.npz").write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="minigrad checkpoint"):
        mg.load(tmp_path / "cut.npz")
    with pytest.raises(FileNotFoundError):
        mg.load(tmp_path / "missing.npz")
