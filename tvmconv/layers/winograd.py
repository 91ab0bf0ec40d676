"""Winograd F(m, r) convolution in the blocked layout (stride 1, no groups), along each axis whose
kernel is wider than 1: F(m x m, r x r) for square kernels (r = 3, 5, 7), or one-sided F(m, r) for
the 1 x r and r x 1 convs of Inception-style nets.

Each output tile (m along each such axis, 1 along the other) costs a_h x a_w multiply-adds per
input/output channel pair (a = m + r - 1 along a convolved axis, 1 along the other) instead of
m r per axis: the input tile is transformed (B_h^T d B_w), multiplied element-wise by the
pre-transformed kernel (U = G_h g G_w^T, once, as the artefact loads) as a_h x a_w small GEMMs over
channels, and transformed back (A_h^T M A_w). F(2,3) saves 2.25x of a 3x3 conv's multiplies,
F(4,3) 4x; F(4,7) 2.8x of a 1x7 conv's.

A conv dilated by d is d x d interleaved undilated convs (DeepLab's atrous layers): a tile's
outputs and inputs are then d apart, and tiles of the d residues of a row alternate, so the same
transforms and GEMMs serve it.

data [N, IC/ib, H, W, ib], U [a_h, a_w, OC/ob, IC/ib, ib, ob], out [N, OC/ob, OH, OW, ob]
"""

from __future__ import annotations

import numpy as np
from tvm import te
from tvm.topi.nn.winograd_util import _cook_toom_convolution, _interpolation_points, const_matrix

from .conv2d import pad_spatial
from .elementwise import epilogue

_IDENTITY = (np.ones((1, 1)),) * 3


