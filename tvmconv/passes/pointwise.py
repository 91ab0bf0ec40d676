"""Fuse a 1x1 conv into the depthwise conv that reads its output: one ``pointwise_depthwise``
kernel (``layers.pointwise_depthwise``), so the widened map between them stays in cache.

Runs after the layout is planned (the kernel works per channel block, so the two must share
theirs) and before concat placement (the pair's output may then be placed like any conv's).
Fused only where the 1x1 conv's output is read by nothing else and the target has a template
for the pair.
"""

from __future__ import annotations

from ..graph import Graph, Node


def fuse_pointwise_depthwise(graph: Graph, target) -> None:
    from ..templates import templates_for
    from ..workload import from_node

    producers, users = graph.producers(), graph.consumers()
    outputs = set(graph.outputs)
    pairs, absorbed = {}, set()
    for node in graph.nodes:
        mid = node.inputs[0] if _depthwise(node) else None
        src = producers.get(mid)
        if (src is None or not _pointwise(src) or len(users.get(mid, ())) != 1
                or mid in outputs or graph.layouts.get(mid) != graph.layouts.get(node.outputs[0])):
            continue
        pair = Node("pointwise_depthwise", [*src.inputs, *node.inputs[1:]], list(node.outputs),
                    {"pointwise": src.attrs, "depthwise": node.attrs, "mid": mid,
                     "pointwise_inputs": len(src.inputs)}, node.name)
        wl = from_node(pair, graph)
        if templates_for(wl.kind, target.family, wl, target):
            pairs[id(node)] = pair
            absorbed.add(id(src))
    graph.nodes = [pairs.get(id(n), n) for n in graph.nodes if id(n) not in absorbed]


def _pointwise(node: Node) -> bool:
    a = node.attrs
    return (node.op == "conv2d" and not a.get("depthwise") and a["groups"] == 1
            and a["kernel_hw"] == (1, 1) and tuple(a["strides"]) == (1, 1) and not any(a["pads"]))


def _depthwise(node: Node) -> bool:
    return node.op == "conv2d" and bool(node.attrs.get("depthwise")) and (
        node.attrs["multiplier"] == 1)
