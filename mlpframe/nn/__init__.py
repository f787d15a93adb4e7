"""Layers, losses and models, each with a hand-written forward and backward."""

from mlpframe.nn.activations import ELU, GELU, ACTIVATIONS, LeakyReLU, ReLU, Sigmoid, SiLU, Tanh, get_activation
from mlpframe.nn.cnn import CNN
from mlpframe.nn.conv import Conv1d, Conv2d
from mlpframe.nn.dropout import Dropout
from mlpframe.nn.flatten import Flatten
from mlpframe.nn.gru import GRU
from mlpframe.nn.linear import Linear
from mlpframe.nn.losses import CrossEntropyLoss, MSELoss
from mlpframe.nn.lstm import LSTM
from mlpframe.nn.mlp import MLP
from mlpframe.nn.module import Identity, Module, Parameter, Sequential
from mlpframe.nn.normalization import BatchNorm1d, BatchNorm2d, LayerNorm
from mlpframe.nn.pooling import AvgPool1d, AvgPool2d, GlobalAvgPool, MaxPool1d, MaxPool2d
from mlpframe.nn.recurrent import LastStep
from mlpframe.nn.softmax import Softmax

__all__ = [
    "ACTIVATIONS", "CNN", "ELU", "GELU", "GRU", "LSTM", "MLP", "AvgPool1d", "AvgPool2d", "BatchNorm1d", "BatchNorm2d",
    "Conv1d", "Conv2d", "CrossEntropyLoss", "Dropout", "Flatten", "GlobalAvgPool", "Identity", "LastStep", "LayerNorm",
    "LeakyReLU", "Linear", "MSELoss", "MaxPool1d", "MaxPool2d", "Module", "Parameter", "ReLU", "Sequential", "SiLU",
    "Sigmoid", "Softmax", "Tanh", "get_activation",
]
