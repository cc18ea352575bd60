"""Linear, Embedding and LayerNorm, initialised as torch initialises them."""
from __future__ import annotations

import math
from typing import Any

import numpy as np

from minigrad._promotion import default_dtype
from minigrad._validation import check_flag, check_real
from minigrad.autograd import no_grad
from minigrad.nn import functional as F
from minigrad.nn.module import Module, Parameter
from minigrad.tensor import Tensor


class Linear(Module):
    """y = x Wᵀ + b; W (out, in) and b (out,) from U(-1/√in, 1/√in) (torch's kaiming_uniform with a=√5)."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True, device: Any = None,
                 dtype: Any = None) -> None:
        super().__init__()
        for name, n in (("in_features", in_features), ("out_features", out_features)):
            if not isinstance(n, int) or n < 0:
                raise ValueError(f"{name} must be a non-negative int, got {n!r}")
        self.in_features, self.out_features = in_features, out_features
        dtype = default_dtype(dtype)
        self.weight = Parameter(np.empty((out_features, in_features), dtype))
        self.register_parameter("bias", Parameter(np.empty(out_features, dtype)) if bias else None)
        self.reset_parameters()
        self.to(device=device)

    def reset_parameters(self) -> None:
        """Draw the weight and bias again, in place."""
        bound = 1 / math.sqrt(self.in_features) if self.in_features > 0 else 0.0
        with no_grad():
            for p in self.parameters(recurse=False):
                p.uniform_(-bound, bound)

    def forward(self, input: Tensor) -> Tensor:
        return F.linear(input, self.weight, self.bias)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}"


class Embedding(Module):
    """A lookup table (num_embeddings, embedding_dim) from N(0, 1); the padding row starts at zero.

    Args as torch.nn.Embedding's: padding_idx (its row gets no gradient), max_norm and norm_type (rows looked up
    are renormalised in place to at most max_norm first), scale_grad_by_freq (each row's gradient divided by
    how often the batch looks it up), sparse (accepted; the gradient is dense), device, dtype.
    """

    def __init__(self, num_embeddings: int, embedding_dim: int, padding_idx: int | None = None,
                 max_norm: float | None = None, norm_type: float = 2.0, scale_grad_by_freq: bool = False,
                 sparse: bool = False, _weight: Any = None, _freeze: bool = False, device: Any = None,
                 dtype: Any = None) -> None:
        super().__init__()
        if padding_idx is not None:
            if not -num_embeddings <= padding_idx < num_embeddings:
                raise ValueError(f"padding_idx {padding_idx} is out of range for {num_embeddings} embeddings")
            padding_idx %= num_embeddings
        self.num_embeddings, self.embedding_dim, self.padding_idx = num_embeddings, embedding_dim, padding_idx
        self.max_norm = None if max_norm is None else check_real("max_norm", max_norm, minimum=0.0)
        self.norm_type = check_real("norm_type", norm_type)
        check_flag("scale_grad_by_freq", scale_grad_by_freq)
        check_flag("sparse", sparse)
        self.scale_grad_by_freq, self.sparse = bool(scale_grad_by_freq), bool(sparse)
        if _weight is not None:  # given weights (from_pretrained): used as they are, the padding row too
            if tuple(_weight.shape) != (num_embeddings, embedding_dim):
                raise ValueError("Shape of weight does not match num_embeddings and embedding_dim")
            self.weight = Parameter(_weight, requires_grad=not _freeze)
        else:
            self.weight = Parameter(np.empty((num_embeddings, embedding_dim), default_dtype(dtype)))
            self.reset_parameters()
        self.to(device=device)

    def reset_parameters(self) -> None:
        """Draw the weight again from N(0, 1), in place; the padding row zero."""
        with no_grad():
            self.weight.normal_()
            if self.padding_idx is not None:
                self.weight[self.padding_idx] = 0

    @classmethod
    def from_pretrained(cls, embeddings: Tensor, freeze: bool = True, padding_idx: int | None = None,
                        max_norm: float | None = None, norm_type: float = 2.0, scale_grad_by_freq: bool = False,
                        sparse: bool = False) -> "Embedding":
        """An Embedding whose weight is `embeddings` (2-D), frozen (no gradient) unless `freeze` is False."""
        if embeddings.ndim != 2:
            raise ValueError("Embeddings parameter is expected to be 2-dimensional")
        return cls(*embeddings.shape, padding_idx=padding_idx, max_norm=max_norm, norm_type=norm_type,
                   scale_grad_by_freq=scale_grad_by_freq, sparse=sparse, _weight=embeddings, _freeze=freeze)

    def forward(self, input: Any) -> Tensor:
        return F.embedding(input, self.weight, self.padding_idx, self.max_norm, self.norm_type,
                           self.scale_grad_by_freq, self.sparse)

    def extra_repr(self) -> str:
        return f"{self.num_embeddings}, {self.embedding_dim}"


class LayerNorm(Module):
    """Normalises over the last dims (`normalized_shape`), then an elementwise affine map (weight 1, bias 0)."""

    def __init__(self, normalized_shape: Any, eps: float = 1e-5, elementwise_affine: bool = True, bias: bool = True,
                 device: Any = None, dtype: Any = None) -> None:
        super().__init__()
        self.normalized_shape = tuple(int(n) for n in F.normalized_shape_of(normalized_shape))
        self.eps, self.elementwise_affine = eps, elementwise_affine
        affine, dtype = elementwise_affine, default_dtype(dtype)
        self.register_parameter("weight", Parameter(np.empty(self.normalized_shape, dtype)) if affine else None)
        self.register_parameter("bias", Parameter(np.empty(self.normalized_shape, dtype)) if affine and bias else None)
        self.reset_parameters()
        self.to(device=device)

    def reset_parameters(self) -> None:
        """The weight back to ones and the bias to zeros, in place."""
        with no_grad():
            for p, value in ((self.weight, 1), (self.bias, 0)):
                if p is not None:
                    p.fill_(value)

    def forward(self, input: Tensor) -> Tensor:
        return F.layer_norm(input, self.normalized_shape, self.weight, self.bias, self.eps)

    def extra_repr(self) -> str:
        return f"{self.normalized_shape}, eps={self.eps}, elementwise_affine={self.elementwise_affine}"
