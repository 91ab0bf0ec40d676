"""Winograd F(m x m, 3 x 3) convolution in the blocked layout (stride 1, no groups).

Each m x m output tile costs (m + 2)^2 multiply-adds per input/output channel pair instead of 9 m^2:
the input tile is transformed (B^T d B), multiplied element-wise by the pre-transformed kernel
(U = G g G^T, once, as the artefact loads) as (m + 2)^2 small GEMMs over channels, and transformed
back (A^T M A). F(2,3) saves 2.25x of the multiplies, F(4,3) 4x.

A conv dilated by d is d x d interleaved undilated convs (DeepLab's atrous layers): a tile's
outputs and inputs are then d apart, and tiles of the d residues of a row alternate, so the same
transforms and GEMMs serve it.

data [N, IC/ib, H, W, ib], U [a, a, OC/ob, IC/ib, ib, ob] (a = m + 2), out [N, OC/ob, OH, OW, ob]
"""

from __future__ import annotations

import numpy as np
from tvm import te
from tvm.topi.nn.winograd_util import _cook_toom_convolution, _interpolation_points, const_matrix

from .conv2d import pad_spatial
from .elementwise import epilogue


def matrices(m: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A (a x m), B (a x a), G (a x 3) by Cook-Toom on TVM's well-conditioned points."""
    return _cook_toom_convolution(_interpolation_points(m + 1), m, 3)


def transform_weights(packed: np.ndarray, m: int) -> np.ndarray:
    """[OC/ob, IC/ib, 3, 3, ib, ob] -> U [a, a, OC/ob, IC/ib, ib, ob], in float64 then float32:
    the tuner's kernel arguments, and the reference for ``weight_transform``."""
    _, _, g = matrices(m)
    u = np.einsum("ek,fl,oikljc->efoijc", g, g, packed.astype(np.float64))
    return np.ascontiguousarray(u.astype(np.float32))


def weight_transform(kernel_shape: tuple[int, ...], m: int) -> list[te.Tensor]:
    """U = G g G^T as a kernel, so that an artefact can keep the 3 x 3 weights and transform them
    as it loads: [weights (the packed 3 x 3 ones), U]."""
    ocb, icb, _, _, ib, ob = kernel_shape
    alpha = m + 2
    g = const_matrix(matrices(m)[2].astype("float32"), "G")
    w = te.placeholder(tuple(kernel_shape), name="weights")
    r1 = te.reduce_axis((0, 3), "r1")
    gw = te.compute((alpha, 3, ocb, icb, ib, ob), lambda e, kx, o, i, j, c: te.sum(
        g[e, r1] * w[o, i, r1, kx, j, c], axis=r1), name="winograd_Gg")
    r2 = te.reduce_axis((0, 3), "r2")
    u = te.compute((alpha, alpha, ocb, icb, ib, ob), lambda e, f, o, i, j, c: te.sum(
        gw[e, r2, o, i, j, c] * g[f, r2], axis=r2), name="winograd_U")
    return [w, u]


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
    dh, dw = p["dilations"]
    alpha = m + 2
    nh, nw = tiles_along(oh, dh, m), tiles_along(ow, dw, m)
    if dw == 1:
        nw = -(-nw // tile_p) * tile_p
    a_np, b_np, _ = matrices(m)
    a_mat, b_mat = const_matrix(a_np.astype("float32"), "A"), const_matrix(
        b_np.astype("float32"), "B")
    data = te.placeholder(p["data"], name="data")
    u = te.placeholder((alpha, alpha, ocb, icb, ib, ob), name="kernel")
    operands = {i: te.placeholder(s, name=f"operand{i}") for i, s in p["operands"]}
    padded = pad_spatial(data, p["pads"], ((nh // dh * m + 2) * dh, (nw // dw * m + 2) * dw))

    r1 = te.reduce_axis((0, alpha), "r1")
    tmp = te.compute((alpha, alpha, n, icb, nh, nw, ib), lambda e, c2, b, ci, th, tw, ii: te.sum(
        b_mat[r1, e] * padded[b, ci, _input_at(th, r1, dh, m), _input_at(tw, c2, dw, m), ii],
        axis=r1), name="winograd_tmp")
    r2 = te.reduce_axis((0, alpha), "r2")
    v = te.compute((alpha, alpha, n, icb, nh, nw, ib), lambda e, f, b, ci, th, tw, ii: te.sum(
        tmp[e, r2, b, ci, th, tw, ii] * b_mat[r2, f], axis=r2), name="winograd_V")
    rco = te.reduce_axis((0, icb), "ico")
    rci = te.reduce_axis((0, ib), "ici")
    gemm = te.compute((alpha, alpha, n, ocb, nh, nw, ob), lambda e, f, b, co, th, tw, oi: te.sum(
        v[e, f, b, rco, th, tw, rci] * u[e, f, co, rco, rci, oi], axis=[rco, rci]),
        name="winograd_gemm")
    r3 = te.reduce_axis((0, alpha), "r3")
    otmp = te.compute((alpha, n, ocb, nh, nw, m, ob), lambda e, b, co, th, tw, wi, oi: te.sum(
        gemm[e, r3, b, co, th, tw, oi] * a_mat[r3, wi], axis=r3), name="winograd_otmp")
    r4 = te.reduce_axis((0, alpha), "r4")
    tiled = te.compute((n, ocb, nh, nw, m, m, ob), lambda b, co, th, tw, hi, wi, oi: te.sum(
        a_mat[r4, hi] * otmp[r4, b, co, th, tw, wi, oi], axis=r4), name="winograd_out")

    def unpacked(b, co, y, x, oi):
        (ty, hi), (tx, wi) = _tile_of(y, dh, m), _tile_of(x, dw, m)
        return tiled[b, co, ty, tx, hi, wi, oi]

    out = epilogue(unpacked, p["steps"], operands, shape=p["out"])
    return [data, u, *(operands[i] for i in sorted(operands)), out]
