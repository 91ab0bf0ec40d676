"""Converters of the layers with weights or windows: Conv, pooling, Gemm/MatMul, normalisations,
Softmax, reductions."""

from __future__ import annotations

import numpy as np
from onnx import helper

from ..errors import ModelError, UnsupportedError
from .context import Context, axes_of, need_1d_or_2d, normal_axes, reshape_to


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


def _conv_operands(ctx: Context, node, ins):
    """(input shape, weights, groups) of a Conv or ConvTranspose (its input 4-D, ``one_d``),
    the weights checked to be 2-D."""
    w = ctx.const(ins[1], f"{node.op_type} {node.name!r} weights")
    shape = ctx.shape(ins[0])
    if w.ndim != 4:
        raise UnsupportedError(f"{node.op_type} {node.name!r}: only 2-D ones are supported")
    return shape, w, int(ctx.attr(node, "group", 1))


def _conv_bias(ctx: Context, node, ins, channels: int):
    """The constant bias of a Conv or ConvTranspose (None without one): a value per output
    channel."""
    if len(ins) < 3 or not ins[2]:
        return None
    bias = ctx.const(ins[2], f"{node.op_type} {node.name!r} bias")
    if bias.shape != (channels,):
        raise ModelError(f"{node.op_type} {node.name!r}: bias of shape {list(bias.shape)} for "
                         f"{channels} output channels")
    return bias


def conv(ctx: Context, node, ins):
    x, w_name = ins[0], ins[1]
    shape, w, groups = _conv_operands(ctx, node, ins)
    oc, icg, kh, kw = w.shape
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
    if _conv_bias(ctx, node, ins, oc) is not None:  # folded and packed with the weights
        inputs.append(ctx.f32(ins[2]))
    attrs = {"strides": strides, "pads": pads, "dilations": dil, "groups": groups, "epilogue": ()}
    ctx.emit("conv2d", inputs, (shape[0], oc, oh, ow), attrs, node.output[0], node.name)


