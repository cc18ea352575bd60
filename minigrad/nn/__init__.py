"""Neural-network building blocks with torch.nn's names."""
from minigrad.nn import functional, utils
from minigrad.nn.activation import Dropout, Identity, ReLU, Sigmoid, Tanh
from minigrad.nn.layers import Embedding, Linear
from minigrad.nn.losses import BCEWithLogitsLoss, CrossEntropyLoss, MSELoss
from minigrad.nn.module import Module, Parameter, Sequential
from minigrad.nn.rnn import RNN, RNNCell
from minigrad.nn.utils import rnn as _rnn_utils  # noqa: F401  (makes nn.utils.rnn reachable)

__all__ = ["Module", "Parameter", "Sequential", "Linear", "Embedding", "RNN", "RNNCell", "Tanh", "ReLU", "Sigmoid",
           "Identity", "Dropout", "CrossEntropyLoss", "MSELoss", "BCEWithLogitsLoss", "functional", "utils"]
