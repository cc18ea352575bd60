"""Module and Parameter: torch.nn's bookkeeping (registration, dotted names, state_dict, modes)."""
from __future__ import annotations

from collections import OrderedDict
from typing import Any, Callable, Iterator, NamedTuple

import numpy as np

from minigrad import devices
from minigrad._promotion import as_array
from minigrad._validation import TensorError
from minigrad.devices import move_array
from minigrad.tensor import HookHandle, Tensor


class StateDictKeyError(TensorError, KeyError):
    """load_state_dict with missing or unexpected keys: torch's RuntimeError, and a KeyError too."""


class IncompatibleKeys(NamedTuple):
    """What load_state_dict returns (torch's `_IncompatibleKeys`): the keys it did not find, and those it ignored."""
    missing_keys: list
    unexpected_keys: list


class Parameter(Tensor):
    """A leaf tensor that a Module registers as one of its parameters. Takes an ndarray or a Tensor."""

    def __init__(self, data: Any, requires_grad: bool = True) -> None:
        super().__init__(as_array(data), requires_grad=requires_grad)

    def __repr__(self) -> str:
        return "Parameter containing:\n" + super().__repr__()


def zero_grads_(params: Any, set_to_none: bool = True) -> None:
    """Clear the gradients of `params`: a GradBuffer view is zeroed in place (never dropped), any other grad
    set to None or, with set_to_none=False, zeroed in place. Every array to be written is checked first, so
    a read-only gradient raises before any gradient is cleared.

    A GradBuffer's pending clip coefficient (see grad_buffer.py) is dropped when all its members are cleared
    here, and applied first otherwise, so that the members left alone keep their clipped values."""
    params = list(params)
    for i, p in enumerate(params):
        target = p._grad_view if p._grad_view is not None else (None if set_to_none or p._grad is None
                                                                 else p._grad._data)
        if isinstance(target, np.ndarray) and not target.flags.writeable:
            raise ValueError(f"zero_grad: the gradient of parameter {i} is read-only; no gradient was cleared")
    buffers = {id(p._grad_buffer): p._grad_buffer for p in params if p._grad_buffer is not None}
    if buffers:
        cleared = {id(p) for p in params}
        for buf in buffers.values():
            buf.before_clearing(cleared)
    for p in params:
        if p._grad_view is not None:
            p._grad_view[...] = 0
            p._set_grad_array(p._grad_view)
        elif set_to_none:
            p._grad = None
        elif p._grad is not None:
            p._grad._data[...] = 0


