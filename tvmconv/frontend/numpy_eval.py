"""Evaluate ONNX nodes whose inputs are all constants with numpy.

Exporters emit Shape -> Gather -> Unsqueeze -> Concat -> Reshape chains and similar shape arithmetic
in front of the real layers; with static shapes all of it is constant, and folding it here keeps it
out of the compiled module.
"""

from __future__ import annotations

import numpy as np
from onnx import helper, numpy_helper

ONNX_TO_NUMPY = {1: np.float32, 2: np.uint8, 3: np.int8, 5: np.int16, 6: np.int32, 7: np.int64,
                 9: np.bool_, 10: np.float16, 11: np.float64, 12: np.uint32, 13: np.uint64}


def _attr(node, name, default=None):
    for a in node.attribute:
        if a.name == name:
            return helper.get_attribute_value(a)
    return default


def _axes(node, ins, pos):
    """Axes given as attribute (old opsets) or as the input at ``pos`` (new opsets)."""
    if len(ins) > pos and ins[pos] is not None:
        return [int(a) for a in ins[pos]]
    axes = _attr(node, "axes")
    return None if axes is None else [int(a) for a in axes]


def _slice(node, ins):
    x = ins[0]
    if len(ins) > 1:
        starts, ends = ins[1], ins[2]
        axes = ins[3] if len(ins) > 3 and ins[3] is not None else range(len(starts))
        steps = ins[4] if len(ins) > 4 and ins[4] is not None else [1] * len(starts)
    else:
        starts, ends = _attr(node, "starts"), _attr(node, "ends")
        axes = _attr(node, "axes", list(range(len(starts))))
        steps = [1] * len(starts)
    index = [slice(None)] * x.ndim
    for s, e, a, st in zip(starts, ends, axes, steps):
        index[int(a)] = slice(int(s), int(e), int(st))
    return x[tuple(index)]


def _constant(node, ins):
    for a in node.attribute:
        if a.name == "value":
            return numpy_helper.to_array(a.t)
        if a.name in ("value_float", "value_int"):
            return np.array(helper.get_attribute_value(a),
                            np.float32 if a.name == "value_float" else np.int64)
        if a.name in ("value_floats", "value_ints"):
            return np.array(helper.get_attribute_value(a),
                            np.float32 if a.name == "value_floats" else np.int64)
    raise ValueError("Constant node without a supported value attribute")


def _const_of_shape(node, ins):
    value = _attr(node, "value")
    fill = numpy_helper.to_array(value) if value is not None else np.zeros(1, np.float32)
    return np.full([int(d) for d in ins[0]], fill.reshape(-1)[0], dtype=fill.dtype)


def _reshape(node, ins):
    shape = [int(d) for d in ins[1]]
    if not _attr(node, "allowzero", 0):
        shape = [ins[0].shape[i] if d == 0 else d for i, d in enumerate(shape)]
    return ins[0].reshape(shape)


def _squeeze(node, ins):
    axes = _axes(node, ins, 1)
    return np.squeeze(ins[0], axis=None if axes is None else tuple(axes))


def _unsqueeze(node, ins):
    out = ins[0]
    axes = _axes(node, ins, 1)
    rank = out.ndim + len(axes)
    for a in sorted(a % rank for a in axes):
        out = np.expand_dims(out, a)
    return out


def _gather(node, ins):
    return np.take(ins[0], ins[1].astype(np.int64), axis=int(_attr(node, "axis", 0)))


def _cast(node, ins):
    return ins[0].astype(ONNX_TO_NUMPY[int(_attr(node, "to"))])


def _split(node, ins):
    x, axis = ins[0], int(_attr(node, "axis", 0))
    sizes = ins[1] if len(ins) > 1 and ins[1] is not None else _attr(node, "split")
    if sizes is None:
        parts = int(_attr(node, "num_outputs", len(node.output)))
        step = -(-x.shape[axis] // parts)
        sizes = [min(step, x.shape[axis] - i * step) for i in range(parts)]
    return tuple(np.split(x, np.cumsum([int(s) for s in sizes])[:-1], axis=axis))


def _reduce(fn):
    def run(node, ins):
        axes = _axes(node, ins, 1)
        keep = bool(_attr(node, "keepdims", 1))
        return fn(ins[0], axis=None if not axes else tuple(axes), keepdims=keep)
    return run


EVAL = {
    "Constant": _constant,
    "ConstantOfShape": _const_of_shape,
    "Identity": lambda n, i: i[0],
    "Cast": _cast,
    "Reshape": _reshape,
    "Squeeze": _squeeze,
    "Unsqueeze": _unsqueeze,
    "Gather": _gather,
    "Concat": lambda n, i: np.concatenate(i, axis=int(_attr(n, "axis"))),
    "Slice": _slice,
    "Split": _split,
    "Transpose": lambda n, i: np.transpose(i[0], _attr(n, "perm")),
    "Flatten": lambda n, i: i[0].reshape(int(np.prod(i[0].shape[:_attr(n, "axis", 1)])), -1),
    "Expand": lambda n, i: i[0] * np.ones([int(d) for d in i[1]], i[0].dtype),
    "Range": lambda n, i: np.arange(i[0], i[1], i[2]).astype(i[0].dtype),
    "Add": lambda n, i: i[0] + i[1],
    "Sub": lambda n, i: i[0] - i[1],
    "Mul": lambda n, i: i[0] * i[1],
    "Div": lambda n, i: (i[0] // i[1]) if i[0].dtype.kind in "iu" else i[0] / i[1],
    "Neg": lambda n, i: -i[0],
    "Sqrt": lambda n, i: np.sqrt(i[0]),
    "Floor": lambda n, i: np.floor(i[0]),
    "Ceil": lambda n, i: np.ceil(i[0]),
    "Equal": lambda n, i: np.equal(i[0], i[1]),
    "Less": lambda n, i: np.less(i[0], i[1]),
    "Greater": lambda n, i: np.greater(i[0], i[1]),
    "Not": lambda n, i: np.logical_not(i[0]),
    "Where": lambda n, i: np.where(i[0], i[1], i[2]),
    "Min": lambda n, i: np.minimum.reduce(i),
    "Max": lambda n, i: np.maximum.reduce(i),
    "ReduceProd": _reduce(np.prod),
    "ReduceSum": _reduce(np.sum),
}


def evaluate(node, inputs: list) -> tuple:
    """Run one ONNX node on numpy inputs (None for an omitted optional input);
    returns its outputs."""
    out = EVAL[node.op_type](node, inputs)
    return out if isinstance(out, tuple) else (np.asarray(out),)
