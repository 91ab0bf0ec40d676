"""Elementwise functions, broadcasting, and the epilogue chains fused behind conv and dense.

A chain is a tuple of steps ``(fn, args, params)``: ``args`` are operand indices, ``None`` standing
for the running value; it starts from the first input (or the producing kernel's result).
"""

from __future__ import annotations

import math

from tvm import te, tirx


def _f(v: float):
    return tirx.const(v, "float32")


def _once(fn):
    """``fn`` with its argument bound to a variable first. The functions here read their argument
    many times, and TVM copies a nested argument's whole expression into every read: Mish
    (tanh of log of exp) took 89 s to compile so, 1 s with each argument bound once.
    Operands read inside (PReLU's slope) are bound too, outside the value: read in the value's
    binding under a vector loop, TVM's common-subexpression pass made LLVM IR that failed to
    verify (PReLU after a grouped conv on AVX2)."""
    def bound(x, *rest, **options):
        exprs = [a for a in (x, *rest) if isinstance(a, tirx.Expr)
                 and not isinstance(a, (tirx.Var, tirx.FloatImm))]
        names = {id(a): tirx.Var("v", "float32") for a in exprs}
        body = fn(*(names.get(id(a), a) for a in (x, *rest)), **options)
        for a in exprs:  # x innermost
            body = tirx.Let(names[id(a)], a, body)
        return body
    bound.__doc__ = fn.__doc__
    return bound


def clamp(x, lo: float = -math.inf, hi: float = math.inf):
    """x held within [lo, hi], a NaN staying NaN as in onnxruntime, so that a NaN made inside a
    model (a log of a negative) does not leave a relu, clip or sigmoid as a number. The bound goes
    first: TVM lowers max(a, b) to ``a > b ? a : b`` (min alike), which gives b when either is NaN.
    Selects would cost nothing at run time, but TVM's simplifier takes minutes over them nested."""
    if math.isfinite(lo):
        x = tirx.max(_f(lo), x)
    return tirx.min(_f(hi), x) if math.isfinite(hi) else x


@_once
def exp(x):
    """exp that vectorises: 2^n * p(f) with a degree-7 polynomial (Cephes' expf, ~1 ulp).

    TVM lowers tirx.exp to a scalar expf call per element: LeNet-5's tanh epilogue spent 15 of its
    19 us there. Above 88.72 the result is +inf as expf's; below -87.33 it is 0 (expf: < 1.2e-38).
    """
    c = clamp(x, lo=-87.33)  # below, exp(x) < 1.2e-38: flushed to 0
    n = tirx.floor(c * _f(1.44269504088896341) + _f(0.5))
    f = c - n * _f(0.693359375) - n * _f(-2.12194440e-4)  # ln 2 in two parts: exact n * hi
    p = _f(1.9875691500e-4)
    for coeff in (1.3981999507e-3, 8.3334519073e-3, 4.1665795894e-2, 1.6666665459e-1,
                  5.0000001201e-1):
        p = p * f + _f(coeff)
    y = p * f * f + f + _f(1.0)
    # 2^n built from its exponent bits, as 2^(n-1) * 2 so that n = 128 (x near 88.7) stays finite
    scale = tirx.reinterpret("float32", tirx.Cast("int32", tirx.min(n, _f(128.0)) + _f(126.0))
                             << 23)
    return tirx.Select(x > _f(88.7228), _f(math.inf), y * scale * _f(2.0))


@_once
def log(x):
    """log that vectorises: x = m * 2^e with m in [sqrt(1/2), sqrt(2)), log(1 + (m - 1)) by
    Cephes' logf polynomial (~1 ulp). 0 gives -inf, negatives NaN, +inf inf; subnormals are
    read as 0. TVM lowers tirx.log to a scalar logf call per element."""
    bits = tirx.reinterpret("int32", x)
    e = tirx.Cast("float32", ((bits >> 23) & 0xFF) - 126)
    m = tirx.reinterpret("float32", (bits & 0x007FFFFF) | 0x3F000000)  # in [0.5, 1)
    small = m < _f(0.707106781186547524)
    e = tirx.Select(small, e - _f(1.0), e)
    m = tirx.Select(small, m + m - _f(1.0), m - _f(1.0))
    z = m * m
    p = _f(7.0376836292e-2)
    for coeff in (-1.1514610310e-1, 1.1676998740e-1, -1.2420140846e-1, 1.4249322787e-1,
                  -1.6668057665e-1, 2.0000714765e-1, -2.4999993993e-1, 3.3333331174e-1):
        p = p * m + _f(coeff)
    y = m * z * p + e * _f(-2.12194440e-4) - _f(0.5) * z
    y = m + y + e * _f(0.693359375)
    y = tirx.Select(x < _f(1.17549435e-38), _f(-math.inf), y)
    y = tirx.Select(x < _f(0.0), _f(math.nan), y)
    return tirx.Select(x < _f(math.inf), y, x)  # +inf and NaN as they came


