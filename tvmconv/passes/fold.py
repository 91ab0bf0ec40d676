"""Fold per-channel affine steps (BatchNorm's scale and shift, bias adds, scaling) into the weights
and bias of the conv or dense that produces their input, and zero pads into the convs that read
them, so they cost nothing at run time."""

from __future__ import annotations

import numpy as np

from ..graph import Graph, Node
from .prune import rename, rewrite_until_done

_FOLDABLE = ("mul", "div", "add", "sub")


def _per_channel(const: np.ndarray, out_shape, axis: int) -> np.ndarray | None:
    """The constant as one value per output channel, or None if it varies along other axes."""
    if const.ndim > len(out_shape):
        return None
    full = const.reshape((1,) * (len(out_shape) - const.ndim) + const.shape)
    for i, d in enumerate(full.shape):
        if d != 1 and i != axis:
            return None
    channels = out_shape[axis]
    if full.shape[axis] not in (1, channels):
        return None
    return np.broadcast_to(full.reshape(-1), (channels,)).astype(np.float64)


def _fold_step(graph: Graph, prod: Node, step, operand: np.ndarray) -> bool:
    fn = step[0]
    vec = _per_channel(operand, graph.shapes[prod.outputs[0]], axis=1)  # NCHW and [M, N] alike
    if vec is None or (fn in ("mul", "div") and not np.all(np.isfinite(vec))):
        return False
    if fn == "div" and np.any(vec == 0):
        return False
    w = graph.consts[prod.inputs[1]].astype(np.float64)
    bias_name = prod.inputs[2] if len(prod.inputs) > 2 else None
    b = graph.consts[bias_name].astype(np.float64).reshape(-1) if bias_name else \
        np.zeros(len(vec))
    if fn in ("mul", "div"):
        scale = vec if fn == "mul" else 1.0 / vec
        w = w * (scale.reshape(-1, 1, 1, 1) if prod.op == "conv2d" else scale.reshape(1, -1))
        b = b * scale
    else:
        b = b + vec if fn == "add" else b - vec
    prod.inputs[1] = graph.add_const(w.astype(np.float32), "folded_w")
    new_b = graph.add_const(b.astype(np.float32), "folded_b")
    if bias_name:
        prod.inputs[2] = new_b
    else:
        prod.inputs.append(new_b)
    return True


def fold_affine(graph: Graph) -> None:
    """Absorb leading per-channel mul/div/add/sub steps of an elementwise node into its producer."""

    def attempt(node, producers, consumers) -> bool:
        if node.op != "elementwise" or not node.attrs["steps"]:
            return False
        src = node.inputs[0]
        prod = producers.get(src)
        if (prod is None or prod.op not in ("conv2d", "dense") or prod.attrs["epilogue"]
                or len(consumers.get(src, [])) != 1 or src in graph.outputs
                or node.inputs.count(src) != 1 or len(prod.inputs) > 3
                or graph.shapes[node.outputs[0]] != graph.shapes[src]
                or not graph.is_const(prod.inputs[1])):
            return False
        steps = node.attrs["steps"]
        fn, args, _ = steps[0]
        if fn not in _FOLDABLE or args[0] is not None or len(args) != 2:
            return False
        if any(0 in a for _, a, _ in steps) or not graph.is_const(node.inputs[args[1]]):
            return False
        if not _fold_step(graph, prod, steps[0], graph.consts[node.inputs[args[1]]]):
            return False
        node.attrs["steps"] = steps[1:]
        if not node.attrs["steps"]:
            graph.nodes.remove(node)
            rename(graph, node.outputs[0], src)
        return True

    rewrite_until_done(graph, attempt)


def fold_pads(graph: Graph) -> None:
    """Absorb a zero Pad of H and W into the padding of the convs reading it (WaveNet's causal
    pads, TensorFlow's explicit "same" pads): a conv pads inside its kernel, where the Pad ran as
    a kernel of its own, on a plain tensor between layout transforms (WaveNet-style 1-D net:
    0.4 ms of 1.5)."""

    def attempt(node, producers, consumers) -> bool:
        out, a = node.outputs[0], node.attrs
        if node.op != "pad" or a["mode"] != "constant" or a["value"] != 0.0:
            return False
        p = a["pads"]
        readers = consumers.get(out, [])
        if (len(p) != 8 or any(p[i] for i in (0, 1, 4, 5)) or min(p) < 0 or out in graph.outputs
                or not readers or any(r.op != "conv2d" or r.inputs.index(out) != 0
                                      or r.inputs.count(out) != 1 for r in readers)):
            return False
        for r in readers:
            top, left, bottom, right = r.attrs["pads"]
            r.attrs["pads"] = (top + p[2], left + p[3], bottom + p[6], right + p[7])
            r.inputs[0] = node.inputs[0]
        graph.nodes.remove(node)
        return True

    rewrite_until_done(graph, attempt)
