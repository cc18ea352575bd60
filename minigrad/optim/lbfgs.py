"""L-BFGS with torch.optim.LBFGS's algorithm, arguments and state: a fixed step or a strong-Wolfe line search.

The algorithm follows torch's (itself after Mark Schmidt's minFunc) step for step, so that a script's losses
match torch's: the two-loop recursion over the last `history_size` pairs (s, y), the first step scaled to
min(1, 1/‖g‖₁)·lr, and torch's stopping rules. Unlike torch, a step whose closure raises changes nothing: the
parameters and their gradients are put back and the optimizer's state is only replaced when the step completes.
"""
from __future__ import annotations

from typing import Any, Callable, Iterable

import numpy as np

from minigrad._validation import check_positive_int
from minigrad.autograd import enable_grad
from minigrad.devices import array_module
from minigrad.optim.optimizer import Optimizer, check_number
from minigrad.tensor import Tensor

_STATE_KEYS = ("func_evals", "n_iter", "d", "t", "old_dirs", "old_stps", "ro", "H_diag", "prev_flat_grad",
               "prev_loss", "al")


def _cubic_interpolate(x1: float, f1: float, g1: float, x2: float, f2: float, g2: float,
                       bounds: tuple | None = None) -> float:
    """The minimiser of the cubic through (x1, f1, g1) and (x2, f2, g2), clamped to `bounds` (the interval
    itself by default); the bounds' midpoint where the cubic has no minimum."""
    lo, hi = bounds if bounds is not None else ((x1, x2) if x1 <= x2 else (x2, x1))
    d1 = g1 + g2 - 3 * (f1 - f2) / (x1 - x2)
    d2_square = d1 ** 2 - g1 * g2
    if not d2_square >= 0:  # NaN too (a bracket of width 0), as in torch
        return (lo + hi) / 2.0
    d2 = np.sqrt(d2_square)
    if x1 <= x2:
        min_pos = x2 - (x2 - x1) * ((g2 + d2 - d1) / (g2 - g1 + 2 * d2))
    else:
        min_pos = x1 - (x1 - x2) * ((g1 + d2 - d1) / (g1 - g2 + 2 * d2))
    return min(max(min_pos, lo), hi)


