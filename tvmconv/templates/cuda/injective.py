"""Elementwise and data-movement kernels on CUDA: one thread per output element, consecutive
threads on consecutive outputs so every warp's stores coalesce."""

from __future__ import annotations

from ...config import Config, Space
from ..x86.injective import KINDS  # noqa: F401  (the same workload kinds as on CPUs)
from .common import bind_flat, inline_producers, powers_of_two, stages

NAME = "cuda_injective"


def space(wl, target) -> Space:
    return Space({"threads": powers_of_two(64, 1024)})


def default(wl, target) -> Config:
    """256 threads: 8 warps per block keep an SM's schedulers busy at any occupancy."""
    return Config.of({"threads": 256})


def apply(sch, wl, cfg: Config, target) -> None:
    inline_producers(sch)
    block = stages(sch)[-1]
    loops = sch.get_loops(block) or [sch.add_unit_loop(block)]  # a scalar: one thread
    bind_flat(sch, sch.fuse(*loops) if len(loops) > 1 else loops[0], cfg["threads"])
