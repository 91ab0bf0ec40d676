"""Software prefetch, which s_tir cannot schedule: a template marks a loop (``mark``) and
``insert`` puts, at the top of each of its iterations, a prefetch of every cache line that
iteration reads from the marked buffer, ``ahead`` elements further on (where weights stream
from memory too slowly for the hardware prefetchers: ``templates.x86.conv2d.weights_streamed``).
LLVM's own loop prefetching does not run for x86.
"""

from __future__ import annotations

import itertools
import math

from tvm import sym, tirx
from tvm.s_tir import stmt as s_stmt

KEY = "tvmconv_prefetch"
LINE_BYTES = 64
MAX_LINES = 256  # prefetches per iteration, at most
MAX_COMBINATIONS = 4096  # inner loop values enumerated to find the lines


def mark(sch, loop, buffer: str, ahead: int, every: int = 1) -> None:
    """Ask for prefetches of ``buffer`` ``ahead`` elements beyond what ``loop`` reads, issued
    once per ``every`` iterations (which must divide its extent)."""
    if every > 1:
        loop = sch.split(loop, [None, every])[0]
    sch.annotate(loop, KEY, f"{buffer}:{ahead}")


def insert(func):
    """``func`` with each marked loop's prefetches in place and its mark removed."""
    body = _rewrite(func.body)
    return func if body is None else tirx.PrimFunc(func.params, body, func.ret_type, func.attrs)


def _rewrite(stmt):
    """The statement with its marked loops rewritten, or None where nothing changed."""
    if isinstance(stmt, tirx.For):
        inner = _rewrite(stmt.body)
        if KEY not in stmt.annotations:
            return None if inner is None else _for(stmt, inner, stmt.annotations)
        body = inner if inner is not None else stmt.body
        buffer, ahead = str(stmt.annotations[KEY]).split(":")
        lines = _prefetches(body, buffer, int(ahead))
        rest = {k: v for k, v in stmt.annotations.items() if k != KEY}
        return _for(stmt, tirx.SeqStmt([*lines, body]) if lines else body, rest)
    if isinstance(stmt, tirx.SeqStmt):
        parts = [_rewrite(s) for s in stmt.seq]
        if all(p is None for p in parts):
            return None
        return tirx.SeqStmt([p if p is not None else s for p, s in zip(parts, stmt.seq)])
    if isinstance(stmt, s_stmt.SBlockRealize):
        block = stmt.block
        inner = _rewrite(block.body)
        if inner is None:
            return None
        new = s_stmt.SBlock(block.iter_vars, block.reads, block.writes, block.name_hint, inner,
                            block.init, block.alloc_buffers, block.match_buffers,
                            block.annotations)
        return s_stmt.SBlockRealize(stmt.iter_values, stmt.predicate, new)
    return None


def _for(loop, body, annotations):
    return tirx.For(loop.loop_var, loop.min, loop.extent, loop.kind, body, loop.thread_binding,
                    annotations)


def _prefetches(body, buffer: str, ahead: int) -> list:
    """Prefetch statements for the lines of ``buffer`` one iteration of the loop over ``body``
    reads (in the first block below that reads it), ``ahead`` elements on, clamped to the
    buffer; none when the read is not affine in the loops between.

    They address a flat view of the buffer declared beside them: an address LLVM cannot trace
    to its argument made the micro-kernel keep its accumulators in memory, and one unflattened
    by divisions cost more than the prefetch saved."""
    found = _reader(body, [])
    if found is None:
        return []
    realize, inner = found
    region = next((r for r in realize.block.reads if r.source.name == buffer), None)
    if region is None or not all(isinstance(lp.extent, tirx.IntImm) for lp in inner):
        return []
    buf = region.source
    shape = [int(d) for d in buf.shape]
    strides = [math.prod(shape[i + 1:]) for i in range(len(shape))]
    az = sym.Analyzer()
    for var, value in zip(realize.block.iter_vars, realize.iter_values):
        az.bind(var.var, value)

    def flat(values):
        for lp, v in zip(inner, values):
            az.bind(lp.loop_var, tirx.const(v, str(lp.loop_var.ty)), allow_override=True)
        return az.simplify(sum(r.min * s for r, s in zip(region.region, strides)))

    extents = [int(lp.extent) for lp in inner]
    base = flat([0] * len(inner))
    steps = []  # elements the read moves per step of each inner loop
    for i in range(len(inner)):
        step = az.simplify(flat([int(j == i) for j in range(len(inner))]) - base)
        if not isinstance(step, tirx.IntImm):
            return []
        steps.append(int(step))
    corner = az.simplify(flat([e - 1 for e in extents]) - base)
    if not isinstance(corner, tirx.IntImm) or int(corner) != sum(
            (e - 1) * s for e, s in zip(extents, steps)):
        return []
    moving = [(e, s) for e, s in zip(extents, steps) if s]
    if math.prod(e for e, _ in moving) > MAX_COMBINATIONS:
        return []
    lines = {sum(v * s for v, (_, s) in zip(values, moving)) * buf.dtype.bits // 8 // LINE_BYTES
             for values in itertools.product(*(range(e) for e, _ in moving))}
    if len(lines) > MAX_LINES:
        return []
    view = tirx.decl_buffer((math.prod(shape),), buf.dtype, f"{buffer}_lines")
    per_line = LINE_BYTES * 8 // buf.dtype.bits
    first = tirx.min(base + ahead, math.prod(shape) - 1 - max(lines) * per_line)
    return [tirx.DeclBuffer(view, data=buf.data),
            *(_prefetch(view, first + line * per_line) for line in sorted(lines))]


def _reader(stmt, inner):
    """The first block realize under ``stmt`` and the loops between (None if there is none)."""
    if isinstance(stmt, tirx.For):
        return _reader(stmt.body, [*inner, stmt])
    if isinstance(stmt, tirx.SeqStmt):
        for s in stmt.seq:
            found = _reader(s, inner)
            if found is not None:
                return found
        return None
    if isinstance(stmt, s_stmt.SBlockRealize):
        return stmt, inner
    return None


def _prefetch(view, index):
    """prefetch(&view[index]) for reading, into all cache levels (prefetcht0; into L2 only, or
    non-temporal, measured the same)."""
    address = tirx.address_of(tirx.BufferLoad(view, [index]))
    return tirx.Evaluate(tirx.call_intrin("void", "tirx.prefetch", address, 0, 3, 1))