class Module:
    """Base class: assign Parameters and Modules as attributes and they are found by `parameters()`."""

    def __init__(self) -> None:
        object.__setattr__(self, "_parameters", OrderedDict())
        object.__setattr__(self, "_modules", OrderedDict())
        object.__setattr__(self, "_buffers", OrderedDict())
        object.__setattr__(self, "_non_persistent", set())
        object.__setattr__(self, "_forward_hooks", [])
        object.__setattr__(self, "_forward_pre_hooks", [])
        object.__setattr__(self, "training", True)

    def __setattr__(self, name: str, value: Any) -> None:
        if "_parameters" not in self.__dict__:
            raise AttributeError(f"{type(self).__name__}.__init__ must call super().__init__() "
                                 f"before assigning {name!r}")
        # a replaced parameter or module keeps its place in the order (torch's): popped only when its kind changes
        if not isinstance(value, Parameter):
            self._parameters.pop(name, None)
        if not isinstance(value, Module):
            self._modules.pop(name, None)
        if isinstance(value, Parameter):
            self._parameters[name] = value
        elif isinstance(value, Module):
            self._modules[name] = value
        elif name in self._buffers:
            if value is not None and not isinstance(value, Tensor):
                raise TypeError(f"cannot assign {type(value).__name__} as buffer {name!r} (a Tensor or None)")
            self._buffers[name] = value
        object.__setattr__(self, name, value)

    def __delattr__(self, name: str) -> None:
        self._parameters.pop(name, None)
        self._modules.pop(name, None)
        self._buffers.pop(name, None)
        object.__delattr__(self, name)

    def register_buffer(self, name: str, tensor: Tensor | None, persistent: bool = True) -> None:
        """A tensor that belongs to the module's state but is not a parameter (running statistics, masks): moved by
        `to()`, saved by `state_dict()` unless `persistent=False`."""
        if not isinstance(name, str) or not name or "." in name:
            raise KeyError(f"buffer name must be a non-empty string without '.', got {name!r}")
        if name in self._parameters or name in self._modules:
            raise KeyError(f"attribute {name!r} already exists")
        if tensor is not None and not isinstance(tensor, Tensor):
            raise TypeError(f"cannot assign {type(tensor).__name__} as buffer {name!r} (a Tensor or None)")
        self._buffers[name] = tensor
        (self._non_persistent.discard if persistent else self._non_persistent.add)(name)
        object.__setattr__(self, name, tensor)

    def named_buffers(self, prefix: str = "", recurse: bool = True) -> Iterator[tuple[str, Tensor]]:
        modules = self.named_modules(prefix) if recurse else iter([(prefix, self)])
        for mod_name, module in modules:
            for name, buf in module._buffers.items():
                if buf is not None:
                    yield (f"{mod_name}.{name}" if mod_name else name), buf

    def buffers(self, recurse: bool = True) -> Iterator[Tensor]:
        return (b for _, b in self.named_buffers(recurse=recurse))

    def named_children(self) -> Iterator[tuple[str, "Module"]]:
        return iter(self._modules.items())

    def apply(self, fn: Any) -> "Module":
        """Call fn(module) on every submodule (children first) and then on this one, as torch's Module.apply."""
        for child in self._modules.values():
            child.apply(fn)
        fn(self)
        return self

    def requires_grad_(self, requires_grad: bool = True) -> "Module":
        for p in self.parameters():
            p.requires_grad_(requires_grad)
        return self

    def register_parameter(self, name: str, param: Parameter | None) -> None:
        """Register `param` under `name`; None records a parameter that is absent (as bias=False does)."""
        if param is None:
            self._parameters.pop(name, None)
            object.__setattr__(self, name, None)
        else:
            setattr(self, name, param)

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError(f"{type(self).__name__} has no forward()")

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if not (self._forward_pre_hooks or self._forward_hooks):
            return self.forward(*args, **kwargs)
        for hook in list(self._forward_pre_hooks):
            changed = hook(self, args)
            if changed is not None:
                args = changed if isinstance(changed, tuple) else (changed,)
        out = self.forward(*args, **kwargs)
        for hook in list(self._forward_hooks):
            changed = hook(self, args, out)
            if changed is not None:
                out = changed
        return out

    def register_forward_pre_hook(self, hook: Callable) -> HookHandle:
        """hook(module, args) before each forward; a non-None result replaces the positional arguments."""
        self._forward_pre_hooks.append(hook)
        return HookHandle(self._forward_pre_hooks, hook)

    def register_forward_hook(self, hook: Callable) -> HookHandle:
        """hook(module, args, output) after each forward; a non-None result replaces the output."""
        self._forward_hooks.append(hook)
        return HookHandle(self._forward_hooks, hook)

    def add_module(self, name: str, module: "Module") -> None:
        """Register `module` as the child `name` (torch's add_module)."""
        if not isinstance(name, str) or not name or "." in name:
            raise KeyError(f"module name must be a non-empty string without '.', got {name!r}")
        if not isinstance(module, Module):
            raise TypeError(f"{type(module).__name__} is not a Module subclass")
        setattr(self, name, module)

    register_module = add_module

    def get_submodule(self, target: str) -> "Module":
        """The submodule at the dotted path `target` ("" is this module)."""
        module = self
        for part in target.split(".") if target else []:
            child = module._modules.get(part)
            if child is None:
                raise AttributeError(f"{type(module).__name__} has no attribute `{part}`")
            module = child
        return module

    def get_parameter(self, target: str) -> "Parameter":
        """The parameter at the dotted path `target`."""
        owner, _, name = target.rpartition(".")
        module = self.get_submodule(owner)
        if name not in module._parameters:
            raise AttributeError(f"{type(module).__name__} has no parameter `{name}`")
        return module._parameters[name]

    # ----- traversal ----------------------------------------------------------------------------------
    def named_modules(self, prefix: str = "") -> Iterator[tuple[str, "Module"]]:
        stack = [(prefix, self)]
        seen: set[int] = set()
        while stack:
            name, module = stack.pop(0)
            if id(module) in seen:
                continue
            seen.add(id(module))
            yield name, module
            stack[0:0] = [(f"{name}.{k}" if name else k, m) for k, m in module._modules.items()]

    def modules(self) -> Iterator["Module"]:
        return (m for _, m in self.named_modules())

    def children(self) -> Iterator["Module"]:
        return iter(self._modules.values())

    def named_parameters(self, prefix: str = "", recurse: bool = True) -> Iterator[tuple[str, Parameter]]:
        seen: set[int] = set()
        modules = self.named_modules(prefix) if recurse else iter([(prefix, self)])
        for mod_name, module in modules:
            for name, param in module._parameters.items():
                if id(param) not in seen:
                    seen.add(id(param))
                    yield (f"{mod_name}.{name}" if mod_name else name), param

    def parameters(self, recurse: bool = True) -> Iterator[Parameter]:
        return (p for _, p in self.named_parameters(recurse=recurse))

    # ----- state --------------------------------------------------------------------------------------
    def _named_state(self) -> "OrderedDict[str, Tensor]":
        """The parameters and the persistent buffers by their dotted names: what a state_dict holds."""
        state = OrderedDict(self.named_parameters())
        for mod_name, module in self.named_modules():
            for name, buf in module._buffers.items():
                if buf is not None and name not in module._non_persistent:
                    state[f"{mod_name}.{name}" if mod_name else name] = buf
        return state

    def state_dict(self, *, destination: Any = None, prefix: str = "", keep_vars: bool = False) -> Any:
        """Parameter (and persistent buffer) name -> the tensor detached, sharing its memory (as torch's: copy it,
        e.g. with copy.deepcopy, to keep a snapshot); the tensors themselves with `keep_vars`. Names start with
        `prefix`; entries go into `destination` when given (and it is returned)."""
        out = OrderedDict() if destination is None else destination
        for name, t in self._named_state().items():
            out[prefix + name] = t if keep_vars else t.detach()
        return out

    def load_state_dict(self, state_dict: dict, strict: bool = True) -> IncompatibleKeys:
        """Copy arrays into the parameters and buffers. Every key and shape is checked before anything is
        written."""
        own = self._named_state()
        missing = [k for k in own if k not in state_dict]
        unexpected = [k for k in state_dict if k not in own]
        if strict and (missing or unexpected):
            raise StateDictKeyError(f"Error(s) in loading state_dict for {type(self).__name__}: missing keys "
                                    f"{missing}, unexpected keys {unexpected}")
        incoming = {}
        for name, value in state_dict.items():
            if name not in own:
                continue
            try:
                arr = as_array(value)
            except (TypeError, ValueError) as err:
                raise TypeError(f"load_state_dict: {name!r} is not an array of numbers ({err})") from None
            if arr.dtype.kind not in "biuf":
                raise TypeError(f"load_state_dict: {name!r} has dtype {arr.dtype}; a parameter needs numbers")
            if arr.shape != own[name].shape:
                raise ValueError(f"load_state_dict: {name!r} has shape {arr.shape} in the state_dict "
                                 f"but {own[name].shape} in the model")
            if isinstance(own[name]._data, np.ndarray) and not own[name]._data.flags.writeable:
                raise ValueError(f"load_state_dict: parameter {name!r} is read-only")
            incoming[name] = arr
        for name, arr in incoming.items():  # every entry checked: from here on nothing can fail
            p = own[name]
            p._data[...] = move_array(arr.astype(p.dtype), p.device)
            p._versions[0] += 1
        return IncompatibleKeys(missing, unexpected)

    def train(self, mode: bool = True) -> "Module":
        for m in self.modules():
            object.__setattr__(m, "training", mode)
        return self

    def eval(self) -> "Module":
        return self.train(False)

    def zero_grad(self, set_to_none: bool = True) -> None:
        zero_grads_(self.parameters(), set_to_none)

    def _apply_to_parameters(self, fn: Any, floating_buffers_only: bool = False) -> "Module":
        for p in self.parameters():
            p._data = fn(p._data)
            if p._settled_grad() is not None:
                p._grad._data = fn(p._grad._data)
            p._grad_view = p._grad_buffer = None
        for buf in self.buffers():
            if not floating_buffers_only or buf.dtype.kind == "f":
                buf._data = fn(buf._data)
        return self

    def double(self) -> "Module":
        return self._apply_to_parameters(lambda a: a.astype(np.float64), floating_buffers_only=True)

    def float(self) -> "Module":
        return self._apply_to_parameters(lambda a: a.astype(np.float32), floating_buffers_only=True)

    def half(self) -> "Module":
        return self._apply_to_parameters(lambda a: a.astype(np.float16), floating_buffers_only=True)

    def cpu(self) -> "Module":
        return self.to("cpu")

    def cuda(self, device: Any = None) -> "Module":
        """Every parameter and buffer moved to the CUDA device (CuPy arrays; one device: `device` is accepted)."""
        return self.to("cuda")

    def to(self, *args: Any, device: Any = None, dtype: Any = None, non_blocking: bool = False) -> "Module":
        """Move every parameter and buffer to a device ("cpu" or "cuda") and/or cast the floating ones to a
        floating dtype, in place (Parameters keep their identity): to(device), to(dtype), to(device, dtype),
        to(tensor), as torch's."""
        for arg in args:
            if isinstance(arg, Tensor):
                device, dtype = arg.device, arg.dtype
            elif isinstance(arg, str):
                device = arg
            else:
                dtype = arg
        if dtype is not None:
            dtype = np.dtype(dtype)
            if dtype.kind != "f":
                raise TypeError(f"nn.Module.to only accepts floating point dtypes, but got desired dtype={dtype}")
        if device is None and dtype is None:
            return self
        if device is not None:
            device = str(devices.device(device))  # checked before anything moves

        def convert(a: Any) -> Any:
            a = a if device is None else move_array(a, device)
            return a.astype(dtype) if dtype is not None and a.dtype.kind == "f" else a

        return self._apply_to_parameters(convert)

    def __repr__(self) -> str:
        inner = "".join(f"\n  ({k}): " + repr(m).replace("\n", "\n  ") for k, m in self._modules.items())
        extra = self.extra_repr()
        return f"{type(self).__name__}({extra}{inner}{chr(10) if inner else ''})"

    def extra_repr(self) -> str:
        return ""


