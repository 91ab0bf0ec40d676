"""Software prefetch, which s_tir cannot schedule: a template marks loops and ``insert`` puts
prefetches of the marked buffer at the top of each iteration of a marked loop, where weights
stream from memory too slowly for the hardware prefetchers
(``templates.x86.conv2d.weights_streamed``). Two kinds:

- ``mark``: every cache line the iteration reads, ``ahead`` elements further on;
- ``mark_next``: this iteration's share of the lines the next iteration of an enclosing loop
  will read, so that a loop whose iterations re-read one stretch of the buffer (each row tile
  the same input-channel block) fetches the next stretch at an even pace.

LLVM's own loop prefetching does not run for x86.
"""

from __future__ import annotations

import itertools
import math

from tvm import sym, tirx
from tvm.s_tir import stmt as s_stmt

KEY = "tvmconv_prefetch"
KEY_NEXT, KEY_SPREAD = "tvmconv_prefetch_next", "tvmconv_prefetch_spread"
LINE_BYTES = 64
MAX_LINES = 256  # prefetches per iteration, at most
MAX_COMBINATIONS = 4096  # inner loop values enumerated to find the lines


def mark(sch, loop, buffer: str, ahead: int, every: int = 1) -> None:
    """Ask for prefetches of ``buffer`` ``ahead`` elements beyond what ``loop`` reads, issued
    once per ``every`` iterations (which must divide its extent)."""
    if every > 1:
        loop = sch.split(loop, [None, every])[0]
    sch.annotate(loop, KEY, f"{buffer}:{ahead}")


def mark_next(sch, outer, at, buffer: str) -> None:
    """Ask for prefetches of what the next iteration of ``outer`` reads of ``buffer``, spread
    evenly over the iterations of the loops below it down to ``at`` (issued at the top of each
    iteration of ``at``). The stretch read by one iteration of ``outer`` must be contiguous, and
    the next one follow it, for every line to be prefetched."""
    sch.annotate(outer, KEY_NEXT, buffer)
    sch.annotate(at, KEY_SPREAD, buffer)


def insert(func):
    """``func`` with each marked loop's prefetches in place and its mark removed."""
    body = _rewrite(func.body, ())
    return func if body is None else tirx.PrimFunc(func.params, body, func.ret_type, func.attrs)


def _rewrite(stmt, path: tuple):
    """The statement (under the loops ``path``) with its marked loops rewritten, or None where
    nothing changed."""
    if isinstance(stmt, tirx.For):
        inner = _rewrite(stmt.body, (*path, stmt))
        marks = [k for k in (KEY, KEY_NEXT, KEY_SPREAD) if k in stmt.annotations]
        if not marks:
            return None if inner is None else _for(stmt, inner, stmt.annotations)
        body = inner if inner is not None else stmt.body
        lines = []
        if KEY in marks:
            buffer, ahead = str(stmt.annotations[KEY]).split(":")
            lines = _ahead(body, buffer, int(ahead))
        if KEY_SPREAD in marks:
            lines = lines + _next(path, stmt, str(stmt.annotations[KEY_SPREAD]))
        rest = {k: v for k, v in stmt.annotations.items() if k not in marks}
        return _for(stmt, tirx.SeqStmt([*lines, body]) if lines else body, rest)
    if isinstance(stmt, tirx.SeqStmt):
        parts = [_rewrite(s, path) for s in stmt.seq]
        if all(p is None for p in parts):
            return None
        return tirx.SeqStmt([p if p is not None else s for p, s in zip(parts, stmt.seq)])
    if isinstance(stmt, s_stmt.SBlockRealize):
        block = stmt.block
        inner = _rewrite(block.body, path)
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


