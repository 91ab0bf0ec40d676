"""What this machine is, read without TVM's compiler
(the runtime must work with the runtime alone)."""

from __future__ import annotations

import os
import platform


def cpu_flags() -> set[str]:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith(("flags", "Features")):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def host_key() -> str:
    """The target key of code that runs natively here (see tvmconv.target)."""
    machine = platform.machine().lower()
    if machine in ("aarch64", "arm64"):
        return "aarch64-neon"
    if machine.startswith("arm"):
        return "armv7-neon"
    return "x86-avx512" if "avx512f" in cpu_flags() else "x86-avx2"


def runs_here(target_key: str) -> bool:
    """Whether code compiled for ``target_key`` runs on this machine (AVX2 code runs on AVX-512)."""
    here = host_key()
    return target_key == here or (target_key, here) == ("x86-avx2", "x86-avx512")


def usable_cores() -> int:
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def use_all_cores() -> None:
    """Give TVM's thread pool every usable core unless TVM_NUM_THREADS says otherwise.

    TVM's default is half the logical CPUs (it assumes SMT siblings), which on a 2-vCPU machine
    without SMT halves the speed of every kernel. Must run before the pool starts (first kernel).
    """
    os.environ.setdefault("TVM_NUM_THREADS", str(usable_cores()))