@_once
def tanh(x):
    """tanh as Eigen's rational approximation on [-9, 9] (vectorises; abs. error < 1e-7)."""
    c = clamp(x, -9.0, 9.0)
    c2 = c * c
    p = _f(-2.76076847742355e-16)
    for coeff in (2.00018790482477e-13, -8.60467152213735e-11, 5.12229709037114e-08,
                  1.48572235717979e-05, 6.37261928875436e-04, 4.89352455891786e-03):
        p = p * c2 + _f(coeff)
    q = _f(1.19825839466702e-06)
    for coeff in (1.18534705686654e-04, 2.26843463243900e-03, 4.89352518554385e-03):
        q = q * c2 + _f(coeff)
    return c * p / q


@_once
def erf(x):
    """erf that vectorises: Eigen's rational approximation on [-4, 4] (outside, +-1 in float32),
    odd degree-13 over even degree-8 polynomials. TVM lowers tirx.erf to a scalar erff call:
    1.9 ms for a 96x56x56 map, 12x a sigmoid (GELU in ConvNeXt, exported as Erf below opset 20)."""
    c = clamp(x, -4.0, 4.0)
    c2 = c * c
    p = _f(-2.72614225801306e-10)
    for coeff in (2.77068142495902e-08, -2.10102402082508e-06, -5.69250639462346e-05,
                  -7.34990630326855e-04, -2.95459980854025e-03, -1.60960333262415e-02):
        p = p * c2 + _f(coeff)
    q = _f(-1.45660718464996e-05)
    for coeff in (-2.13374055278905e-04, -1.68282697438203e-03, -7.37332916720468e-03,
                  -1.42647390514189e-02):
        q = q * c2 + _f(coeff)
    return c * p / q


@_once
def _log1p(t):
    # log(1 + t) for t >= 0 to float precision: 1 + t rounds away a small t's low digits, so below
    # 1/16 use the series (5 terms: error < 2e-7 relative); a log1pf call would not vectorise
    series = t * (_f(1.0) + t * (_f(-1 / 2) + t * (_f(1 / 3) + t * (_f(-1 / 4) + t * _f(1 / 5)))))
    return tirx.Select(t < _f(1 / 16), series, log(_f(1.0) + t))


@_once
def _softplus(x):
    # log(1 + exp(x)) without overflow: max(x, 0) + log(1 + exp(-|x|)); precise where it is tiny
    # (softplus(-10) ~ 4.5e-5, and mish's tail is x times that)
    return clamp(x, lo=0.0) + _log1p(exp(-tirx.abs(x)))


@_once
def power(x, y: float, positive: bool = False):
    """x ** y for a constant y, vectorised: a square root, multiplications for small integers
    (LpPool's x ** 2, norms' ** 0.5, the tanh form of GELU's x ** 3), exp(y * log(x)) for other
    fractions (LRN's ** 0.75 as PyTorch exports it; NaN below 0 as powf gives, skipped when x is
    known ``positive``), else a powf call. TVM lowers power() to a scalar powf call per element:
    x ** 3 over a 96x56x56 map took 0.59 ms, 4x a sigmoid; x ** 0.75 over 2x48x55x55 0.48 ms;
    an LpPool of p=3 (3x3 windows over 64x56x56) 5.9 ms, against 0.47 multiplied out."""
    if y == 0.5:
        return tirx.sqrt(x)
    if y == int(y) and 1 <= abs(y) <= 4:
        product = x
        for _ in range(int(abs(y)) - 1):
            product = product * x
        return product if y > 0 else _f(1.0) / product
    if y == int(y):
        return tirx.power(x, _f(y))  # a negative base keeps its sign: rare enough for powf
    value = exp(_f(y) * log(x))
    return value if positive else tirx.Select(x >= _f(0.0), value, _f(math.nan))


def _mask(condition):
    return tirx.Select(condition, _f(1.0), _f(0.0))


