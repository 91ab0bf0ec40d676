"""Converters of the data-movement operators: reshapes, transposes, concat/split/slice, pads,
depth/space rearrangements, and the operators that vanish at inference (Identity, Dropout, Cast)."""

from __future__ import annotations

import numpy as np

from ..errors import ModelError, UnsupportedError
from .context import Context, axes_of, reshape_to


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


def squeeze(ctx: Context, node, ins):
    shape = ctx.shape(ins[0])
    axes = axes_of(ctx, node, ins)
    axes = [i for i, d in enumerate(shape) if d == 1] if axes is None else \
        [a % len(shape) for a in axes]
    reshape_to(ctx, ins[0], [d for i, d in enumerate(shape) if i not in axes], node.output[0])


def unsqueeze(ctx: Context, node, ins):
    shape = list(ctx.shape(ins[0]))
    axes = axes_of(ctx, node, ins)
    rank = len(shape) + len(axes)
    for a in sorted(a % rank for a in axes):
        shape.insert(a, 1)
    reshape_to(ctx, ins[0], shape, node.output[0])


def transpose(ctx: Context, node, ins):
    shape = ctx.shape(ins[0])
    perm = tuple(ctx.attr(node, "perm", list(range(len(shape)))[::-1]))
    if sorted(perm) != list(range(len(shape))):
        raise ModelError(f"Transpose {node.name!r}: perm {list(perm)} is not a permutation of the "
                         f"axes of {list(shape)}")
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


# A Gather is compiled as one Slice per run of evenly spaced indices, concatenated: this many
# runs at most (a shuffle of every channel would be a kernel per channel).
MAX_GATHER_RUNS = 64


def _runs(indices: np.ndarray) -> list[tuple[int, int, int]]:
    """(first, count, step) of the runs of evenly spaced indices, left to right."""
    runs, i = [], 0
    while i < len(indices):
        j, step = i + 1, 1
        if j < len(indices) and indices[j] != indices[i]:
            step = int(indices[j] - indices[i])
            while j < len(indices) and indices[j] - indices[j - 1] == step:
                j += 1
        runs.append((int(indices[i]), j - i, step))
        i = j
    return runs


def gather(ctx: Context, node, ins):
    """Gather from an activation at constant indices, as slices: PyTorch's dynamo exporter writes
    ``as_strided`` so (ConvNeXt's pooled features, flattened and gathered at arange(768))."""
    shape = ctx.shape(ins[0])
    axis = int(ctx.attr(node, "axis", 0)) % len(shape)
    indices = np.asarray(ctx.const(ins[1], f"Gather {node.name!r} indices")).astype(np.int64)
    size = shape[axis]
    if indices.size == 0:
        raise UnsupportedError(f"Gather {node.name!r} selects nothing: empty tensors unsupported")
    if ((indices < -size) | (indices >= size)).any():
        raise ModelError(f"Gather {node.name!r}: indices outside [{-size}, {size}) on axis {axis}")
    flat = np.where(indices < 0, indices + size, indices).reshape(-1)
    runs = _runs(flat)
    if len(runs) > MAX_GATHER_RUNS:
        raise UnsupportedError(f"Gather {node.name!r}: its {flat.size} indices make {len(runs)} "
                               f"runs of evenly spaced indices; tvmconv gathers at most "
                               f"{MAX_GATHER_RUNS} (each one a slice)")
    out_shape = (*shape[:axis], *indices.shape, *shape[axis + 1:])
    if runs == [(0, size, 1)] and out_shape == tuple(shape):
        ctx.alias[node.output[0]] = ins[0]
        return
    parts = []
    for first, count, step in runs:
        end = first + count * step
        parts.append(_slice_out(ctx, ins[0], [first], [end if end >= 0 else -size - 1], [axis],
                                [step], None))
    joined = list(shape)
    joined[axis] = flat.size
    data = parts[0] if len(parts) == 1 else ctx.emit("concat", parts, joined, {"axis": axis})
    reshape_to(ctx, data, out_shape, node.output[0], node.name)


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
        pads, value = (ctx.attr(node, "pads", ctx.attr(node, "paddings")),
                       ctx.attr(node, "value", 0.))
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
    if min(out) < 1:
        raise ModelError(f"Pad {node.name!r}: pads {list(pads)} leave nothing of {list(shape)}")
    attrs = {"pads": tuple(int(p) for p in pads), "mode": mode,
             "value": float(np.asarray(value).reshape(-1)[0]) if np.size(value) else 0.0}
    ctx.emit("pad", [ins[0]], out, attrs, node.output[0], node.name)


def _block_operands(ctx: Context, node, ins, divisible):
    """(N, C, H, W, blocksize) of a DepthToSpace or SpaceToDepth, the named dims checked to be
    multiples of the block (of its square for channels)."""
    shape, b = ctx.shape(ins[0]), int(ctx.attr(node, "blocksize", 0))
    if len(shape) != 4 or b < 1 or any(shape[a] % (b * b if a == 1 else b) for a in divisible):
        raise ModelError(f"{node.op_type} {node.name!r}: blocksize {b} does not fit the input "
                         f"{list(shape)}")
    return (*shape, b)


def depth_to_space(ctx: Context, node, ins):
    n, c, h, w, b = _block_operands(ctx, node, ins, (1,))
    attrs = {"block": b, "mode": ctx.attr(node, "mode", "DCR")}
    ctx.emit("depth_to_space", [ins[0]], (n, c // (b * b), h * b, w * b), attrs, node.output[0])


def space_to_depth(ctx: Context, node, ins):
    n, c, h, w, b = _block_operands(ctx, node, ins, (2, 3))
    attrs = {"block": b, "mode": ctx.attr(node, "mode", "DCR")}  # mode: opset 28
    ctx.emit("space_to_depth", [ins[0]], (n, c * b * b, h // b, w // b), attrs, node.output[0])


def expand(ctx: Context, node, ins):
    """Expand of an activation (F.normalize divides by an expanded norm): a copy broadcast
    numpy-style to the shape."""
    x = ins[0]
    shape = tuple(int(d) for d in np.ravel(ctx.const(ins[1], "Expand shape")))
    try:
        out = tuple(np.broadcast_shapes(ctx.shape(x), shape))
    except ValueError:
        raise ModelError(f"Expand node {node.name!r}: shape {list(shape)} does not broadcast "
                         f"with the input's {list(ctx.shape(x))}") from None
    if out == ctx.shape(x):
        identity(ctx, node, ins)
        return
    ctx.emit("elementwise", [x], out, {"steps": (("copy", (None,), ()),)}, node.output[0],
             node.name)


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
