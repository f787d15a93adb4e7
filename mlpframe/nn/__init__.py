"""Layers, losses and models, each with a hand-written forward and backward."""

from mlpframe.nn.activations import ELU, GELU, ACTIVATIONS, LeakyReLU, ReLU, Sigmoid, SiLU, Tanh, get_activation
from mlpframe.nn.dropout import Dropout
from mlpframe.nn.gru import GRU
from mlpframe.nn.linear import Linear
from mlpframe.nn.losses import CrossEntropyLoss, MSELoss
from mlpframe.nn.lstm import LSTM
from mlpframe.nn.mlp import MLP
from mlpframe.nn.module import Identity, Module, Parameter, Sequential
from mlpframe.nn.normalization import BatchNorm1d, LayerNorm
from mlpframe.nn.recurrent import LastStep
from mlpframe.nn.softmax import Softmax

__all__ = [
    "ACTIVATIONS", "ELU", "GELU", "MLP", "BatchNorm1d", "CrossEntropyLoss", "Dropout", "Identity",
    "LayerNorm", "LeakyReLU", "Linear", "MSELoss", "Module", "Parameter", "ReLU", "Sequential",
    "SiLU", "Sigmoid", "Softmax", "Tanh", "get_activation",
    "GRU", "LSTM", "LastStep",
]
