"""Layers that reduce: softmax / log-softmax, LRN, instance and layer normalisation, ONNX Reduce*
over any axes."""

from __future__ import annotations

import math

from tvm import te, tirx

from .elementwise import apply_steps, broadcast_index, exp, log, power


def softmax(wl) -> list[te.Tensor]:
    p = wl.params
    x = te.placeholder(p["data"], name="data")
    axis, shape = p["axis"], p["data"]
    r = te.reduce_axis((0, shape[axis]), "r")

    def at(idx, value):
        return (*idx[:axis], value, *idx[axis + 1:])

    red_shape = at(shape, 1)
    mx = te.compute(red_shape, lambda *i: te.max(x(*at(i, r)), axis=r), name="softmax_max")
    r2 = te.reduce_axis((0, shape[axis]), "r2")
    total = te.compute(red_shape, lambda *i: te.sum(
        exp(x(*at(i, r2)) - mx(*i)), axis=r2), name="softmax_sum")
    if p["log"]:
        out = te.compute(shape, lambda *i: x(*i) - mx(*at(i, 0)) - log(total(*at(i, 0))),
                         name="softmax")
    else:
        out = te.compute(shape, lambda *i: exp(x(*i) - mx(*at(i, 0))) / total(*at(i, 0)),
                         name="softmax")
    return [x, out]


def lrn(wl) -> list[te.Tensor]:
    """ONNX LRN: x / (bias + alpha / size * sum of squares over nearby channels) ** beta."""
    p = wl.params
    x = te.placeholder(p["data"], name="data")
    size, channels = p["size"], p["data"][1]
    lo = (size - 1) // 2
    r = te.reduce_axis((0, size), "r")

    def sq(n, c, *rest):
        src = c - lo + r
        inside = tirx.all(src >= 0, src < channels)
        v = x[(n, tirx.max(tirx.min(src, channels - 1), 0), *rest)]
        return te.sum(tirx.if_then_else(inside, v * v, tirx.const(0.0, "float32")), axis=r)

    sqsum = te.compute(p["data"], sq, name="lrn_sqsum")
    scale = tirx.const(p["alpha"] / size, "float32")
    # the base is positive (ONNX's bias defaults to 1; a bias <= 0 with a zero window divides
    # by 0 in onnxruntime too), so the power vectorises as exp(beta * log(base))
    out = te.compute(p["data"], lambda *i: x(*i) / power(
        tirx.const(p["bias"], "float32") + scale * sqsum(*i), p["beta"], positive=True),
        name="lrn")
    return [x, out]


def _moments(read, outer: tuple, inner: tuple):
    """Mean and (biased) variance of ``read(o, r)`` over the ``inner`` extents, per ``outer``
    index ``o``. The mean sums the values less the first one, then adds it back: exact for a
    constant channel (an upsampled 1x1 map), where a rounding error in a plain sum, divided by
    sqrt(epsilon), would come out of the normalisation as a visible offset."""
    count = math.prod(inner)
    # TE allows a reduction only as the whole body of a compute: scale inside the sum
    inv = tirx.const(1.0 / count, "float32")
    first = [0] * len(inner)
    axes = [te.reduce_axis((0, d), f"r{k}") for k, d in enumerate(inner)]
    shifted = te.compute(outer, lambda *o: te.sum((read(o, axes) - read(o, first)) * inv,
                                                  axis=axes), name="norm_mean")

    def mean(*o):
        return read(o, first) + shifted(*o)

    axes2 = [te.reduce_axis((0, d), f"s{k}") for k, d in enumerate(inner)]

    def sqdev(*o):
        d = read(o, axes2) - mean(*o)
        return te.sum(d * d * inv, axis=axes2)

    return mean, te.compute(outer, sqdev, name="norm_var")


def instance_norm(wl) -> list[te.Tensor]:
    """Each channel's pixels normalised, scaled and shifted, then the fused epilogue (a ReLU, a
    residual add). On channel blocks (``blocked``: [N, C/b, H, W, b], scale and bias [C/b, b])
    the moments are taken per (image, block, lane) over H and W, a vector of lanes at a time."""
    p = wl.params
    shape = p["data"]
    x = te.placeholder(shape, name="data")
    blocked = p.get("blocked", False)
    channels = (shape[1], shape[4]) if blocked else (shape[1],)
    scale = te.placeholder(channels, name="scale")
    bias = te.placeholder(channels, name="bias")
    operands = {i: te.placeholder(s, name=f"operand{i}") for i, s in p.get("operands", ())}
    if blocked:
        mean, var = _moments(lambda o, r: x(o[0], o[1], *r, o[2]), (shape[0], shape[1], shape[4]),
                             shape[2:4])
    else:
        mean, var = _moments(lambda o, r: x(*o, *r), shape[:2], shape[2:])
    eps = tirx.const(p["epsilon"], "float32")

    def body(*i):
        at = (i[0], i[1], i[4]) if blocked else i[:2]
        c = at[1:]
        value = (x(*i) - mean(*at)) / tirx.sqrt(var(*at) + eps) * scale(*c) + bias(*c)

        def operand(k):
            t = operands[k]
            return t(*broadcast_index(t.shape, i))
        return apply_steps(value, p.get("epilogue", ()), operand)

    out = te.compute(shape, body, name="instance_norm")
    return [x, scale, bias, *(operands[k] for k in sorted(operands)), out]


def layer_norm(wl) -> list[te.Tensor]:
    """Each row of a 2-D [M, K] tensor normalised, then scaled and shifted per column (the
    frontend flattens ONNX's LayerNormalization to this)."""
    p = wl.params
    rows, cols = p["data"]
    x = te.placeholder((rows, cols), name="data")
    scale = te.placeholder((cols,), name="scale")
    bias = te.placeholder((cols,), name="bias")
    mean, var = _moments(lambda o, r: x(*o, *r), (rows,), (cols,))
    eps = tirx.const(p["epsilon"], "float32")
    out = te.compute((rows, cols), lambda i, j: (x[i, j] - mean(i)) / tirx.sqrt(var[i] + eps)
                     * scale[j] + bias[j], name="layer_norm")
    return [x, scale, bias, out]


_ACCUMULATE = {"max": te.max, "min": te.min}


def reduce_(wl) -> list[te.Tensor]:
    """ONNX's Reduce* kinds over ``axes``, output with the reduced axes kept as 1: the sum (of
    values, squares or magnitudes) or extremum, then a mean's scale or an L2 norm's square root
    as a separate elementwise stage, as onnxruntime rounds them."""
    p = wl.params
    shape, axes, kind = p["data"], p["axes"], p["kind"]
    x = te.placeholder(shape, name="data")
    raxes = {a: te.reduce_axis((0, shape[a]), f"r{a}") for a in axes}

    def value(i):
        v = x(*(raxes[k] if k in raxes else i[k] for k in range(len(shape))))
        if kind in ("sum_square", "l2"):
            return v * v
        return tirx.abs(v) if kind == "l1" else v

    total = _ACCUMULATE.get(kind, te.sum)
    red = te.compute(p["out"], lambda *i: total(value(i), axis=list(raxes.values())),
                     name="reduce")
    if kind == "mean":
        count = math.prod(shape[a] for a in axes)
        red = te.compute(p["out"], lambda *i: red(*i) / tirx.const(count, "float32"),
                         name="reduce_post")
    elif kind == "l2":
        red = te.compute(p["out"], lambda *i: tirx.sqrt(red(*i)), name="reduce_post")
    return [x, red]
