"""minigrad.distributed under `mpiexec -n 2` (skipped, with the reason, when mpi4py or mpiexec is missing)."""
import math
import os
import shutil
import subprocess
import sys
import time

import numpy as np
import pytest

import minigrad as mg
from minigrad import nn, optim

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from backends import reference_norm

pytest.importorskip("mpi4py", reason="the MPI tests need mpi4py: pip install -e '.[mpi]'")
HERE = os.path.dirname(os.path.abspath(__file__))
MPIEXEC = next((m for m in (os.path.join(os.path.dirname(sys.executable), "mpiexec"), shutil.which("mpiexec"))
                if m and os.path.exists(m)), None)
if MPIEXEC is None:
    pytest.skip("mpiexec not found (pip install mpich)", allow_module_level=True)


def mpirun(mode, tmp_path, timeout=120, n=2, **extra_env):
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_ENABLE_CUDASIM"} | extra_env
    start = time.perf_counter()
    res = subprocess.run([MPIEXEC, "-n", str(n), sys.executable, os.path.join(HERE, "mpi_worker.py"), mode,
                          str(tmp_path)], capture_output=True, text=True, timeout=timeout, env=env)
    return res, time.perf_counter() - start


def ranks(tmp_path, n=2):
    return [mg.load(tmp_path / f"rank{r}.npz") for r in range(n)]


def test_data_parallel_equals_one_process_on_the_full_batch(tmp_path):
    res, _ = mpirun("data_parallel", tmp_path)
    assert res.returncode == 0, res.stderr
    sys.path.insert(0, HERE)
    from mpi_model import data, make_model, step

    model = make_model(seed=0)
    opt = optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    x, y = data()
    norms = [step(model, opt, x, y) for _ in range(10)]
    r0, r1 = ranks(tmp_path)
    np.testing.assert_allclose(r0["norms"], norms, rtol=1e-10)
    for name, value in model.state_dict().items():
        np.testing.assert_allclose(r0[name], value, rtol=1e-10, err_msg=name)
        assert r0[name].tobytes() == r1[name].tobytes(), name  # every rank holds the same bits
    assert r0["norms"].tobytes() == r1["norms"].tobytes()


def test_sharded_norm_and_clipped_grads_equal_one_process(tmp_path):
    res, _ = mpirun("sharded", tmp_path)
    assert res.returncode == 0, res.stderr
    r0, r1 = ranks(tmp_path)
    rng = np.random.default_rng(0)
    grads = [rng.standard_normal(s) * 10 for s in [(4, 3), (7,), (2, 5), (3,)]]
    for p in (1.0, 2.0, 3.5, math.inf):
        params = [nn.Parameter(np.zeros(g.shape)) for g in grads]
        for prm, g in zip(params, grads):
            prm.grad = g.copy()
        norm = nn.utils.clip_grad_norm_(params, max_norm=1.0, norm_type=p)
        assert r0[f"norm_{p}"].tobytes() == r1[f"norm_{p}"].tobytes()
        np.testing.assert_allclose(r0[f"norm_{p}"], norm.item(), rtol=1e-12)
        for i, prm in enumerate(params):
            got = (r0 if i % 2 == 0 else r1)[f"grad_{p}_{i}"]
            np.testing.assert_allclose(got, prm.grad, rtol=1e-12)
    np.testing.assert_allclose(r0["norm_big"], 1e30 * math.sqrt(3), rtol=1e-6)
    assert r0["norm_big"].tobytes() == r1["norm_big"].tobytes()
    for r, rank in ((r0, 0), (r1, 1)):  # error_if_nonfinite=True with a finite norm of sqrt(3·1 + 3·4)
        np.testing.assert_allclose(r["norm_checked"], math.sqrt(15.0), rtol=1e-15)
        np.testing.assert_array_equal(r["grad_checked"], np.full(3, float(rank + 1)))
        assert np.isnan(r["norm_nan"])
        np.testing.assert_array_equal(r["grad_nan"], [np.nan, 1.0] if rank == 0 else [2.0, 3.0])


