"""ONNX -> tvmconv Graph: static shapes, constants as numpy,
unsupported operators rejected up front."""

from __future__ import annotations

import math
import os
import warnings

import numpy as np
import onnx
from onnx import numpy_helper

from ..errors import ModelError, TvmconvError, UnsupportedError, require_file
from ..graph import Graph
from . import numpy_eval
from .ops import CONVERTERS, ConstantRequired, Context
from .shape_check import check_node

MIN_OPSET, MAX_OPSET = 7, 21
MAX_ELEMENTS = 2**31 - 1
SUPPORTED_OPS = tuple(sorted(set(CONVERTERS) | set(numpy_eval.EVAL) | {"Shape", "Size", "If"}))
# Evaluated only when every input is a constant; on activations they are not CNN layers.
CONST_ONLY_OPS = tuple(sorted(set(numpy_eval.EVAL) - set(CONVERTERS)))


def load_model(model: str | os.PathLike | onnx.ModelProto) -> onnx.ModelProto:
    """Read and check an ONNX model; any problem becomes a ModelError naming the file."""
    if isinstance(model, onnx.ModelProto):
        proto, where = model, "the given ModelProto"
    else:
        path = require_file(model, "model file", ModelError)
        where = str(path)
        try:
            proto = onnx.load(str(path))
        except Exception as e:  # protobuf raises several types for truncated or foreign files
            raise ModelError(f"{path} is not a readable ONNX model "
                             f"({type(e).__name__}: {e})") from None
    if not proto.graph.node and not proto.graph.output:
        raise ModelError(f"{where} holds no ONNX graph (empty or not an ONNX file)")
    # onnx's checker wants a shape on every graph input and output, onnxruntime does not: the
    # shapeless ones get an empty one while it checks (inputs still need one to compile)
    shapeless = [vi.type.tensor_type for vi in (*proto.graph.input, *proto.graph.output)
                 if vi.type.HasField("tensor_type") and not vi.type.tensor_type.HasField("shape")]
    for ttype in shapeless:
        ttype.shape.SetInParent()
    try:
        onnx.checker.check_model(proto)
    except Exception as e:
        raise ModelError(f"{where} is not a valid ONNX model: {str(e).splitlines()[0]}") from None
    finally:
        for ttype in shapeless:
            ttype.ClearField("shape")
    return proto


def opset_of(proto: onnx.ModelProto) -> int:
    for imp in proto.opset_import:
        if imp.domain in ("", "ai.onnx"):
            return int(imp.version)
    return MIN_OPSET


def check_supported(graph: onnx.GraphProto) -> None:
    """Fail before any work if a node's operator, in the graph or an If's branch, is outside the
    supported set."""
    for node in graph.node:
        for branch in node.attribute:
            if branch.type == onnx.AttributeProto.GRAPH:
                check_supported(branch.g)
        if node.domain not in ("", "ai.onnx") or node.op_type not in SUPPORTED_OPS:
            op = node.op_type if node.domain in ("", "ai.onnx") else f"{node.domain}.{node.op_type}"
            raise UnsupportedError(
                f"unsupported operator {op} (node {node.name or node.output[0]!r}); "
                "tvmconv.frontend.SUPPORTED_OPS lists the supported operators")


def _input_shape(vi, overrides: dict) -> tuple[int, ...]:
    """An input's static shape: the model's, its symbolic dimensions fixed by ``overrides`` (a
    symbolic batch dimension defaults to 1)."""
    ttype = vi.type.tensor_type
    shape = tuple(int(d) for d in overrides[vi.name]) if vi.name in overrides else None
    if not ttype.HasField("shape"):
        if shape is None:
            raise ModelError(f"input {vi.name!r} has no shape; "
                             "give one with input_shapes / --input-shape")
        return shape
    declared = [d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else d.dim_param or "?"
                for d in ttype.shape.dim]
    if shape is not None:
        if len(shape) != len(declared) or any(isinstance(d, int) and d != s
                                              for d, s in zip(declared, shape)):
            raise ModelError(f"input_shapes / --input-shape gives input {vi.name!r} the shape "
                             f"{list(shape)}, but the model declares "
                             f"[{', '.join(map(str, declared))}]: only its symbolic dimensions "
                             "can be chosen")
        return shape
    for i, d in enumerate(declared[1:], 1):
        if not isinstance(d, int):
            raise ModelError(f"input {vi.name!r} has a symbolic dimension {i} ({d}); give a "
                             "static shape with input_shapes / --input-shape")
    return tuple(d if isinstance(d, int) else 1 for d in declared)


