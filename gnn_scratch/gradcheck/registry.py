"""The registry of gradient-check cases run by ``gnn-scratch gradcheck`` and by the tests.

A case is a function of no argument returning a list of ``Row``; each family of layers
(foundation, GAT, SAGE, ...) registers its cases in its own module of this package.
"""
import importlib
import pkgutil

CASES = {}


def case(name):
    """Decorator: register ``fn`` as the gradient-check case ``name``."""
    def wrap(fn):
        if name in CASES:
            raise ValueError(f"gradcheck case {name!r} is registered twice")
        CASES[name] = fn
        return fn
    return wrap


def all_cases():
    """Every registered case, importing each module of the package so that it registers its own."""
    pkg = importlib.import_module("gnn_scratch.gradcheck")
    for info in pkgutil.iter_modules(pkg.__path__):
        if info.name != "registry":
            importlib.import_module(f"gnn_scratch.gradcheck.{info.name}")
    return dict(CASES)


def run(pattern=None):
    """Run the cases whose name contains ``pattern`` (all when None); returns the rows."""
    rows = []
    for name, fn in all_cases().items():
        if pattern is None or pattern.lower() in name.lower():
            rows += fn()
    return rows
