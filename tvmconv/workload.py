"""Workloads: what one kernel computes, independent of the model it came from.

The key is a stable, readable string of layer kind, physical shapes, attributes and layout; equal
workloads in different models share tuning records and schedule-book entries.
"""

from __future__ import annotations

from dataclasses import dataclass

from .graph import Graph, Node

DTYPE = "float32"


def _fmt(v) -> str:
    if isinstance(v, (tuple, list)):
        return "(" + ",".join(_fmt(x) for x in v) + ")"
    if v is None:
        return "_"
    if isinstance(v, float):
        return repr(v)
    return str(v)


@dataclass(frozen=True)
class Workload:
    kind: str
    items: tuple[tuple[str, object], ...]

    @property
    def params(self) -> dict:
        return dict(self.items)

    @property
    def key(self) -> str:
        return (f"{self.kind}[{DTYPE}]" + "{"
                + ";".join(f"{k}={_fmt(v)}" for k, v in self.items) + "}")

    def parts(self) -> tuple[Workload, ...]:
        """The layers one kernel computes: itself, or the two of a fused pair (see
        ``passes.pointwise``)."""
        if self.kind == "pointwise_depthwise":
            p = self.params
            return Workload("conv2d", p["pointwise"]), Workload("depthwise2d", p["depthwise"])
        return (self,)

    def flops(self) -> float:
        """Multiply-adds x 2 for conv/dense/matmul, element count otherwise (for task weighting)."""
        if len(self.parts()) > 1:
            return sum(part.flops() for part in self.parts())
        p = self.params
        out = 1
        for d in p["out"]:
            out *= d
        if self.kind == "conv2d":
            _, icgb, kh, kw, ib, _ = p["kernel"]
            return 2.0 * out * icgb * ib * kh * kw
        if self.kind == "depthwise2d":
            return 2.0 * out * p["kernel_hw"][0] * p["kernel_hw"][1]
        if self.kind == "dense":
            return 2.0 * out * p["data"][1]
        if self.kind == "matmul":
            return 2.0 * out * p["a"][-1]
        if self.kind == "pool2d":
            return float(out * p["kernel"][0] * p["kernel"][1])
        return float(out)

    def describe(self) -> str:
        """A short readable label: kind, stored channels x height x width in and out, window and
        strides ("conv2d 64x56x56 -> 64x56x56 k3x3 s1", "conv2d 1x1x8000 -> 128x1x1981 k1x80
        s1x4"); else the output shape."""
        if len(self.parts()) > 1:
            return " + ".join(part.describe() for part in self.parts())
        p = self.params
        if self.kind in ("conv2d", "depthwise2d"):
            n, cb, h, w, db = p["data"]
            out = p["out"]
            kh, kw = p["kernel_hw"]
            sh, sw = p["strides"]
            # stored channels: a padded last block (passes.layout.out_block) counts whole
            return (f"{self.kind} {cb * db}x{h}x{w} -> {out[1] * out[4]}x{out[2]}x{out[3]} "
                    f"k{kh}x{kw} s{sh}" + ("" if sh == sw else f"x{sw}"))
        return f"{self.kind} -> {'x'.join(str(d) for d in p['out'])}"


def _make(kind: str, /, **params) -> Workload:
    return Workload(kind, tuple(sorted(params.items())))


def _operands(node: Node, graph: Graph, first: int) -> tuple:
    return tuple((i, graph.physical_shape(v)) for i, v in enumerate(node.inputs) if i >= first)


def split_pair(node: Node) -> tuple[Node, Node]:
    """The 1x1 conv and the depthwise conv a ``pointwise_depthwise`` node stands for."""
    a = node.attrs
    k = a["pointwise_inputs"]
    return (Node("conv2d", node.inputs[:k], [a["mid"]], a["pointwise"], node.name),
            Node("conv2d", [a["mid"], *node.inputs[k:]], node.outputs, a["depthwise"], node.name))


def from_node(node: Node, graph: Graph) -> Workload | None:
    """The workload of a node after the passes; None for ops that need no kernel: a reshape, a
    concat whose parts were written in place (``passes.place``)."""
    a = node.attrs
    shape = graph.physical_shape
    out = shape(node.outputs[0])
    if node.op == "conv2d":
        steps = a["epilogue"]
        if a.get("bias_index") is not None:
            steps = (("add", (None, a["bias_index"]), ()),) + tuple(steps)
        common = dict(data=shape(node.inputs[0]), kernel=shape(node.inputs[1]), out=out,
                      kernel_hw=a["kernel_hw"], strides=a["strides"], pads=a["pads"],
                      dilations=a["dilations"], steps=steps, operands=_operands(node, graph, 2))
        if a.get("depthwise"):
            return _make("depthwise2d", multiplier=a["multiplier"], **common)
        return _make("conv2d", groups=a["groups"], **common)
    if node.op == "pointwise_depthwise":
        pointwise, depthwise = split_pair(node)
        return _make(node.op, pointwise=from_node(pointwise, graph).items,
                     depthwise=from_node(depthwise, graph).items)
    if node.op == "dense":
        steps = a["epilogue"]
        if a.get("bias_index") is not None:
            steps = (("add", (None, a["bias_index"]), ()),) + tuple(steps)
        return _make("dense", data=shape(node.inputs[0]), kernel=shape(node.inputs[1]), out=out,
                     steps=steps, operands=_operands(node, graph, 2))
    if node.op == "matmul":
        return _make("matmul", a=shape(node.inputs[0]), b=shape(node.inputs[1]), out=out,
                     steps=a["epilogue"], operands=_operands(node, graph, 2))
    if node.op == "pool2d":
        return _make("pool2d", data=shape(node.inputs[0]), out=out, **{
            k: a[k] for k in ("kind", "kernel", "strides", "pads", "dilations", "p")})
    if node.op == "instance_norm":
        return _make(node.op, data=shape(node.inputs[0]), out=out,
                     operands=_operands(node, graph, 3), **a)
    if node.op in ("softmax", "lrn", "layer_norm", "reduce"):
        return _make(node.op, data=shape(node.inputs[0]), out=out, **a)
    if node.op == "reshape" or (node.op == "concat" and node.inputs[0] in graph.places):
        return None
    inputs = tuple(shape(i) for i in node.inputs)
    return _make(node.op, inputs=inputs, out=out, **a)
