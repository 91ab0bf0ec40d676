"""2-D pooling (max, average, Lp; global pooling is the whole-image window) over axes 2 and 3.

Works on plain NCHW and blocked NCHW[x]c tensors alike: any axes after W ride along. Average pooling
divides by a per-output-position count computed at compile time, which covers count_include_pad,
ceil_mode and padding exactly as ONNX defines them.
"""

from __future__ import annotations

import numpy as np
from tvm import te, tirx

from .conv2d import pad_spatial, padded_extent
from .elementwise import power


def compute(wl) -> list[te.Tensor]:
    p = wl.params
    kind = p["kind"]
    data = te.placeholder(p["data"], name="data")
    out_shape = p["out"]
    (kh, kw), (sh, sw), (dh, dw), pads = p["kernel"], p["strides"], p["dilations"], p["pads"]
    h, w = p["data"][2], p["data"][3]
    ext = (padded_extent(h, kh, sh, dh, out_shape[2], pads[0]),
           padded_extent(w, kw, sw, dw, out_shape[3], pads[1]))
    fill = -np.inf if kind == "max" else 0.0
    padded = pad_spatial(data, pads, ext, fill)
    rkh = te.reduce_axis((0, kh), "kh")
    rkw = te.reduce_axis((0, kw), "kw")

    def window(n, c, y, x, *rest):
        return padded[(n, c, y * sh + rkh * dh, x * sw + rkw * dw, *rest)]

    if kind == "max":
        out = te.compute(out_shape, lambda *i: te.max(window(*i), axis=[rkh, rkw]), name="pool")
        return [data, out]
    if kind == "lp":
        pw = p["p"]
        total = te.compute(out_shape, lambda *i: te.sum(
            power(tirx.abs(window(*i)), pw, positive=True), axis=[rkh, rkw]), name="pool")
        out = te.compute(out_shape, lambda *i: power(total(*i), 1.0 / pw, positive=True),
                         name="pool_out")
        return [data, out]
    divisor = te.placeholder((out_shape[2], out_shape[3]), name="divisor")
    total = te.compute(out_shape, lambda *i: te.sum(window(*i), axis=[rkh, rkw]), name="pool")
    out = te.compute(out_shape, lambda n, c, y, x, *r: total(n, c, y, x, *r) / divisor[y, x],
                     name="pool_out")
    return [data, divisor, out]


def avg_divisor(in_hw, out_hw, kernel, strides, dilations, pads, count_include_pad) -> np.ndarray:
    """How many window positions each output averages over, as ONNX counts them."""
    counts = []
    for axis in range(2):
        size, k, s, d = in_hw[axis], kernel[axis], strides[axis], dilations[axis]
        lo, hi = (-pads[axis], size + pads[axis + 2]) if count_include_pad else (0, size)
        pos = np.arange(out_hw[axis])[:, None] * s - pads[axis] + np.arange(k)[None, :] * d
        counts.append(((pos >= lo) & (pos < hi)).sum(axis=1))
    return np.maximum(np.outer(counts[0], counts[1]), 1).astype(np.float32)
