"""Direct NCHW[x]c convolution on CUDA: a thread block computes a tile of output rows x columns x
channel blocks; each thread keeps ``tile_y x tile_x x tile_oc`` output blocks in registers while
the reduction walks ``rc`` input-channel blocks at a time through shared memory (the padded
input tile and the weights, copied by all threads together, so each global value is read once
per block instead of once per thread). The epilogue (bias, activation, residual) is applied to
the registers on their way out.
"""

from __future__ import annotations

from ...config import Config, Space, divisors
from ..x86.common import round_up
from .common import MAX_THREADS, SHARED_BYTES, WARP, cooperative_fetch, unroll

NAME = "cuda_conv2d_direct"
KINDS = ("conv2d",)

# Registers a thread may spend on accumulators (of 255); more spills to local memory.
MAX_ACCUMULATORS = 64
# Threads in flight that keep a large GPU's SMs busy (132 SMs x 128), and blocks to give each of
# its SMs one (a layer too small for both runs narrower blocks rather than idle SMs).
FILL_THREADS = 16384
FILL_BLOCKS = 132


def threads(cfg: Config) -> int:
    return cfg["thr_x"] * cfg["thr_y"] * cfg["thr_oc"]


def accumulators(cfg: Config, ob: int) -> int:
    return cfg["tile_x"] * cfg["tile_y"] * cfg["tile_oc"] * ob


def _channel_tile(wl, cfg: Config) -> tuple[int, int]:
    """(output-channel blocks a thread block computes, output-channel blocks per group)."""
    return cfg["thr_oc"] * cfg["tile_oc"], wl.params["out"][1] // wl.params["groups"]


