"""GradNormMonitor: observe the gradient norms of a training run, then choose a clipping threshold from them.

The seed's advice, "observe common vector norms, then choose a sensible value", as one added line in the loop:

    monitor = nn.utils.GradNormMonitor(model)      # once
    ...
    loss.backward()
    monitor.record()                               # the added line: before the clip, so it sees the raw norms
    nn.utils.clip_grad_norm_(model.parameters(), max_norm=monitor.suggest_max_norm() or 1.0)

Per step it keeps the total norm and every parameter's norm. When the gradients are one GradBuffer's, the
per-parameter norms come from one pass over its flat array (`minigrad.clip.segment_norms`, on the numpy,
numba or CUDA backend); otherwise one norm per parameter. The total is the p-norm of the per-parameter norms,
which is the norm of all gradients as one vector.

Suggested max_norm (`suggest_max_norm`): the 90th percentile of the finite total norms seen so far. It leaves
nine steps in ten untouched and clips the largest tenth — the spikes an exploding gradient makes — to the
size of an ordinary large step. `examples/choose_threshold.py` places this suggestion on a measured sweep of
max_norm over seeds.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np

from minigrad import clip
from minigrad._validation import check_norm_type, check_positive_order, check_real
from minigrad.tensor import Tensor


def _named(parameters: Any) -> list[tuple[str, Tensor]]:
    if hasattr(parameters, "named_parameters"):
        return list(parameters.named_parameters())
    items = [parameters] if isinstance(parameters, Tensor) else list(parameters)
    named = []
    for i, item in enumerate(items):
        name, p = item if isinstance(item, tuple) else (f"param{i}", item)
        if not isinstance(p, Tensor):
            raise TypeError(f"parameters[{i}] is a {type(p).__name__}, not a Tensor")
        named.append((str(name), p))
    if len({id(p) for _, p in named}) != len(named):
        raise ValueError("GradNormMonitor: a parameter appears twice")
    return named


class GradNormMonitor:
    """Per step: the total gradient norm and each parameter's; quantiles, a suggested max_norm and a plot.

    Args:
        parameters: a Module (its parameter names are used), (name, parameter) pairs, or parameters.
        norm_type: > 0 or inf.
    """

    def __init__(self, parameters: Any, norm_type: Any = 2.0) -> None:
        self.named = _named(parameters)
        self.norm_type = check_positive_order("norm_type", norm_type)
        self._total: list[float] = []
        self._norms: list[np.ndarray] = []

    @property
    def names(self) -> list[str]:
        return [name for name, _ in self.named]

    def _per_parameter(self) -> np.ndarray:
        params = [p for _, p in self.named]
        out = np.zeros(len(params))
        buf = params[0]._grad_buffer if params else None
        if buf is not None and buf.owns_all(params):  # one pass per dtype over the flat arrays
            buf.settle()
            position = {id(p): i for i, p in enumerate(params)}
            for dtype, flat in buf.flats.items():
                members = [p for p in buf.params if p.dtype == dtype]
                norms = clip.host_value_array(clip.segment_norms(flat, buf.offsets[dtype], self.norm_type))
                for p, n in zip(members, norms):
                    out[position[id(p)]] = n
            return out
        for i, p in enumerate(params):
            g = p._settled_grad()
            out[i] = 0.0 if g is None else clip.host_value(clip.total_norm(g._data, self.norm_type))
        return out

    def record(self) -> float:
        """Record this step's norms; call it after backward and before clipping, so that it sees raw norms.

        Returns:
            The total gradient norm of this step, a float.
        """
        norms = self._per_parameter()
        total = float(clip.total_norm([norms], self.norm_type))
        self._total.append(total)
        self._norms.append(norms)
        return total

    # ----- what was seen -------------------------------------------------------------------------------------
    @property
    def steps(self) -> int:
        return len(self._total)

    @property
    def total(self) -> np.ndarray:
        """(steps,) the total gradient norm per recorded step."""
        return np.asarray(self._total, dtype=np.float64)

    @property
    def norms(self) -> dict[str, np.ndarray]:
        """name -> (steps,) that parameter's gradient norm per recorded step."""
        table = np.asarray(self._norms, dtype=np.float64).reshape(self.steps, len(self.named))
        return {name: table[:, i] for i, (name, _) in enumerate(self.named)}

    def quantiles(self, q: Any = (0.5, 0.9, 0.99, 1.0)) -> dict[float, float]:
        """Quantiles of the finite total norms (linear interpolation, as np.quantile).

        Args:
            q: a quantile in [0, 1] or an iterable of them.

        Returns:
            {quantile: value}; NaN values before any finite norm was recorded.
        """
        finite = self.total[np.isfinite(self.total)]
        qs = [check_real("q", v) for v in (q if hasattr(q, "__iter__") else [q])]
        if any(not 0.0 <= v <= 1.0 for v in qs):
            raise ValueError(f"quantiles must lie in [0, 1], got {q!r}")
        if finite.size == 0:
            return {v: math.nan for v in qs}
        return {v: float(np.quantile(finite, v)) for v in qs}

    def suggest_max_norm(self, quantile: float = 0.9) -> float | None:
        """A max_norm for clip_grad_norm_: the `quantile` of the finite total norms seen (see the module
        docstring for why 0.9).

        Returns:
            The suggestion, a float; None before any finite norm was recorded.
        """
        value = self.quantiles([quantile])[check_real("quantile", quantile)]
        return None if math.isnan(value) else value

    def summary(self) -> str:
        q = self.quantiles()
        lines = [f"{self.steps} steps; total gradient norm: median {q[0.5]:.4g}, 90% {q[0.9]:.4g}, "
                 f"99% {q[0.99]:.4g}, max {q[1.0]:.4g}; suggested max_norm {self.suggest_max_norm() or math.nan:.4g}"]
        for name, series in self.norms.items():
            finite = series[np.isfinite(series)]
            if finite.size:
                lines.append(f"  {name:30s} median {np.median(finite):.4g}  max {finite.max():.4g}")
        return "\n".join(lines)

    def plot(self, path: str) -> Any:
        """Norm over steps (total and per parameter, log scale; a zero norm is a gap) and a histogram of the
        log10 of the finite positive total norms with the quantiles (dotted) and the suggested max_norm (red)
        marked; a legend of the parameters when there are at most 12. Saved to `path`; returns the Figure.

        Needs matplotlib. Built with matplotlib's object API (no pyplot): the user's backend and pyplot's list
        of open figures are left alone."""
        from matplotlib.figure import Figure

        fig = Figure(figsize=(15, 3.8), layout="constrained")
        a1, a2, a3 = fig.subplots(1, 3)
        steps = np.arange(self.steps)
        a1.semilogy(steps, self.total)
        a1.set(title="total gradient norm", xlabel="step")
        for name, series in self.norms.items():
            a2.semilogy(steps, np.where(series > 0, series, np.nan), label=name)
        a2.set(title="per-parameter gradient norm", xlabel="step")
        if len(self.named) <= 12:
            a2.legend(fontsize="x-small")
        finite = self.total[np.isfinite(self.total) & (self.total > 0)]
        if finite.size:
            a3.hist(np.log10(finite), bins="auto")
            for v in self.quantiles().values():
                if v > 0:  # a zero quantile has no place on a log axis
                    a3.axvline(math.log10(v), ls=":", color="gray")
            suggestion = self.suggest_max_norm()
            if suggestion:
                a3.axvline(math.log10(suggestion), color="red", label=f"suggested max_norm {suggestion:.3g}")
                a3.legend(fontsize="small")
        a3.set(title="log10 total norm", xlabel="log10 ‖g‖")
        fig.savefig(path)
        return fig

    def state_dict(self) -> dict:
        return {"norm_type": self.norm_type, "names": self.names, "total": self.total,
                "norms": np.asarray(self._norms, dtype=np.float64).reshape(self.steps, len(self.named))}

    def load_state_dict(self, state: dict) -> None:
        if list(state.get("names", [])) != self.names:
            raise ValueError("GradNormMonitor.load_state_dict: the saved parameter names differ from these")
        total, norms = np.asarray(state["total"], np.float64), np.asarray(state["norms"], np.float64)
        if total.ndim != 1 or norms.shape != (total.size, len(self.named)):
            raise ValueError("GradNormMonitor.load_state_dict: the saved arrays have inconsistent shapes")
        self.norm_type = check_norm_type(state["norm_type"])
        self._total, self._norms = list(total), list(norms)


__all__ = ["GradNormMonitor"]
