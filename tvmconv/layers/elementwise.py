"""Elementwise functions, broadcasting, and the epilogue chains fused behind conv and dense.

A chain is a tuple of steps ``(fn, args, params)``: ``args`` are operand indices, ``None`` standing for
the running value; it starts from the first input (or the producing kernel's result).
"""

from __future__ import annotations

import math

from tvm import te, tirx


def _f(v: float):
    return tirx.const(v, "float32")


def _log1p(t):
    # log(1 + t) for t >= 0 to float precision: 1 + t rounds away a small t's low digits, so below
    # 1/16 use the series (5 terms: error < 2e-7 relative); a log1pf call would not vectorise
    series = t * (_f(1.0) + t * (_f(-1 / 2) + t * (_f(1 / 3) + t * (_f(-1 / 4) + t * _f(1 / 5)))))
    return tirx.Select(t < _f(1 / 16), series, tirx.log(_f(1.0) + t))


def _softplus(x):
    # log(1 + exp(x)) without overflow: max(x, 0) + log(1 + exp(-|x|)); precise where it is tiny
    # (softplus(-10) ~ 4.5e-5, and mish's tail is x times that)
    return tirx.max(x, _f(0.0)) + _log1p(tirx.exp(-tirx.abs(x)))


def _pow(x, y):
    # x ** 2 and x ** 0.5 are common (LpPool, exporters' norms); pow() itself is slow and NaN for x < 0
    if isinstance(y, tirx.FloatImm):
        if y.value == 2.0:
            return x * x
        if y.value == 1.0:
            return x
        if y.value == 0.5:
            return tirx.sqrt(x)
    return tirx.power(x, y)


# fn -> f(value, *operands, *params) as TE expressions.
FNS = {
    "copy": lambda x: x,
    "relu": lambda x: tirx.max(x, _f(0.0)),
    "leaky_relu": lambda x, a: tirx.Select(x >= _f(0.0), x, x * _f(a)),
    "prelu": lambda x, s: tirx.Select(x >= _f(0.0), x, x * s),
    "clip": lambda x, lo, hi: tirx.min(tirx.max(x, _f(lo)), _f(hi)) if math.isfinite(lo) and
    math.isfinite(hi) else (tirx.max(x, _f(lo)) if math.isfinite(lo) else
                           (tirx.min(x, _f(hi)) if math.isfinite(hi) else x)),
    "sigmoid": lambda x: tirx.sigmoid(x),
    "tanh": lambda x: tirx.tanh(x),
    "hard_sigmoid": lambda x, a, b: tirx.min(tirx.max(x * _f(a) + _f(b), _f(0.0)), _f(1.0)),
    "hard_swish": lambda x: x * tirx.min(tirx.max(x * _f(1 / 6) + _f(0.5), _f(0.0)), _f(1.0)),
    "elu": lambda x, a: tirx.Select(x >= _f(0.0), x, _f(a) * (tirx.exp(x) - _f(1.0))),
    "selu": lambda x, a, g: tirx.Select(x > _f(0.0), _f(g) * x,
                                        _f(g) * _f(a) * (tirx.exp(x) - _f(1.0))),
    "celu": lambda x, a: tirx.max(x, _f(0.0)) + tirx.min(
        _f(0.0), _f(a) * (tirx.exp(x / _f(a)) - _f(1.0))),
    "softplus": _softplus,
    "softsign": lambda x: x / (_f(1.0) + tirx.abs(x)),
    "mish": lambda x: x * tirx.tanh(_softplus(x)),
    "thresholded_relu": lambda x, a: tirx.Select(x > _f(a), x, _f(0.0)),
    "abs": lambda x: tirx.abs(x),
    "neg": lambda x: -x,
    "exp": lambda x: tirx.exp(x),
    "log": lambda x: tirx.log(x),
    "sqrt": lambda x: tirx.sqrt(x),
    "reciprocal": lambda x: _f(1.0) / x,
    "floor": lambda x: tirx.floor(x),
    "ceil": lambda x: tirx.ceil(x),
    "erf": lambda x: tirx.erf(x),
    "add": lambda x, y: x + y,
    "sub": lambda x, y: x - y,
    "mul": lambda x, y: x * y,
    "div": lambda x, y: x / y,
    "max": lambda x, y: tirx.max(x, y),
    "min": lambda x, y: tirx.min(x, y),
    "pow": _pow,
}


def broadcast_index(shape, index):
    """Index into a tensor of ``shape`` from an output index, numpy-style right-aligned broadcasting."""
    lead = len(index) - len(shape)
    return [0 if int(d) == 1 else index[lead + k] for k, d in enumerate(shape)]


def apply_steps(start, steps, operand):
    """Run a chain on the TE expression ``start``; ``operand(i)`` gives operand i's expression."""
    value = start
    for fn, args, params in steps:
        vals = [value if a is None else operand(a) for a in args]
        value = FNS[fn](*vals, *params)
    return value


def elementwise(inputs: list[te.Tensor], steps, shape) -> te.Tensor:
    """A standalone elementwise kernel over broadcast inputs."""
    def body(*idx):
        def operand(i):
            t = inputs[i]
            return t(*broadcast_index(t.shape, idx))
        return apply_steps(operand(0), steps, operand)

    return te.compute(shape, body, name="elementwise")


def epilogue(core: te.Tensor, steps, operands: dict[int, te.Tensor]) -> te.Tensor:
    """The chain applied to each element of a conv/dense result as it is stored (one fused kernel)."""
    def body(*idx):
        def operand(i):
            t = operands[i]
            return t(*broadcast_index(t.shape, idx))
        return apply_steps(core(*idx), steps, operand)

    return te.compute(core.shape, body, name="epilogue")
