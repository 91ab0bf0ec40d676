"""Data movement: transpose, concat, slice, take, pad, resize, depth/space rearrangements and
layout transforms.

Each is one injective stage; reshape is not here because the runtime reshapes without a kernel.
"""

from __future__ import annotations

import math

import numpy as np
from tvm import te, tirx

from ..workload import Workload
from . import elementwise as ew


def _inputs(p, count=1):
    return [te.placeholder(s, name=f"in{k}") for k, s in enumerate(p["inputs"][:count])]


def transpose(wl):
    p = wl.params
    (x,) = _inputs(p)
    perm = p["perm"]

    def body(*i):
        src = [0] * len(perm)
        for out_axis, in_axis in enumerate(perm):
            src[in_axis] = i[out_axis]
        return x(*src)

    return [x, te.compute(p["out"], body, name="transpose")]


def concat(wl):
    p = wl.params
    xs = _inputs(p, len(p["inputs"]))
    axis = p["axis"]
    offsets = [0]
    for s in p["inputs"]:
        offsets.append(offsets[-1] + s[axis])

    def body(*i):
        value = None
        for k in reversed(range(len(xs))):  # nested selects, first input outermost
            src = (*i[:axis], i[axis] - offsets[k], *i[axis + 1:])
            v = xs[k](*src)
            value = v if value is None else tirx.if_then_else(i[axis] < offsets[k + 1], v, value)
        return value

    return [*xs, te.compute(p["out"], body, name="concat")]


def resize(wl):
    """Gather through the row and column tables of ``frontend.resize``: a source index each
    (nearest), or two and the second's weight (linear, blended along rows, then columns). Any axes
    after W (a channel block) ride along."""
    p = wl.params
    x, rows, cols = _inputs(p, 3)

    def at(table, k, i):
        return table[k, i].astype("int32")

    if p["mode"] == "nearest":
        def body(n, c, y, w, *r):
            return x(n, c, at(rows, 0, y), at(cols, 0, w), *r)
    else:
        def body(n, c, y, w, *r):
            def row(yy):
                left, right = x(n, c, yy, at(cols, 0, w), *r), x(n, c, yy, at(cols, 1, w), *r)
                return left + (right - left) * cols[2, w]
            top, bottom = row(at(rows, 0, y)), row(at(rows, 1, y))
            return top + (bottom - top) * rows[2, y]

    return [x, rows, cols, te.compute(p["out"], body, name="resize")]


def resize_tables(wl, rng) -> list:
    """Row and column tables a resize kernel can be measured with: source indices within the
    input (random ones read past it) and weights in [0, 1)."""
    def table(rows, size, length):
        t = rng.uniform(0.0, 1.0, (rows, length))
        t[:min(rows, 2)] = rng.integers(0, size, (min(rows, 2), length))
        return t.astype("float32")

    (_, _, h, w, *_), rows, cols = wl.params["inputs"][:3]
    return [table(rows[0], h, rows[1]), table(cols[0], w, cols[1])]


def take(wl):
    """Gather along ``axis`` through a table of source indices (``frontend.tensor.gather``), held
    in float32 as resize's tables are (exact below 2^24)."""
    p = wl.params
    x, table = _inputs(p, 2)
    axis = p["axis"]
    return [x, table, te.compute(
        p["out"], lambda *i: x(*i[:axis], table[i[axis]].astype("int32"), *i[axis + 1:]),
        name="take")]


def take_table(wl, rng) -> np.ndarray:
    """A table a take kernel can be measured with: random indices within the gathered axis."""
    p = wl.params
    return rng.integers(0, p["inputs"][0][p["axis"]], p["inputs"][1]).astype("float32")


def _slice_axes(p):
    """(starts, steps) over every axis: any past the sliced ones (a channel block's lanes) are
    taken whole."""
    extra = len(p["out"]) - len(p["starts"])
    return (*p["starts"], *[0] * extra), (*p["steps"], *[1] * extra)


