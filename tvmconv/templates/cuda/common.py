"""Thread-binding helpers shared by the CUDA templates.

Limits are the ones every CUDA GPU since sm_50 honours: 1024 threads and 48 KiB of static shared
memory per block. The conv template tiles by divisors, so its inner loops test no bounds; a flat
kernel tests its thread's index once.
"""

from __future__ import annotations

from ..x86.common import extent

MAX_THREADS = 1024
SHARED_BYTES = 48 * 1024
WARP = 32
# pragma_auto_unroll_max_step: TVM unrolls a thread's loops up to this many steps (the accumulator
# tile's loops must unroll so it lives in registers, not local memory).
UNROLL_STEPS = (0, 64, 512)


def stages(sch) -> list:
    """The kernel's blocks in program order (producers first)."""
    return list(sch.get_child_blocks(sch.get_sblock("root")))


def is_spatial(sch, block) -> bool:
    return all(iv.iter_type == 0 for iv in sch.get(block).iter_vars)


def out_shape(sch, block) -> tuple[int, ...]:
    return tuple(int(d) for d in sch.get(block).writes[0].source.shape)


def inline_producers(sch) -> None:
    """Fold every per-element stage other than the output (a conv's or pool's padding) into its
    readers: on a GPU a padded copy costs a kernel launch and a round trip to memory."""
    for block in stages(sch)[:-1]:
        if is_spatial(sch, block):
            sch.compute_inline(block)


def split_spatial(sch, block):
    """(the block's data-parallel loops fused into one, its reduction loops); a unit loop when
    it has none. create_prim_func lays out data-parallel loops first."""
    loops = sch.get_loops(block)
    n = sum(iv.iter_type == 0 for iv in sch.get(block).iter_vars)
    spatial, reduction = loops[:n], loops[n:]
    if not spatial:
        return sch.add_unit_loop(block), reduction
    return (sch.fuse(*spatial) if len(spatial) > 1 else spatial[0]), reduction


def bind_flat(sch, loop, threads: int):
    """blockIdx.x over ``threads``-sized chunks of a loop, threadIdx.x within; a loop shorter
    than ``threads`` runs as one block of exactly its length."""
    threads = min(threads, extent(sch, loop))
    bx, tx = sch.split(loop, [None, threads])
    sch.bind(bx, "blockIdx.x")
    sch.bind(tx, "threadIdx.x")
    return bx, tx


def cooperative_fetch(sch, block, anchor_depth: int, threads: int) -> None:
    """All threads of a block copy a shared-memory tile together: the copy's loops (those below
    the first ``anchor_depth`` loops, where it was computed) fused and dealt out round-robin, so
    consecutive threads touch consecutive addresses."""
    loops = sch.get_loops(block)[anchor_depth:]
    if not loops:  # a one-element tile: compute_at left it no loop of its own
        loops = [sch.add_unit_loop(block)]
    fused = sch.fuse(*loops) if len(loops) > 1 else loops[0]
    _, tx = sch.split(fused, [None, threads])
    sch.bind(tx, "threadIdx.x")


def unroll(sch, loop, steps: int) -> None:
    if steps:
        sch.annotate(loop, "pragma_auto_unroll_max_step", steps)
        sch.annotate(loop, "pragma_unroll_explicit", 1)


def powers_of_two(lo: int, hi: int) -> list[int]:
    out, v = [], lo
    while v <= hi:
        out.append(v)
        v *= 2
    return out

