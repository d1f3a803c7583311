"""Helpers shared by the models."""
import numpy as np


def child_seeds(seed, n):
    """``n`` independent integer seeds derived from one model seed (numpy SeedSequence)."""
    return [int(s.generate_state(1)[0]) for s in np.random.SeedSequence(seed).spawn(n)]


def check_device_support(model, device):
    """Raise ValueError (one line) when a layer of ``model`` cannot run on ``device``.

    Layers that lack a device path for some option say so with ``check_device_support()``
    (GATConv's fused=False, SAGEConv's max / lstm aggregators and projection); calling them when the
    model moves makes ``model.to("cuda")`` fail at once rather than at the first forward.
    """
    from ..dense import check_device
    if check_device(device) == "cpu":
        return
    for _, m in model.modules():
        if hasattr(m, "check_device_support"):
            m.check_device_support()
