"""Shallow node embeddings and unsupervised encoders (issue 15).

walks.py / alias.py: DeepWalk and node2vec random walks, alias tables, negative and edge samplers;
skipgram.py: skip-gram with negative sampling (NumPy reference and Numba Hogwild trainers);
deepwalk.py: DeepWalk and node2vec. Other helpers append their own import lines below.
"""
from .dgi import DGI, dgi_embedding, logreg_accuracies
