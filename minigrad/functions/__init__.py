"""Every differentiable op as a Function, forward and backward side by side, grouped by kind."""
from minigrad.functions.broadcast import unbroadcast
from minigrad.functions.elementwise import (
                                            Abs,
                                            Add,
                                            Cast,
                                            Clamp,
                                            Clone,
                                            Div,
                                            Exp,
                                            Log,
                                            Mul,
                                            Neg,
                                            Pow,
                                            Relu,
                                            Sigmoid,
                                            Sub,
                                            Tanh,
                                            ToDevice,
                                            sigmoid,
)
from minigrad.functions.linalg import MatMul
from minigrad.functions.losses import BCEWithLogits
from minigrad.functions.reductions import LogSoftmax, MaxAll, MaxDim, Softmax, Sum
from minigrad.functions.shape import Cat, EmbeddingLookup, GetItem, Permute, Reshape, Scatter, Stack

__all__ = ["unbroadcast", "Abs", "Add", "Cast", "Clamp", "Clone", "Div", "Exp", "Log", "Mul", "Neg", "Pow", "Relu",
           "Sigmoid", "Sub", "Tanh", "ToDevice", "sigmoid", "MatMul", "BCEWithLogits", "LogSoftmax", "MaxAll",
           "MaxDim", "Softmax", "Sum", "Cat", "EmbeddingLookup", "GetItem", "Permute", "Reshape", "Scatter", "Stack"]
