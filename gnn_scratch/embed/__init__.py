"""Shallow node embeddings and unsupervised encoders (issue 15).

walks.py / alias.py: DeepWalk and node2vec random walks, alias tables, negative and edge samplers;
skipgram.py: skip-gram with negative sampling (NumPy reference and Numba Hogwild trainers);
deepwalk.py: DeepWalk and node2vec. Other helpers append their own import lines below.
"""
from .alias import AliasTable, edge_sampler, negative_table
from .walks import random_walks, transition_probabilities, walk_csr, walk_lengths
from .skipgram import SkipGramLoss, train_sgns, train_sgns_reference
from .deepwalk import DeepWalk, Node2Vec, deepwalk, node2vec
from .evaluate import (OneVsRestLogisticRegression, classify_split, evaluate_multiclass, evaluate_multilabel,
                       f1_scores, link_prediction_auc, link_prediction_split, roc_auc, top_k_predictions)
from .line import LINE, line_embedding
from .sdne import SDNE, train_sdne
from .dgi import DGI, dgi_embedding, logreg_accuracies
from .metapath_walks import dead_starts, metapath_walks, resolve_metapath, typed_csr
from .metapath2vec import (HeteroSkipGramLoss, MetaPath2Vec, TypedNoise, TypeSoftmaxLoss, metapath2vec,
                           train_metapath2vecpp, train_metapath2vecpp_reference)
from .hetgnn import GraphContextLoss, HetGNN, HetGNNInput, hetgnn_input, train_hetgnn
from .hetgnn_sampling import context_triples, rwr_neighbours