class _NumberedModules(Module):
    """What Sequential and ModuleList share: children named 0, 1, ... in order, indexed, sliced and iterated."""

    def _of(self, modules: list) -> "_NumberedModules":
        raise NotImplementedError

    def append(self, module: Module) -> "_NumberedModules":
        self.add_module(str(len(self._modules)), module)
        return self

    def extend(self, modules: Any) -> "_NumberedModules":
        for m in modules:
            self.append(m)
        return self

    def __getitem__(self, index: Any) -> Any:
        """The module at `index`, or a container of the same kind holding a slice of them."""
        items = list(self._modules.values())
        return self._of(items[index]) if isinstance(index, slice) else items[index]

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self) -> Iterator[Module]:
        return iter(self._modules.values())


class Sequential(_NumberedModules):
    """Modules applied one after another."""

    def __init__(self, *modules: Module) -> None:
        super().__init__()
        self.extend(modules)

    def _of(self, modules: list) -> "Sequential":
        return Sequential(*modules)

    def forward(self, x: Any) -> Any:
        for m in self._modules.values():
            x = m(x)
        return x


class ModuleList(_NumberedModules):
    """Modules held in a list, each registered (its parameters are the container's), as torch.nn.ModuleList."""

    def __init__(self, modules: Any = None) -> None:
        super().__init__()
        if modules is not None:
            self.extend(modules)

    def _of(self, modules: list) -> "ModuleList":
        return ModuleList(modules)