class _Reads:
    """A block's read of ``buffer`` as flat element indices, for constant values of ``loops``
    (the loops between a mark and the block); ``ok`` False when the block does not read it or a
    loop's extent is not constant."""

    def __init__(self, realize, buffer: str, loops: list):
        region = next((r for r in realize.block.reads if r.source.name == buffer), None)
        self.ok = region is not None and all(isinstance(lp.extent, tirx.IntImm) for lp in loops)
        if not self.ok:
            return
        self.realize, self.loops = realize, loops
        self.buf, self.region = region.source, region.region
        self.shape = [int(d) for d in self.buf.shape]
        self.extents = [int(lp.extent) for lp in loops]
        self.per_line = LINE_BYTES * 8 // self.buf.dtype.bits

    def index(self, values, bound=()):
        """The flat index with ``loops`` at ``values`` and each (var, value) of ``bound`` set."""
        az = sym.Analyzer()
        for var, value in zip(self.realize.block.iter_vars, self.realize.iter_values):
            az.bind(var.var, value)
        for lp, v in zip(self.loops, values):
            az.bind(lp.loop_var, tirx.const(v, str(lp.loop_var.ty)))
        for var, v in bound:
            az.bind(var, tirx.const(v, str(var.ty)))
        strides = [math.prod(self.shape[i + 1:]) for i in range(len(self.shape))]
        return az.simplify(sum(r.min * s for r, s in zip(self.region, strides)))

    def offset(self, values, base_values=None, bound=(), base_bound=()):
        """``index(values, bound)`` less ``index(base_values or all 0, base_bound)``, an int; None
        where it is not a constant."""
        base = self.index(base_values or [0] * len(self.loops), base_bound)
        diff = sym.Analyzer().simplify(self.index(values, bound) - base)
        return int(diff) if isinstance(diff, tirx.IntImm) else None

    def prefetches(self, first, lines: list[int], name: str) -> list:
        """A flat view of the buffer and prefetches of ``lines`` (in lines from element
        ``first``), clamped to the buffer.

        They address the view: an address LLVM cannot trace to its argument made the
        micro-kernel keep its accumulators in memory, and one unflattened by divisions cost more
        than the prefetch saved."""
        size = math.prod(self.shape)
        view = tirx.decl_buffer((size,), self.buf.dtype, f"{self.buf.name}_{name}")
        first = tirx.min(first, size - 1 - max(lines) * self.per_line)
        return [tirx.DeclBuffer(view, data=self.buf.data),
                *(_prefetch(view, first + line * self.per_line) for line in lines)]


def _ahead(body, buffer: str, ahead: int) -> list:
    """``mark``'s prefetches: the lines of ``buffer`` one iteration of the loop over ``body``
    reads (in the first block below that reads it), ``ahead`` elements on; none when the read is
    not affine in the loops between."""
    found = _reader(body, [])
    if found is None:
        return []
    realize, inner = found
    reads = _Reads(realize, buffer, inner)
    if not reads.ok:
        return []
    n = len(reads.loops)
    steps = [reads.offset([int(j == i) for j in range(n)]) for i in range(n)]
    corner = reads.offset([e - 1 for e in reads.extents])
    if None in steps or corner != sum((e - 1) * s for e, s in zip(reads.extents, steps)):
        return []
    moving = [(e, s) for e, s in zip(reads.extents, steps) if s]
    if math.prod(e for e, _ in moving) > MAX_COMBINATIONS:
        return []
    lines = {sum(v * s for v, (_, s) in zip(values, moving)) // reads.per_line
             for values in itertools.product(*(range(e) for e, _ in moving))}
    if len(lines) > MAX_LINES:
        return []
    return reads.prefetches(reads.index([0] * n) + ahead, sorted(lines), "lines")


def _next(path, at, buffer: str) -> list:
    """``mark_next``'s prefetches at the top of an iteration of ``at``: its share of the lines of
    ``buffer`` that the next iteration of the enclosing loop marked ``KEY_NEXT`` reads."""
    outer = next((i for i in range(len(path) - 1, -1, -1)
                  if str(path[i].annotations.get(KEY_NEXT, "")) == buffer), None)
    found = _reader(at.body, [])
    if outer is None or found is None:
        return []
    realize, inner = found
    between = [*path[outer + 1:], at]
    reads = _Reads(realize, buffer, between + inner)
    if not reads.ok:
        return []
    zeros = [0] * len(reads.loops)
    var = path[outer].loop_var
    step = reads.offset(zeros, bound=[(var, 1)], base_bound=[(var, 0)])
    corner = reads.offset([e - 1 for e in reads.extents])
    if step is None or corner is None or corner < 0:
        return []
    turns = math.prod(reads.extents[:len(between)])
    count = min(-(-(corner // reads.per_line + 1) // turns), MAX_LINES)
    turn = 0  # which iteration of the loops from below ``outer`` down to ``at`` this is
    for lp, extent in zip(between, reads.extents):
        turn = turn * extent + lp.loop_var
    first = reads.index(zeros) + step + turn * (count * reads.per_line)
    return reads.prefetches(first, list(range(count)), "next")


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
