"""Dead-node removal and value renaming."""

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