# fn -> f(value, *operands, *params) as TE expressions. Those that read the value more than once
# bind it first (``_once``): a value that is itself a bound expression, copied, would define its
# variable twice, which TIR refuses (an Elu then a LeakyReLU).
FNS = {
    "copy": lambda x: x,
    "relu": lambda x: clamp(x, lo=0.0),
    "leaky_relu": _once(lambda x, a: tirx.Select(x >= _f(0.0), x, x * _f(a))),
    "prelu": _once(lambda x, s: tirx.Select(x >= _f(0.0), x, x * s)),
    "clip": clamp,
    "sigmoid": lambda x: _f(1.0) / (_f(1.0) + exp(-x)),
    "tanh": tanh,
    "hard_sigmoid": lambda x, a, b: clamp(x * _f(a) + _f(b), 0.0, 1.0),
    "hard_swish": _once(lambda x: x * clamp(x * _f(1 / 6) + _f(0.5), 0.0, 1.0)),
    "elu": _once(lambda x, a: tirx.Select(x >= _f(0.0), x, _f(a) * (exp(x) - _f(1.0)))),
    "selu": _once(lambda x, a, g: tirx.Select(x > _f(0.0), _f(g) * x,
                                        _f(g) * _f(a) * (exp(x) - _f(1.0)))),
    "celu": _once(lambda x, a: clamp(x, lo=0.0) + clamp(_f(a) * (exp(x / _f(a)) - _f(1.0)),
                                                         hi=0.0)),
    "softplus": _softplus,
    "softsign": _once(lambda x: x / (_f(1.0) + tirx.abs(x))),
    "mish": _once(lambda x: x * tanh(_softplus(x))),
    "thresholded_relu": _once(lambda x, a: tirx.Select(x > _f(a), x, _f(0.0))),
    "abs": lambda x: tirx.abs(x),
    "neg": lambda x: -x,
    "exp": exp,
    "log": log,
    "sqrt": lambda x: tirx.sqrt(x),
    "reciprocal": lambda x: _f(1.0) / x,
    "floor": lambda x: tirx.floor(x),
    "round": lambda x: tirx.nearbyint(x),  # halves to even, as ONNX's Round
    "sign": _once(lambda x: tirx.Select(x > _f(0.0), _f(1.0),
                                        tirx.Select(x < _f(0.0), _f(-1.0), x))),
    "ceil": lambda x: tirx.ceil(x),
    "erf": erf,
    "gelu": _once(lambda x: _f(0.5) * x * (_f(1.0) + erf(x * _f(math.sqrt(0.5))))),
    "gelu_tanh": _once(lambda x: _f(0.5) * x * (_f(1.0) + tanh(
        _f(math.sqrt(2 / math.pi)) * (x + _f(0.044715) * x * x * x)))),
    "add": lambda x, y: x + y,
    "sub": lambda x, y: x - y,
    "mul": lambda x, y: x * y,
    "div": lambda x, y: x / y,
    "max": lambda x, y: tirx.max(x, y),
    "min": lambda x, y: tirx.min(x, y),
    "pow": lambda x, y: tirx.power(x, y),
    "pow_const": power,
    # comparisons give masks of 1.0 and 0.0 (tvmconv's activations are float32), which ``select``
    # reads: the value where the mask is nonzero if ``when`` is 1, where it is zero if 0
    "greater": lambda x, y: _mask(x > y),
    "greater_equal": lambda x, y: _mask(x >= y),
    "less": lambda x, y: _mask(x < y),
    "less_equal": lambda x, y: _mask(x <= y),
    "equal": lambda x, y: _mask(x == y),
    "not": lambda x: _mask(x == _f(0.0)),
    "and": lambda x, y: _mask(tirx.And(x != _f(0.0), y != _f(0.0))),
    "or": lambda x, y: _mask(tirx.Or(x != _f(0.0), y != _f(0.0))),
    # (a != 0) != (b != 0) compares two booleans, which LLVM refused to verify once vectorised
    "xor": lambda x, y: tirx.Select(x != _f(0.0), _mask(y == _f(0.0)), _mask(y != _f(0.0))),
    "select": lambda x, mask, other, when: tirx.Select(
        mask != _f(0.0) if when else mask == _f(0.0), x, other),
    # x * f(x) with f a chain of unary steps (SiLU: f = sigmoid), as passes.fuse writes it
    "gate": _once(lambda x, inner: x * apply_steps(x, inner, None)),
    # a binary step with a scalar constant inside a gate's f (GELU's x / sqrt(2), as a
    # multiplication: within an ulp, and no division), first if ``swapped``
    "scalar": lambda x, fn, v, swapped: FNS[fn](_f(v), x) if swapped else (
        x * _f(1.0 / v) if fn == "div" and v != 0 else FNS[fn](x, _f(v))),
}


def broadcast_index(shape, index):
    """Index into a tensor of ``shape`` from an output index,
    numpy-style right-aligned broadcasting."""
    lead = len(index) - len(shape)
    return [0 if int(d) == 1 else index[lead + k] for k, d in enumerate(shape)]


def apply_steps(start, steps, operand):
    """Run a chain on the TE expression ``start``; ``operand(i)`` gives operand i's expression."""
    value = start
    for fn, args, params in steps:
        def step(x, fn=fn, args=args, params=params):
            return FNS[fn](*(x if a is None else operand(a) for a in args), *params)
        value = (_once(step) if args.count(None) > 1 else step)(value)  # x * x reads x twice
    return value


def elementwise(inputs: list[te.Tensor], steps, shape) -> te.Tensor:
    """A standalone elementwise kernel over broadcast inputs."""
    def body(*idx):
        def operand(i):
            t = inputs[i]
            return t(*broadcast_index(t.shape, idx))
        return apply_steps(operand(0), steps, operand)

    return te.compute(shape, body, name="elementwise")


def epilogue(core, steps, operands: dict[int, te.Tensor], shape=None,
             name: str = "epilogue") -> te.Tensor:
    """The chain applied to each element of a conv/dense result as it is stored
    (one fused kernel); ``shape`` when the result is computed over a larger domain than stored,
    or when ``core`` is a function of the stored index rather than a tensor."""
    def body(*idx):
        def operand(i):
            t = operands[i]
            return t(*broadcast_index(t.shape, idx))
        return apply_steps(core(*idx), steps, operand)

    return te.compute(core.shape if shape is None else shape, body, name=name)