def from_onnx(model, input_shapes: dict | None = None) -> Graph:
    """Build a Graph from an ONNX file path or ModelProto; ``input_shapes`` fixes dynamic dims."""
    proto = load_model(model)
    opset = opset_of(proto)
    if opset < MIN_OPSET:
        raise UnsupportedError(f"ONNX opset {opset} is older than the supported "
                               f"{MIN_OPSET}..{MAX_OPSET}")
    if opset > MAX_OPSET:
        warnings.warn(f"ONNX opset {opset} is newer than {MAX_OPSET}; "
                      f"converting as opset {MAX_OPSET}",
                      stacklevel=2)
    check_supported(proto.graph)
    overrides = dict(input_shapes or {})
    g = proto.graph
    graph = Graph(inputs=[], outputs=[])
    for init in g.initializer:
        arr = numpy_helper.to_array(init)
        graph.consts[init.name] = arr
        graph.shapes[init.name] = tuple(arr.shape)
    names = [vi.name for vi in g.input if vi.name not in graph.consts]
    unknown = set(overrides) - set(names)
    if unknown:  # before any other input's shape is judged: a misspelt name is the problem
        raise ModelError(f"input_shapes / --input-shape names unknown input(s) {sorted(unknown)}; "
                         f"the model's inputs are {names}")
    for vi in g.input:
        if vi.name in graph.consts:
            continue  # old-style models list their weights as graph inputs too
        elem = vi.type.tensor_type.elem_type
        if elem != onnx.TensorProto.FLOAT:
            raise UnsupportedError(f"input {vi.name!r} has ONNX element type "
                                   f"{onnx.TensorProto.DataType.Name(elem)}; tvmconv takes float32")
        graph.inputs.append(vi.name)
        graph.shapes[vi.name] = _input_shape(vi, overrides)
    ctx = Context(graph, min(opset, MAX_OPSET), opset)
    for node in g.node:
        _convert(ctx, node)
    for vi in g.output:
        name = ctx.alias.get(vi.name, vi.name)
        if name not in graph.shapes:
            raise ModelError(f"graph output {vi.name!r} is produced by no node")
        graph.outputs.append(name)
    graph.output_names = [vi.name for vi in g.output]
    for name, shape in graph.shapes.items():
        if math.prod(shape) > MAX_ELEMENTS:
            raise UnsupportedError(f"{name!r} would hold {math.prod(shape):,} elements "
                                   f"{list(shape)}; tvmconv's kernels index tensors with 32-bit "
                                   f"integers (at most {MAX_ELEMENTS:,} elements)")
    return graph


