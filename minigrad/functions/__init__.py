"""Every differentiable op as a Function, forward and backward side by side, grouped by kind."""
from minigrad.functions.broadcast import unbroadcast
from minigrad.functions.elementwise import (
                                            Abs,
                                            Add,
                                            Cast,
                                            Clamp,
                                            Clone,
                                            Cos,
                                            Div,
                                            Exp,
                                            Extremum,
                                            Fill,
                                            Log,
                                            MaskedFill,
                                            Mul,
                                            Neg,
                                            Pow,
                                            Relu,
                                            Remainder,
                                            Rounding,
                                            Sigmoid,
                                            Sin,
                                            Sqrt,
                                            Sub,
                                            Tanh,
                                            ToDevice,
                                            TriangleMask,
                                            Where,
                                            sigmoid,
)
from minigrad.functions.linalg import Einsum, MatMul
from minigrad.functions.losses import BCEWithLogits
from minigrad.functions.reductions import Cumprod, Cumsum, LogSoftmax, MaxAll, MaxDim, Norm, Softmax, Sum
from minigrad.functions.shape import (
                                            Cat,
                                            EmbeddingLookup,
                                            Expand,
                                            Flip,
                                            Gather,
                                            GetItem,
                                            Permute,
                                            Place,
                                            Repeat,
                                            Reshape,
                                            Scatter,
                                            SetItem,
                                            Stack,
)

__all__ = ["unbroadcast", "Abs", "Add", "Cast", "Clamp", "Clone", "Cos", "Div", "Exp", "Extremum", "Fill", "Log",
           "MaskedFill", "Mul", "Neg", "Pow", "Relu", "Remainder", "Rounding", "Sigmoid", "Sin", "Sqrt", "Sub", "Tanh",
           "ToDevice", "TriangleMask", "Where", "sigmoid", "Einsum", "MatMul", "BCEWithLogits", "Cumprod", "Cumsum",
           "LogSoftmax", "MaxAll", "MaxDim", "Norm", "Softmax", "Sum", "Cat", "EmbeddingLookup", "Expand", "Flip",
           "Gather", "GetItem", "Permute", "Place", "Repeat", "Reshape", "Scatter", "SetItem", "Stack"]
