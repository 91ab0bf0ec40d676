"""Concat in place: the kernels that produce a concat's parts store them straight into the
concat's buffer, each at its offset, so no kernel copies them there.

SqueezeNet's fire modules and GoogLeNet's inception modules end in a channel concat; as a kernel
it re-reads and re-writes every part (8% of SqueezeNet's time in place). A part qualifies when it
is a contiguous slab of the output (everything before the concat axis is 1: batch 1, channel
blocks or plain channels), starts on a cache-line boundary, and is read by nothing else: then its
producer can write it there. A concat whose parts are all placed needs no kernel (see
``workload.from_node``); nested concats place their parts in the outermost buffer.
"""

from __future__ import annotations

import math

from ..graph import Graph

ALIGN = 16  # elements: a part starts on a 64-byte boundary, as TVM's own allocations do


def concat_in_place(graph: Graph) -> None:
    producers, users = graph.producers(), graph.consumers()
    outputs = set(graph.outputs)
    for node in graph.nodes:
        offsets = _slab_offsets(graph, node) if node.op == "concat" else None
        if offsets is None or not all(_placeable(graph, v, producers, users, outputs)
                                      for v in node.inputs):
            continue
        for value, offset in zip(node.inputs, offsets):
            graph.places[value] = (node.outputs[0], offset)
    # a concat that is itself a part of an outer one (placed later): re-root its parts there
    for value in graph.places:
        root, offset = graph.places[value]
        while root in graph.places:
            outer, extra = graph.places[root]
            root, offset = outer, offset + extra
        graph.places[value] = (root, offset)


def _slab_offsets(graph: Graph, node) -> list[int] | None:
    """Each part's element offset in the output, when every part is a contiguous, aligned slab."""
    axis = node.attrs["axis"]
    out = graph.physical_shape(node.outputs[0])
    parts = [graph.physical_shape(v) for v in node.inputs]
    if len(set(node.inputs)) < len(node.inputs) or math.prod(out[:axis]) != 1:
        return None
    if any(len(p) != len(out) or p[:axis] != out[:axis] or p[axis + 1:] != out[axis + 1:]
           for p in parts) or sum(p[axis] for p in parts) != out[axis]:
        return None  # a padded channel block inside the output (the layout pass keeps these plain)
    inner, offsets, start = math.prod(out[axis + 1:]), [], 0
    for p in parts:
        offsets.append(start * inner)
        start += p[axis]
    return offsets if all(o % ALIGN == 0 for o in offsets) else None


def _placeable(graph: Graph, value: str, producers, users, outputs) -> bool:
    """Produced by a kernel of its own (or an in-place concat) and read only by this concat."""
    node = producers.get(value)
    return (node is not None and node.op != "reshape" and len(node.outputs) == 1
            and len(users.get(value, ())) == 1 and value not in outputs)
