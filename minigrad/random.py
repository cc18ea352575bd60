"""The one random generator behind every initialiser: `minigrad.manual_seed(n)` makes runs reproducible."""
from __future__ import annotations

import numpy as np

_generator = np.random.default_rng()


def manual_seed(seed: int) -> np.random.Generator:
    """Reseed the generator that parameter initialisation and `randn` draw from."""
    global _generator
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    _generator = np.random.default_rng(int(seed))
    return _generator


def generator() -> np.random.Generator:
    return _generator


def uniform_(array: np.ndarray, low: float, high: float) -> np.ndarray:
    """Fill `array` in place with U(low, high) in its own dtype."""
    array[...] = _generator.uniform(low, high, size=array.shape)
    return array


def normal_(array: np.ndarray, mean: float = 0.0, std: float = 1.0) -> np.ndarray:
    array[...] = _generator.normal(mean, std, size=array.shape)
    return array
