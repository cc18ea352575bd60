"""The Optimizer base: parameter groups, argument checks, all-or-nothing steps, and state_dict.

Every hyper-parameter is checked when an optimizer is built, when a group is added and when a state_dict is
loaded, at least as strictly as torch, by one rule for numbers (`minigrad.clip.check_real`: Python and NumPy
numbers and 0-d arrays; no bools, strings or NaN). `step()` checks every gradient and parameter it will
touch (shape, dtype, device, writeability) before the first update, so a step that raises changes nothing;
`load_state_dict()` checks the whole dict before it replaces anything.

The fused kernels (optim/_fused.py) are imported when a fused step first runs: importing Numba takes longer
than importing the rest of minigrad, and most runs never need it.
"""
from __future__ import annotations

import copy
from typing import Any, Iterable

import numpy as np

from minigrad._validation import check_flag as _check_flag
from minigrad._validation import check_real
from minigrad.autograd import enable_grad
from minigrad.devices import array_module
from minigrad.nn.module import zero_grads_
from minigrad.tensor import Tensor

_FUSED_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def check_number(group: dict, name: str, minimum: float | None = 0.0) -> None:
    """group[name] must be a real number >= minimum (inf allowed); stored back as a float."""
    try:
        group[name] = check_real(name, group[name], minimum=minimum)
    except ValueError as err:
        raise type(err)(f"Invalid {name} value: {err}") from None


def check_flag(group: dict, name: str, optional: bool = False) -> None:
    """group[name] must be a bool (or None when `optional`)."""
    try:
        _check_flag(name, group[name], optional)
    except ValueError as err:
        raise type(err)(f"Invalid {name} value: {err}") from None


def check_betas(group: dict) -> None:
    betas = group["betas"]
    if isinstance(betas, (str, bytes)) or not hasattr(betas, "__len__") or len(betas) != 2:
        raise ValueError(f"Invalid betas value: it must be a pair (beta1, beta2), got {betas!r}")
    checked = []
    for i, beta in enumerate(betas):
        b = check_real(f"betas[{i}]", beta)
        if not 0.0 <= b < 1.0:
            raise ValueError(f"Invalid beta parameter at index {i}: {beta!r} (must be in [0, 1))")
        checked.append(b)
    group["betas"] = tuple(checked)