def _strong_wolfe(evaluate: Callable, t: float, d: Any, f: float, g: Any, gtd: Any, c1: float = 1e-4,
                  c2: float = 0.9, tolerance_change: float = 1e-9, max_ls: int = 25) -> tuple:
    """A step t along d meeting the strong Wolfe conditions: bracket, then zoom by cubic interpolation.
    `evaluate(t)` gives the loss and flat gradient at x + t·d. Returns (loss, gradient, t, evaluations)."""
    d_norm = abs(d).max()
    f_new, g_new = evaluate(t)
    evals, ls_iter = 1, 0
    gtd_new = g_new.dot(d)
    t_prev, f_prev, g_prev, gtd_prev = 0, f, g, gtd
    done = False
    while ls_iter < max_ls:  # bracketing
        if f_new > (f + c1 * t * gtd) or (ls_iter > 1 and f_new >= f_prev):
            bracket, bracket_f, bracket_g, bracket_gtd = [t_prev, t], [f_prev, f_new], [g_prev, g_new], \
                [gtd_prev, gtd_new]
            break
        if abs(gtd_new) <= -c2 * gtd:
            bracket, bracket_f, bracket_g, bracket_gtd = [t], [f_new], [g_new], [gtd_new]
            done = True
            break
        if gtd_new >= 0:
            bracket, bracket_f, bracket_g, bracket_gtd = [t_prev, t], [f_prev, f_new], [g_prev, g_new], \
                [gtd_prev, gtd_new]
            break
        previous = t
        t = _cubic_interpolate(t_prev, f_prev, gtd_prev, t, f_new, gtd_new, bounds=(t + 0.01 * (t - t_prev), t * 10))
        t_prev, f_prev, g_prev, gtd_prev = previous, f_new, g_new, gtd_new
        f_new, g_new = evaluate(t)
        evals += 1
        gtd_new = g_new.dot(d)
        ls_iter += 1
    if ls_iter == max_ls:
        bracket, bracket_f, bracket_g, bracket_gtd = [0, t], [f, f_new], [g, g_new], [gtd, gtd_new]
    insufficient_progress = False
    low, high = (0, 1) if bracket_f[0] <= bracket_f[-1] else (1, 0)
    while not done and ls_iter < max_ls:  # zoom
        if abs(bracket[1] - bracket[0]) * d_norm < tolerance_change:
            break
        t = _cubic_interpolate(bracket[0], bracket_f[0], bracket_gtd[0], bracket[1], bracket_f[1], bracket_gtd[1])
        # a point too near an end of the bracket makes little progress: move it inside, as torch does
        eps = 0.1 * (max(bracket) - min(bracket))
        if min(max(bracket) - t, t - min(bracket)) < eps:
            if insufficient_progress or t >= max(bracket) or t <= min(bracket):
                t = max(bracket) - eps if abs(t - max(bracket)) < abs(t - min(bracket)) else min(bracket) + eps
                insufficient_progress = False
            else:
                insufficient_progress = True
        else:
            insufficient_progress = False
        f_new, g_new = evaluate(t)
        evals += 1
        gtd_new = g_new.dot(d)
        ls_iter += 1
        if f_new > (f + c1 * t * gtd) or f_new >= bracket_f[low]:
            bracket[high], bracket_f[high], bracket_g[high], bracket_gtd[high] = t, f_new, g_new, gtd_new
            low, high = (0, 1) if bracket_f[0] <= bracket_f[1] else (1, 0)
        else:
            if abs(gtd_new) <= -c2 * gtd:
                done = True
            elif gtd_new * (bracket[high] - bracket[low]) >= 0:
                bracket[high], bracket_f[high] = bracket[low], bracket_f[low]
                bracket_g[high], bracket_gtd[high] = bracket_g[low], bracket_gtd[low]
            bracket[low], bracket_f[low], bracket_g[low], bracket_gtd[low] = t, f_new, g_new, gtd_new
    return bracket_f[low], bracket_g[low], bracket[low], evals