def conv_transpose(ctx: Context, node, ins):
    """ConvTranspose as an ordinary conv, exactly and without multiplying inserted zeros.

    Along an axis with stride s, output pixel s*q + r of the uncropped result sums
    x[q - j] * w[r + s*j] over j: a stride-1 conv of x with the phase-r taps of the kernel,
    flipped. One conv computes every phase as extra output channels, a pixel shuffle
    (DepthToSpace, on channel blocks) interleaves them, and a slice crops the pads. Dilation
    stays the conv's at stride 1; on a strided axis it is written into the kernel as zero taps
    (``_undilated``)."""
    what = f"ConvTranspose {node.name!r}"
    x = ins[0]
    shape, w, groups = _conv_operands(ctx, node, ins)
    if shape[1] != w.shape[0] or w.shape[0] % groups:
        raise ModelError(f"{what}: weights {w.shape} with group={groups} do not fit input "
                         f"channels {shape[1]}")
    strides = tuple(int(v) for v in ctx.attr(node, "strides", [1, 1]))
    w, dil = _undilated(w.astype(np.float32), strides,
                        tuple(int(v) for v in ctx.attr(node, "dilations", [1, 1])))
    ic, ocg, kh, kw = w.shape
    begin, out_hw = _transpose_geometry(ctx, node, shape[2:], (kh, kw), strides, dil)
    taps = [-(-k // st) for k, st in zip((kh, kw), strides)]
    sh, sw = strides
    # weights[g, o, rh, rw, c, th, tw] = w[g, c, o, rh + sh*(J_h-1-th), rw + sw*(J_w-1-tw)]
    wg = w.reshape(groups, ic // groups, ocg, kh, kw)
    phases = np.zeros((groups, ocg, sh, sw, ic // groups, *taps), np.float32)
    for rh, rw, th, tw in np.ndindex(sh, sw, *taps):
        k_h, k_w = rh + sh * (taps[0] - 1 - th), rw + sw * (taps[1] - 1 - tw)
        if k_h < kh and k_w < kw:
            phases[:, :, rh, rw, :, th, tw] = wg[:, :, :, k_h, k_w].transpose(0, 2, 1)
    oc, n_phases = ocg * groups, sh * sw
    # output channels phase-major (DepthToSpace's DCR order: the shuffle then moves whole channel
    # blocks), unless the groups need each output channel's phases together
    shuffle = groups == 1 and sh == sw
    if shuffle:
        phases = phases.transpose(0, 2, 3, 1, 4, 5, 6)
    # the conv's own pads: the kernel's full reach, less the phases the crop would drop anyway
    lead = [min(b // st, d * (j - 1)) for b, st, d, j in zip(begin, strides, dil, taps)]
    start = [b - ld * st for b, ld, st in zip(begin, lead, strides)]
    pad_b = [d * (j - 1) - ld for d, j, ld in zip(dil, taps, lead)]
    span = [-(-(s0 + o) // st) for s0, o, st in zip(start, out_hw, strides)]  # conv rows needed
    pad_e = [max(0, q - n - pb + d * (j - 1))
             for q, n, pb, d, j in zip(span, shape[2:], pad_b, dil, taps)]
    conv_hw = [n + pb + pe - d * (j - 1) for n, pb, pe, d, j in zip(shape[2:], pad_b, pad_e, dil,
                                                                      taps)]
    inputs = [x, ctx.graph.add_const(phases.reshape(oc * n_phases, ic // groups, *taps),
                                     "deconv_w")]
    bias = _conv_bias(ctx, node, ins, oc)
    if bias is not None:
        bias = bias.astype(np.float32)
        inputs.append(ctx.graph.add_const(np.tile(bias, n_phases) if shuffle
                                          else np.repeat(bias, n_phases), "deconv_b"))
    attrs = {"strides": (1, 1), "pads": (pad_b[0], pad_b[1], pad_e[0], pad_e[1]),
             "dilations": dil, "groups": groups, "epilogue": ()}
    n = shape[0]
    shuffled = (n, oc, conv_hw[0] * sh, conv_hw[1] * sw)
    cropped = start != [0, 0] or [s0 + o for s0, o in zip(start, out_hw)] != list(shuffled[2:])
    last = None if cropped else node.output[0]  # the op that writes the node's output
    y = ctx.emit("conv2d", inputs, (n, oc * n_phases, *conv_hw), attrs,
                 None if n_phases > 1 else last, node.name)
    if shuffle and n_phases > 1:  # pixel shuffle: (rh, rw, oc, q_h, q_w) -> (oc, q_h, rh, q_w, rw)
        y = ctx.emit("depth_to_space", [y], shuffled, {"block": sh, "mode": "DCR"}, last)
    elif n_phases > 1:  # the same from (oc, rh, rw, q_h, q_w)
        y = reshape_to(ctx, y, (n, oc, sh, sw, *conv_hw))
        y = ctx.emit("transpose", [y], (n, oc, conv_hw[0], sh, conv_hw[1], sw),
                     {"perm": (0, 1, 4, 2, 5, 3)})
        y = reshape_to(ctx, y, shuffled, last)
    if cropped:
        ctx.emit("slice", [y], (n, oc, *out_hw), {"starts": (0, 0, *start), "steps": (1, 1, 1, 1)},
                 node.output[0], node.name)


def _undilated(w, strides, dil):
    """ConvTranspose weights and dilations with each strided axis's dilation written into the
    kernel as zero taps, so that the phases take whole strides of an undilated kernel (the zeros
    cost up to the dilation in work on that axis, a layer no CNN family in the zoo has)."""
    for axis, (st, d) in enumerate(zip(strides, dil)):
        if st > 1 and d > 1:
            shape = list(w.shape)
            shape[2 + axis] = d * (shape[2 + axis] - 1) + 1
            spread = np.zeros(shape, w.dtype)
            taps = [slice(None)] * 4
            taps[2 + axis] = slice(None, None, d)
            spread[tuple(taps)] = w
            w = spread
    return w, tuple(1 if st > 1 else d for st, d in zip(strides, dil))


def _transpose_geometry(ctx, node, in_hw, kernel, strides, dil):
    """(leading pads, output size) per axis of a ConvTranspose: from pads, auto_pad or
    output_shape. The output may reach past the uncropped result (output_padding, a larger
    output_shape): those pixels get no taps, only the bias."""
    adj = [int(a) for a in ctx.attr(node, "output_padding", [0, 0])]
    full = [st * (n - 1) + a + (k - 1) * d + 1
            for n, k, st, d, a in zip(in_hw, kernel, strides, dil, adj)]
    auto = ctx.attr(node, "auto_pad", "NOTSET")
    out_shape = ctx.attr(node, "output_shape")
    if out_shape is not None or auto in ("SAME_UPPER", "SAME_LOWER"):
        target = ([int(v) for v in out_shape][-2:] if out_shape is not None
                  else [n * st for n, st in zip(in_hw, strides)])
        total = [max(0, f - o) for f, o in zip(full, target)]
        # an output_shape is the output's; SAME's target is only what the pads aim at
        out = target if out_shape is not None else [f - t for f, t in zip(full, total)]
        if auto == "SAME_UPPER":
            return [t // 2 for t in total], out
        return [t - t // 2 for t in total], out  # SAME_LOWER and output_shape: more at the start
    pads = [0, 0, 0, 0] if auto == "VALID" else [int(p) for p in ctx.attr(node, "pads",
                                                                         [0, 0, 0, 0])]
    out = [f - pads[a] - pads[a + 2] for a, f in enumerate(full)]
    if min(out) < 1:
        raise ModelError(f"ConvTranspose {node.name!r}: pads {pads} leave no output")
    return pads[:2], out


def _span(size, k, d, pb, pe) -> int:
    """How far the first window can slide along one axis of the padded input."""
    return size + pb + pe - d * (k - 1) - 1


def _pool_out(size, k, s, d, pb, pe, ceil):
    span = _span(size, k, d, pb, pe)
    out = (-(-span // s) if ceil else span // s) + 1
    if ceil and (out - 1) * s >= size + pb:
        out -= 1  # the last window must start inside the input or its leading pad
    return out


def _window_inside(hw, kernel, strides, dil, pads):
    """The pads with each end pad grown to take a window that reaches past the padded input by
    less than a stride, without ceil_mode: onnxruntime (and ONNX's shape inference, whose
    division truncates toward zero) give such an axis one output, averaged over the whole window
    with count_include_pad. (With ceil_mode that output exists anyway, and the count stops at
    the padded input's end.)"""
    pads = list(pads)
    for a in range(2):
        span = _span(hw[a], kernel[a], dil[a], pads[a], pads[a + 2])
        if -strides[a] < span < 0:
            pads[a + 2] -= span
    return tuple(pads)


def pool(kind):
    def convert(ctx: Context, node, ins):
        if len(node.output) > 1 and node.output[1]:
            raise UnsupportedError(f"MaxPool {node.name!r}: the Indices output is not supported")
        x = ins[0]
        shape = ctx.shape(x)
        kernel = tuple(ctx.attr(node, "kernel_shape"))
        strides = tuple(ctx.attr(node, "strides", [1, 1]))
        dil = tuple(ctx.attr(node, "dilations", [1, 1]))
        if len(kernel) != 2:
            raise UnsupportedError(f"{node.op_type} {node.name!r}: only 2-D pooling is supported")
        pads = _pads_2d(ctx, node, shape[2:], kernel, strides, dil)
        ceil = bool(ctx.attr(node, "ceil_mode", 0))
        if not ceil:
            pads = _window_inside(shape[2:], kernel, strides, dil, pads)
        oh = _pool_out(shape[2], kernel[0], strides[0], dil[0], pads[0], pads[2], ceil)
        ow = _pool_out(shape[3], kernel[1], strides[1], dil[1], pads[1], pads[3], ceil)
        if oh < 1 or ow < 1:
            raise ModelError(f"{node.op_type} {node.name!r}: window {kernel} is larger than the "
                             f"padded input {shape}")
        attrs = {"kind": kind, "kernel": kernel, "strides": strides, "dilations": dil,
                 "pads": pads, "count_include_pad": int(ctx.attr(node, "count_include_pad", 0)),
                 "p": float(ctx.attr(node, "p", 2))}
        ctx.emit("pool2d", [x], (shape[0], shape[1], oh, ow), attrs, node.output[0], node.name)
    return convert


def _global_pool(ctx: Context, x, kind, p, out, name) -> str:
    """A pool whose window is the whole image: NCHW -> NC11."""
    shape = ctx.shape(x)
    attrs = {"kind": kind, "kernel": tuple(shape[2:]), "strides": (1, 1), "dilations": (1, 1),
             "pads": (0, 0, 0, 0), "count_include_pad": 0, "p": p}
    return ctx.emit("pool2d", [x], (shape[0], shape[1], 1, 1), attrs, out, name)


def global_pool(kind):
    def convert(ctx: Context, node, ins):
        _global_pool(ctx, ins[0], kind, float(ctx.attr(node, "p", 2)), node.output[0], node.name)
    return convert


# 1-D window attributes and how each becomes its 2-D form over a height of 1
_LIFTED = {"kernel_shape": lambda v: [1, *v], "strides": lambda v: [1, *v],
           "dilations": lambda v: [1, *v], "output_padding": lambda v: [0, *v],
           "output_shape": lambda v: [1, *v[-1:]], "pads": lambda v: [0, v[0], 0, v[1]]}


def one_d(convert):
    """A 2-D window converter that also takes the 1-D op ([N, C, L], audio and sequence CNNs) as
    the 2-D one over [N, C, 1, L]: weights [O, I, K] -> [O, I, 1, K], every window attribute
    given a leading unit axis; reshapes, which cost nothing, on either side. The rank is checked
    here, so ``convert`` sees [N, C, H, W] only."""
    def convert_1d(ctx: Context, node, ins):
        shape = ctx.shape(ins[0])
        need_1d_or_2d(node, shape)
        if len(shape) == 4:
            return convert(ctx, node, ins)
        n, c, length = shape
        lifted = [reshape_to(ctx, ins[0], (n, c, 1, length)), *ins[1:]]
        if node.op_type in ("Conv", "ConvTranspose"):
            w = ctx.const(ins[1], f"{node.op_type} {node.name!r} weights")
            if w.ndim == 3:
                lifted[1] = ctx.graph.add_const(w[:, :, None, :], "weights_2d")
        attrs = {a.name: _LIFTED.get(a.name, lambda v: v)(Context.attr(node, a.name))
                 for a in node.attribute}
        out = ctx.graph.fresh("lifted")
        convert(ctx, helper.make_node(node.op_type, lifted, [out, *node.output[1:]],
                                      name=node.name, **attrs), lifted)
        n, o, _, out_len = ctx.shape(out)
        reshape_to(ctx, out, (n, o, out_len), node.output[0], node.name)
    return convert_1d


def n_d(convert):
    """A pool over 3 or more spatial axes whose window moves along at most two of them, as the
    1-D or 2-D pool over a reshaped view (reshapes cost nothing): axes the window leaves alone
    (kernel 1, stride 1, no pads) merge with each other, and into the channels when they lead.
    PyTorch exports LocalResponseNorm as such a pool ([N, 1, C, H, W], a window over C only);
    video CNNs pool frames one by one with (1, k, k). Global pools of any rank pool the merged
    spatial axes. ``convert`` takes the 1-D and 2-D forms (``one_d``)."""
    def convert_n_d(ctx: Context, node, ins):
        shape = ctx.shape(ins[0])
        if len(shape) <= 4:
            return convert(ctx, node, ins)
        n, c, spatial = shape[0], shape[1], shape[2:]
        whole = node.op_type.startswith("Global")
        if whole:
            groups, lead = [list(range(len(spatial)))], 1
            attrs = {a.name: Context.attr(node, a.name) for a in node.attribute}
        else:
            groups, lead, attrs = _window_groups(ctx, node, spatial)
        view = (n, c * lead, *(int(np.prod([spatial[a] for a in g])) for g in groups))
        flat = reshape_to(ctx, ins[0], view)
        out = ctx.graph.fresh("pooled")
        convert(ctx, helper.make_node(node.op_type, [flat], [out, *node.output[1:]],
                                      name=node.name, **attrs), [flat])
        sizes = [1] * len(spatial) if whole else list(spatial)
        if not whole:  # each moving axis is a group of its own; the others keep their sizes
            for g, size in zip(groups, ctx.shape(out)[2:]):
                if len(g) == 1:
                    sizes[g[0]] = size
        reshape_to(ctx, out, (n, c, *sizes), node.output[0], node.name)
    return convert_n_d


def _window_groups(ctx: Context, node, spatial):
    """The spatial axes of an N-D pool grouped for ``n_d``: each axis its window moves along
    alone, each run of axes it leaves alone together; the leading run's size, merged into the
    channels when more than two groups would be left; and the pool's attributes over the groups.
    """
    rank = len(spatial)
    kernel = [int(k) for k in ctx.attr(node, "kernel_shape")]
    strides = [int(s) for s in ctx.attr(node, "strides", [1] * rank)]
    dil = [int(d) for d in ctx.attr(node, "dilations", [1] * rank)]
    auto = ctx.attr(node, "auto_pad", "NOTSET")
    pads = [int(p) for p in ctx.attr(node, "pads", [0] * 2 * rank)]
    if auto != "NOTSET":
        pads = [0] * 2 * rank  # a window of 1 at stride 1 gets no pads from auto_pad
    if len(kernel) != rank or len(strides) != rank or len(dil) != rank or len(pads) != 2 * rank:
        raise ModelError(f"{node.op_type} {node.name!r}: kernel_shape, strides, dilations or "
                         f"pads do not match its {rank} spatial axes")
    still = [kernel[a] == 1 and strides[a] == 1 and pads[a] == pads[rank + a] == 0
             for a in range(rank)]
    groups: list[list[int]] = []
    for a in range(rank):
        if still[a] and groups and still[groups[-1][0]]:
            groups[-1].append(a)
        else:
            groups.append([a])
    lead = 1
    if len(groups) > 2 and still[groups[0][0]]:
        lead = int(np.prod([spatial[a] for a in groups.pop(0)]))
    if len(groups) > 2:
        raise UnsupportedError(f"{node.op_type} {node.name!r}: window {kernel} over {rank} "
                               "spatial axes; tvmconv pools N-D windows that move along one "
                               "axis, or along the last two")
    first = [g[0] for g in groups]
    attrs = {a.name: Context.attr(node, a.name) for a in node.attribute}
    attrs.update(kernel_shape=[kernel[a] for a in first], strides=[strides[a] for a in first],
                 dilations=[dil[a] for a in first])
    if auto == "NOTSET":
        attrs["pads"] = [pads[a] for a in first] + [pads[rank + a] for a in first]
    return groups, lead, attrs


def _dense(ctx, a, w, bias, out, name):
    """a[..., K] x const w[K, N] (+ bias[N]) as a 2-D dense kernel,
    reshaping around it if needed."""
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
    for name in ins[1:3]:
        if ctx.shape(name) != ctx.shape(x)[1:2]:
            raise ModelError(f"InstanceNormalization {node.name!r}: scale and bias need one value "
                             f"per channel of {list(ctx.shape(x))}, got {list(ctx.shape(name))}")
    ctx.emit("instance_norm", [x, ctx.f32(ins[1]), ctx.f32(ins[2])], ctx.shape(x),
             {"epsilon": float(ctx.attr(node, "epsilon", 1e-5)), "epilogue": ()},
             node.output[0], node.name)


def group_norm(ctx: Context, node, ins):
    """GroupNormalization as PyTorch exports GroupNorm below opset 18: each group's channels and
    pixels as one row of an instance norm, then the scale and shift, per channel (opset 21) or
    per group (opset 18, repeated over its channels)."""
    x = ins[0]
    shape = ctx.shape(x)
    what = f"GroupNormalization {node.name!r}"
    groups = int(ctx.attr(node, "num_groups", 0))
    if len(shape) < 3 or groups < 1 or shape[1] % groups:
        raise ModelError(f"{what}: {groups} groups do not divide the channels of {shape}")
    n, c = shape[:2]
    per_channel = []
    for name, part in zip(ins[1:3], ("scale", "bias")):
        v = ctx.const(name, f"{what} {part}").astype(np.float32).reshape(-1)
        if v.size not in (c, groups):
            raise ModelError(f"{what}: {part} has {v.size} values for {c} channels")
        per_channel.append(v if v.size == c else np.repeat(v, c // groups))
    rows = reshape_to(ctx, x, (n, groups, int(np.prod(shape[1:])) // groups))
    unit = [ctx.graph.add_const(np.full(groups, v, np.float32), "gn") for v in (1.0, 0.0)]
    normed = ctx.emit("instance_norm", [rows, *unit], ctx.shape(rows),
                      {"epsilon": float(ctx.attr(node, "epsilon", 1e-5)), "epilogue": ()})
    back = reshape_to(ctx, normed, shape)
    bshape = (-1,) + (1,) * (len(shape) - 2)
    s, t = (ctx.graph.add_const(v.reshape(bshape), "gn_affine") for v in per_channel)
    ctx.elementwise([("mul", (None, 1), ()), ("add", (None, 2), ())], [back, s, t],
                    node.output[0], node.name)


def layer_norm(ctx: Context, node, ins):
    """LayerNormalization (ConvNeXt's, after a permute to channels-last) as a [rows, columns]
    kernel: the axes from ``axis`` on are one flattened row, the constant scale and bias are
    broadcast to it; reshapes before and after are free."""
    x = ins[0]
    shape = ctx.shape(x)
    axis, = normal_axes(node, [ctx.attr(node, "axis", -1)], len(shape))
    inner = tuple(shape[axis:])
    rows, cols = int(np.prod(shape[:axis])), int(np.prod(inner))

    def row_const(name, what, fill):
        value = ctx.const(name, f"LayerNormalization {what}") if name else np.float32(fill)
        try:
            row = np.broadcast_to(np.asarray(value, np.float32), inner).reshape(cols)
        except ValueError:
            raise ModelError(f"LayerNormalization node {node.name!r}: {what} of shape "
                             f"{np.shape(value)} does not broadcast to {inner}") from None
        return ctx.graph.add_const(np.ascontiguousarray(row), what)

    scale = row_const(ins[1] if len(ins) > 1 else "", "scale", 1.0)
    bias = row_const(ins[2] if len(ins) > 2 else "", "bias", 0.0)
    eps = float(ctx.attr(node, "epsilon", 1e-5))
    rows_x = reshape_to(ctx, x, (rows, cols))
    y = ctx.emit("layer_norm", [rows_x, scale, bias], (rows, cols), {"epsilon": eps})
    reshape_to(ctx, y, shape, node.output[0], node.name)
    if any(node.output[1:]):  # Mean and InvStdDev, kept for training: separate kernels
        _layer_norm_stats(ctx, node, rows_x, (rows, cols), eps,
                          tuple(shape[:axis]) + (1,) * len(inner))


def _layer_norm_stats(ctx, node, x, shape, eps, stats_shape):
    rows, cols = shape
    mean = ctx.emit("reduce", [x], (rows, 1), {"kind": "mean", "axes": (1,)})
    if len(node.output) > 1 and node.output[1]:
        reshape_to(ctx, mean, stats_shape, node.output[1])
    if len(node.output) > 2 and node.output[2]:
        dev = ctx.elementwise([("sub", (None, 1), ())], [x, mean])
        sq = ctx.emit("reduce", [dev], (rows, 1), {"kind": "sum_square", "axes": (1,)})
        inv_std = ctx.elementwise(
            [("mul", (None, 1), ()), ("add", (None, 2), ()), ("sqrt", (None,), ()),
             ("reciprocal", (None,), ())],
            [sq, ctx.graph.add_const(np.float32(1.0 / cols), "inv_count"),
             ctx.graph.add_const(np.float32(eps), "epsilon")])
        reshape_to(ctx, inv_std, stats_shape, node.output[2])


def lrn(ctx: Context, node, ins):
    attrs = {"size": int(ctx.attr(node, "size")), "alpha": float(ctx.attr(node, "alpha", 1e-4)),
             "beta": float(ctx.attr(node, "beta", 0.75)),
             "bias": float(ctx.attr(node, "bias", 1.0))}
    if attrs["size"] < 1:
        raise ModelError(f"LRN {node.name!r}: size {attrs['size']} (needs at least 1)")
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


def reduce(kind):
    """ReduceMean/Max/Min/Sum/SumSquare/L1/L2 over constant axes. A mean or max over H and W of
    an NCHW tensor (``x.mean([2, 3])``, ShuffleNet's head) is a global pool, which reads the conv
    layout in place; any other axes reduce in a plain-layout kernel."""
    def convert(ctx: Context, node, ins):
        x = ins[0]
        shape = ctx.shape(x)
        axes = axes_of(ctx, node, ins)
        if not axes:
            if int(ctx.attr(node, "noop_with_empty_axes", 0)):
                ctx.alias[node.output[0]] = x
                return
            axes = range(len(shape))
        axes = normal_axes(node, axes, len(shape))
        kept = tuple(1 if i in axes else d for i, d in enumerate(shape))
        out = kept if int(ctx.attr(node, "keepdims", 1)) else tuple(
            d for i, d in enumerate(shape) if i not in axes)
        name = node.output[0] if out == kept else None
        if len(shape) == 4 and axes == (2, 3) and kind in ("mean", "max"):
            y = _global_pool(ctx, x, "avg" if kind == "mean" else "max", 2.0, name, node.name)
        else:
            y = ctx.emit("reduce", [x], kept, {"kind": kind, "axes": axes}, name, node.name)
        if name is None:
            reshape_to(ctx, y, out, node.output[0])
    return convert
