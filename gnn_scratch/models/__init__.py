"""Model registry: every model class registers itself with ``@register`` and carries its own defaults.

A registered class has
    name            the registry key (``--model NAME``, ``config["model"]`` of a saved model);
    model_defaults  constructor arguments the trainer passes unless told otherwise (the paper's values);
    train_defaults  the training loop's hyper-parameters the paper used with it (``lr``,
                    ``weight_decay``, ``epochs``, ``patience``), read by the task;
    devices         where it trains: ("cpu",) or ("cpu", "cuda") when every layer has a device path
                    (an option without one is refused, when ``Module.to`` moves the model, by its
                    layer's ``check_device_support()``);
and a docstring whose first line describes it in one line (``gnn-scratch train --help`` shows it).
A new model is a new file in this package, decorated with ``@register`` (from ``models.registry``)
and imported below.
"""
from .registry import MODELS, build_model, get_model_class, register, summary_line

# The built-in models register themselves when imported.
from .gcn import GCN
from .gat import GAT
from .sage import SAGE
from .fixed_point import FixedPoint
from .spectral import MLP, Cheb, FirstOrder, FirstOrderTerm, SingleParameter
from .deep import GCNII, DeepGAT, DeepGCN, DeepSAGE
from .gin import GIN
from .embedding import DeepWalkMethod, DGIMethod, LINEMethod, Node2VecMethod, SDNEMethod
from .temporal import A3TGCNForecaster, DCRNNForecaster, GConvGRUForecaster, GConvLSTMForecaster, TGCNForecaster
from .hetero import HAN, RGCN, HetGNNMethod, MetaPath2VecMethod
from .transformer import GPS, GraphTransformer, SBMGCN

__all__ = ["GCN", "GAT", "SAGE", "Cheb", "FirstOrder", "SingleParameter", "FirstOrderTerm", "MLP", "FixedPoint", "DeepGCN", "DeepGAT", "DeepSAGE", "GCNII", "GIN", "GConvGRUForecaster", "TGCNForecaster", "A3TGCNForecaster", "GConvLSTMForecaster", "DCRNNForecaster", "DeepWalkMethod", "Node2VecMethod", "LINEMethod", "SDNEMethod", "DGIMethod", "HAN", "RGCN", "MetaPath2VecMethod", "HetGNNMethod", "GraphTransformer", "GPS", "SBMGCN", "MODELS", "build_model", "get_model_class", "register", "summary_line"]
