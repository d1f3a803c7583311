"""Tasks: what a model learns from a graph, how it is trained and scored. One file per task, by name.

A task class owns its training loop (written from ``gnn_scratch.loop``'s shared pieces), its
metrics, its default hyper-parameters and its command-line arguments; ``gnn-scratch train --task
NAME`` runs ``TASKS[NAME]``. Adding a task is a new file in this package: a ``Task`` subclass
(``tasks.base``) decorated with ``@register_task``, with a ``name`` and a one-line docstring (shown
by ``--help``), imported below.

Floors: ``loop`` (shared) < ``minibatch`` < ``tasks.base`` < the task modules < this package <
``train`` (the public façade) and ``cli``. Nothing below a task module imports it.
"""
from .base import TASKS, Task, get_task, register_task

# The built-in tasks register themselves when imported.
from . import embedding, graph, hetero, inductive, node, temporal  # noqa: F401

__all__ = ["TASKS", "Task", "get_task", "register_task"]
