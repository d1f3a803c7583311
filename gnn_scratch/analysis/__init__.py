"""Analyses of trained and untrained models: measurements over node states, one module per question.

* ``oversmoothing`` -- Dirichlet energy, MAD and MADGap of node states, layer by layer.
* ``oversquashing`` -- Jacobian norms ||dh_i/dx_j|| from the explicit backward, by hop distance; Tree-NeighborsMatch.

Submodules are imported by name (``from gnn_scratch.analysis.oversmoothing import mad``); this
package imports none of them, so each stays optional and adding one touches nothing here.
"""
