"""tools/mutate.py's list of equivalent mutants: an entry names exactly one mutant, survives a round trip through
the file, and goes stale (instead of naming another mutant) when the code under it changes."""
import os
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tools"))
import mutate

SOURCE = '''def f(x):
    y = x + 1
    y = x + 1
    return y


def g(x):
    return x + 1
'''


def _mutants(tmp_path, text):
    (tmp_path / "m.py").write_text(text)
    return mutate.mutants_of(tmp_path / "m.py", tmp_path)


def test_identical_edits_of_identical_lines_are_told_apart_and_round_trip(tmp_path, monkeypatch):
    mutants = [m for m in _mutants(tmp_path, SOURCE) if m["what"] == "swap operator"]
    idents = [m["ident"] for m in mutants]
    assert len(idents) == len(set(idents)) == 3
    assert [i[3] for i in idents] == [1, 2, 1]  # the two lines of f counted, g's its own scope
    assert idents[0][1] == "    y = x + 1" and idents[0][2] == "    y = (x - 1)"
    listed = tmp_path / "equivalent.txt"
    listed.write_text("# a comment\n" + "".join(mutate.format_entry(m, f"reason {k}") for k, m in
                                                 enumerate(mutants)))
    loaded = mutate.load_equivalent(listed)
    assert loaded == {m["ident"]: f"reason {k}" for k, m in enumerate(mutants)}


def test_an_edit_of_the_scope_makes_its_entries_stale_and_leaves_other_scopes_alone(tmp_path, monkeypatch):
    before = {m["ident"] for m in _mutants(tmp_path, SOURCE)}
    edited = SOURCE.replace("    y = x + 1\n    y = x + 1\n", "    y = x + 1\n")  # one of the twins deleted
    after = {m["ident"] for m in _mutants(tmp_path, edited)}
    f_before = {i for i in before if ":f@" in i[0]}
    assert f_before and not f_before & after  # nothing of f's old entries names a mutant any more
    g = {i for i in before if ":g@" in i[0]}
    assert g and g <= after
    listed = tmp_path / "equivalent.txt"
    m = next(m for m in _mutants(tmp_path, SOURCE) if ":f@" in m["ident"][0] and m["ident"][3] == 2)
    listed.write_text(mutate.format_entry(m, "reason"))
    monkeypatch.setattr(mutate, "EQUIVALENT", listed)
    assert mutate.stale_equivalents(_mutants(tmp_path, edited), {"m.py"}) == [m["ident"]]
    assert mutate.stale_equivalents(_mutants(tmp_path, SOURCE), {"m.py"}) == []


def test_a_line_the_list_cannot_read_is_an_error(tmp_path):
    listed = tmp_path / "equivalent.txt"
    listed.write_text("minigrad/x.py:f:a -> b #1  # the old form\n")
    with pytest.raises(ValueError, match="cannot read"):
        mutate.load_equivalent(listed)


def test_the_project_list_reads_and_names_existing_files():
    root = mutate.ROOT
    for where, old, new, n in mutate.load_equivalent():
        assert (root / where.split(":")[0]).is_file(), where
        assert old != new and n >= 1


def test_a_crash_of_the_test_process_is_a_kill_and_an_unexplained_exit_is_an_error():
    crash = ('Fatal Python error: Segmentation fault\n\nCurrent thread 0x1 (most recent call first):\n'
             '  File "/tmp/w/minigrad/nn/rnn.py", line 9 in forward\n'
             '  File "/tmp/w/tests/test_rnn.py", line 42 in test_shapes\n')
    assert mutate.verdict(-11, crash, "minigrad/nn/_lstm.py") == ("killed", "crash (tests/test_rnn.py::test_shapes)",
                                                                  "")
    assert mutate.verdict(-11, "", "minigrad/nn/_lstm.py") == ("killed", "crash (-11)", "")
    assert mutate.verdict(0, crash, "x.py")[0] == "survived"
    failed = "FAILED tests/test_rnn.py::test_shapes - AssertionError\n"
    assert mutate.verdict(1, failed, "x.py") == ("killed", "tests/test_rnn.py::test_shapes", "")
    assert mutate.verdict(1, "ImportError in minigrad/nn/_lstm.py", "minigrad/nn/_lstm.py")[:2] == (
        "killed", "collection (1)")
    assert mutate.verdict(4, "usage: pytest", "minigrad/nn/_lstm.py") == ("error", "", "usage: pytest")
