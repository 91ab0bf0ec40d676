"""Fuse elementwise chains into the kernel that produces their input.

conv/dense/matmul/instance norm + bias + activation + residual add + activation become one kernel
whose epilogue is applied as each output tile leaves registers; standalone elementwise chains
merge into one kernel.
"""

from __future__ import annotations

from ..graph import Graph, Node
from .prune import rewrite_until_done

_PRODUCERS = ("conv2d", "dense", "matmul", "instance_norm", "elementwise")
_COMMUTATIVE = ("add", "mul", "max", "min")
# Steps whose formula reads its argument once; the others (exp-based, tanh, selects) read it several
# times, and TVM's simplifier expands nested ones into one tree. Standalone, 4 such steps in a row
# compiled in 0.3 s, 5 in 5.6 s, 6 never finished; behind a conv's unrolled register tile 3 took
# over a minute. A kernel keeps at most MAX_HEAVY of them; the rest run as the next kernel.
_LIGHT = ("copy", "relu", "clip", "add", "sub", "mul", "div", "max", "min", "neg", "abs")
MAX_HEAVY = 2


def _heavy(steps) -> int:
    """Heavy steps in a chain, a gate's inner ones included."""
    return sum(_heavy(params[0]) if fn == "gate" else fn not in _LIGHT
               for fn, _, params in steps)


def _gate(node: Node) -> bool:
    """Rewrite x * f(x) in an elementwise chain (SiLU's x * sigmoid(x), x * hardsigmoid(x),
    Mish's x * tanh(softplus(x))) as one ``gate`` step that reads x once, so the chain can fuse
    behind the kernel producing x. f must be unary steps from the chain's start."""
    steps, x = list(node.attrs["steps"]), node.inputs[0]
    for m, (fn, args, _) in enumerate(steps):
        if all(a is None for a in args):
            continue
        others = [a for a in args if a is not None]
        if (m == 0 or fn != "mul" or len(args) != 2 or None not in args
                or node.inputs[others[0]] != x):
            return False
        k = others[0]
        steps[:m + 1] = [("gate", (None,), (tuple(steps[:m]),))]
        if k and not any(k in a for _, a, _ in steps):
            # the duplicate input is read no more: drop it, renumber the operands after it
            node.inputs.pop(k)
            steps = [(f, tuple(a if a is None or a < k else a - 1 for a in args), p)
                     for f, args, p in steps]
        node.attrs["steps"] = tuple(steps)
        return True
    return False


def _chain(node: Node):
    return node.attrs["steps" if node.op == "elementwise" else "epilogue"]


def _merge(graph: Graph, prod: Node, ew: Node) -> bool:
    """Append ``ew``'s steps to ``prod``'s chain;
    False when the shapes or indices do not allow it."""
    src = prod.outputs[0]
    if ew.inputs.count(src) != 1:
        return False
    chain = tuple(_chain(prod)) + tuple(ew.attrs["steps"])
    if _heavy(chain) > MAX_HEAVY:
        return False
    j = ew.inputs.index(src)
    steps = list(ew.attrs["steps"])
    if any(j in args for _, args, _ in steps[1 if j else 0:]):
        return False  # the producer's value is also read as an operand later in the chain
    if j != 0:
        fn, args, params = steps[0]
        if fn not in _COMMUTATIVE or args != (None, j):
            return False
        steps[0] = (fn, (None, 0), params)  # start from the producer; inputs[0] becomes an operand
    base = len(prod.inputs)
    index, extra = {}, []
    for k, name in enumerate(ew.inputs):
        if k != j:
            index[k] = base + len(extra)
            extra.append(name)
    remapped = tuple((fn, tuple(None if a is None else index[a] for a in args), params)
                     for fn, args, params in steps)
    key = "steps" if prod.op == "elementwise" else "epilogue"
    prod.attrs[key] = tuple(_chain(prod)) + remapped
    prod.inputs = prod.inputs + extra
    prod.outputs = list(ew.outputs)
    return True


def fuse_elementwise(graph: Graph) -> None:
    def attempt(ew, producers, consumers) -> bool:
        if ew.op != "elementwise":
            return False
        if _gate(ew):
            return True
        for src in ew.inputs:
            prod = producers.get(src)
            if (prod is None or prod.op not in _PRODUCERS or src in graph.outputs
                    or len(consumers.get(src, [])) != 1
                    or graph.shapes[ew.outputs[0]] != graph.shapes[src]):
                continue
            if _merge(graph, prod, ew):
                # the fused kernel runs where the chain ended: every operand exists by then
                graph.nodes.remove(prod)
                graph.nodes[graph.nodes.index(ew)] = prod
                return True
        return False

    rewrite_until_done(graph, attempt)
