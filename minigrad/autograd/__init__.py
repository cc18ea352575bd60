"""Autograd, as torch.autograd: grad mode (grad_mode.py), Function and the graph it records, views and in-place
rebasing (function.py), and the backward engine with `grad` (engine.py)."""
from typing import Any

from minigrad.autograd.engine import IndexGrad, backward, grad, scatter_add
from minigrad.autograd.function import (
                                        AccumulateGrad,
                                        Context,
                                        CopySlices,
                                        Function,
                                        TensorBase,
                                        apply_inplace,
                                        check_inplace,
                                        check_overlap,
                                        check_versions,
                                        leaf_node,
                                        refresh_view,
                                        replay_view,
                                        unwrap,
)
from minigrad.autograd.grad_mode import enable_grad, inference_mode, is_grad_enabled, no_grad, set_grad_enabled


def Variable(data: TensorBase, requires_grad: bool = False, volatile: Any = None) -> TensorBase:  # noqa: N802
    """torch.autograd.Variable, kept by torch for scripts older than tensors with autograd: a new leaf sharing
    `data`'s memory, requiring grad when asked (`volatile` is accepted and ignored, as in torch)."""
    if not isinstance(data, TensorBase):
        raise TypeError(f"Variable data has to be a tensor, but got {type(data).__name__}")
    return data.detach().requires_grad_(requires_grad)


__all__ = ["AccumulateGrad", "Context", "CopySlices", "Function", "TensorBase", "apply_inplace", "check_inplace",
           "check_overlap", "check_versions", "leaf_node", "refresh_view", "replay_view", "unwrap", "enable_grad",
           "inference_mode", "is_grad_enabled", "no_grad", "set_grad_enabled", "IndexGrad", "backward", "grad",
           "scatter_add", "Variable"]
