"""The model registry: model classes by name, filled by the ``@register`` decorator (see ``gnn_scratch.models``).

A module of its own so that a model file imports it without importing the package that imports
every model file (no import circle).
"""
import inspect

MODELS = {}


def register(cls):
    """Add a model class to the registry; returns the class.

    Raises TypeError when the class lacks one of the attributes above or a ``model_defaults`` key is
    not an argument of its constructor (that default could never reach the model), ValueError when
    another class already holds the name.
    """
    for attr in ("name", "model_defaults", "train_defaults", "devices"):
        if not hasattr(cls, attr):
            raise TypeError(f"model class {cls.__name__} has no {attr!r} attribute (see gnn_scratch.models)")
    params = inspect.signature(cls.__init__).parameters
    unknown = sorted(set(cls.model_defaults) - set(params))
    if unknown:
        raise TypeError(f"{cls.__name__}.model_defaults names {unknown}, which its constructor does not take")
    old = MODELS.get(cls.name, cls)
    if (old.__module__, old.__qualname__) != (cls.__module__, cls.__qualname__):   # a reload may re-register
        raise ValueError(f"model name {cls.name!r} is already registered by {MODELS[cls.name].__name__}")
    MODELS[cls.name] = cls
    return cls


def get_model_class(name):
    """The registered class of model ``name``; ValueError naming the choices when there is none."""
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; choose one of {sorted(MODELS)}")
    return MODELS[name]


def build_model(name, **config):
    """The model ``name`` built from ``config`` (the same dict a saved model stores)."""
    return get_model_class(name)(**config)


def summary_line(cls):
    """The first line of a model class's docstring: its one-line description."""
    return (inspect.getdoc(cls) or cls.__name__).strip().splitlines()[0]