def test_sharded_norm_on_three_uneven_ranks_for_every_order(tmp_path):
    sys.path.insert(0, HERE)
    from mpi_worker import SHARD_ORDERS, SHARD_SHAPES

    res, _ = mpirun("sharded_uneven", tmp_path, n=3)
    assert res.returncode == 0, res.stderr
    results = ranks(tmp_path, 3)
    rng = np.random.default_rng(1)
    grads = [rng.standard_normal(s) * 10 for s in SHARD_SHAPES]
    for p in SHARD_ORDERS:
        params = [nn.Parameter(np.zeros(g.shape)) for g in grads]
        for prm, g in zip(params, grads):
            prm.grad = g.copy()
        norm = nn.utils.clip_grad_norm_(params, max_norm=1.0, norm_type=p)
        assert results[0][f"norm_{p}"].tobytes() == results[1][f"norm_{p}"].tobytes() == \
            results[2][f"norm_{p}"].tobytes()
        np.testing.assert_allclose(results[0][f"norm_{p}"], norm.item(), rtol=1e-12)
        for i, prm in enumerate(params):
            np.testing.assert_allclose(results[i % 3][f"grad_{p}_{i}"], prm.grad.numpy(), rtol=1e-12)
        # ranks 0 and 1 hold every other gradient, rank 2 none: the norm is still that of all five
        np.testing.assert_allclose(results[2][f"norm_empty_{p}"], reference_norm(grads, p), rtol=1e-12)


def test_all_reduce_sum_and_mean_in_place_with_and_without_a_gradbuffer(tmp_path):
    sys.path.insert(0, HERE)
    from mpi_worker import SHARD_SHAPES

    res, _ = mpirun("all_reduce", tmp_path, n=3)
    assert res.returncode == 0, res.stderr
    rng = np.random.default_rng(2)
    grads = [rng.standard_normal(s) for s in SHARD_SHAPES]
    for r in ranks(tmp_path, 3):
        for buffered in (True, False):
            for i, g in enumerate(grads):
                np.testing.assert_allclose(r[f"sum_{buffered}_{i}"], 6 * g, rtol=1e-12)  # 1 + 2 + 3
                np.testing.assert_allclose(r[f"mean_{buffered}_{i}"], 2 * g, rtol=1e-12)
        for i, g in enumerate(grads[:2]):
            np.testing.assert_allclose(r[f"two_{i}"], 6 * g, rtol=1e-12)


def test_one_rank_raising_ends_the_job_quickly_with_its_message(tmp_path):
    res, seconds = mpirun("raise_on_one", tmp_path, timeout=60)
    assert res.returncode == 1  # the code the hook passes to MPI_Abort, which mpich's mpiexec returns
    assert "rank one fails on purpose" in res.stderr and "[minigrad rank 1]" in res.stderr
    assert seconds < 30


def test_broadcast_refuses_a_root_out_of_range_and_parameters_that_differ_and_defaults_to_rank_0(tmp_path):
    res, _ = mpirun("broadcast_rules", tmp_path)
    assert res.returncode == 0, res.stderr
    for rank, r in enumerate(ranks(tmp_path)):
        np.testing.assert_array_equal(r["refused"], [-1, 2])
        assert "parameters" in str(r["mismatch"]) and "differs" in str(r["mismatch"])
        np.testing.assert_array_equal(r["odd"], np.full(2 + rank, rank + 1.0))  # untouched
        np.testing.assert_array_equal(r["w"], np.ones(3))
        assert str(r["norm_dtype"]) == "float32" and float(r["norm"]) == 0.0


def test_a_broadcast_between_forward_and_backward_is_caught_as_an_in_place_change(tmp_path):
    """broadcast_parameters_ writes the parameters in place, so it bumps their version counters: a backward through
    a graph that saved them raises, as after any in-place change (on every rank, root included)."""
    res, _ = mpirun("broadcast_after_forward", tmp_path)
    assert res.returncode == 0, res.stderr
    assert all(bool(r["raised"]) for r in ranks(tmp_path))


@pytest.mark.parametrize("setting", [None, "0"])
def test_the_abort_hook_is_installed_once_and_not_at_all_with_minigrad_mpi_abort_0(tmp_path, setting):
    """The excepthook that ends the job is installed by the first call that needs MPI and not wrapped again by
    later calls; MINIGRAD_MPI_ABORT=0 leaves Python's own hook in place."""
    res, _ = mpirun("abort_hook", tmp_path, **({} if setting is None else {"MINIGRAD_MPI_ABORT": setting}))
    assert res.returncode == 0, res.stderr
    for r in ranks(tmp_path):
        assert bool(r["hooked"]) == (setting is None)
        assert bool(r["kept"])


def test_shape_mismatch_is_a_clear_error_before_any_reduction(tmp_path):
    res, _ = mpirun("mismatch", tmp_path)
    assert res.returncode == 0, res.stderr
    assert "entry 0 differs: rank 1 has shape (4, 3)" in res.stdout and "rank 0 has shape (3, 4)" in res.stdout
    assert "entry 1 differs: rank 1 has shape (2,) dtype float64, rank 0 has shape (2,) dtype float32" in res.stdout
    for r in ranks(tmp_path):
        np.testing.assert_array_equal(r["untouched"], np.ones(r["untouched"].shape))
        np.testing.assert_array_equal(r["q"], np.ones(2))