class Optimizer:
    """Base class. A subclass sets `defaults`, checks a group in `_check_group`, names its per-parameter state
    arrays in `_state_arrays`, and updates one parameter in `_update` (and, for fused=True, a flat layout of many
    in `_fused_update`). A group without "maximize" descends."""

    def __init__(self, params: Iterable[Any], defaults: dict) -> None:
        if isinstance(params, Tensor):
            raise TypeError("params argument given to the optimizer should be an iterable of Tensors or dicts, "
                            "but got a Tensor")
        params = list(params)
        if not params:
            raise ValueError("optimizer got an empty parameter list")
        defaults = dict(defaults)
        self._check_group(defaults)
        self.defaults = defaults
        self.param_groups: list[dict] = []
        self.state: dict[Tensor, dict] = {}
        for group in (params if isinstance(params[0], dict) else [{"params": params}]):
            self.add_param_group(group)

    def __repr__(self) -> str:
        lines = [f"{type(self).__name__} ("]
        for i, group in enumerate(self.param_groups):
            lines.append(f"Parameter Group {i}")
            lines += [f"    {k}: {v}" for k, v in sorted(group.items()) if k != "params"]
        return "\n".join(lines + [")"])

    # ----- groups and checks ----------------------------------------------------------------------------------
    def add_param_group(self, param_group: dict) -> None:
        if not isinstance(param_group, dict):
            raise TypeError(f"a param group must be a dict, got {type(param_group).__name__}")
        params = param_group["params"]
        params = [params] if isinstance(params, Tensor) else list(params)
        seen = {id(p) for g in self.param_groups for p in g["params"]}
        for i, p in enumerate(params):
            if not isinstance(p, Tensor):
                raise TypeError(f"optimizer can only optimize Tensors, but params[{i}] is a {type(p).__name__}")
            if not p.is_leaf:
                raise ValueError(f"can't optimize a non-leaf Tensor (params[{i}])")
            if id(p) in seen:
                raise ValueError("some parameters appear in more than one parameter group")
            seen.add(id(p))
        group = {**self.defaults, **param_group, "params": params}
        self._check_group(group)
        self.param_groups.append(group)

    def _check_group(self, group: dict) -> None:
        """Check (and normalise) a group's hyper-parameters in place; raise ValueError naming the bad one."""
        check_number(group, "lr")
        for name in ("maximize",):
            if name in group:
                check_flag(group, name)
        for name in ("foreach", "fused"):
            if name in group:
                check_flag(group, name, optional=True)

    def _state_arrays(self, group: dict) -> tuple[str, ...]:
        """The per-parameter state arrays (shaped like the parameter) this optimizer keeps for `group`."""
        return ()

    # ----- stepping -------------------------------------------------------------------------------------------
    def _params_with_grad(self) -> list[tuple[dict, Tensor, Any]]:
        """Every (group, param, grad array) to update, all checked before any update happens. A fused group's
        gradients keep a pending clip coefficient: its kernel applies it."""
        todo = []
        for gi, group in enumerate(self.param_groups):
            fused = group.get("fused")
            for pi, p in enumerate(group["params"]):
                g = p._grad if fused else p._settled_grad()
                if g is None:
                    continue
                where = f"param_groups[{gi}]['params'][{pi}]"
                if fused and p.dtype not in _FUSED_DTYPES:
                    raise TypeError(f"{where}: fused=True updates float32/float64 parameters, got dtype {p.dtype}; "
                                    f"use fused=None")
                if fused and not isinstance(p._data, np.ndarray) and group.get("update_clip") is not None:
                    raise TypeError(f"{where}: fused=True on a CUDA device does not clip updates (update_clip); "
                                    f"use fused=None")
                if g.shape != p.shape:
                    raise ValueError(f"{where}: gradient of shape {g.shape} does not match its parameter's "
                                     f"shape {p.shape}")
                if g.dtype.kind != "f" or p.dtype.kind != "f":
                    raise TypeError(f"{where}: optimizers update floating point tensors, got parameter dtype "
                                    f"{p.dtype} and gradient dtype {g.dtype}")
                if g.device != p.device:
                    raise ValueError(f"{where}: the gradient is on {g.device}, the parameter on {p.device}")
                if isinstance(p._data, np.ndarray) and not p._data.flags.writeable:
                    raise ValueError(f"{where}: the parameter's array is read-only; nothing was updated")
                todo.append((group, p, g._data))
        return todo

    def step(self, closure: Any = None) -> Any:
        """One update of every parameter that has a gradient. A step that raises changes nothing.

        Args:
            closure: a callable that re-evaluates the model and returns the loss (run with grad enabled).

        Returns:
            The closure's loss, or None.

        Raises:
            ValueError, TypeError: a gradient whose shape, dtype or device does not fit its parameter, or a
                read-only parameter, named by its group and position; nothing is updated then.
        """
        loss = None
        if closure is not None:
            with enable_grad():
                loss = closure()
        todo = self._params_with_grad()
        fused: dict[tuple, list] = {}
        for group, p, grad in todo:
            if group.get("fused"):
                fused.setdefault((id(group), p.dtype), []).append(p)
                continue
            if group.get("maximize", False):
                grad = -grad
            self._update(group, p._data, grad, self.state.setdefault(p, {}))
            p._versions[0] += 1  # the parameter changed in place
        for (group_id, _), params in fused.items():
            group = next(g for g in self.param_groups if id(g) == group_id)
            self._fused_step(group, params)
        return loss

    def _fused_step(self, group: dict, params: list[Tensor]) -> None:
        """One fused kernel over the flat layout of `params` (one group, one dtype); see optim/_fused.py."""
        from minigrad.optim._fused import FlatLayout

        layouts = self.__dict__.setdefault("_layouts", {})
        key = (id(group), params[0].dtype)
        layout = layouts.get(key)
        if layout is None or not layout.intact(params):
            layout = layouts[key] = FlatLayout(self, params)
        steps = {self.state.get(p, {}).get("step", 0) for p in layout.params}
        if len(steps) > 1:  # parameters at different steps (added later, or loaded so): the unfused formula
            for p in layout.params:
                grad = p._settled_grad()._data
                self._update(group, p._data, -grad if group.get("maximize") else grad, self.state.setdefault(p, {}))
                p._versions[0] += 1
            return
        self._fused_update(layout, group, steps.pop())
        layout.done()

    def _fused_update(self, layout: Any, group: dict, step: int) -> None:
        raise NotImplementedError

    def _update(self, group: dict, param: Any, grad: Any, state: dict) -> None:
        raise NotImplementedError

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Clear every parameter's gradient: None (torch's default), or zeros with set_to_none=False; a
        GradBuffer's views are zeroed in place, never dropped."""
        zero_grads_((p for group in self.param_groups for p in group["params"]), set_to_none)

    # ----- state_dict -----------------------------------------------------------------------------------------
    def state_dict(self) -> dict:
        """The optimizer's state, as torch lays it out.

        Returns:
            {"state": {index: {name: array or step}}, "param_groups": [{hyper-parameters..., "params": [index,
            ...]}]}, all copies; indices count the parameters across groups in order.
        """
        index: dict[int, int] = {}
        groups = []
        for group in self.param_groups:
            ids = []
            for p in group["params"]:
                index.setdefault(id(p), len(index))
                ids.append(index[id(p)])
            groups.append({**{k: copy.deepcopy(v) for k, v in group.items() if k != "params"}, "params": ids})
        state = {index[id(p)]: copy.deepcopy(s) for p, s in self.state.items() if id(p) in index}
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict: dict) -> None:
        """Replace hyper-parameters and state with a saved state_dict's, after checking all of it: the group
        layout, every hyper-parameter (by the constructor's rules) and every state entry's keys, shapes and
        values. A rejected dict (another optimizer's, a corrupted one) changes nothing.

        Args:
            state_dict: what `state_dict()` returned (possibly through save/load).

        Raises:
            ValueError: naming what does not match.
        """
        if not isinstance(state_dict, dict) or set(state_dict) != {"state", "param_groups"}:
            raise ValueError("load_state_dict: expected a dict with keys 'state' and 'param_groups'")
        saved_groups = state_dict["param_groups"]
        if (not isinstance(saved_groups, (list, tuple)) or len(saved_groups) != len(self.param_groups)
                or any(not isinstance(g, dict) or len(g.get("params", ())) != len(own["params"])
                       for g, own in zip(saved_groups, self.param_groups))):
            raise ValueError("load_state_dict: the saved param_groups do not match this optimizer's "
                             "(number of groups or of parameters per group)")
        by_index: dict[int, Tensor] = {}
        new_groups = []
        for gi, (saved, own) in enumerate(zip(saved_groups, self.param_groups)):
            missing = sorted(set(self.defaults) - set(saved))
            if missing:
                raise ValueError(f"load_state_dict: param_groups[{gi}] lacks {missing}: is it the state_dict of "
                                 f"another kind of optimizer than {type(self).__name__}?")
            group = {**{k: copy.deepcopy(v) for k, v in saved.items() if k != "params"}, "params": own["params"]}
            try:
                self._check_group(group)
            except (TypeError, ValueError) as err:
                raise ValueError(f"load_state_dict: param_groups[{gi}]: {err}") from None
            new_groups.append(group)
            by_index.update(zip(saved["params"], own["params"]))
        new_state = {}
        saved_state = state_dict["state"]
        if not isinstance(saved_state, dict):
            raise ValueError("load_state_dict: 'state' must be a dict")
        group_of = {id(p): g for g in new_groups for p in g["params"]}
        for key, entry in saved_state.items():
            p = by_index.get(int(key)) if isinstance(key, (int, np.integer, str)) and str(key).isdigit() else None
            if p is None:
                raise ValueError(f"load_state_dict: state for unknown parameter index {key!r}")
            new_state[p] = self._checked_state(entry, p, group_of[id(p)], key)
        self.param_groups = new_groups
        self.state = new_state

    def _checked_state(self, entry: Any, p: Tensor, group: dict, key: Any) -> dict:
        """One parameter's saved state, checked (keys, shapes, finite floats, a non-negative step) and copied
        onto the parameter's device in its dtype."""
        if not isinstance(entry, dict):
            raise ValueError(f"load_state_dict: state[{key!r}] must be a dict")
        arrays = self._state_arrays(group)
        optional = self._optional_state_arrays(group)
        needs_step = "step" in self._state_scalars()
        expected = set(arrays) | ({"step"} if needs_step else set())
        unknown = set(entry) - expected - set(optional)
        missing = expected - set(entry)
        if entry and (missing or unknown):
            raise ValueError(f"load_state_dict: state[{key!r}] has keys {sorted(entry)}; {type(self).__name__} "
                             f"keeps {sorted(expected | set(optional))}: is it another optimizer's state?")
        out: dict = {}
        xp = array_module(p._data)
        for name, value in entry.items():
            if value is None and name in optional:
                continue
            if name == "step":
                out["step"] = int(check_real(f"state[{key!r}]['step']", value, minimum=0.0))
                continue
            arr = np.asarray(value.get() if hasattr(value, "get") else value)
            if arr.shape != p.shape or arr.dtype.kind not in "fiu":
                raise ValueError(f"load_state_dict: state[{key!r}][{name!r}] has shape {arr.shape} and dtype "
                                 f"{arr.dtype}; the parameter has shape {p.shape}")
            out[name] = xp.asarray(arr.astype(p.dtype))
        return out

    def _optional_state_arrays(self, group: dict) -> tuple[str, ...]:
        return ()

    def _state_scalars(self) -> tuple[str, ...]:
        return ("step",)


__all__ = ["Optimizer", "check_number", "check_flag", "check_betas"]
