"""Converters of elementwise operators: activations, arithmetic with broadcasting, Clip, PRelu."""

from __future__ import annotations

import math

import numpy as np

from ..errors import ModelError, UnsupportedError
from .context import Context


def unary(fn, **defaults):
    """An elementwise op of one input with float attributes (name -> default)."""
    def convert(ctx: Context, node, ins):
        params = tuple(float(ctx.attr(node, k, v)) for k, v in defaults.items())
        ctx.elementwise([(fn, (None,), params)], [ins[0]], node.output[0], node.name)
    return convert


def gelu(ctx: Context, node, ins):
    """Gelu (opset 20; ConvNeXt's and ViT hybrids' activation): exact, or its tanh form."""
    approximate = ctx.attr(node, "approximate", "none")
    if approximate not in ("none", "tanh"):
        raise UnsupportedError(f"Gelu {node.name!r}: approximate={approximate!r}")
    fn = "gelu" if approximate == "none" else "gelu_tanh"
    ctx.elementwise([(fn, (None,), ())], [ins[0]], node.output[0], node.name)


def binary(fn, commutative):
    def convert(ctx: Context, node, ins):
        a, b = ins[0], ins[1]
        exponent = ctx.graph.consts.get(b) if fn == "pow" and a not in ctx.graph.consts else None
        if exponent is not None and exponent.size == 1 and exponent.ndim <= len(ctx.shape(a)):
            # a constant exponent becomes a parameter: small integers turn into multiplications
            value = float(exponent.reshape(-1)[0])
            ctx.elementwise([("pow_const", (None,), (value,))], [a], node.output[0], node.name)
            return
        if a in ctx.graph.consts and b not in ctx.graph.consts:
            if commutative:
                a, b = b, a
            else:
                ctx.elementwise([(fn, (1, None), ())], [b, a], node.output[0], node.name)
                return
        ctx.elementwise([(fn, (None, 1), ())], [a, b], node.output[0], node.name)
    return convert


def where(ctx: Context, node, ins):
    """Where(condition, x, y) as a select on the condition's mask (a comparison's 1.0 and 0.0, or a
    constant): the running value is an activation where one is, so that the select can fuse
    behind the conv that makes it (PyTorch's masked_fill and softplus threshold)."""
    cond, x, y = ins
    if x in ctx.graph.consts and y not in ctx.graph.consts:
        ctx.elementwise([("select", (None, 1, 2), (0,))], [y, cond, x], node.output[0], node.name)
    else:
        ctx.elementwise([("select", (None, 1, 2), (1,))], [x, cond, y], node.output[0], node.name)


def variadic(fn):
    """Sum, Max, Min, Mean: a chain of binary steps over every input."""
    def convert(ctx: Context, node, ins):
        ins = sorted([i for i in ins if i], key=lambda i: i in ctx.graph.consts)
        steps = [(fn, (None, k), ()) for k in range(1, len(ins))]
        if node.op_type == "Mean":
            steps.append(("mul", (None, len(ins)), ()))
            ins = ins + [ctx.graph.add_const(np.float32(1.0 / len(ins)), "mean")]
        if not steps:
            steps = [("copy", (None,), ())]
        ctx.elementwise(steps, ins, node.output[0], node.name)
    return convert


def clip(ctx: Context, node, ins):
    if ctx.opset < 11:
        lo, hi = ctx.attr(node, "min", -math.inf), ctx.attr(node, "max", math.inf)
    else:
        lo = ctx.const(ins[1], "Clip min") if len(ins) > 1 and ins[1] else -math.inf
        hi = ctx.const(ins[2], "Clip max") if len(ins) > 2 and ins[2] else math.inf
        if np.size(lo) != 1 or np.size(hi) != 1:
            raise ModelError(f"Clip {node.name!r}: min and max must be scalars")
        lo, hi = np.ravel(lo)[0], np.ravel(hi)[0]
    ctx.elementwise([("clip", (None,), (float(lo), float(hi)))], [ins[0]], node.output[0],
                    node.name)


def prelu(ctx: Context, node, ins):
    slope = ins[1]
    xs, ss = ctx.shape(ins[0]), ctx.shape(slope)
    c = ctx.graph.consts.get(slope)
    if c is not None and c.ndim == 1 and len(xs) >= 3 and c.shape[0] == xs[1] != xs[-1]:
        slope = ctx.graph.add_const(c.reshape((-1,) + (1,) * (len(xs) - 2)), "prelu")
    elif len(ss) > len(xs):
        raise ModelError(f"PRelu {node.name!r}: slope {ss} does not broadcast to {xs}")
    ctx.elementwise([("prelu", (None, 1), ())], [ins[0], slope], node.output[0], node.name)
