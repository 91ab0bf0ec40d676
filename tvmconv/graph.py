"""tvmconv's graph: a topologically ordered list of nodes over named values with static shapes.

The frontend produces it from ONNX with every operator already normalised to tvmconv's own small op
vocabulary (see ``OPS``); passes rewrite it; the build turns each node into one scheduled kernel.
Constants are numpy arrays; every activation is float32.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

import numpy as np

# The op vocabulary after the frontend. Attributes are plain Python values
# (tuples, ints, floats, str).
OPS = {
    "conv2d": "x, w[, b] -> y; strides, pads (t, l, b, r), dilations, groups, epilogue",
    "pointwise_depthwise": "x, w1, *operands1, w2, *operands2 -> y; a 1x1 conv (pointwise attrs, "
                           "its pointwise_inputs) then the depthwise conv reading its output mid "
                           "(depthwise attrs), one kernel (set by passes.pointwise)",
    "pool2d": "x -> y; kind (max|avg|lp), kernel, strides, pads, dilations, count_include_pad, p",
    "dense": "x[M,K], w[K,N] const[, b] -> y[M,N]; epilogue",
    "matmul": "a, b -> y; numpy matmul broadcasting; epilogue",
    "elementwise": "x, *operands -> y; steps (see layers.elementwise)",
    "softmax": "x -> y; axis, log",
    "lrn": "x -> y; size, alpha, beta, bias",
    "instance_norm": "x, scale, bias, *operands -> y; epsilon, epilogue, blocked (set by layout)",
    "layer_norm": "x[M,K], scale[K], bias[K] -> y[M,K]; epsilon (normalises each row)",
    "reduce": "x -> y (reduced axes kept as 1); kind (mean|max|min|sum|sum_square|l1|l2), axes",
    "reshape": "x -> y (shape from the output)",
    "transpose": "x -> y; perm",
    "concat": "*xs -> y; axis",
    "slice": "x -> y; starts, stops, steps (one per axis, normalised)",
    "pad": "x -> y; pads (begin..., end...), mode, value",
    "resize": "x, rows, cols -> y; mode (nearest|linear); rows/cols: const source tables",
    "take": "x, table -> y; axis; table: const source indices along axis (float32, as resize's)",
    "depth_to_space": "x -> y; block, mode (DCR|CRD)",
    "space_to_depth": "x -> y; block, mode (DCR|CRD)",
    "layout_transform": "x -> y; src, dst (channel block sizes, 0 = plain NCHW)",
}


@dataclass
class Node:
    op: str
    inputs: list[str]
    outputs: list[str]
    attrs: dict = field(default_factory=dict)
    name: str = ""

    def __repr__(self) -> str:
        return f"{self.op}({', '.join(self.inputs)}) -> {', '.join(self.outputs)}"


@dataclass
class Graph:
    """Values are names; ``shapes`` holds every value's logical (NCHW) shape."""

    inputs: list[str]
    outputs: list[str]
    nodes: list[Node] = field(default_factory=list)
    shapes: dict[str, tuple[int, ...]] = field(default_factory=dict)
    consts: dict[str, np.ndarray] = field(default_factory=dict)
    # Channel block per 4-D activation (0 = plain NCHW); filled by passes.layout.
    layouts: dict[str, int] = field(default_factory=dict)
    # Values stored inside another value's buffer: value -> (that value, offset in elements);
    # filled by passes.place (a concat's parts, written in place by their producers).
    places: dict[str, tuple[str, int]] = field(default_factory=dict)
    # The model's own names for ``outputs`` (a value may be renamed or shared by the passes).
    output_names: list[str] = field(default_factory=list)
    _fresh: itertools.count = field(default_factory=itertools.count, repr=False)

    def fresh(self, hint: str) -> str:
        """A new value name that does not clash with any existing one."""
        while True:
            name = f"{hint}~{next(self._fresh)}"
            if name not in self.shapes:
                return name

    def add_const(self, array: np.ndarray, hint: str = "const") -> str:
        name = self.fresh(hint)
        self.consts[name] = np.require(array, requirements="C")  # keeps 0-d arrays 0-d
        self.shapes[name] = tuple(int(d) for d in np.shape(array))
        return name

    def is_const(self, value: str) -> bool:
        return value in self.consts

    def producers(self) -> dict[str, Node]:
        return {out: n for n in self.nodes for out in n.outputs}

    def consumers(self) -> dict[str, list[Node]]:
        users: dict[str, list[Node]] = {}
        for n in self.nodes:
            for i in n.inputs:
                users.setdefault(i, []).append(n)
        return users

    def physical_shape(self, value: str) -> tuple[int, ...]:
        """The stored shape: NCHW[b]c, i.e. (N, ceil(C/b), H, W, b), for a blocked activation; the
        lanes of a padded last block past channel C hold no data any kernel reads."""
        shape = self.shapes[value]
        block = self.layouts.get(value, 0)
        if not block:
            return shape
        n, c, h, w = shape
        return (n, -(-c // block), h, w, block)


def has_bias(graph: Graph, node: Node) -> bool:
    """Whether a conv's or dense's input 2 is its own bias, one value per output channel (a
    ConvTranspose's, lowered to a conv), rather than an operand of its epilogue, which broadcasts
    against the output as numpy does."""
    return (len(node.inputs) > 2 and graph.is_const(node.inputs[2])
            and graph.consts[node.inputs[2]].ndim == 1
            and not any(2 in args for _, args, _ in node.attrs["epilogue"]))


def blockable(shape: tuple, out_shape: tuple) -> bool:
    """Whether an activation of ``shape`` can be read in the channel blocks an output of
    ``out_shape`` is stored in: the same shape, or one value per channel (a squeeze-excite gate,
    N x C x 1 x 1). Others (a spatial gate N x 1 x H x W) need the output plain."""
    return tuple(shape) == tuple(out_shape) or (
        len(shape) == 4 and tuple(shape[1:]) == (out_shape[1], 1, 1)
        and shape[0] in (1, out_shape[0]))
