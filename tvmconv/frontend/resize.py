"""Resize and Upsample (FPN, U-Net and YOLO necks): nearest and bilinear over H and W.

Which input row and column each output pixel reads, and with what weight, depends only on the
sizes and the attributes, so it is worked out here, in float32 as onnxruntime does, into two small
constant tables; the kernel gathers through them (``layers.transform.resize``).
"""

from __future__ import annotations

import numpy as np

from ..errors import ModelError, UnsupportedError
from .context import Context, need_1d_or_2d, reshape_to

COORDINATE_MODES = ("half_pixel", "half_pixel_symmetric", "pytorch_half_pixel", "align_corners",
                    "asymmetric", "tf_half_pixel_for_nn")
NEAREST_MODES = ("round_prefer_floor", "round_prefer_ceil", "floor", "ceil", "simple")


def resize(ctx: Context, node, ins):
    """Resize (opset 10: scales, asymmetric; 11+: roi, scales or sizes and the coordinate modes;
    18: axes) and Upsample (opset 7-9, the opset-10 semantics)."""
    x = ins[0]
    shape = ctx.shape(x)
    need_1d_or_2d(node, shape)
    what = f"{node.op_type} node {node.name!r}"
    mode = ctx.attr(node, "mode", "nearest")
    if mode not in ("nearest", "linear", "bilinear"):
        raise UnsupportedError(f"{what}: mode {mode!r} (tvmconv resizes nearest and linear)")
    legacy = node.op_type == "Upsample" or ctx.opset < 11
    coord = "asymmetric" if legacy else ctx.attr(node, "coordinate_transformation_mode",
                                                 "half_pixel")
    nearest = "simple" if legacy else ctx.attr(node, "nearest_mode", "round_prefer_floor")
    if coord not in COORDINATE_MODES:
        raise UnsupportedError(f"{what}: coordinate_transformation_mode {coord!r}")
    if nearest not in NEAREST_MODES:
        raise UnsupportedError(f"{what}: nearest_mode {nearest!r}")
    scales, sizes = _scales_and_sizes(ctx, node, ins, shape, legacy, what)
    policy = ctx.attr(node, "keep_aspect_ratio_policy", "stretch")
    if sizes is not None and policy in ("not_larger", "not_smaller"):
        # one scale for the resized axes, the smallest or largest the sizes ask for
        axes = [a for a in range(len(shape)) if sizes[a] != shape[a]] or [2, len(shape) - 1]
        pick = min if policy == "not_larger" else max
        scale = pick(np.float32(sizes[a]) / np.float32(shape[a]) for a in axes)
        sizes = [int(np.round(scale * d)) if a in axes else d for a, d in enumerate(shape)]
        scales = [scale if a in axes else 1.0 for a in range(len(shape))]
    elif policy != "stretch":
        raise UnsupportedError(f"{what}: keep_aspect_ratio_policy {policy!r}")
    if sizes is None:
        sizes = [int(np.floor(d * np.float32(s))) for d, s in zip(shape, scales)]
    elif scales is None:
        scales = [np.float32(o) / np.float32(d) for o, d in zip(sizes, shape)]
    if list(sizes[:2]) != list(shape[:2]):
        raise UnsupportedError(f"{what}: resizes batch or channels ({tuple(shape)} -> "
                               f"{tuple(sizes)}); tvmconv resizes the spatial axes")
    if min(sizes) < 1:
        raise ModelError(f"{what}: output size {tuple(sizes)} is empty")
    if ctx.attr(node, "antialias", 0) and min(scales[2:]) < 1 and mode != "nearest":
        raise UnsupportedError(f"{what}: antialiased downsampling")
    linear = mode != "nearest"
    if list(sizes) == list(shape):  # onnxruntime copies the input then, whatever the scales say
        scales = [1.0] * len(shape)
    tables = [_table(shape[a], sizes[a], np.float32(scales[a]), coord, nearest, linear)
              for a in range(2, len(shape))]
    one_d = len(shape) == 3  # the 2-D resize over a height of 1 (an identity table for it)
    if one_d:
        tables.insert(0, _table(1, 1, np.float32(1), coord, nearest, linear))
        x = reshape_to(ctx, x, (shape[0], shape[1], 1, shape[2]))
    names = [ctx.graph.add_const(t, "resize_table") for t in tables]
    y = ctx.emit("resize", [x, *names], (*sizes[:2], 1, sizes[2]) if one_d else sizes,
                 {"mode": "linear" if linear else "nearest"}, None if one_d else node.output[0],
                 node.name)
    if one_d:
        reshape_to(ctx, y, sizes, node.output[0], node.name)


