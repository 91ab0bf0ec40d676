"""2-D convolution in the blocked NCHW[x]c layout: direct (any groups) and depthwise.

data   [N, C/db, H, W, db]       (block 1 is plain NCHW with a unit block axis)
kernel [OC/ob, ICg/ib, KH, KW, ib, ob]   depthwise: [OC/ob, KH, KW, ob]
output [N, OC/ob, OH, OW, ob]
The reduction block ``ib`` divides C and the stored block ``db`` (or is all of C, within one
block): a last block padded past C (``passes.layout.out_block``) is never read. Output channels
are padded to whole blocks with zero weights. Weights are packed once at compile time
(``pack_weights``), never at run time.
"""

from __future__ import annotations

import numpy as np
from tvm import te, tirx

from .elementwise import epilogue


def pad_channels(a: np.ndarray, axis: int, multiple: int) -> np.ndarray:
    """Zero-fill ``axis`` up to a multiple of ``multiple``: a padded last channel block."""
    extra = -a.shape[axis] % multiple
    if not extra:
        return a
    widths = [(0, 0)] * a.ndim
    widths[axis] = (0, extra)
    return np.pad(a, widths)


def pad_spatial(data: te.Tensor, pads, out_hw, value=0.0, name="pad") -> te.Tensor:
    """Pad axes 2 and 3 (H, W) of a physical tensor up to ``out_hw``; nothing else moves."""
    top, left = pads[0], pads[1]
    h, w = int(data.shape[2]), int(data.shape[3])
    if (top, left) == (0, 0) and tuple(out_hw) == (h, w):
        return data
    shape = (*data.shape[:2], *out_hw, *data.shape[4:])

    def body(n, c, y, x, *rest):
        inside = tirx.all(y >= top, y < top + h, x >= left, x < left + w)
        return tirx.if_then_else(inside, data[(n, c, y - top, x - left, *rest)],
                                 tirx.const(value, data.dtype))

    return te.compute(shape, body, name=name)


def padded_extent(size, k, stride, dilation, out, pad_begin):
    """Rows (or columns) a window op reads, counting its leading pad."""
    return max(size + pad_begin, (out - 1) * stride + (k - 1) * dilation + 1)


def _column(x, stride, tap, dilation, last):
    """The input column an output column's tap reads; with ``last``, columns computed past the
    output's edge (a ragged register tile's, never stored) re-read the last real one instead
    of needing a wider padded copy of the input."""
    col = x * stride + tap * dilation
    return col if last is None else tirx.min(col, last)


