"""Graph passes, run in this order by ``optimize``: keep 1-D networks in their 2-D form, fold
zero pads and affine ops into convs, fuse epilogues, drop conv taps that read only padding,
remove dead nodes, plan the blocked layout for the target, slice out the pixels of strided 1x1
convs on ragged rows, fuse 1x1 convs into the depthwise convs that read them, then let the
producers of a concat's parts write into its buffer."""

from __future__ import annotations

from ..graph import Graph
from . import fold, fuse, layout, lift, place, pointwise, prune, stride, taps


def optimize(graph: Graph, target) -> Graph:
    lift.sink_reshapes(graph)
    fold.fold_pads(graph)
    fold.fold_affine(graph)
    fuse.fuse_elementwise(graph)
    taps.drop_padding_taps(graph)
    prune.remove_dead(graph)
    layout.plan(graph, target)
    stride.slice_strided_pointwise(graph, target)
    pointwise.fuse_pointwise_depthwise(graph, target)
    place.concat_in_place(graph)
    return graph