def _scales_and_sizes(ctx: Context, node, ins, shape, legacy, what):
    """(scales, sizes) per axis of the input, one of them None."""
    rank = len(shape)
    if node.op_type == "Upsample" and ctx.opset < 9:
        return [float(s) for s in ctx.attr(node, "scales")], None
    if legacy:
        return [float(s) for s in ctx.const(ins[1], f"{what} scales")], None
    scales = ctx.const(ins[2], f"{what} scales") if len(ins) > 2 and ins[2] else None
    sizes = ctx.const(ins[3], f"{what} sizes") if len(ins) > 3 and ins[3] else None
    if scales is not None and np.size(scales) == 0:
        scales = None
    if (scales is None) == (sizes is None or np.size(sizes) == 0):
        raise ModelError(f"{what}: exactly one of scales and sizes must be given")
    axes = [int(a) % rank for a in ctx.attr(node, "axes", range(rank))]
    given = scales if scales is not None else sizes
    if len(given) != len(axes):
        raise ModelError(f"{what}: {len(given)} scales or sizes for {len(axes)} axes")
    full = [1.0] * rank if scales is not None else list(shape)
    for a, v in zip(axes, given):
        full[a] = float(v) if scales is not None else int(v)
    return (full, None) if scales is not None else (None, full)


def _table(size: int, out: int, scale, coord: str, nearest: str, linear: bool) -> np.ndarray:
    """Per output index along one axis: the source index (nearest), or the two source indices
    and the second one's weight (linear); float32 rows, computed as onnxruntime computes them."""
    f = np.float32
    i = np.arange(out, dtype=f)
    length = f(size) * scale  # ONNX's resized length: not rounded to the output size
    if scale == 1:  # onnxruntime keeps such an axis as it is (tf_half_pixel_for_nn would shift)
        src = i
    elif coord == "asymmetric":
        src = i / scale
    elif coord == "align_corners":  # over the output's own length, as onnxruntime does
        src = i * f(size - 1) / f(out - 1) if out > 1 else np.zeros(out, f)
    elif coord == "pytorch_half_pixel":
        # the output's length decides, as in onnxruntime and PyTorch (the ONNX reference
        # evaluator takes the unrounded ``length``: they differ where it exceeds 1 but out is 1)
        src = (i + f(0.5)) / scale - f(0.5) if out > 1 else np.zeros(out, f)
    elif coord == "tf_half_pixel_for_nn":
        src = (i + f(0.5)) / scale
    elif coord == "half_pixel_symmetric":
        adjustment = f(out) / length
        offset = f(size) / f(2) * (f(1) - adjustment)
        src = offset + (i + f(0.5)) / scale - f(0.5)
    else:  # half_pixel
        src = (i + f(0.5)) / scale - f(0.5)
    src = src.astype(f)
    if not linear:
        return np.clip(_round(src, nearest, scale < 1), 0, size - 1).astype(f)[None]
    src = np.clip(src, 0, size - 1)
    lo = np.floor(src)
    hi = np.minimum(lo + 1, size - 1)
    return np.stack([lo, hi, src - lo]).astype(f)


def _round(src: np.ndarray, nearest: str, downsampling: bool) -> np.ndarray:
    if nearest == "simple":  # opset < 11: ceil when downsampling, else truncate
        return np.ceil(src) if downsampling else np.trunc(src)
    if nearest == "floor":
        return np.floor(src)
    if nearest == "ceil":
        return np.ceil(src)
    half = src - np.floor(src) == 0.5
    if nearest == "round_prefer_ceil":
        return np.where(half, np.ceil(src), np.round(src))
    return np.where(half, np.floor(src), np.round(src))  # round_prefer_floor
