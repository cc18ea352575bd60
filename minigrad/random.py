"""The one random generator behind every initialiser: `minigrad.manual_seed(n)` makes runs reproducible."""
from __future__ import annotations

from typing import Any

import numpy as np

from minigrad._validation import TensorError, is_int

_generator = np.random.default_rng()


def _check_seed(seed: Any) -> int:
    if not is_int(seed) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    return int(seed)


def manual_seed(seed: int) -> np.random.Generator:
    """Reseed the generator that parameter initialisation, `randn`, dropout and shuffling draw from."""
    global _generator
    _generator = np.random.default_rng(_check_seed(seed))
    return _generator


def generator() -> np.random.Generator:
    return _generator


class Generator:
    """torch.Generator's shape for code that passes one around (DataLoader's `generator`): a NumPy Generator."""

    def __init__(self, device: Any = "cpu") -> None:
        self._seed = int(np.random.SeedSequence().entropy % (1 << 63))
        self.rng = np.random.default_rng(self._seed)

    def manual_seed(self, seed: int) -> "Generator":
        self._seed = _check_seed(seed)
        self.rng = np.random.default_rng(self._seed)
        return self

    def initial_seed(self) -> int:
        return self._seed


def rng_of(gen: Any) -> np.random.Generator:
    """The NumPy generator behind a `generator=` argument (None: the global one)."""
    if gen is None:
        return _generator
    if isinstance(gen, Generator):
        return gen.rng
    if isinstance(gen, np.random.Generator):
        return gen
    raise TypeError(f"generator must be a minigrad.Generator or a numpy Generator, got {type(gen).__name__}")


def uniform_(array: np.ndarray, low: float, high: float) -> np.ndarray:
    """Fill `array` in place with U(low, high) in its own dtype."""
    array[...] = _generator.uniform(low, high, size=array.shape)
    return array


def bernoulli(probs: Any, shape: tuple, dtype: Any, generator: Any = None) -> np.ndarray:
    """1 with probability `probs` (broadcast to `shape`), else 0, in `dtype`; `probs` must lie in [0, 1]."""
    probs = np.asarray(probs, dtype=np.float64)
    if not np.all((probs >= 0) & (probs <= 1)):
        raise TensorError("bernoulli: expected every probability p to satisfy 0 <= p <= 1")
    return (rng_of(generator).random(shape) < probs).astype(dtype)


def normal_(array: np.ndarray, mean: float = 0.0, std: float = 1.0) -> np.ndarray:
    array[...] = _generator.normal(mean, std, size=array.shape)
    return array