def slice_(wl):
    p = wl.params
    (x,) = _inputs(p)
    starts, steps = _slice_axes(p)
    return [x, te.compute(p["out"],
                          lambda *i: x(*[s + k * st for k, s, st in zip(i, starts, steps)]),
                          name="slice")]


def pad(wl):
    p = wl.params
    (x,) = _inputs(p)
    shape, pads, mode = p["inputs"][0], p["pads"], p["mode"]
    rank = len(shape)
    begin = pads[:rank]

    def body(*i):
        src = [k - b for k, b in zip(i, begin)]
        if mode == "constant":
            inside = tirx.all(*[tirx.all(s >= 0, s < d) for s, d in zip(src, shape)])
            clamped = [tirx.max(tirx.min(s, d - 1), 0) for s, d in zip(src, shape)]
            return tirx.if_then_else(inside, x(*clamped), tirx.const(p["value"], "float32"))
        if mode == "edge":
            return x(*[tirx.max(tirx.min(s, d - 1), 0) for s, d in zip(src, shape)])
        if mode == "wrap":
            return x(*[tirx.floormod(s, d) for s, d in zip(src, shape)])
        # reflect: mirror without repeating the edge; period 2 * (d - 1)
        idx = []
        for s, d in zip(src, shape):
            if d == 1:
                idx.append(tirx.const(0, "int32") * s)
                continue
            m = tirx.floormod(s, 2 * (d - 1))
            idx.append(tirx.if_then_else(m < d, m, 2 * (d - 1) - m))
        return x(*idx)

    return [x, te.compute(p["out"], body, name="pad")]


