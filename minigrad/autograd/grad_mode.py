"""Grad mode: whether ops record the graph (torch's no_grad, enable_grad, inference_mode, set_grad_enabled)."""
from __future__ import annotations

import functools
from typing import Any, Callable

_grad_enabled = True  # read by Function.apply through this module


class no_grad:
    """Context manager and decorator: ops inside record no graph (as `torch.no_grad`)."""

    _enabled = False

    def __enter__(self) -> None:
        global _grad_enabled
        self._prev = _grad_enabled
        _grad_enabled = self._enabled

    def __exit__(self, *exc: object) -> None:
        global _grad_enabled
        _grad_enabled = self._prev

    def __call__(self, fn: Callable) -> Callable:
        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            with type(self)():
                return fn(*args, **kwargs)

        return wrapper


class enable_grad(no_grad):
    """Context manager and decorator: record the graph again inside a `no_grad` block."""

    _enabled = True


class inference_mode(no_grad):
    """torch.inference_mode: here the same as no_grad (nothing is recorded)."""

    def __init__(self, mode: bool = True) -> None:
        self._enabled = not mode


class set_grad_enabled(no_grad):
    """torch.set_grad_enabled(mode): sets grad mode at once; as a context manager, restores it on exit."""

    def __init__(self, mode: bool) -> None:
        global _grad_enabled
        self._prev, self._enabled = _grad_enabled, bool(mode)
        _grad_enabled = self._enabled

    def __enter__(self) -> None:
        pass

    def __call__(self, fn: Callable) -> Callable:
        global _grad_enabled
        _grad_enabled = self._prev  # as a decorator it applies per call, not from now on
        return super().__call__(fn)


def is_grad_enabled() -> bool:
    """Whether ops record the graph now (False inside `no_grad`)."""
    return _grad_enabled


__all__ = ["no_grad", "enable_grad", "inference_mode", "set_grad_enabled", "is_grad_enabled"]
