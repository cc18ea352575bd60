"""Neural-network building blocks with torch.nn's names."""
from minigrad.nn import functional, utils
from minigrad.nn.layers import Embedding, Linear
from minigrad.nn.losses import BCEWithLogitsLoss, CrossEntropyLoss, MSELoss
from minigrad.nn.module import Module, Parameter, Sequential

__all__ = ["Module", "Parameter", "Sequential", "Linear", "Embedding", "CrossEntropyLoss",
           "MSELoss", "BCEWithLogitsLoss", "functional", "utils"]
