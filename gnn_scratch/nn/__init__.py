"""Layers with explicit forward and backward passes."""
from .activations import ELU, LeakyReLU, ReLU
from .dropout import Dropout
from .conv import GATConv, GCNConv, SAGEConv
from .linear import Linear
from .lstm import LSTM
from .loss import SoftmaxCrossEntropy, accuracy, log_softmax
from .module import BackwardBeforeForward, Module
from .sequential import Sequential

__all__ = ["Module", "BackwardBeforeForward", "Sequential", "Linear", "ReLU", "LeakyReLU", "ELU", "Dropout", "GCNConv",
           "GATConv", "SAGEConv", "LSTM",
           "SoftmaxCrossEntropy", "accuracy", "log_softmax"]