def shared_floats(wl, cfg: Config) -> int:
    """Floats a block stages per step, as TVM sizes them: its input tile (every group its channel
    tile spans, in whole blocks of the input's layout) and its weights."""
    p = wl.params
    _, icgb, kh, kw, ib, ob = p["kernel"]
    (sh, sw), (dh, dw) = p["strides"], p["dilations"]
    rows = (cfg["thr_y"] * cfg["tile_y"] - 1) * sh + (kh - 1) * dh + 1
    cols = (cfg["thr_x"] * cfg["tile_x"] - 1) * sw + (kw - 1) * dw + 1
    oc_blocks, per_group = _channel_tile(wl, cfg)
    spanned = -(-oc_blocks // per_group) if p["groups"] > 1 else 1
    channels = round_up(((spanned - 1) * icgb + cfg["rc"]) * ib, p["data"][4])  # whole blocks
    return channels * rows * cols + oc_blocks * cfg["rc"] * kh * kw * ib * ob


def steps(wl) -> list[int]:
    """Input-channel blocks a reduction step may stage: those whose channels cover whole blocks
    of the input's layout or lie within one, else all at once. Across a block boundary TVM could
    not bound the staged region and staged every block and one more (65 channels in blocks of
    4, 13 a step: 50 KB of shared memory, not 12)."""
    icb, ib = wl.params["kernel"][1], wl.params["kernel"][4]
    block = wl.params["data"][4]
    return [rc for rc in divisors(icb, 16)
            if (rc * ib) % block == 0 or block % (rc * ib) == 0] or [icb]


def whole_groups(wl, cfg: Config) -> bool:
    """Whether a block's output channels are whole groups, or one channel block. TVM bounds the
    input channels a block stages by its output channels' group, ``oc // per_group``; it cannot
    prove a tile of several blocks inside one group stays there, and staged up to three groups'
    channels past what ``shared_floats`` counts (2 blocks of 4 a group: 1050 floats, not 350)."""
    oc_blocks, per_group = _channel_tile(wl, cfg)
    return wl.params["groups"] == 1 or oc_blocks == 1 or oc_blocks % per_group == 0


def applicable(wl, target) -> bool:
    """Whether the smallest tile's staging fits shared memory (a 29 x 29 kernel's weights do not:
    such a conv runs as ``stages``' thread per output)."""
    one = Config.of({"tile_x": 1, "thr_x": 1, "tile_y": 1, "thr_y": 1, "tile_oc": 1, "thr_oc": 1,
                     "rc": steps(wl)[0], "unroll": 0})
    return 4 * shared_floats(wl, one) <= SHARED_BYTES


def space(wl, target) -> Space:
    _, ocb, oh, ow, ob = wl.params["out"]
    knobs = {
        "tile_x": divisors(ow, 4), "thr_x": divisors(ow, 64),
        "tile_y": divisors(oh, 4), "thr_y": divisors(oh, 32),
        "tile_oc": divisors(ocb, 4), "thr_oc": divisors(ocb, 64),
        "rc": steps(wl),
        "unroll": [0, 64, 512],
    }

    def valid(c):
        return (ow % (c["tile_x"] * c["thr_x"]) == 0 and oh % (c["tile_y"] * c["thr_y"]) == 0
                and ocb % (c["tile_oc"] * c["thr_oc"]) == 0 and threads(c) <= MAX_THREADS
                and whole_groups(wl, c)
                and accumulators(c, ob) <= MAX_ACCUMULATORS
                and 4 * shared_floats(wl, c) <= SHARED_BYTES)

    return Space(knobs, valid)


def default(wl, target) -> Config:
    """At least a warp per block and whole warps, then enough threads in all to fill a large GPU,
    and a block per SM, then about 128 threads per block with 16-32 accumulators each (a tile
    that reuses each staged input value across its channels and each weight across its pixels,
    without spilling), then the deepest shared-memory step that leaves room for three blocks
    per SM. Unmeasured on a GPU so far: a starting point for ``tune``."""
    _, ocb, oh, ow, ob = wl.params["out"]
    output_blocks = ocb * oh * ow * wl.params["out"][0]

    def rank(c):
        total = output_blocks // (c["tile_x"] * c["tile_y"] * c["tile_oc"])
        grid = total // threads(c)
        return (min(threads(c), WARP), threads(c) % WARP == 0, min(total, FILL_THREADS),
                min(grid, FILL_BLOCKS), -abs(threads(c) - 128), -abs(accumulators(c, ob) - 24),
                4 * shared_floats(wl, c) <= SHARED_BYTES // 3, c["tile_oc"], c["rc"],
                c["unroll"] == 64)

    return max(space(wl, target), key=rank)


def apply(sch, wl, cfg: Config, target) -> None:
    ep = sch.get_sblock("epilogue")
    conv = sch.get_sblock("conv2d_NCHWc")
    n, oc, y, x, oi = sch.get_loops(ep)
    oc_b, oc_t, oc_i = sch.split(oc, [None, cfg["thr_oc"], cfg["tile_oc"]])
    y_b, y_t, y_i = sch.split(y, [None, cfg["thr_y"], cfg["tile_y"]])
    x_b, x_t, x_i = sch.split(x, [None, cfg["thr_x"], cfg["tile_x"]])
    sch.reorder(n, oc_b, y_b, x_b, oc_t, y_t, x_t, oc_i, y_i, x_i, oi)
    sch.bind(sch.fuse(n, oc_b, y_b, x_b), "blockIdx.x")
    tx = sch.fuse(oc_t, y_t, x_t)
    sch.bind(tx, "threadIdx.x")
    for loop in (oc_i, y_i, x_i, oi):
        sch.unroll(loop)
    sch.compute_at(conv, tx, preserve_unit_loops=True)
    sch.set_scope(conv, 0, "local")
    *_, c_n, c_oc, c_y, c_x, c_oi, rco, rkh, rkw, rci = sch.get_loops(conv)
    ro, ri = sch.split(rco, [None, cfg["rc"]])
    sch.reorder(ro, ri, rkh, rkw, rci, c_n, c_oc, c_y, c_x, c_oi)
    for loop in (c_oc, c_y, c_x, c_oi):
        sch.unroll(loop)
    unroll(sch, ri, cfg["unroll"])
    depth = len(sch.get_loops(conv)) - 9  # the loops down to ``ro``
    reads = [r.source.name for r in sch.get(conv).reads]
    staged = [sch.cache_read(conv, reads.index("kernel"), "shared")]
    if "pad" in reads:  # the padding is computed straight into shared memory
        pad = sch.get_sblock("pad")
        sch.set_scope(pad, 0, "shared")
        staged.append(pad)
    else:
        staged.append(sch.cache_read(conv, reads.index("data"), "shared"))
    for block in staged:
        sch.compute_at(block, ro)
        cooperative_fetch(sch, block, depth, threads(cfg))
    sch.decompose_reduction(conv, ro)
