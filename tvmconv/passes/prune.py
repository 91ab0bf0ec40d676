"""Graph rewriting helpers: dead-node removal, renaming, and rewriting until nothing changes."""

from __future__ import annotations

from ..graph import Graph


def remove_dead(graph: Graph) -> None:
    """Drop nodes whose outputs nothing reads, and constants no node reads."""
    live = set(graph.outputs)
    kept = []
    for node in reversed(graph.nodes):
        if any(o in live for o in node.outputs):
            kept.append(node)
            live.update(node.inputs)
    graph.nodes = kept[::-1]
    for name in [c for c in graph.consts if c not in live]:
        del graph.consts[name]


def rename(graph: Graph, old: str, new: str) -> None:
    """Make every reader of ``old`` read ``new`` instead (graph outputs included)."""
    for node in graph.nodes:
        node.inputs = [new if i == old else i for i in node.inputs]
    graph.outputs = [new if o == old else o for o in graph.outputs]


def rewrite_until_done(graph: Graph, attempt) -> None:
    """Call ``attempt(node, producers, consumers) -> bool`` on each node, starting over after every
    rewrite (it may have changed who produces and reads what),
    until a full sweep changes nothing."""
    while True:
        producers, consumers = graph.producers(), graph.consumers()
        if not any(attempt(node, producers, consumers) for node in list(graph.nodes)):
            return


def collapse_reshape(graph: Graph, node, producers) -> bool:
    """A reshape of a reshape reads the first one's input; a reshape to its input's own shape
    is dropped (the frontend's views around dense layers: [HW, C] -> [1, H, W, C] -> [HW, C])."""
    prod = producers.get(node.inputs[0])
    if prod is not None and prod.op == "reshape":
        node.inputs = [prod.inputs[0]]
        return True
    if graph.shapes[node.inputs[0]] == graph.shapes[node.outputs[0]]:
        graph.nodes.remove(node)
        rename(graph, node.outputs[0], node.inputs[0])
        return True
    return False