class ModuleDict(Module):
    """Modules held by name, each registered, in insertion order (torch.nn.ModuleDict)."""

    def __init__(self, modules: Any = None) -> None:
        super().__init__()
        if modules is not None:
            self.update(modules)

    def __getitem__(self, key: str) -> Module:
        return self._modules[key]

    def __setitem__(self, key: str, module: Module) -> None:
        self.add_module(key, module)

    def __delitem__(self, key: str) -> None:
        delattr(self, key)

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self) -> Iterator[str]:
        return iter(self._modules)

    def __contains__(self, key: str) -> bool:
        return key in self._modules

    def keys(self) -> Any:
        return self._modules.keys()

    def values(self) -> Any:
        return self._modules.values()

    def items(self) -> Any:
        return self._modules.items()

    def update(self, modules: Any) -> None:
        for key, module in (modules.items() if hasattr(modules, "items") else modules):
            self[key] = module


def _as_parameter(value: Any) -> Any:
    """A Tensor that is not yet a Parameter becomes one (sharing its data), as torch's parameter containers do;
    anything else is kept as it is."""
    return Parameter(value) if isinstance(value, Tensor) and not isinstance(value, Parameter) else value


class ParameterList(Module):
    """Parameters held in a list, each registered under its index (a plain Tensor becomes a Parameter), as
    torch.nn.ParameterList."""

    def __init__(self, values: Any = None) -> None:
        super().__init__()
        object.__setattr__(self, "_size", 0)
        if values is not None:
            self.extend(values)

    def _index(self, index: int) -> str:
        if not -self._size <= index < self._size:
            raise IndexError(f"index {index} is out of range")
        return str(index % self._size)

    def __getitem__(self, index: Any) -> Any:
        if isinstance(index, slice):
            return ParameterList([self[i] for i in range(self._size)[index]])
        return getattr(self, self._index(index))

    def __setitem__(self, index: int, value: Any) -> None:
        setattr(self, self._index(index), _as_parameter(value))

    def __len__(self) -> int:
        return self._size

    def __iter__(self) -> Iterator[Any]:
        return (self[i] for i in range(self._size))

    def append(self, value: Any) -> "ParameterList":
        object.__setattr__(self, "_size", self._size + 1)
        self[self._size - 1] = value
        return self

    def extend(self, values: Any) -> "ParameterList":
        for v in values:
            self.append(v)
        return self


