"""Conversion state shared by the ONNX converters,
and the error for values that must be constant."""

from __future__ import annotations

import numpy as np
from onnx import helper

from ..errors import ModelError, UnsupportedError
from ..graph import Graph, Node


class ConstantRequired(UnsupportedError):
    """An operand tvmconv compiles in (weights, shapes, axes, bounds) is a run-time value.

    ``value`` names it, so a caller that knows the value (onnx_backend) can bind it and retry.
    """

    def __init__(self, message: str, value: str):
        super().__init__(message)
        self.value = value


class Context:
    """Conversion state: the graph being built, the opset, and names that alias other values."""

    def __init__(self, graph: Graph, opset: int, model_opset: int | None = None):
        self.graph = graph
        self.opset = opset  # the semantics converted: the model's, capped at the newest supported
        self.model_opset = model_opset or opset  # the model's own, which its nodes' schemas follow
        self.alias: dict[str, str] = {}

    @staticmethod
    def attr(node, name, default=None):
        for a in node.attribute:
            if a.name == name:
                value = helper.get_attribute_value(a)
                return value.decode() if isinstance(value, bytes) else value
        return default

    def set_const(self, name: str, value: np.ndarray) -> None:
        self.graph.consts[name] = np.asarray(value)
        self.graph.shapes[name] = tuple(np.shape(value))

    def const(self, name: str, what: str) -> np.ndarray:
        if not name:
            return None
        if name not in self.graph.consts:
            raise ConstantRequired(f"{what} must be a constant (got activation {name!r})", name)
        return self.graph.consts[name]

    def f32(self, name: str) -> str:
        """A value usable as a float32 kernel operand (constants of other dtypes are cast)."""
        c = self.graph.consts.get(name)
        if c is not None and c.dtype != np.float32:
            return self.graph.add_const(c.astype(np.float32), "cast")
        return name

    def emit(self, op: str, inputs: list[str], shape, attrs: dict, out: str | None = None,
             name: str = "") -> str:
        out = out or self.graph.fresh(op)
        self.graph.nodes.append(Node(op, list(inputs), [out], dict(attrs), name))
        self.graph.shapes[out] = tuple(int(d) for d in shape)
        return out

    def elementwise(self, steps, inputs: list[str], out: str | None = None, name="") -> str:
        """Emit an elementwise node; ``steps`` use input indices, None = the running value."""
        inputs = [self.f32(i) for i in inputs]
        shape = np.broadcast_shapes(*(self.graph.shapes[i] for i in inputs))
        return self.emit("elementwise", inputs, shape, {"steps": tuple(steps)}, out, name)

    def shape(self, name: str) -> tuple[int, ...]:
        return self.graph.shapes[name]


def need_1d_or_2d(node, shape):
    """Window ops and resizes take [N, C, L] (run over a height of 1) and [N, C, H, W]."""
    if len(shape) not in (3, 4):
        raise UnsupportedError(f"{node.op_type} node {node.name!r}: only 1-D (NCL) and 2-D "
                               f"(NCHW) inputs are supported, got rank {len(shape)}")


def axes_of(ctx, node, ins):
    """Axes given as the second input (newer opsets) or as the attribute; None when neither."""
    if len(ins) > 1 and ins[1]:
        return [int(a) for a in ctx.const(ins[1], "axes")]
    axes = ctx.attr(node, "axes")
    return None if axes is None else [int(a) for a in axes]


def normal_axes(node, axes, rank: int) -> tuple[int, ...]:
    """Axes made non-negative, sorted and unique; a ModelError naming the node for one outside
    [-rank, rank)."""
    rank = max(rank, 1)
    if any(not -rank <= int(a) < rank for a in axes):
        raise ModelError(f"{node.op_type} node {node.name!r}: axes {list(axes)} out of range "
                         f"for rank {rank}")
    return tuple(sorted({int(a) % rank for a in axes}))


def reshape_to(ctx, x, shape, out=None, name=""):
    return ctx.emit("reshape", [x], shape, {}, out, name)
