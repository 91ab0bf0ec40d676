"""ONNX's own shape inference, run on each node that reads an activation, with the static shapes
tvmconv knows. Inputs that do not fit each other (a Concat of different heights, an Add that does
not broadcast, a MatMul whose columns miss the weights' rows) fail here by the node's name, as
onnxruntime fails on them, instead of compiling into kernels that read past a buffer."""

from __future__ import annotations

import onnx
from onnx import defs, helper, numpy_helper, shape_inference

from ..errors import ModelError
from .context import Context

# Constants up to this size are passed by value (shapes, axes, pads, scales); weights by shape.
MAX_VALUE_SIZE = 64


def check_node(ctx: Context, node, names: list[str]) -> None:
    try:
        schema = defs.get_schema(node.op_type, ctx.model_opset, node.domain)
    except defs.SchemaError:
        return
    types, values = {}, {}
    for k, (onnx_name, name) in enumerate(zip(node.input, names)):
        if not name:
            continue
        c = ctx.graph.consts.get(name)
        dtype = _activation_type(schema, k) if c is None else \
            helper.np_dtype_to_tensor_dtype(c.dtype)
        types[onnx_name] = helper.make_tensor_type_proto(dtype, ctx.shape(name))
        if c is not None and c.size <= MAX_VALUE_SIZE:
            values[onnx_name] = numpy_helper.from_array(c, onnx_name)
    try:
        shape_inference.infer_node_outputs(schema, node, types, values,
                                           opset_imports=[helper.make_opsetid("", ctx.model_opset)])
    except shape_inference.InferenceError as e:
        reason = str(e).split("] ", 1)[-1]
        shapes = ", ".join(str(list(ctx.shape(n))) for n in names if n)
        raise ModelError(f"{node.op_type} node {node.name!r}: its inputs "
                         f"({shapes}) do not fit: {reason}") from None
    except onnx.checker.ValidationError as e:  # an input's type (a float64 weight of a float conv)
        raise ModelError(f"{node.op_type} node {node.name!r}: its input types do not fit: "
                         f"{str(e).splitlines()[0]}") from None


def _activation_type(schema, position: int) -> int:
    """How an activation is typed for ONNX's inference: float32, or bool where the operator takes
    only bools there (Where's condition, Not), as a comparison's 1.0/0.0 mask stands for one."""
    formal = schema.inputs[min(position, len(schema.inputs) - 1)]
    allowed = {c.type_param_str: c.allowed_type_strs for c in schema.type_constraints}.get(
        formal.type_str, [formal.type_str])
    return onnx.TensorProto.FLOAT if "tensor(float)" in allowed or "tensor(bool)" not in allowed \
        else onnx.TensorProto.BOOL
