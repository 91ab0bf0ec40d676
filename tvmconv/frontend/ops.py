"""One converter per ONNX operator: ONNX semantics (per opset) -> tvmconv's op vocabulary."""

from __future__ import annotations

import math

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

    def __init__(self, graph: Graph, opset: int):
        self.graph = graph
        self.opset = opset
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


def _pads_2d(ctx, node, in_hw, kernel, strides, dilations):
    """Explicit (top, left, bottom, right) pads for a 2-D window op, honouring auto_pad."""
    auto = ctx.attr(node, "auto_pad", "NOTSET")
    if auto in ("SAME_UPPER", "SAME_LOWER"):
        pads_b, pads_e = [], []
        for size, k, s, d in zip(in_hw, kernel, strides, dilations):
            out = -(-size // s)
            total = max((out - 1) * s + (k - 1) * d + 1 - size, 0)
            small, big = total // 2, total - total // 2
            pads_b.append(small if auto == "SAME_UPPER" else big)
            pads_e.append(big if auto == "SAME_UPPER" else small)
        return (pads_b[0], pads_b[1], pads_e[0], pads_e[1])
    if auto == "VALID":
        return (0, 0, 0, 0)
    pads = ctx.attr(node, "pads", [0, 0, 0, 0])
    return tuple(int(p) for p in pads)


def _need_2d(node, shape):
    if len(shape) != 4:
        raise UnsupportedError(f"{node.op_type} node {node.name!r}: only 2-D (NCHW) inputs are "
                               f"supported, got rank {len(shape)}")


def conv(ctx: Context, node, ins):
    x, w_name = ins[0], ins[1]
    w = ctx.const(w_name, f"Conv {node.name!r} weights")
    shape = ctx.shape(x)
    _need_2d(node, shape)
    if w.ndim != 4:
        raise UnsupportedError(f"Conv {node.name!r}: only 2-D convolutions are supported")
    oc, icg, kh, kw = w.shape
    groups = int(ctx.attr(node, "group", 1))
    if shape[1] != icg * groups or oc % groups:
        raise ModelError(f"Conv {node.name!r}: weights {w.shape} with group={groups} do not fit "
                         f"input channels {shape[1]}")
    strides = tuple(ctx.attr(node, "strides", [1, 1]))
    dil = tuple(ctx.attr(node, "dilations", [1, 1]))
    pads = _pads_2d(ctx, node, shape[2:], (kh, kw), strides, dil)
    oh = (shape[2] + pads[0] + pads[2] - dil[0] * (kh - 1) - 1) // strides[0] + 1
    ow = (shape[3] + pads[1] + pads[3] - dil[1] * (kw - 1) - 1) // strides[1] + 1
    if oh < 1 or ow < 1:
        raise ModelError(f"Conv {node.name!r}: kernel larger than the padded input {shape}")
    inputs = [x, ctx.f32(w_name)]
    if len(ins) > 2 and ins[2]:
        ctx.const(ins[2], f"Conv {node.name!r} bias")  # folded and packed with the weights
        inputs.append(ctx.f32(ins[2]))
    attrs = {"strides": strides, "pads": pads, "dilations": dil, "groups": groups, "epilogue": ()}
    ctx.emit("conv2d", inputs, (shape[0], oc, oh, ow), attrs, node.output[0], node.name)


def _pool_out(size, k, s, d, pb, pe, ceil):
    span = size + pb + pe - d * (k - 1) - 1
    out = (-(-span // s) if ceil else span // s) + 1
    if ceil and (out - 1) * s >= size + pb:
        out -= 1  # the last window must start inside the input or its leading pad
    return out


def pool(kind):
    def convert(ctx: Context, node, ins):
        if len(node.output) > 1 and node.output[1]:
            raise UnsupportedError(f"MaxPool {node.name!r}: the Indices output is not supported")
        x = ins[0]
        shape = ctx.shape(x)
        _need_2d(node, shape)
        kernel = tuple(ctx.attr(node, "kernel_shape"))
        strides = tuple(ctx.attr(node, "strides", [1, 1]))
        dil = tuple(ctx.attr(node, "dilations", [1, 1]))
        if len(kernel) != 2:
            raise UnsupportedError(f"{node.op_type} {node.name!r}: only 2-D pooling is supported")
        pads = _pads_2d(ctx, node, shape[2:], kernel, strides, dil)
        ceil = bool(ctx.attr(node, "ceil_mode", 0))
        oh = _pool_out(shape[2], kernel[0], strides[0], dil[0], pads[0], pads[2], ceil)
        ow = _pool_out(shape[3], kernel[1], strides[1], dil[1], pads[1], pads[3], ceil)
        attrs = {"kind": kind, "kernel": kernel, "strides": strides, "dilations": dil,
                 "pads": pads, "count_include_pad": int(ctx.attr(node, "count_include_pad", 0)),
                 "p": float(ctx.attr(node, "p", 2))}
        ctx.emit("pool2d", [x], (shape[0], shape[1], oh, ow), attrs, node.output[0], node.name)
    return convert


def global_pool(kind):
    def convert(ctx: Context, node, ins):
        shape = ctx.shape(ins[0])
        _need_2d(node, shape)
        attrs = {"kind": kind, "kernel": tuple(shape[2:]), "strides": (1, 1), "dilations": (1, 1),
                 "pads": (0, 0, 0, 0), "count_include_pad": 0,
                 "p": float(ctx.attr(node, "p", 2))}
        ctx.emit("pool2d", [ins[0]], (shape[0], shape[1], 1, 1), attrs, node.output[0], node.name)
    return convert


def reshape_to(ctx, x, shape, out=None, name=""):
    return ctx.emit("reshape", [x], shape, {}, out, name)


def _dense(ctx, a, w, bias, out, name):
    """a[..., K] x const w[K, N] (+ bias[N]) as a 2-D dense kernel, reshaping around it if needed."""
    shape = ctx.shape(a)
    k, n = w.shape
    lead = shape[:-1]
    a2 = a if len(shape) == 2 else reshape_to(ctx, a, (int(np.prod(lead)), k))
    inputs = [a2, ctx.graph.add_const(w.astype(np.float32), "dense_w")]
    if bias is not None:
        inputs.append(ctx.graph.add_const(bias.astype(np.float32).reshape(n), "dense_b"))
    m = ctx.shape(a2)[0]
    if len(shape) == 2:
        return ctx.emit("dense", inputs, (m, n), {"epilogue": ()}, out, name)
    y = ctx.emit("dense", inputs, (m, n), {"epilogue": ()}, None, name)
    return reshape_to(ctx, y, (*lead, n), out)


def gemm(ctx: Context, node, ins):
    a, b = ins[0], ins[1]
    alpha, beta = float(ctx.attr(node, "alpha", 1.0)), float(ctx.attr(node, "beta", 1.0))
    if ctx.attr(node, "transA", 0):
        sa = ctx.shape(a)
        a = ctx.emit("transpose", [a], (sa[1], sa[0]), {"perm": (1, 0)})
    c = ins[2] if len(ins) > 2 and ins[2] else None
    if b in ctx.graph.consts:
        w = ctx.graph.consts[b].astype(np.float32)
        w = (w.T if ctx.attr(node, "transB", 0) else w) * np.float32(alpha)
        cc = ctx.graph.consts.get(c) if c else None
        n = w.shape[1]
        if c is None or (cc is not None and cc.size in (1, n) and cc.ndim <= 2 and
                         (cc.ndim < 2 or cc.shape[0] == 1)):
            bias = None if c is None else np.broadcast_to(
                cc.astype(np.float32).reshape(-1) * beta, (n,))
            _dense(ctx, a, w, bias, node.output[0], node.name)
            return
        y = _dense(ctx, a, w, None, None, node.name)
    else:
        if ctx.attr(node, "transB", 0):
            sb = ctx.shape(b)
            b = ctx.emit("transpose", [b], (sb[1], sb[0]), {"perm": (1, 0)})
        y = _matmul(ctx, a, b, None)
        if alpha != 1.0:
            y = ctx.elementwise([("mul", (None, 1), ())], [y, ctx.graph.add_const(
                np.float32(alpha), "alpha")])
    if c is None:
        ctx.alias[node.output[0]] = y
        return
    cval = ctx.graph.consts.get(c)
    if cval is not None:
        operand = ctx.graph.add_const(cval.astype(np.float32) * np.float32(beta), "gemm_c")
    elif beta != 1.0:
        operand = ctx.elementwise([("mul", (None, 1), ())],
                                  [c, ctx.graph.add_const(np.float32(beta), "beta")])
    else:
        operand = c
    ctx.elementwise([("add", (None, 1), ())], [y, operand], node.output[0], node.name)


def _as_shape(ctx, x, shape):
    """``x`` with the same elements in ``shape``: a folded constant, else a free reshape."""
    if tuple(shape) == ctx.shape(x):
        return x
    c = ctx.graph.consts.get(x)
    if c is not None:
        return ctx.graph.add_const(c.reshape(shape), "reshaped")
    return reshape_to(ctx, x, shape)


def _matmul(ctx, a, b, out, name=""):
    """numpy matmul; the kernel multiplies matrices, so 1-D operands are promoted and the
    result reshaped back, as numpy does."""
    sa, sb = ctx.shape(a), ctx.shape(b)
    if len(sa) < 1 or len(sb) < 1:
        raise ModelError("MatMul on scalars")
    ea = (1, *sa) if len(sa) == 1 else sa
    eb = (*sb, 1) if len(sb) == 1 else sb
    if ea[-1] != eb[-2]:
        raise ModelError(f"MatMul {name!r}: shapes {sa} and {sb} do not match")
    batch = np.broadcast_shapes(ea[:-2], eb[:-2])
    full = (*batch, ea[-2], eb[-1])
    shape = full
    if len(sa) == 1:
        shape = shape[:-2] + shape[-1:]
    if len(sb) == 1:
        shape = shape[:-1]
    inputs = [_as_shape(ctx, a, ea), _as_shape(ctx, ctx.f32(b), eb)]
    if shape == full:
        return ctx.emit("matmul", inputs, shape, {"epilogue": ()}, out, name)
    y = ctx.emit("matmul", inputs, full, {"epilogue": ()}, None, name)
    return reshape_to(ctx, y, shape, out)


def matmul(ctx: Context, node, ins):
    a, b = ins
    if b in ctx.graph.consts and ctx.graph.consts[b].ndim == 2 and len(ctx.shape(a)) >= 2:
        _dense(ctx, a, ctx.graph.consts[b].astype(np.float32), None, node.output[0], node.name)
    else:
        _matmul(ctx, a, b, node.output[0], node.name)


def batch_norm(ctx: Context, node, ins):
    if len([o for o in node.output if o]) > 1:
        raise UnsupportedError(f"BatchNormalization {node.name!r}: training mode is not supported")
    x = ins[0]
    gamma, beta, mean, var = (ctx.const(n, "BatchNormalization parameters").astype(np.float64)
                              for n in ins[1:5])
    eps = float(ctx.attr(node, "epsilon", 1e-5))
    scale = gamma / np.sqrt(var + eps)
    shift = beta - mean * scale
    rank = len(ctx.shape(x))
    bshape = (-1,) + (1,) * (rank - 2)
    s = ctx.graph.add_const(scale.astype(np.float32).reshape(bshape), "bn_scale")
    t = ctx.graph.add_const(shift.astype(np.float32).reshape(bshape), "bn_shift")
    ctx.elementwise([("mul", (None, 1), ()), ("add", (None, 2), ())], [x, s, t], node.output[0],
                    node.name)


def instance_norm(ctx: Context, node, ins):
    x = ins[0]
    if len(ctx.shape(x)) < 3:
        raise ModelError(f"InstanceNormalization {node.name!r} needs rank >= 3")
    ctx.emit("instance_norm", [x, ctx.f32(ins[1]), ctx.f32(ins[2])], ctx.shape(x),
             {"epsilon": float(ctx.attr(node, "epsilon", 1e-5))}, node.output[0], node.name)


def lrn(ctx: Context, node, ins):
    attrs = {"size": int(ctx.attr(node, "size")), "alpha": float(ctx.attr(node, "alpha", 1e-4)),
             "beta": float(ctx.attr(node, "beta", 0.75)), "bias": float(ctx.attr(node, "bias", 1.0))}
    ctx.emit("lrn", [ins[0]], ctx.shape(ins[0]), attrs, node.output[0], node.name)


def softmax(log):
    def convert(ctx: Context, node, ins):
        x = ins[0]
        shape = ctx.shape(x)
        axis = int(ctx.attr(node, "axis", 1 if ctx.opset < 13 else -1)) % max(len(shape), 1)
        if ctx.opset < 13 and axis != len(shape) - 1:
            flat = (int(np.prod(shape[:axis])), int(np.prod(shape[axis:])))
            y = ctx.emit("softmax", [reshape_to(ctx, x, flat)], flat, {"axis": 1, "log": log})
            reshape_to(ctx, y, shape, node.output[0])
            return
        ctx.emit("softmax", [x], shape, {"axis": axis, "log": log}, node.output[0], node.name)
    return convert


def _reshape_shape(in_shape, target, allowzero):
    out = [in_shape[i] if d == 0 and not allowzero else int(d) for i, d in enumerate(target)]
    if -1 in out:
        known = int(np.prod([d for d in out if d != -1]))
        out[out.index(-1)] = int(np.prod(in_shape)) // max(known, 1)
    if int(np.prod(out)) != int(np.prod(in_shape)):
        raise ModelError(f"cannot reshape {tuple(in_shape)} to {tuple(target)}")
    return tuple(out)


def reshape(ctx: Context, node, ins):
    target = ctx.const(ins[1], f"Reshape {node.name!r} shape") if len(ins) > 1 else \
        ctx.attr(node, "shape")
    shape = _reshape_shape(ctx.shape(ins[0]), [int(d) for d in target],
                           ctx.attr(node, "allowzero", 0))
    reshape_to(ctx, ins[0], shape, node.output[0], node.name)


def flatten(ctx: Context, node, ins):
    shape = ctx.shape(ins[0])
    axis = int(ctx.attr(node, "axis", 1))
    axis = axis + len(shape) if axis < 0 else axis  # -1 is the last axis, not the end
    new = (int(np.prod(shape[:axis])), int(np.prod(shape[axis:])))
    reshape_to(ctx, ins[0], new, node.output[0], node.name)


def _axes_of(ctx, node, ins):
    if len(ins) > 1 and ins[1]:
        return [int(a) for a in ctx.const(ins[1], "axes")]
    axes = ctx.attr(node, "axes")
    return None if axes is None else [int(a) for a in axes]


def squeeze(ctx: Context, node, ins):
    shape = ctx.shape(ins[0])
    axes = _axes_of(ctx, node, ins)
    axes = [i for i, d in enumerate(shape) if d == 1] if axes is None else \
        [a % len(shape) for a in axes]
    reshape_to(ctx, ins[0], [d for i, d in enumerate(shape) if i not in axes], node.output[0])


def unsqueeze(ctx: Context, node, ins):
    shape = list(ctx.shape(ins[0]))
    axes = _axes_of(ctx, node, ins)
    rank = len(shape) + len(axes)
    for a in sorted(a % rank for a in axes):
        shape.insert(a, 1)
    reshape_to(ctx, ins[0], shape, node.output[0])


def transpose(ctx: Context, node, ins):
    shape = ctx.shape(ins[0])
    perm = tuple(ctx.attr(node, "perm", list(range(len(shape)))[::-1]))
    ctx.emit("transpose", [ins[0]], [shape[p] for p in perm], {"perm": perm}, node.output[0])


def concat(ctx: Context, node, ins):
    ins = [ctx.f32(i) for i in ins if i]
    shapes = [ctx.shape(i) for i in ins]
    axis = int(ctx.attr(node, "axis")) % len(shapes[0])
    out = list(shapes[0])
    out[axis] = sum(s[axis] for s in shapes)
    ctx.emit("concat", ins, out, {"axis": axis}, node.output[0], node.name)


def _slice_out(ctx, x, starts, ends, axes, steps, out):
    shape = ctx.shape(x)
    full = [[0, d, 1] for d in shape]
    for s, e, a, st in zip(starts, ends, axes, steps):
        a, d = int(a) % len(shape), shape[int(a) % len(shape)]
        s, e, st = int(s), int(e), int(st)
        if st == 0:
            raise ModelError("Slice step 0")
        s = s + d if s < 0 else s
        e = e + d if e < 0 else e
        if st > 0:
            s, e = min(max(s, 0), d), min(max(e, 0), d)
        else:
            s, e = min(max(s, 0), d - 1), min(max(e, -1), d - 1)
        full[a] = [s, e, st]
    out_shape = [max(0, len(range(s, e, st))) for s, e, st in full]
    if 0 in out_shape:
        raise UnsupportedError(f"Slice produces an empty tensor {out_shape}")
    attrs = {"starts": tuple(f[0] for f in full), "steps": tuple(f[2] for f in full)}
    return ctx.emit("slice", [x], out_shape, attrs, out)


def slice_(ctx: Context, node, ins):
    if ctx.opset < 10:
        starts, ends = ctx.attr(node, "starts"), ctx.attr(node, "ends")
        axes = ctx.attr(node, "axes", list(range(len(starts))))
        steps = [1] * len(starts)
    else:
        starts = ctx.const(ins[1], "Slice starts")
        ends = ctx.const(ins[2], "Slice ends")
        axes = ctx.const(ins[3], "Slice axes") if len(ins) > 3 and ins[3] else range(len(starts))
        steps = ctx.const(ins[4], "Slice steps") if len(ins) > 4 and ins[4] else [1] * len(starts)
    _slice_out(ctx, ins[0], starts, ends, axes, steps, node.output[0])


def split(ctx: Context, node, ins):
    shape = ctx.shape(ins[0])
    axis = int(ctx.attr(node, "axis", 0)) % len(shape)
    if len(ins) > 1 and ins[1]:
        sizes = [int(s) for s in ctx.const(ins[1], "Split sizes")]
    elif ctx.attr(node, "split") is not None:
        sizes = [int(s) for s in ctx.attr(node, "split")]
    else:
        parts = int(ctx.attr(node, "num_outputs", len(node.output)))
        step = -(-shape[axis] // parts)
        sizes = [min(step, shape[axis] - i * step) for i in range(parts)]
    if sum(sizes) != shape[axis]:
        raise ModelError(f"Split {node.name!r}: sizes {sizes} do not add up to {shape[axis]}")
    start = 0
    for out, size in zip(node.output, sizes):
        if out:
            _slice_out(ctx, ins[0], [start], [start + size], [axis], [1], out)
        start += size


def pad(ctx: Context, node, ins):
    shape = ctx.shape(ins[0])
    mode = ctx.attr(node, "mode", "constant")
    if ctx.opset < 11:
        pads, value = ctx.attr(node, "pads", ctx.attr(node, "paddings")), ctx.attr(node, "value", 0.)
    else:
        pads = [int(p) for p in ctx.const(ins[1], "Pad pads")]
        value = ctx.const(ins[2], "Pad value") if len(ins) > 2 and ins[2] else 0.0
        if len(ins) > 3 and ins[3]:
            axes = [int(a) % len(shape) for a in ctx.const(ins[3], "Pad axes")]
            full = [0] * (2 * len(shape))
            for i, a in enumerate(axes):
                full[a], full[a + len(shape)] = pads[i], pads[i + len(axes)]
            pads = full
    if mode not in ("constant", "reflect", "edge", "wrap"):
        raise UnsupportedError(f"Pad mode {mode!r}")
    rank = len(shape)
    out = [d + int(pads[i]) + int(pads[i + rank]) for i, d in enumerate(shape)]
    attrs = {"pads": tuple(int(p) for p in pads), "mode": mode,
             "value": float(np.asarray(value).reshape(-1)[0]) if np.size(value) else 0.0}
    ctx.emit("pad", [ins[0]], out, attrs, node.output[0], node.name)


def depth_to_space(ctx: Context, node, ins):
    n, c, h, w = ctx.shape(ins[0])
    b = int(ctx.attr(node, "blocksize"))
    attrs = {"block": b, "mode": ctx.attr(node, "mode", "DCR")}
    ctx.emit("depth_to_space", [ins[0]], (n, c // (b * b), h * b, w * b), attrs, node.output[0])


def space_to_depth(ctx: Context, node, ins):
    n, c, h, w = ctx.shape(ins[0])
    b = int(ctx.attr(node, "blocksize"))
    attrs = {"block": b, "mode": ctx.attr(node, "mode", "DCR")}  # mode: opset 28
    ctx.emit("space_to_depth", [ins[0]], (n, c * b * b, h // b, w // b), attrs, node.output[0])


def identity(ctx: Context, node, ins):
    ctx.alias[node.output[0]] = ins[0]


def dropout(ctx: Context, node, ins):
    if len(node.output) > 1 and node.output[1]:
        mask = ctx.graph.shapes[ins[0]]
        ctx.set_const(node.output[1], np.ones(mask, np.bool_))
    identity(ctx, node, ins)


def cast(ctx: Context, node, ins):
    if int(ctx.attr(node, "to")) != 1:
        raise UnsupportedError(f"Cast {node.name!r} of an activation to a type other than float32")
    identity(ctx, node, ins)


def unary(fn, **defaults):
    """An elementwise op of one input with float attributes (name -> default)."""
    def convert(ctx: Context, node, ins):
        params = tuple(float(ctx.attr(node, k, v)) for k, v in defaults.items())
        ctx.elementwise([(fn, (None,), params)], [ins[0]], node.output[0], node.name)
    return convert


def binary(fn, commutative):
    def convert(ctx: Context, node, ins):
        a, b = ins[0], ins[1]
        if a in ctx.graph.consts and b not in ctx.graph.consts:
            if commutative:
                a, b = b, a
            else:
                ctx.elementwise([(fn, (1, None), ())], [b, a], node.output[0], node.name)
                return
        ctx.elementwise([(fn, (None, 1), ())], [a, b], node.output[0], node.name)
    return convert


def variadic(fn):
    """Sum, Max, Min, Mean: a chain of binary steps over every input."""
    def convert(ctx: Context, node, ins):
        ins = sorted([i for i in ins if i], key=lambda i: i in ctx.graph.consts)
        steps = [(fn, (None, k), ()) for k in range(1, len(ins))]
        if node.op_type == "Mean":
            steps.append(("mul", (None, len(ins)), ()))
            ins = ins + [ctx.graph.add_const(np.float32(1.0 / len(ins)), "mean")]
        if not steps:
            steps = [("copy", (None,), ())]
        ctx.elementwise(steps, ins, node.output[0], node.name)
    return convert


def clip(ctx: Context, node, ins):
    if ctx.opset < 11:
        lo, hi = ctx.attr(node, "min", -math.inf), ctx.attr(node, "max", math.inf)
    else:
        lo = ctx.const(ins[1], "Clip min") if len(ins) > 1 and ins[1] else -math.inf
        hi = ctx.const(ins[2], "Clip max") if len(ins) > 2 and ins[2] else math.inf
    ctx.elementwise([("clip", (None,), (float(lo), float(hi)))], [ins[0]], node.output[0],
                    node.name)


def prelu(ctx: Context, node, ins):
    slope = ins[1]
    xs, ss = ctx.shape(ins[0]), ctx.shape(slope)
    c = ctx.graph.consts.get(slope)
    if c is not None and c.ndim == 1 and len(xs) >= 3 and c.shape[0] == xs[1] != xs[-1]:
        slope = ctx.graph.add_const(c.reshape((-1,) + (1,) * (len(xs) - 2)), "prelu")
    elif len(ss) > len(xs):
        raise ModelError(f"PRelu {node.name!r}: slope {ss} does not broadcast to {xs}")
    ctx.elementwise([("prelu", (None, 1), ())], [ins[0], slope], node.output[0], node.name)


CONVERTERS = {
    "Conv": conv,
    "MaxPool": pool("max"),
    "AveragePool": pool("avg"),
    "LpPool": pool("lp"),
    "GlobalAveragePool": global_pool("avg"),
    "GlobalMaxPool": global_pool("max"),
    "GlobalLpPool": global_pool("lp"),
    "Gemm": gemm,
    "MatMul": matmul,
    "BatchNormalization": batch_norm,
    "InstanceNormalization": instance_norm,
    "LRN": lrn,
    "Softmax": softmax(False),
    "LogSoftmax": softmax(True),
    "Reshape": reshape,
    "Flatten": flatten,
    "Squeeze": squeeze,
    "Unsqueeze": unsqueeze,
    "Transpose": transpose,
    "Concat": concat,
    "Slice": slice_,
    "Split": split,
    "Pad": pad,
    "DepthToSpace": depth_to_space,
    "SpaceToDepth": space_to_depth,
    "Identity": identity,
    "Dropout": dropout,
    "Cast": cast,
    "Relu": unary("relu"),
    "LeakyRelu": unary("leaky_relu", alpha=0.01),
    "Sigmoid": unary("sigmoid"),
    "Tanh": unary("tanh"),
    "HardSigmoid": unary("hard_sigmoid", alpha=0.2, beta=0.5),
    "HardSwish": unary("hard_swish"),
    "Elu": unary("elu", alpha=1.0),
    "Selu": unary("selu", alpha=1.67326319217681884765625, gamma=1.05070102214813232421875),
    "Celu": unary("celu", alpha=1.0),
    "Softplus": unary("softplus"),
    "Softsign": unary("softsign"),
    "Mish": unary("mish"),
    "ThresholdedRelu": unary("thresholded_relu", alpha=1.0),
    "Abs": unary("abs"),
    "Neg": unary("neg"),
    "Exp": unary("exp"),
    "Log": unary("log"),
    "Sqrt": unary("sqrt"),
    "Reciprocal": unary("reciprocal"),
    "Floor": unary("floor"),
    "Ceil": unary("ceil"),
    "Erf": unary("erf"),
    "Clip": clip,
    "PRelu": prelu,
    "Add": binary("add", True),
    "Sub": binary("sub", False),
    "Mul": binary("mul", True),
    "Div": binary("div", False),
    "Pow": binary("pow", False),
    "Sum": variadic("add"),
    "Mean": variadic("add"),
    "Max": variadic("max"),
    "Min": variadic("min"),
}