class ParameterDict(Module):
    """Parameters held by name in insertion order, each registered (a plain Tensor becomes a Parameter), as
    torch.nn.ParameterDict (a missing key raises AttributeError, as torch's does)."""

    def __init__(self, parameters: Any = None) -> None:
        super().__init__()
        object.__setattr__(self, "_keys", {})
        if parameters is not None:
            self.update(parameters)

    def __getitem__(self, key: str) -> Any:
        if key not in self._keys:
            raise AttributeError(f"'ParameterDict' object has no attribute '{key}'")
        return getattr(self, key)

    def __setitem__(self, key: str, value: Any) -> None:
        if not isinstance(key, str):
            raise TypeError(f"parameter name should be a string, got {type(key).__name__}")
        self._keys[key] = None
        setattr(self, key, _as_parameter(value))

    def __delitem__(self, key: str) -> None:
        del self._keys[key]
        delattr(self, key)

    def __len__(self) -> int:
        return len(self._keys)

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._keys))

    def __contains__(self, key: str) -> bool:
        return key in self._keys

    def keys(self) -> Any:
        return list(self._keys)

    def values(self) -> Any:
        return [self[k] for k in self._keys]

    def items(self) -> Any:
        return [(k, self[k]) for k in self._keys]

    def get(self, key: str, default: Any = None) -> Any:
        return self[key] if key in self._keys else default

    def pop(self, key: str) -> Any:
        value = self[key]
        del self[key]
        return value

    def update(self, parameters: Any) -> None:
        for key, value in (parameters.items() if hasattr(parameters, "items") else parameters):
            self[key] = value
