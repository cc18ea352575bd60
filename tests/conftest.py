import os

# The CUDA backend's tests run under numba's simulator unless a real GPU is asked for; this must be set
# before numba is first imported.
if os.environ.get("MINIGRAD_REAL_CUDA") != "1":
    os.environ["NUMBA_ENABLE_CUDASIM"] = "1"

import numpy as np
import pytest
from hypothesis import HealthCheck, settings

settings.register_profile("ci", deadline=None, max_examples=30, print_blob=True,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
settings.register_profile("dev", deadline=None, max_examples=10,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
settings.register_profile("thorough", deadline=None, max_examples=500,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
# derandomized, for tests/mutate.py: a mutant killed once is killed every time
settings.register_profile("mutation", deadline=None, max_examples=30, derandomize=True, database=None,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


@pytest.fixture
def small_kernels(monkeypatch):
    """Chunks of 16 elements and Numba's chunked kernels from 8 elements on, so that small arrays reach every
    kernel path (several chunks, a last chunk of one element, serial and parallel)."""
    from minigrad.clip import numba_backend, pnorm

    monkeypatch.setattr(pnorm, "CHUNK", 16)
    monkeypatch.setattr(numba_backend, "SMALL", 8)


@pytest.fixture
def rng():
    return np.random.default_rng(0)


@pytest.fixture
def torch():
    """PyTorch, for a parity test; without it the test (only that test) is skipped and says why."""
    return pytest.importorskip("torch", reason="PyTorch is not installed: parity tests need pip install torch")