class LBFGS(Optimizer):
    """L-BFGS over all parameters as one flat vector (torch.optim.LBFGS). `step(closure)` runs up to `max_iter`
    iterations, each calling the closure (which must zero the gradients, compute the loss, call backward and
    return the loss) once, or several times with the line search.

    Args:
        params: an iterable of Tensors (one group only, as torch).
        lr: the step length (>= 0; the first step of all is scaled down to at most 1/‖g‖₁ times it).
        max_iter: iterations per step. max_eval: closure calls per step (default max_iter·5//4).
        tolerance_grad: stop when max |g| is at most this. tolerance_change: stop when the loss or the step
            changes less than this.
        history_size: the number of (s, y) pairs kept. line_search_fn: None (a fixed step) or "strong_wolfe".

    References:
        Nocedal & Wright, Numerical Optimization (2006), algorithms 7.4 and 3.5-3.6; torch.optim.LBFGS.
    """

    def __init__(self, params: Iterable[Any], lr: float = 1, max_iter: int = 20, max_eval: int | None = None,
                 tolerance_grad: float = 1e-7, tolerance_change: float = 1e-9, history_size: int = 100,
                 line_search_fn: str | None = None) -> None:
        check_positive_int("max_iter", max_iter)
        super().__init__(params, dict(lr=lr, max_iter=max_iter, max_eval=max_iter * 5 // 4 if max_eval is None
                                      else max_eval, tolerance_grad=tolerance_grad,
                                      tolerance_change=tolerance_change, history_size=history_size,
                                      line_search_fn=line_search_fn))  # one group: add_param_group refuses more
        self._params = self.param_groups[0]["params"]

    def _check_group(self, group: dict) -> None:
        super()._check_group(group)
        for name in ("max_iter", "max_eval", "history_size"):
            check_positive_int(name, group[name])
        for name in ("tolerance_grad", "tolerance_change"):
            check_number(group, name)
        if group["line_search_fn"] not in (None, "strong_wolfe"):
            raise ValueError(f"Invalid line_search_fn value: only None and 'strong_wolfe' are supported, got "
                             f"{group['line_search_fn']!r}")

    def add_param_group(self, param_group: dict) -> None:
        if self.param_groups:
            raise ValueError("LBFGS doesn't support per-parameter options (parameter groups)")
        super().add_param_group(param_group)

    # ----- the parameters as one flat vector ------------------------------------------------------------------
    def _flat_grad(self) -> Any:
        xp = array_module(self._params[0]._data)
        return xp.concatenate([xp.zeros(p.numel(), p.dtype) if p.grad is None else p.grad._data.ravel()
                               for p in self._params])

    def _add_to_params(self, step: Any, update: Any) -> None:
        offset = 0
        for p in self._params:
            p._data += (step * update[offset:offset + p.numel()]).reshape(p.shape)
            p._versions[0] += 1
            offset += p.numel()

    def _set_params(self, arrays: list) -> None:
        for p, a in zip(self._params, arrays):
            p._data[...] = a
            p._versions[0] += 1

    def _check_params(self) -> None:
        for i, p in enumerate(self._params):
            if p.dtype.kind != "f":
                raise TypeError(f"params[{i}]: LBFGS updates floating point tensors, got dtype {p.dtype}")
            if isinstance(p._data, np.ndarray) and not p._data.flags.writeable:
                raise ValueError(f"params[{i}]: the parameter's array is read-only; nothing was updated")

    # ----- the step -------------------------------------------------------------------------------------------
    def step(self, closure: Callable) -> Any:  # type: ignore[override]
        """Up to max_iter L-BFGS iterations; returns the closure's first loss. A closure that raises leaves the
        parameters, their gradients and the optimizer's state as they were before the step."""
        if not callable(closure):
            raise TypeError(f"LBFGS.step needs a closure that re-evaluates the model, got {closure!r}")
        self._check_params()
        saved = [(p._data.copy(), p._grad, None if p._grad is None else p._grad._data.copy()) for p in self._params]
        try:
            return self._iterate(closure)
        except BaseException:
            for p, (data, grad, values) in zip(self._params, saved):
                p._data[...] = data
                if grad is not None:  # the closure's zero_grad may have zeroed it in place (a GradBuffer's view)
                    grad._data[...] = values
                p._grad = grad
            raise

    def _evaluate(self, closure: Callable) -> tuple:
        with enable_grad():
            loss = closure()
        return loss, self._flat_grad()

    def _iterate(self, closure: Callable) -> Any:
        group = self.param_groups[0]
        lr, max_iter, max_eval = group["lr"], group["max_iter"], group["max_eval"]
        tolerance_grad, tolerance_change = group["tolerance_grad"], group["tolerance_change"]
        history_size = group["history_size"]
        state = dict(self.state.get(self._params[0], {}))
        state.setdefault("func_evals", 0)
        state.setdefault("n_iter", 0)
        orig_loss, flat_grad = self._evaluate(closure)
        loss, current_evals = float(orig_loss), 1
        state["func_evals"] += 1
        if abs(flat_grad).max() <= tolerance_grad:
            self.state[self._params[0]] = state
            return orig_loss
        d, t, H_diag, prev_flat_grad, prev_loss = (state.get(k) for k in ("d", "t", "H_diag", "prev_flat_grad",
                                                                         "prev_loss"))
        old_dirs, old_stps, ro = (list(state.get(k) or ()) for k in ("old_dirs", "old_stps", "ro"))
        al = list(state.get("al") or [None] * history_size)
        n_iter = 0
        while True:  # every iteration ends in the stopping rules below, the first of them n_iter == max_iter
            n_iter += 1
            state["n_iter"] += 1
            if state["n_iter"] == 1:
                d, old_dirs, old_stps, ro, H_diag = -flat_grad, [], [], [], 1
            else:
                y, s = flat_grad - prev_flat_grad, d * t
                ys = y.dot(s)
                if ys > 1e-10:  # keep the pair only where the curvature is positive
                    if len(old_dirs) == history_size:
                        old_dirs, old_stps, ro = old_dirs[1:], old_stps[1:], ro[1:]
                    old_dirs.append(y)
                    old_stps.append(s)
                    ro.append(1.0 / ys)
                    H_diag = ys / y.dot(y)
                al = al + [None] * (len(old_dirs) - len(al))
                q = -flat_grad  # the two-loop recursion: d = -H·g
                for i in range(len(old_dirs) - 1, -1, -1):
                    al[i] = old_stps[i].dot(q) * ro[i]
                    q = q - al[i] * old_dirs[i]
                d = q * H_diag
                for i in range(len(old_dirs)):
                    be_i = old_dirs[i].dot(d) * ro[i]
                    d = d + (al[i] - be_i) * old_stps[i]
            prev_flat_grad, prev_loss = flat_grad, loss  # each flat gradient is a new array, never written
            t = min(1.0, 1.0 / abs(flat_grad).sum()) * lr if state["n_iter"] == 1 else lr
            gtd = flat_grad.dot(d)
            if gtd > -tolerance_change:  # not a descent direction
                break
            evals = 0
            if group["line_search_fn"] == "strong_wolfe":
                start = [p._data.copy() for p in self._params]

                def along(step: Any, d: Any = d, start: list = start) -> tuple:
                    self._add_to_params(step, d)
                    value, grad = self._evaluate(closure)
                    self._set_params(start)
                    return float(value), grad

                loss, flat_grad, t, evals = _strong_wolfe(along, t, d, loss, flat_grad, gtd,
                                                          max_ls=max_eval - current_evals)
                self._add_to_params(t, d)
                opt_cond = abs(flat_grad).max() <= tolerance_grad
            else:
                self._add_to_params(t, d)
                if n_iter != max_iter:  # re-evaluate, but not after the last step: its loss is not needed
                    value, flat_grad = self._evaluate(closure)
                    loss, evals = float(value), 1
                    opt_cond = abs(flat_grad).max() <= tolerance_grad
            current_evals += evals
            state["func_evals"] += evals
            if (n_iter == max_iter or current_evals >= max_eval or opt_cond  # opt_cond is set unless n_iter is max_iter
                    or abs(d * t).max() <= tolerance_change or abs(loss - prev_loss) < tolerance_change):
                break
        state.update(d=d, t=t, old_dirs=old_dirs, old_stps=old_stps, ro=ro, H_diag=H_diag,
                     prev_flat_grad=prev_flat_grad, prev_loss=prev_loss, al=al)
        self.state[self._params[0]] = state
        return orig_loss

    # ----- state_dict -----------------------------------------------------------------------------------------
    def _checked_state(self, entry: Any, p: Tensor, group: dict, key: Any) -> dict:
        """The saved state of the first parameter: torch's keys, every vector as long as all parameters."""
        if not isinstance(entry, dict) or set(entry) - set(_STATE_KEYS):
            raise ValueError(f"load_state_dict: state[{key!r}] must be a dict with keys among {_STATE_KEYS}: is "
                             f"it another optimizer's state?")
        xp, size = array_module(p._data), sum(q.numel() for q in self._params)

        def vector(value: Any, name: str) -> Any:
            arr = np.asarray(value.get() if hasattr(value, "get") else value)
            if arr.shape != (size,) or arr.dtype.kind != "f":
                raise ValueError(f"load_state_dict: state[{key!r}][{name!r}] has shape {arr.shape} and dtype "
                                 f"{arr.dtype}; expected a float vector of {size}")
            return xp.asarray(arr)

        out = dict(entry)
        for name in ("d", "prev_flat_grad"):
            if out.get(name) is not None:
                out[name] = vector(out[name], name)
        for name in ("old_dirs", "old_stps"):
            if name in out:
                out[name] = [vector(v, f"{name}[{i}]") for i, v in enumerate(out[name])]
        return out


__all__ = ["LBFGS"]