def test_rejected_arguments_leave_grads_untouched(tmp_path):
    res, _ = mpirun("rejected", tmp_path)
    assert res.returncode == 0, res.stderr
    for r in ranks(tmp_path):
        np.testing.assert_array_equal(r["grad"], [3.0, 4.0, 12.0])
        np.testing.assert_array_equal(r["writable"], [6.0, 8.0])  # its neighbour was read-only: nothing written
        np.testing.assert_array_equal(r["w"], np.arange(6.0).reshape(2, 3).T * 2)  # root 1's values


def test_train_distributed_example_runs_on_two_ranks_and_learns():
    import re

    env = {k: v for k, v in os.environ.items() if k != "NUMBA_ENABLE_CUDASIM"}
    res = subprocess.run([MPIEXEC, "-n", "2", sys.executable, os.path.join(os.path.dirname(HERE), "examples",
                                                                           "train_distributed.py"), "--quick"],
                         capture_output=True, text=True, timeout=300, env=env)
    assert res.returncode == 0, res.stderr
    losses = [float(v) for v in re.findall(r"loss on epoch \d+ = ([\d.]+)", res.stdout)]
    assert len(losses) == 6  # printed by rank 0 only
    assert losses[-1] < 0.5 * losses[0]


# ----- in one process, through a stand-in communicator --------------------------------------------------------------
class _OneRank:
    """A communicator of `size` ranks seen from rank `rank`: collectives answer as if every rank sent the same,
    and each call is recorded."""

    def __init__(self, size=1, rank=0):
        self.size, self.rank, self.calls = size, rank, []

    def Get_size(self):  # noqa: N802 - mpi4py's names
        return self.size

    def Get_rank(self):  # noqa: N802
        return self.rank

    def allgather(self, item):
        self.calls.append("allgather")
        return [item] * self.size

    def Bcast(self, buf, root=0):  # noqa: N802
        self.calls.append("Bcast")

    def Abort(self, code):  # noqa: N802
        self.calls.append(("Abort", code))


def test_each_broadcast_bumps_a_parameters_version_by_one():
    """As one in-place copy does in torch: a graph that saved the parameter before two broadcasts (or before one
    in-place change and one broadcast) sees a changed version."""
    from minigrad import distributed

    model = nn.Linear(3, 2)
    before = [p._version for p in model.parameters()]
    distributed.broadcast_parameters_(model, comm=_OneRank())
    assert [p._version for p in model.parameters()] == [v + 1 for v in before]
    distributed.broadcast_parameters_(model, comm=_OneRank())
    assert [p._version for p in model.parameters()] == [v + 2 for v in before]


def test_a_refused_sharded_clip_makes_no_collective_call():
    """A read-only gradient is refused before the norm's allgather, so a rank that refuses enters no collective
    (and every rank with the same gradients refuses at the same point)."""
    from minigrad import distributed

    w = nn.Parameter(np.ones(3))
    frozen = np.full(3, 10.0)
    frozen.setflags(write=False)
    w._grad = mg.from_numpy(frozen)
    comm = _OneRank()
    with pytest.raises(ValueError, match="read-only"):
        distributed.clip_grad_norm_([w], 1.0, comm=comm)
    assert comm.calls == []
    np.testing.assert_array_equal(frozen, 10.0)


def test_the_abort_hook_writes_the_error_out_before_aborting_then_calls_the_previous_hook(monkeypatch):
    """With sys.stderr block-buffered (as a user's replacement stream may be) the message must be flushed before
    MPI_Abort ends the process; should Abort return, Python's previous hook still reports the error."""
    import io

    from minigrad import distributed

    seen = []
    monkeypatch.setattr(distributed, "_hook_installed", False)
    monkeypatch.setattr(sys, "excepthook", lambda *args: seen.append(("previous", args[0])))
    raw = io.BytesIO()
    monkeypatch.setattr(sys, "stderr", io.TextIOWrapper(raw, write_through=False, line_buffering=False))
    comm = _OneRank(size=2, rank=1)
    comm.Abort = lambda code: seen.append(("abort", code, raw.getvalue()))
    distributed._install_abort_hook(comm)
    try:
        raise KeyError("lost")
    except KeyError as err:
        sys.excepthook(type(err), err, err.__traceback__)
    assert [s[0] for s in seen] == ["abort", "previous"]
    assert seen[0][1] == 1 and b"[minigrad rank 1]" in seen[0][2] and b"KeyError: 'lost'" in seen[0][2]
    assert seen[1][1] is KeyError