def _convert(ctx: Context, node) -> None:
    if not node.name and node.output:  # messages name the node: an unnamed one by its output
        named = onnx.NodeProto()
        named.CopyFrom(node)
        named.name = node.output[0]
        node = named
    names = [ctx.alias.get(i, i) if i else "" for i in node.input]
    for n in names:
        if n and n not in ctx.graph.shapes:
            raise ModelError(f"node {node.name!r} reads {n!r}, "
                             "which nothing defines")
    op = node.op_type
    consts = [ctx.graph.consts.get(n) if n else None for n in names]
    all_const = all(c is not None for n, c in zip(names, consts) if n)
    if op in ("Shape", "Size"):
        shape = ctx.graph.shapes[names[0]]
        if op == "Size":
            value = np.array(int(np.prod(shape)), np.int64)
        else:
            start = ctx.attr(node, "start", 0)
            end = ctx.attr(node, "end", None)
            value = np.array(shape[start:end], np.int64)
        ctx.set_const(node.output[0], value)
        return
    if op == "If":
        _inline_branch(ctx, node, names[0], consts[0])
        return
    if op in numpy_eval.EVAL and all_const:
        try:
            outs = numpy_eval.evaluate(node, consts)
        except Exception as e:
            raise ModelError(f"cannot evaluate constant node {node.name!r} "
                             f"({op}): {e}") from None
        for name, value in zip(node.output, outs):
            if name:
                ctx.set_const(name, value)
        return
    if all_const and names:
        for name, value in zip(node.output, _reference_eval(ctx, node, names)):
            if name:
                ctx.set_const(name, value)
        return
    if op not in CONVERTERS:
        raise UnsupportedError(
            f"operator {op} (node {node.name!r}) is supported only on constant "
            f"inputs, but it reads an activation")
    check_node(ctx, node, names)
    try:
        CONVERTERS[op](ctx, node, names)
    except TvmconvError:
        raise
    except (ValueError, IndexError, TypeError, ArithmeticError) as e:  # what ONNX's checks miss
        raise ModelError(f"{op} node {node.name!r}: {e}") from None


def _inline_branch(ctx: Context, node, cond_name: str, cond) -> None:
    """An If whose condition is known when compiling (PyTorch exports them from shape checks, as
    in its LocalResponseNorm): the taken branch's nodes join the graph. A condition computed from
    the input's values would need control flow in a static graph, and is refused."""
    if cond is None:
        raise ConstantRequired(f"If node {node.name!r} branches on a value "
                               "computed from the input; tvmconv compiles graphs whose "
                               "branches are known when compiling", cond_name)
    if np.size(cond) != 1:
        raise ModelError(f"If node {node.name!r}: its condition has "
                         f"{np.size(cond)} elements, not one")
    branch = Context.attr(node, "then_branch" if bool(np.asarray(cond).reshape(())) else
                          "else_branch")
    if len(branch.output) != len(node.output):
        raise ModelError(f"If node {node.name!r}: its branch has "
                         f"{len(branch.output)} outputs for {len(node.output)}")
    for init in branch.initializer:
        ctx.set_const(init.name, numpy_helper.to_array(init))
    for inner in branch.node:
        _convert(ctx, inner)
    for out, vi in zip(node.output, branch.output):
        value = ctx.alias.get(vi.name, vi.name)
        if value in ctx.graph.consts:
            ctx.set_const(out, ctx.graph.consts[value])
        else:
            ctx.alias[out] = value


def _reference_eval(ctx: Context, node, names: list[str]) -> list[np.ndarray]:
    """Fold a CNN operator whose inputs are all constants with ONNX's own reference evaluator."""
    from onnx import helper
    from onnx.reference import ReferenceEvaluator

    feeds = {f"i{k}": ctx.graph.consts[n] for k, n in enumerate(names) if n}
    ins = [f"i{k}" if n else "" for k, n in enumerate(names)]
    outs = [f"o{k}" if o else "" for k, o in enumerate(node.output)]
    single = helper.make_node(node.op_type, ins, outs, domain=node.domain)
    single.attribute.extend(node.attribute)
    graph = helper.make_graph([single], "fold", [helper.make_tensor_value_info(
        k, helper.np_dtype_to_tensor_dtype(v.dtype), v.shape) for k, v in feeds.items()],
        [helper.make_tensor_value_info(o, 0, None) for o in outs if o])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", ctx.opset)])
    try:
        results = ReferenceEvaluator(model).run(None, feeds)
    except Exception as e:
        raise ModelError(f"cannot fold constant node {node.name!r}: {e}") from None
    it = iter(results)
    return [np.asarray(next(it)) if o else None for o in outs]
