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


# take's table holds indices in float32: exact below this
MAX_TAKE_AXIS = 1 << 24


def _even_run(indices: np.ndarray) -> tuple[int, int] | None:
    """(first, step) when the indices are evenly spaced (a slice), else None."""
    if indices.size == 1:
        return int(indices[0]), 1
    steps = np.diff(indices)
    return (int(indices[0]), int(steps[0])) if steps[0] and (steps == steps[0]).all() else None


def _gather(ctx: Context, x: str, axis: int, indices: np.ndarray, out: str, name: str) -> None:
    """``x`` gathered along ``axis`` at constant indices (any shape, in range, none negative):
    a slice where they are evenly spaced (PyTorch's dynamo exporter writes ``as_strided`` so,
    ConvNeXt's pooled features gathered at arange(768)), else a take through a table."""
    shape = ctx.shape(x)
    flat = indices.reshape(-1)
    out_shape = (*shape[:axis], *indices.shape, *shape[axis + 1:])
    run = _even_run(flat)
    if run == (0, 1) and flat.size == shape[axis] and out_shape == tuple(shape):
        ctx.alias[out] = x
        return
    if run is not None:
        first, step = run
        end = first + flat.size * step
        data = _slice_out(ctx, x, [first], [end if end >= 0 else -shape[axis] - 1], [axis],
                          [step], None)
    elif shape[axis] > MAX_TAKE_AXIS:
        raise UnsupportedError(f"node {name!r} gathers along an axis of {shape[axis]:,} elements; "
                               f"tvmconv gathers along at most {MAX_TAKE_AXIS:,}")
    else:
        table = ctx.graph.add_const(flat.astype(np.float32), "take_table")
        gathered = (*shape[:axis], flat.size, *shape[axis + 1:])
        data = ctx.emit("take", [x, table], gathered, {"axis": axis})
    reshape_to(ctx, data, out_shape, out, name)


def _in_range(indices: np.ndarray, sizes, what: str) -> np.ndarray:
    """Constant indices with negatives counted from the end; out of range is a ModelError."""
    sizes = np.asarray(sizes, np.int64)
    if indices.size == 0:
        raise UnsupportedError(f"{what} selects nothing: empty tensors unsupported")
    if ((indices < -sizes) | (indices >= sizes)).any():
        bounds = (f"[{-sizes}, {sizes})" if sizes.ndim == 0 else
                  f"the sizes {sizes.tolist()} of the axes they index")
        raise ModelError(f"{what}: indices outside {bounds}")
    return np.where(indices < 0, indices + sizes, indices)


def gather(ctx: Context, node, ins):
    shape = ctx.shape(ins[0])
    axis = int(ctx.attr(node, "axis", 0)) % len(shape)
    what = f"Gather {node.name!r}"
    indices = np.asarray(ctx.const(ins[1], f"{what} indices")).astype(np.int64)
    _gather(ctx, ins[0], axis, _in_range(indices, shape[axis], what), node.output[0], node.name)


def gather_nd(ctx: Context, node, ins):
    """GatherND at constant indices, as a Gather over the indexed leading axes flattened into
    one (PyTorch's dynamo exporter gathers adaptive pooling windows and nearest-exact resizes
    so)."""
    what = f"GatherND {node.name!r}"
    if int(ctx.attr(node, "batch_dims", 0)):
        raise UnsupportedError(f"{what}: batch_dims other than 0")
    shape = ctx.shape(ins[0])
    indices = np.asarray(ctx.const(ins[1], f"{what} indices")).astype(np.int64)
    k = indices.shape[-1] if indices.ndim else 0
    if not 1 <= k <= len(shape):
        raise ModelError(f"{what}: index tuples of {k} for an input of rank {len(shape)}")
    lead = shape[:k]
    indices = _in_range(indices, lead, what)
    flat = np.ravel_multi_index(tuple(np.moveaxis(indices, -1, 0)), lead)
    data = ins[0] if k == 1 else reshape_to(ctx, ins[0], (int(np.prod(lead)), *shape[k:]))
    _gather(ctx, data, 0, np.asarray(flat, np.int64), node.output[0], node.name)


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
