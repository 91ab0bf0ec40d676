"""Fuse elementwise chains into the kernel that produces their input.

conv/dense/matmul/instance norm + bias + activation + residual add + activation become one kernel
whose epilogue is applied as each output tile leaves registers; standalone elementwise chains
merge into one kernel.
"""

from __future__ import annotations

from ..graph import Graph, Node, blockable
from .layout import BLOCKED_EPILOGUES
from .prune import collapse_reshape, rewrite_until_done

_PRODUCERS = ("conv2d", "dense", "matmul", "instance_norm", "elementwise")
_COMMUTATIVE = ("add", "mul", "max", "min")
# Steps whose formula reads its argument once; the others (exp-based, tanh, selects) read it several
# times, and TVM's simplifier expands nested ones into one tree. Standalone, 4 such steps in a row
# compiled in 0.3 s, 5 in 5.6 s, 6 never finished; behind a conv's unrolled register tile 3 took
# over a minute. A kernel keeps at most MAX_HEAVY of them; the rest run as the next kernel. Mish
# (tanh of softplus) counts twice: a Mish after a Mish compiled for over 10 minutes.
_LIGHT = ("copy", "relu", "clip", "add", "sub", "mul", "div", "max", "min", "neg", "abs")
_WEIGHT = {"mish": 2}
MAX_HEAVY = 2


def _heavy(steps) -> int:
    """Heavy steps in a chain, weighted, a gate's inner ones included."""
    return sum(_heavy(params[0]) if fn == "gate" else
               _weight(params[0] if fn == "scalar" else fn) for fn, _, params in steps)


def _weight(fn: str) -> int:
    return 0 if fn in _LIGHT else _WEIGHT.get(fn, 1)


def _inner_step(graph: Graph, node: Node, step):
    """A step of f in x * f(x) as the gate keeps it: unary as it is, binary with a scalar
    constant as a ``scalar`` step holding the value (GELU's x / sqrt(2) and + 1); None if it
    reads anything else."""
    fn, args, _ = step
    if all(a is None for a in args):
        return step
    others = [a for a in args if a is not None]
    value = graph.consts.get(node.inputs[others[0]]) if len(args) == 2 and others[0] else None
    if value is None or value.size != 1:
        return None
    return ("scalar", (None,), (fn, float(value.reshape(())), args[0] is not None))


def _gate(graph: Graph, node: Node) -> bool:
    """Rewrite x * f(x) in an elementwise chain (SiLU's x * sigmoid(x), x * hardsigmoid(x),
    Mish's x * tanh(softplus(x)), GELU's x * (erf(x / sqrt(2)) + 1)) as one ``gate`` step that
    reads x once, so the chain can fuse behind the kernel producing x. f must be steps from the
    chain's start, unary or with a scalar constant."""
    steps, x = list(node.attrs["steps"]), node.inputs[0]
    for m, (fn, args, _) in enumerate(steps):
        inner = _inner_step(graph, node, steps[m])
        if inner is not None:
            steps[m] = inner
            continue
        others = [a for a in args if a is not None]
        if (m == 0 or fn != "mul" or len(args) != 2 or None not in args
                or node.inputs[others[0]] != x):
            return False
        steps[:m + 1] = [("gate", (None,), (tuple(steps[:m]),))]
        read = {a for _, a_s, _ in steps for a in a_s if a is not None}
        keep = [0] + [k for k in range(1, len(node.inputs)) if k in read]
        # operands read no more (the duplicate x, f's scalars): dropped, the others renumbered
        node.inputs = [node.inputs[k] for k in keep]
        node.attrs["steps"] = tuple((f, tuple(None if a is None else keep.index(a) for a in a_s),
                                     p) for f, a_s, p in steps)
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
    if prod.op in BLOCKED_EPILOGUES and not all(
            blockable(graph.shapes[i], graph.shapes[src]) for k, i in enumerate(ew.inputs)
            if k != j and not graph.is_const(i)):
        return False  # an activation the blocked output could not read (a spatial gate)
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


def _before_reshape(graph: Graph, node: Node, producers, consumers) -> bool:
    """An elementwise op on a reshaped kernel output, run on the output itself so it can fuse
    into that kernel (the GELU and layer scale behind ConvNeXt's Linear layers, which run as
    dense kernels on [HW, C]). Constant operands must broadcast along trailing axes the reshape
    keeps; the reshape is then of the op's result."""
    view = next((i for i in node.inputs if not graph.is_const(i)), None)
    reshape = producers.get(view)
    if (reshape is None or reshape.op != "reshape" or len(consumers.get(view, [])) != 1
            or view in graph.outputs):
        return False
    src = reshape.inputs[0]
    kernel = producers.get(src)
    if (kernel is None or kernel.op not in ("conv2d", "dense", "matmul", "instance_norm")
            or len(consumers.get(src, [])) != 1 or src in graph.outputs
            or any(i != view and not graph.is_const(i) for i in node.inputs)
            or graph.shapes[node.outputs[0]] != graph.shapes[view]):
        return False  # (last: an op that broadcasts the view wider, as Expand does)
    before, after = graph.shapes[src], graph.shapes[view]
    kept = 0  # trailing axes the reshape leaves as they are
    while kept < min(len(before), len(after)) and before[-1 - kept] == after[-1 - kept]:
        kept += 1
    consts = {i: graph.consts[i] for i in node.inputs if i != view}
    if any(c.ndim > len(after) or any(d != 1 for d in c.shape[:max(c.ndim - kept, 0)])
           for c in consts.values()):
        return False  # a constant that varies along an axis the reshape changes
    aligned = {i: graph.add_const(c.reshape(c.shape[max(c.ndim - kept, 0):]), "trailing")
               for i, c in consts.items() if c.ndim > kept}
    out = node.outputs[0]
    inner = graph.fresh("before_reshape")
    graph.shapes[inner] = before
    node.inputs = [src if i == view else aligned.get(i, i) for i in node.inputs]
    node.outputs = [inner]
    graph.nodes.remove(reshape)
    graph.nodes.insert(graph.nodes.index(node) + 1, Node("reshape", [inner], [out]))
    return True


def fuse_elementwise(graph: Graph) -> None:
    def attempt(ew, producers, consumers) -> bool:
        if ew.op == "reshape":
            return collapse_reshape(graph, ew, producers)
        if ew.op != "elementwise":
            return False
        if _gate(graph, ew) or _before_reshape(graph, ew, producers, consumers):
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
