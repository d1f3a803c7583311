"""Layers with explicit forward and backward passes."""
from .activations import ELU, LeakyReLU, ReLU
from .dropout import Dropout
from .gcn_conv import GCNConv
from .linear import Linear
from .loss import SoftmaxCrossEntropy, accuracy, log_softmax
from .module import BackwardBeforeForward, Module
from .sequential import Sequential

__all__ = ["Module", "BackwardBeforeForward", "Sequential", "Linear", "ReLU", "LeakyReLU", "ELU", "Dropout", "GCNConv",
           "SoftmaxCrossEntropy", "accuracy", "log_softmax"]
