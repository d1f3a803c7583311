"""Training, the public names: node classification (``run``, ``fit``, ``build_for``) and the loop's pieces.

This module is the façade that scripts, tests and the README import; the code lives below it:
``loop`` (best-epoch tracking, one step, evaluation, logging: shared by every task), ``minibatch``
(sampled mini-batches) and ``tasks`` (one file per task; ``tasks.node`` is today's only one).
A model's hyper-parameters are class attributes of the model (``model_defaults``,
``train_defaults``, ``devices``; see ``gnn_scratch.models``).
"""
from __future__ import annotations

from types import MappingProxyType

from .loop import (BestEpoch, Result, epoch_line, evaluate, input_is_data, input_layer, model_dtype,
                   prepare_features, train_step)
from .models import MODELS
from .tasks import TASKS, get_task
from .tasks.node import NodeClassification, build_for, fit, run, to_device_inputs

# Read-only view, by model name, of the hyper-parameters ``run`` starts from (the class attributes
# merged): kept for callers of the old ``train.DEFAULTS`` table; the model classes are the source.
DEFAULTS = MappingProxyType({name: MappingProxyType({**cls.model_defaults, **cls.train_defaults})
                             for name, cls in MODELS.items()})

__all__ = ["BestEpoch", "DEFAULTS", "NodeClassification", "Result", "TASKS", "build_for", "epoch_line", "evaluate",
           "fit", "get_task", "input_is_data", "input_layer", "model_dtype", "prepare_features", "run", "to_device_inputs",
           "train_step"]
