"""The task base class and the registry of tasks by name (see ``gnn_scratch.tasks``).

A module of its own so that a task file imports it without importing the package that imports
every task file (no import circle).
"""
from __future__ import annotations

import inspect

TASKS = {}


class Task:
    """A training task; subclasses override every method (classmethods: a task holds no state).

    ``defaults`` holds the task's own training hyper-parameters with the values used when neither
    the model class (``train_defaults``) nor the caller sets them. Its keys are what
    ``split_hparams`` sends to the training loop; every other key is a model constructor argument.
    """

    name = None
    defaults = {}
    datasets = None             # the --dataset names the task takes (None: every one of data.DATASETS)
    default_dataset = "csbm"

    @classmethod
    def describe_data(cls, data):
        """One line saying what ``data`` holds (the command line prints it before training)."""
        return (f"{data.name}: {data.num_nodes} nodes, {data.graph.num_edges} edges, {data.num_features} features, "
                f"{data.num_classes} classes")

    @classmethod
    def summary_line(cls):
        """The first line of the class docstring: the task in one line (``train --help``)."""
        return (inspect.getdoc(cls) or cls.__name__).strip().splitlines()[0]

    @classmethod
    def add_arguments(cls, parser):
        """Add the task's own options to ``parser`` (an argparse parser or argument group)."""

    @classmethod
    def hparams_from_args(cls, args):
        """The hyper-parameters the parsed ``args`` set: {key: value}; None = not given (use the default)."""
        return {}

    @classmethod
    def split_hparams(cls, model_cls, hparams):
        """(model kwargs, training hyper-parameters, all of them) for ``model_cls`` under ``hparams``.

        All = the model's ``model_defaults`` and ``train_defaults``, then ``hparams`` (None values
        skipped). Training hyper-parameters = the task's ``defaults`` updated with the keys of all
        that the task owns; model kwargs = every other key (the constructor raises TypeError for an
        unknown one).
        """
        hp = {**model_cls.model_defaults, **model_cls.train_defaults}
        hp.update({k: v for k, v in hparams.items() if v is not None})
        model_kw = {k: v for k, v in hp.items() if k not in cls.defaults}
        train = {**cls.defaults, **{k: v for k, v in hp.items() if k in cls.defaults}}
        return model_kw, train, hp

    @classmethod
    def check(cls, model_cls, device, train, model_kw=None):
        """Raise ValueError (one line, naming the option) when the training hyper-parameters ``train`` cannot
        train ``model_cls`` on ``device``. The base class checks nothing."""

    @classmethod
    def validate(cls, model_name, device="cpu", hparams=None):
        """(model class, model kwargs, training hyper-parameters) of ``model_name`` under ``hparams``, checked
        by ``check`` without data: the command line calls it before it loads anything, ``run`` first."""
        from ..models import get_model_class      # models sit above this module's floor
        model_cls = get_model_class(model_name)
        model_kw, train, _ = cls.split_hparams(model_cls, hparams or {})
        cls.check(model_cls, device, train, model_kw)
        return model_cls, model_kw, train

    @classmethod
    def run(cls, model_name, data, runs=1, seed=0, log=None, device="cpu", interruptible=False, **hparams):
        """Train ``runs`` models (seeds seed, seed+1, ...); returns (summary dict, the last model).

        ``interruptible`` (the command line sets it): on KeyboardInterrupt after k >= 1 finished runs,
        return the summary of those k with ``interrupted=True`` and ``runs_requested``; with none
        finished, let the KeyboardInterrupt propagate.
        """
        raise NotImplementedError

    @classmethod
    def report(cls, summary):
        """One line for the command line from ``run``'s summary (the task's headline metric)."""
        raise NotImplementedError

    @classmethod
    def saved_metrics(cls, summary):
        """What ``--save`` stores beside the model from ``run``'s summary: {name: JSON value}."""
        return {}

    # --save: what it writes. A model file (.npz, read back by ``predict --load``) unless a task says otherwise.
    save_help = ("write the (last run's) trained model to FILE.npz (.npz added when missing; the folder must exist; "
                 "default: not saved)", "FILE[.npz]")

    @staticmethod
    def save_type(text):
        """The argparse type of --save: the path written (``tasks.options.model_output``)."""
        from . import options
        return options.model_output(text)

    @classmethod
    def save(cls, path, model, data, summary):
        """Write ``run``'s last model to ``path`` (``save_type``'s result); returns what was written and the noun."""
        from ..io import save_model
        return save_model(path, model, extra=dict(dataset=data.name, **cls.saved_metrics(summary))), "model"


def register_task(cls):
    """Add a ``Task`` subclass to the registry under ``cls.name``; returns the class.

    Raises TypeError for a class that is not a named ``Task``, ValueError when another class holds the name.
    """
    if not (isinstance(cls, type) and issubclass(cls, Task)) or not cls.name:
        raise TypeError(f"{cls!r} is not a Task subclass with a name")
    old = TASKS.get(cls.name, cls)
    if (old.__module__, old.__qualname__) != (cls.__module__, cls.__qualname__):   # a reload may re-register
        raise ValueError(f"task name {cls.name!r} is already registered by {old.__name__}")
    TASKS[cls.name] = cls
    return cls


def get_task(name):
    """The registered task class ``name``; ValueError naming the choices when there is none."""
    if name not in TASKS:
        raise ValueError(f"unknown task {name!r}; choose one of {sorted(TASKS)}")
    return TASKS[name]
