"""Layers, losses and models, each with a hand-written forward and backward."""

from mlpframe.nn.module import Identity, Module, Parameter, Sequential

__all__ = ["Identity", "Module", "Parameter", "Sequential"]