def depth_to_space(wl):
    """Also on channel blocks (DCR only): each block of output channels is a whole input block."""
    p = wl.params
    (x,) = _inputs(p)
    b, mode = p["block"], p["mode"]
    c_out = p["out"][1]  # channels, or channel blocks

    def body(n, c, y, xx, *lane):
        by, bx = y % b, xx % b
        src_c = (by * b + bx) * c_out + c if mode == "DCR" else c * b * b + by * b + bx
        return x[(n, src_c, y // b, xx // b, *lane)]

    return [x, te.compute(p["out"], body, name="depth_to_space")]


def space_to_depth(wl):
    p = wl.params
    (x,) = _inputs(p)
    b, mode = p["block"], p["mode"]
    c_in = p["inputs"][0][1]

    def body(n, c, y, xx):
        if mode == "DCR":
            blk, src_c = c // c_in, c % c_in
        else:
            src_c, blk = c // (b * b), c % (b * b)
        return x[n, src_c, y * b + blk // b, xx * b + blk % b]

    return [x, te.compute(p["out"], body, name="space_to_depth")]


def layout_transform(wl):
    """Between plain NCHW (block 0) and blocked NCHW[b]c, or from one block size to another; only
    the real ``channels`` are read, and a padded last block of the output gets zeros."""
    p = wl.params
    (x,) = _inputs(p)
    src, dst, channels = p["src"], p["dst"], p.get("channels")

    def read(n, c, y, xx):
        return x[n, c, y, xx] if src == 0 else x[n, c // src, y, xx, c % src]

    if dst == 0:
        body = read
    elif channels is None or channels % dst == 0:
        def body(n, cb, y, xx, ci):
            return read(n, cb * dst + ci, y, xx)
    else:
        def body(n, cb, y, xx, ci):
            c = cb * dst + ci
            return tirx.if_then_else(c < channels, read(n, tirx.min(c, channels - 1), y, xx),
                                     tirx.const(0.0, "float32"))

    return [x, te.compute(p["out"], body, name="layout_transform")]


def elementwise(wl):
    p = wl.params
    xs = _inputs(p, len(p["inputs"]))
    return [*xs, ew.elementwise(xs, p["steps"], p["out"])]


def collapsed(wl) -> Workload | None:
    """The same transpose, slice, concat or elementwise op over the fewest axes, or None when
    none merge.

    Adjacent axes merge when they stay adjacent and whole in every operand, so the kernel's
    vector loop runs along one long contiguous axis. Over the model's 4 or 5 axes TVM could not
    always prove a vector contiguous and computed each lane's index with divisions: a channel
    split of a 116x56x56 map took 62 us so, 4 us merged; x * x over 2x3x55x55x16, where a vector
    of 32 may cross a row of 880, 124 us so, 15 us merged (``kernels.prim_func`` declares the
    merged buffers as views of the real ones)."""
    p = wl.params
    rule = {"slice": _collapsed_slice, "transpose": _collapsed_transpose,
            "concat": _collapsed_concat, "elementwise": _collapsed_elementwise}.get(wl.kind)
    merged = rule(p) if rule and len(p["out"]) > 1 else None
    if merged is None or len(merged["out"]) >= len(p["out"]):
        return None
    return Workload(wl.kind, tuple(sorted(merged.items())))


def _sizes(shape, groups):
    return tuple(math.prod(shape[a] for a in g) for g in groups)


def _collapsed_slice(p):
    (shape,), out = p["inputs"], p["out"]
    starts, steps = _slice_axes(p)
    groups = [[len(out) - 1]]
    for a in reversed(range(len(out) - 1)):
        # axis a absorbs the axes after it when it has one element, or when it is read with step
        # 1 and they are taken whole
        if shape[a] == 1 or (steps[a] == 1 and all(
                starts[b] == 0 and steps[b] == 1 and out[b] == shape[b] for b in groups[0])):
            groups[0].insert(0, a)
        else:
            groups.insert(0, [a])
    return {"inputs": (_sizes(shape, groups),), "out": _sizes(out, groups),
            "starts": tuple(sum(starts[b] * math.prod(shape[c] for c in g[k + 1:])
                                for k, b in enumerate(g)) for g in groups),
            # a group of several axes of more than one element is read with step 1
            "steps": tuple(next((steps[b] for b in g if shape[b] > 1), 1) for g in groups)}


def _collapsed_transpose(p):
    (shape,), perm = p["inputs"], p["perm"]
    kept = [a for a in range(len(shape)) if shape[a] != 1]  # unit axes move nothing
    if not kept:
        return {"inputs": ((1,),), "out": (1,), "perm": (0,)}
    renamed = {a: k for k, a in enumerate(kept)}
    runs = []  # output axes whose input axes follow each other: one axis each
    for a in (renamed[a] for a in perm if shape[a] != 1):
        if runs and runs[-1][-1] + 1 == a:
            runs[-1].append(a)
        else:
            runs.append([a])
    order = sorted(range(len(runs)), key=lambda r: runs[r][0])
    inner = [shape[a] for a in kept]
    return {"inputs": (tuple(math.prod(inner[a] for a in runs[r]) for r in order),),
            "out": tuple(math.prod(inner[a] for a in run) for run in runs),
            "perm": tuple(order.index(r) for r in range(len(runs)))}


def _collapsed_elementwise(p):
    out = p["out"]
    shapes = [(1,) * (len(out) - len(s)) + tuple(s) for s in p["inputs"]]

    def reads(a):  # per operand: whole along axis a, or broadcast; None where out has 1
        return tuple(None if out[a] == 1 else s[a] == out[a] for s in shapes)

    groups = [[len(out) - 1]]
    state = list(reads(len(out) - 1))
    for a in reversed(range(len(out) - 1)):
        here = reads(a)
        if all(h is None or g is None or h == g for h, g in zip(here, state)):
            groups[0].insert(0, a)
            state = [g if h is None else h for h, g in zip(here, state)]
        else:
            groups.insert(0, [a])
            state = list(here)
    return {"inputs": tuple(_sizes(s, groups) for s in shapes), "out": _sizes(out, groups),
            "steps": p["steps"]}


def _collapsed_concat(p):
    axis, out = p["axis"], p["out"]
    before, after = list(range(axis)), list(range(axis + 1, len(out)))
    groups = [g for g in (before, [axis], after) if g]
    return {"inputs": tuple(_sizes(s, groups) for s in p["inputs"]), "out": _sizes(out, groups),
            "axis": 1 if before else 0}
