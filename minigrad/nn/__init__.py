"""Neural-network building blocks with torch.nn's names."""
from minigrad.nn import functional, init, utils
from minigrad.nn.activation import (
                                     ELU,
                                     GELU,
                                     Dropout,
                                     Flatten,
                                     Hardtanh,
                                     Identity,
                                     LeakyReLU,
                                     LogSigmoid,
                                     LogSoftmax,
                                     ReLU,
                                     Sigmoid,
                                     SiLU,
                                     Softmax,
                                     Softplus,
                                     Tanh,
)
from minigrad.nn.layers import Embedding, LayerNorm, Linear
from minigrad.nn.losses import (
                                     BCELoss,
                                     BCEWithLogitsLoss,
                                     CrossEntropyLoss,
                                     KLDivLoss,
                                     L1Loss,
                                     MSELoss,
                                     NLLLoss,
                                     SmoothL1Loss,
)
from minigrad.nn.module import Module, ModuleDict, ModuleList, Parameter, ParameterDict, ParameterList, Sequential
from minigrad.nn.rnn import GRU, LSTM, RNN, GRUCell, LSTMCell, RNNCell
from minigrad.nn.utils import rnn as _rnn_utils  # noqa: F401  (makes nn.utils.rnn reachable)

__all__ = ["Module", "ModuleList", "ModuleDict", "Parameter", "ParameterList", "ParameterDict", "Sequential", "Linear",
           "Embedding", "LayerNorm", "RNN", "RNNCell", "LSTM", "LSTMCell", "GRU", "GRUCell", "Tanh", "ReLU",
           "LeakyReLU", "ELU", "Softplus", "SiLU", "GELU", "LogSigmoid", "Hardtanh", "Flatten", "Sigmoid", "Identity",
           "Dropout", "Softmax", "LogSoftmax", "CrossEntropyLoss", "NLLLoss", "MSELoss", "L1Loss", "SmoothL1Loss",
           "BCELoss", "BCEWithLogitsLoss", "KLDivLoss", "functional", "init", "utils"]
