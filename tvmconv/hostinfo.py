"""What this machine is, read without TVM's compiler
(the runtime must work with the runtime alone)."""

from __future__ import annotations

import functools
import os
import platform
import sys


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


@functools.cache  # a failed load is not retried at every check
def cuda_runtime() -> bool:
    """Whether TVM's CUDA device API is loaded, loading it if need be. It lives in
    libtvm_runtime_cuda, which ``import tvm`` loads with TVM's full library but not with the
    runtime alone (``TVM_USE_RUNTIME_LIB=1``, how ``scripts/gpu_check.py`` runs on a GPU
    machine): there an H200 answered "Device API cuda is not enabled". It needs the driver's
    libcuda."""
    import tvm
    from tvm.base import _LOADED_LIBS

    if "tvm_runtime_cuda" not in _LOADED_LIBS:
        from pathlib import Path

        from tvm_ffi.libinfo import load_lib_ctypes

        here = Path(_LOADED_LIBS["tvm_runtime"]._name).resolve().parent
        try:  # as tvm.backend.cuda does on a full import
            _LOADED_LIBS["tvm_runtime_cuda"] = load_lib_ctypes(
                package="tvm", target_name="tvm_runtime_cuda", extra_lib_paths=[here],
                mode="RTLD_LOCAL")
        except (OSError, RuntimeError):  # no driver, or a TVM built without CUDA
            pass
    return tvm.get_global_func("device_api.cuda", allow_missing=True) is not None


def cuda_arch() -> str | None:
    """This machine's first CUDA GPU as ``sm_XY``; None without one (or without TVM's CUDA
    runtime, which loads only where the driver is installed)."""
    try:
        import tvm

        if not cuda_runtime():
            return None
        dev = tvm.cuda(0)
        return "sm_" + dev.compute_version.replace(".", "") if dev.exist else None
    except Exception:  # no driver, no CUDA runtime in this TVM build
        return None


def runs_here(target_key: str) -> bool:
    """Whether code compiled for ``target_key`` runs on this machine (AVX2 code runs on AVX-512;
    CUDA code for sm_XY on any GPU of that compute capability or newer)."""
    if target_key.startswith("cuda-sm_"):
        here = cuda_arch()
        if here is None:
            return False
        need = target_key[len("cuda-sm_"):]
        if not need.isdigit():  # sm_90a: that architecture's own features, that GPU only
            return need.rstrip("af") == here[3:]
        return int(here[3:]) >= int(need)
    here = host_key()
    return target_key == here or (target_key, here) == ("x86-avx2", "x86-avx512")


def describe_here(target_key: str) -> str:
    """This machine as a message about code for ``target_key`` needs it."""
    if target_key.startswith("cuda-"):
        arch = cuda_arch()
        return f"this machine's GPU is {arch}" if arch else "this machine has no CUDA GPU"
    return f"this machine is {host_key()}"


def device(target_key: str):
    """The TVM device code for ``target_key`` runs on; for a GPU, with the compiler TVM's runtime
    needs to load CUDA kernels (see ``tvmconv.nvcc``)."""
    import tvm

    if not target_key.startswith("cuda-"):
        return tvm.cpu()
    from .nvcc import enable_runtime_compiler

    enable_runtime_compiler()
    return tvm.cuda(0)


def usable_cores() -> int:
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def pool_threads() -> int:
    """The threads of TVM's pool: TVM_NUM_THREADS when it is a positive integer, else every
    usable core."""
    env = os.environ.get("TVM_NUM_THREADS", "").strip()
    return int(env) if env.isdigit() and int(env) > 0 else usable_cores()


def use_all_cores() -> None:
    """Give TVM's thread pool every usable core, its threads free to move between them, unless
    TVM_NUM_THREADS / TVM_BIND_THREADS say otherwise. Must run before the pool starts (first
    kernel).

    TVM's default is half the logical CPUs (it assumes SMT siblings), which on a 2-vCPU machine
    without SMT halves the speed of every kernel. It also pins each worker to one core, and each
    kernel gives each thread a fixed share: with another busy process on one of the two cores,
    the pinned worker ran only every few milliseconds, and every kernel waited for it (ResNet-18
    took 148 ms, onnxruntime 31). Unpinned, the scheduler moves it: 11 ms. On an idle machine the
    two ran alike. A TVM_NUM_THREADS that is not a positive integer counts as unset."""
    os.environ["TVM_NUM_THREADS"] = str(pool_threads())
    os.environ.setdefault("TVM_BIND_THREADS", "0")


def keep_torch_out() -> None:
    """Keep PyTorch out of a process of tvmconv's own (a command, a tuning worker), none of which
    uses it: tvm_ffi imports it whenever it is installed, which tripled TVM's start-up (4.8 s
    against 1.5 on a Zen 4), paid by every command, even one that only reports a missing file,
    and by every worker a tuning run starts. ``import torch`` then raises the ImportError that
    tvm_ffi allows for."""
    sys.modules.setdefault("torch", None)
