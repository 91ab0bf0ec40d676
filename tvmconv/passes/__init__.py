"""Graph passes, run in this order by ``optimize``: fold affine ops into convs, fuse epilogues,
remove dead nodes, then plan the blocked layout and pre-transform weights for the target."""

from __future__ import annotations

from ..graph import Graph
from . import fold, fuse, layout, prune


def optimize(graph: Graph, target) -> Graph:
    fold.fold_affine(graph)
    fuse.fuse_elementwise(graph)
    prune.remove_dead(graph)
    layout.plan(graph, target)
    return graph