def conv2d_nchwc(data, kernel, strides, dilations, out_shape, groups=1,
                 last_col=None, flat=None, live_rows=None, live_cols=None) -> te.Tensor:
    """Direct convolution; with groups, each output block reads its group's input blocks. With
    ``flat`` = (OH, OW) the output is one row of all its pixels (``out_shape`` [N, OC/ob, 1, P,
    ob]): pixel x is (x // OW, x % OW), and those past OH x OW re-read the last one. With
    ``live_rows`` = (first, end), the padded input rows outside them (all zeros) are skipped: a
    kernel row adds nothing there, and the branch is the same for a whole row of outputs. With
    ``live_cols`` = (first, end, tile), kernel columns are skipped as they are for the first
    column of each ``tile`` columns: right for tiles whose columns all read the same ones, and
    then one branch for the tile (a test per column, LLVM did not merge)."""
    _, ocb, oh, ow, ob = out_shape
    icgb, kh, kw, ib = (int(d) for d in kernel.shape[1:5])
    oc_blocks_per_group = ocb // groups
    db = int(data.shape[4])
    ico = te.reduce_axis((0, icgb), "ico")
    ici = te.reduce_axis((0, ib), "ici")
    rkh = te.reduce_axis((0, kh), "kh")
    rkw = te.reduce_axis((0, kw), "kw")
    sh, sw = strides
    dh, dw = dilations

    def body(n, oc, y, x, oi):
        if flat is not None:
            pixel = tirx.min(x, flat[0] * flat[1] - 1)
            y, x = pixel // flat[1], pixel % flat[1]
        group_base = (oc // oc_blocks_per_group) * icgb if groups > 1 else 0
        c = group_base + ico
        # a reduction block never straddles two stored ones: ib divides db, or there is one
        cb, ci = (c, ici) if db == ib else ((c * ib) // db, (c * ib) % db + ici)
        row = y * sh + rkh * dh
        product = (data[n, cb, row, _column(x, sw, rkw, dw, last_col), ci]
                   * kernel[oc, ico, rkh, rkw, ici, oi])
        live = []
        if live_rows is not None:
            live += [row >= live_rows[0], row < live_rows[1]]
        if live_cols is not None:
            first, end, tile = live_cols
            col = (x - x % tile) * sw + rkw * dw
            live += [col >= first, col < end]
        if live:  # if_then_else, not te.sum's where=: create_prim_func drops that condition
            product = tirx.if_then_else(tirx.all(*live), product, tirx.const(0.0, data.dtype))
        return te.sum(product, axis=[ico, rkh, rkw, ici])

    return te.compute(out_shape, body, name="conv2d_NCHWc")


def live_taps(size: int, out: int, k: int, stride: int, dilation: int, pad: int
              ) -> list[tuple[int, int]]:
    """Per output position along one axis, the kernel taps [first, end) that read inside the
    input rather than its padding (none when first >= end)."""
    taps = []
    for y in range(out):
        base = y * stride - pad
        taps.append((max(0, -(base // dilation)), min(k, (size - 1 - base) // dilation + 1)))
    return taps


def axis_taps(wl, axis: int) -> list[tuple[int, int]]:
    """``live_taps`` of a conv workload's output rows (axis 0) or columns (axis 1)."""
    p = wl.params
    return live_taps(p["data"][2 + axis], p["out"][2 + axis], p["kernel_hw"][axis],
                     p["strides"][axis], p["dilations"][axis], p["pads"][axis])


def dead_share(wl, axis: int) -> float:
    """The share of a conv's (output row, kernel row) pairs, or columns with axis 1, that read
    padding: what ``live_rows`` (``live_cols``) saves. 3x3 dilated by 4 on 10 rows: 27%."""
    taps = axis_taps(wl, axis)
    return 1 - sum(max(0, k1 - k0) for k0, k1 in taps) / (len(taps) * wl.params["kernel_hw"][axis])


def depthwise_nchwc(data, kernel, strides, dilations, out_shape, multiplier=1,
                    last_col=None) -> te.Tensor:
    """Depthwise convolution; output channel c reads input channel c // multiplier."""
    kh, kw = int(kernel.shape[1]), int(kernel.shape[2])
    ib, ob = int(data.shape[4]), out_shape[4]
    rkh = te.reduce_axis((0, kh), "kh")
    rkw = te.reduce_axis((0, kw), "kw")
    sh, sw = strides
    dh, dw = dilations

    def body(n, oc, y, x, oi):
        if multiplier == 1 and ib == ob:
            cb, ci = oc, oi
        else:
            c = (oc * ob + oi) // multiplier
            cb, ci = c // ib, c % ib
        return te.sum(data[n, cb, y * sh + rkh * dh, _column(x, sw, rkw, dw, last_col), ci]
                      * kernel[oc, rkh, rkw, oi], axis=[rkh, rkw])

    return te.compute(out_shape, body, name="depthwise_NCHWc")


def compute(wl, out_w: int | None = None, pad_columns: bool = False,
            skip_pad_rows: bool = False, skip_pad_cols: int = 0) -> list[te.Tensor]:
    """Kernel arguments for a conv workload: data, packed weights, epilogue operands, output.
    ``out_w`` wider than the output computes the conv over that many columns and stores the
    real ones: register tiles of any width, not only divisors. Their taps re-read the last real
    input column, or with ``pad_columns`` read a padded input that wide (a vector of columns is
    then one load, not a gather). ``skip_pad_rows``, and ``skip_pad_cols`` (the column tile,
    or 0): see ``conv2d_nchwc``'s ``live_rows`` and ``live_cols``."""
    data = te.placeholder(wl.params["data"], name="data")
    args, out = stages(wl, data, out_w, pad_columns, skip_pad_rows=skip_pad_rows,
                       skip_pad_cols=skip_pad_cols)
    return [data, *args, out]


def stages(wl, data: te.Tensor, out_w: int | None = None, pad_columns: bool = False,
           name: str = "epilogue", skip_pad_rows: bool = False, skip_pad_cols: int = 0
           ) -> tuple[list[te.Tensor], te.Tensor]:
    """The conv of ``wl`` over ``data`` (a placeholder, or another layer's stages): its weight and
    operand placeholders, and its output stage, called ``name`` (see ``compute``)."""
    p = wl.params
    prefix = "" if name == "epilogue" else f"{name}_"
    kernel = te.placeholder(p["kernel"], name=f"{prefix}kernel")
    operands = {i: te.placeholder(s, name=f"{prefix}operand{i}") for i, s in p["operands"]}
    out_shape = p["out"]
    flat = p.get("flat")  # (OH, OW) of an output viewed as one row of its pixels
    ow = out_shape[3]
    cw = max(ow, out_w or ow)
    conv_shape = (*out_shape[:3], cw, out_shape[4])
    padded = padded_input(wl, data, flat or (out_shape[2], cw if pad_columns else ow))
    # columns past a row's end re-read its last padded one (a flat row clamps its pixel instead)
    last = int(padded.shape[3]) - 1 if flat is None and cw > ow and not pad_columns else None
    if wl.kind == "depthwise2d":
        conv = depthwise_nchwc(padded, kernel, p["strides"], p["dilations"], conv_shape,
                               p["multiplier"], last)
    else:
        (top, left), (h, w) = p["pads"][:2], p["data"][2:4]
        conv = conv2d_nchwc(padded, kernel, p["strides"], p["dilations"], conv_shape, p["groups"],
                            last, flat, (top, top + h) if skip_pad_rows else None,
                            (left, left + w, skip_pad_cols) if skip_pad_cols else None)
    out = epilogue(conv, p["steps"], operands, shape=out_shape, name=name)
    return [kernel, *(operands[i] for i in sorted(operands))], out


def padded_input(wl, data: te.Tensor, out_hw) -> te.Tensor:
    """``data`` padded as far as the conv's windows over an ``out_hw`` output read."""
    p = wl.params
    (kh, kw), (sh, sw), (dh, dw), pads = p["kernel_hw"], p["strides"], p["dilations"], p["pads"]
    h, w = p["data"][2:4]
    return pad_spatial(data, pads, (padded_extent(h, kh, sh, dh, out_hw[0], pads[0]),
                                    padded_extent(w, kw, sw, dw, out_hw[1], pads[1])))


def pack_weights(w: np.ndarray, groups: int, ib: int, ob: int) -> np.ndarray:
    """OIHW weights -> [OC/ob, ICg/ib, KH, KW, ib, ob] (direct) for the blocked layout."""
    w = pad_channels(w, 0, ob)
    oc, icg, kh, kw = w.shape
    return np.ascontiguousarray(
        w.reshape(oc // ob, ob, icg // ib, ib, kh, kw).transpose(0, 2, 4, 5, 3, 1))


def pack_depthwise(w: np.ndarray, ob: int) -> np.ndarray:
    """[OC, 1, KH, KW] depthwise weights -> [OC/ob, KH, KW, ob]."""
    w = pad_channels(w, 0, ob)
    oc, _, kh, kw = w.shape
    return np.ascontiguousarray(w.reshape(oc // ob, ob, kh, kw).transpose(0, 2, 3, 1))
