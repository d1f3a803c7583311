"""Model registry: build a model by name from its hyper-parameters."""
from .gcn import GCN

MODELS = {"gcn": GCN}


def register(cls):
    """Add a model class (with a ``name`` attribute) to the registry; returns the class."""
    MODELS[cls.name] = cls
    return cls


def build_model(name, **config):
    """The model ``name`` built from ``config`` (the same dict a saved model stores)."""
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; choose one of {sorted(MODELS)}")
    return MODELS[name](**config)


__all__ = ["GCN", "MODELS", "build_model", "register"]
from . import gat  # noqa: E402,F401  (registers "gat"; imported last because it uses register)
from . import sage  # noqa: E402,F401  (registers "sage"; imported last because it uses register)
