"""Dense (x @ W with W constant, packed) and general batched matmul, each with a fused epilogue."""

from __future__ import annotations

import numpy as np
from tvm import te

from .elementwise import broadcast_index, epilogue


def compute(wl) -> list[te.Tensor]:
    """Dense: x [M, K], weights packed [N/nb, K, nb] -> [M, N], then the epilogue chain."""
    p = wl.params
    x = te.placeholder(p["data"], name="data")
    w = te.placeholder(p["kernel"], name="kernel")
    operands = {i: te.placeholder(s, name=f"operand{i}") for i, s in p["operands"]}
    m, k = p["data"]
    nb = p["kernel"][2]
    rk = te.reduce_axis((0, k), "k")
    core = te.compute(p["out"], lambda i, j: te.sum(x[i, rk] * w[j // nb, rk, j % nb], axis=rk),
                      name="dense")
    out = epilogue(core, p["steps"], operands)
    return [x, w, *(operands[i] for i in sorted(operands)), out]


def pack_weights(w: np.ndarray, nb: int) -> np.ndarray:
    """[K, N] -> [N/nb, K, nb]: the nb output columns one vector FMA updates are contiguous."""
    k, n = w.shape
    return np.ascontiguousarray(w.reshape(k, n // nb, nb).transpose(1, 0, 2))


def compute_matmul(wl) -> list[te.Tensor]:
    """Batched matmul a [..., M, K] x b [..., K, N] with numpy broadcasting of the batch axes."""
    p = wl.params
    a = te.placeholder(p["a"], name="a")
    b = te.placeholder(p["b"], name="b")
    operands = {i: te.placeholder(s, name=f"operand{i}") for i, s in p["operands"]}
    k = p["a"][-1]
    rk = te.reduce_axis((0, k), "k")

    def body(*idx):
        batch, i, j = idx[:-2], idx[-2], idx[-1]
        ia = broadcast_index(p["a"][:-2], batch)
        ib = broadcast_index(p["b"][:-2], batch)
        return te.sum(a[(*ia, i, rk)] * b[(*ib, rk, j)], axis=rk)

    core = te.compute(p["out"], body, name="matmul")
    out = epilogue(core, p["steps"], operands)
    return [a, b, *(operands[i] for i in sorted(operands)), out]