def matrices(m: int, r: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A (a x m), B (a x a), G (a x r) of F(m, r) by Cook-Toom on TVM's well-conditioned points;
    an axis the kernel does not span (r = 1, m = 1) passes through."""
    if r == 1:
        return _IDENTITY
    return _cook_toom_convolution(_interpolation_points(m + r - 2), m, r)


def tile_shape(kernel_hw: tuple[int, int], m: int) -> tuple[int, int]:
    """Outputs per tile along (height, width): m along each axis the kernel spans, 1 along one it
    does not (a 1 x 7 conv's tiles are rows of m)."""
    return tuple(m if k > 1 else 1 for k in kernel_hw)


def _axis_matrices(kernel_hw, m: int, which: str) -> list[np.ndarray]:
    """Matrix ``which`` ("A", "B" or "G") of each axis, float64."""
    return [matrices(t, k)["ABG".index(which)]
            for t, k in zip(tile_shape(kernel_hw, m), kernel_hw)]


def _axis_consts(kernel_hw, m: int, which: str) -> list[te.Tensor]:
    """``_axis_matrices`` as float32 TE constants named by matrix and axis ("Ah", "Gw"), the
    blocks the schedules inline."""
    return [const_matrix(x.astype("float32"), f"{which}{axis}")
            for x, axis in zip(_axis_matrices(kernel_hw, m, which), "hw")]


def transform_weights(packed: np.ndarray, kernel_hw: tuple[int, int], m: int) -> np.ndarray:
    """[OC/ob, IC/ib, kh, kw, ib, ob] -> U [a_h, a_w, OC/ob, IC/ib, ib, ob], in float64 then
    float32: the tuner's kernel arguments, and the reference for ``weight_transform``."""
    g_h, g_w = _axis_matrices(kernel_hw, m, "G")
    u = np.einsum("ek,fl,oikljc->efoijc", g_h, g_w, packed.astype(np.float64))
    return np.ascontiguousarray(u.astype(np.float32))


def weight_transform(kernel_shape: tuple[int, ...], m: int) -> list[te.Tensor]:
    """U = G_h g G_w^T as a kernel, so that an artefact can keep the packed weights and transform
    them as it loads: [weights (the packed ones), U]."""
    ocb, icb, kh, kw, ib, ob = kernel_shape
    g_h, g_w = _axis_consts((kh, kw), m, "G")
    a_h, a_w = g_h.shape[0], g_w.shape[0]
    w = te.placeholder(tuple(kernel_shape), name="weights")
    r1 = te.reduce_axis((0, kh), "r1")
    gw = te.compute((a_h, kw, ocb, icb, ib, ob), lambda e, kx, o, i, j, c: te.sum(
        g_h[e, r1] * w[o, i, r1, kx, j, c], axis=r1), name="winograd_Gg")
    r2 = te.reduce_axis((0, kw), "r2")
    u = te.compute((a_h, a_w, ocb, icb, ib, ob), lambda e, f, o, i, j, c: te.sum(
        gw[e, r2, o, i, j, c] * g_w[f, r2], axis=r2), name="winograd_U")
    return [w, u]


def axes(wl, m: int) -> list[tuple[int, int, int]]:
    """(outputs per tile, kernel size, dilation) along height and width; an axis the kernel does
    not span has tiles of one output and no dilation."""
    return [(t, k, d if k > 1 else 1) for t, k, d in
            zip(tile_shape(wl.params["kernel_hw"], m), wl.params["kernel_hw"],
                wl.params["dilations"])]


def alphas(wl, m: int) -> tuple[int, int]:
    """Transformed tile size (m + r - 1) along height and width: a_h x a_w GEMMs."""
    return tuple(t + k - 1 for t, k, _ in axes(wl, m))


def tile_grid(wl, m: int) -> tuple[int, int]:
    """Tiles along height and width."""
    return tuple(tiles_along(size, d, t)
                 for size, (t, _, d) in zip(wl.params["out"][2:4], axes(wl, m)))


def tiles_along(size: int, dilation: int, m: int) -> int:
    """Tiles along an output axis: each of the d residues holds ceil(size / d) outputs."""
    per_residue = -(-size // dilation)
    return dilation * -(-per_residue // m)


def _input_at(tile, k, dilation: int, m: int):
    """Padded input index of element ``k`` of input tile ``tile`` (tile = q * d + residue)."""
    if dilation == 1:
        return tile * m + k
    return (tile // dilation * m + k) * dilation + tile % dilation


def _tile_of(y, dilation: int, m: int):
    """(tile, position in the tile) of output index ``y``."""
    if dilation == 1:
        return y // m, y % m
    s = y // dilation
    return s // m * dilation + y % dilation, s % m


def compute(wl, m: int, tile_p: int = 1) -> list[te.Tensor]:
    """``tile_p``: an undilated row of tiles is computed in whole GEMM tiles of that many tiles;
    the ones past the edge read zero padding and are dropped."""
    p = wl.params
    n, icb, h, w, ib = p["data"]
    _, ocb, oh, ow, ob = p["out"]
    (mh, kh, dh), (mw, kw, dw) = axes(wl, m)
    a_h, a_w = alphas(wl, m)
    nh, nw = tile_grid(wl, m)
    if dw == 1:
        nw = -(-nw // tile_p) * tile_p
    ah_mat, aw_mat = _axis_consts(p["kernel_hw"], m, "A")
    bh_mat, bw_mat = _axis_consts(p["kernel_hw"], m, "B")
    data = te.placeholder(p["data"], name="data")
    u = te.placeholder((a_h, a_w, ocb, icb, ib, ob), name="kernel")
    operands = {i: te.placeholder(s, name=f"operand{i}") for i, s in p["operands"]}
    padded = pad_spatial(data, p["pads"], ((nh // dh * mh + kh - 1) * dh,
                                           (nw // dw * mw + kw - 1) * dw))

    r1 = te.reduce_axis((0, a_h), "r1")
    tmp = te.compute((a_h, a_w, n, icb, nh, nw, ib), lambda e, c2, b, ci, th, tw, ii: te.sum(
        bh_mat[r1, e] * padded[b, ci, _input_at(th, r1, dh, mh), _input_at(tw, c2, dw, mw), ii],
        axis=r1), name="winograd_tmp")
    r2 = te.reduce_axis((0, a_w), "r2")
    v = te.compute((a_h, a_w, n, icb, nh, nw, ib), lambda e, f, b, ci, th, tw, ii: te.sum(
        tmp[e, r2, b, ci, th, tw, ii] * bw_mat[r2, f], axis=r2), name="winograd_V")
    rco = te.reduce_axis((0, icb), "ico")
    rci = te.reduce_axis((0, ib), "ici")
    gemm = te.compute((a_h, a_w, n, ocb, nh, nw, ob), lambda e, f, b, co, th, tw, oi: te.sum(
        v[e, f, b, rco, th, tw, rci] * u[e, f, co, rco, rci, oi], axis=[rco, rci]),
        name="winograd_gemm")
    r3 = te.reduce_axis((0, a_w), "r3")
    otmp = te.compute((a_h, n, ocb, nh, nw, mw, ob), lambda e, b, co, th, tw, wi, oi: te.sum(
        gemm[e, r3, b, co, th, tw, oi] * aw_mat[r3, wi], axis=r3), name="winograd_otmp")
    r4 = te.reduce_axis((0, a_h), "r4")
    tiled = te.compute((n, ocb, nh, nw, mh, mw, ob), lambda b, co, th, tw, hi, wi, oi: te.sum(
        ah_mat[r4, hi] * otmp[r4, b, co, th, tw, wi, oi], axis=r4), name="winograd_out")

    def unpacked(b, co, y, x, oi):
        (ty, hi), (tx, wi) = _tile_of(y, dh, mh), _tile_of(x, dw, mw)
        return tiled[b, co, ty, tx, hi, wi, oi]

    out = epilogue(unpacked, p["steps"], operands, shape=p["out"])
    return [data, u, *(operands[i] for i in sorted(operands)), out]
