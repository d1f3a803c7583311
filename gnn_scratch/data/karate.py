"""Zachary's karate club (Zachary, 1977), typed in: the smallest real graph worth training on.

34 members, 78 friendships; after a dispute the club split into the followers of the instructor
"Mr. Hi" (node 0) and of the president "Officer" (node 33). The labels are that split, as in
networkx's ``karate_club_graph`` "club" attribute. Node ids are Zachary's numbering minus one.
"""
from __future__ import annotations

import numpy as np

from .dataset import Dataset, index_to_mask, undirected_edge_index

# The 78 undirected edges, each once, lower id first.
EDGES = (
    (0, 1), (0, 2), (0, 3), (0, 4), (0, 5), (0, 6), (0, 7), (0, 8), (0, 10), (0, 11), (0, 12), (0, 13),
    (0, 17), (0, 19), (0, 21), (0, 31),
    (1, 2), (1, 3), (1, 7), (1, 13), (1, 17), (1, 19), (1, 21), (1, 30),
    (2, 3), (2, 7), (2, 8), (2, 9), (2, 13), (2, 27), (2, 28), (2, 32),
    (3, 7), (3, 12), (3, 13),
    (4, 6), (4, 10),
    (5, 6), (5, 10), (5, 16),
    (6, 16),
    (8, 30), (8, 32), (8, 33),
    (9, 33),
    (13, 33),
    (14, 32), (14, 33),
    (15, 32), (15, 33),
    (18, 32), (18, 33),
    (19, 33),
    (20, 32), (20, 33),
    (22, 32), (22, 33),
    (23, 25), (23, 27), (23, 29), (23, 32), (23, 33),
    (24, 25), (24, 27), (24, 31),
    (25, 31),
    (26, 29), (26, 33),
    (27, 33),
    (28, 31), (28, 33),
    (29, 32), (29, 33),
    (30, 32), (30, 33),
    (31, 32), (31, 33),
    (32, 33),
)

# Class 0: Mr. Hi's faction; every other member is in class 1 (the Officer's).
MR_HI = (0, 1, 2, 3, 4, 5, 6, 7, 8, 10, 11, 12, 13, 16, 17, 19, 21)
NUM_NODES = 34


def karate_club(num_val=8, seed=0) -> Dataset:
    """Zachary's karate club: 34 nodes, 156 directed edges (78 undirected), 2 classes (17 / 17).

    x: (34, 34) float32 identity (one-hot node ids, as the GCN paper's karate example: the
    model must learn from structure alone). Split: train = the two leaders, nodes 0 and 33
    (one per class); val = ``num_val`` other nodes drawn with ``seed``; test = the rest.
    """
    if isinstance(num_val, bool) or not isinstance(num_val, (int, np.integer)) or not 0 <= num_val <= NUM_NODES - 3:
        raise ValueError(f"num_val must be an int in [0, {NUM_NODES - 3}] (leaving a test node), got {num_val!r}")
    e = np.array(EDGES, dtype=np.int64).T
    y = np.ones(NUM_NODES, dtype=np.int64)
    y[list(MR_HI)] = 0
    train_idx = np.array([0, 33])
    others = np.random.default_rng(seed).permutation(np.setdiff1d(np.arange(NUM_NODES), train_idx))
    val_idx, test_idx = others[:num_val], others[num_val:]
    return Dataset(
        name="karate", x=np.eye(NUM_NODES, dtype=np.float32), y=y,
        edge_index=undirected_edge_index(e[0], e[1], NUM_NODES),
        train_mask=index_to_mask(train_idx, NUM_NODES), val_mask=index_to_mask(val_idx, NUM_NODES),
        test_mask=index_to_mask(test_idx, NUM_NODES), num_classes=2,
    )
