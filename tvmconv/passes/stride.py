"""A strided 1x1 conv whose rows the direct template tiles raggedly, as a slice and a 1x1
stride-1 conv.

A 1x1 conv with stride s reads every s-th pixel of every s-th row. Sliced out first (a blocked
copy of the conv's input size over s^2), the conv runs over flattened pixels
(``templates/x86/pointwise.py``), whose tiles need not divide the map's width. Done only where
the direct template's default row tile computes columns past the row's end: inside ResNet-50 on
a Zen 3 (AVX2), 1024x14x14 -> 2048x7x7 (4-pixel tiles over 7-pixel rows) ran 2.22 ms as one
kernel and 1.69 sliced, while 256x56x56 -> 512x28x28 (whole 4-pixel tiles) ran 1.62 and 2.20.
"""

from __future__ import annotations

from .. import templates
from ..graph import Graph, Node
from ..workload import from_node


def slice_strided_pointwise(graph: Graph, target) -> None:
    """After the layout plan: the slice keeps its input's channel blocks."""
    if target.family == "cuda":  # no flattened-pixel template there
        return
    direct = templates.by_name("conv2d_direct", target.family)
    nodes = []
    for node in graph.nodes:
        a = node.attrs
        if (node.op == "conv2d" and a["strides"] != (1, 1) and a["groups"] == 1
                and a["kernel_hw"] == (1, 1) and not any(a["pads"])
                and direct.ragged_rows(from_node(node, graph), target)):
            x = node.inputs[0]
            sub = graph.fresh("strided_in")
            graph.shapes[sub] = (*graph.shapes[x][:2], *graph.shapes[node.outputs[0]][2:])
            if x in graph.layouts:
                graph.layouts[sub] = graph.layouts[x]
            nodes.append(Node("slice", [x], [sub], {"starts": (0, 0, 0, 0),
                                                    "steps": (1, 1, *a["strides"])}, node.name))
            node.inputs[0] = sub
            node.attrs = {**a, "strides": (1, 1)}
        nodes.append(node)
    graph.nodes = nodes

