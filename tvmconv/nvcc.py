"""CUDA kernels in an artefact: TVM 0.27 stores them as CUDA C source, which its runtime compiles
for the GPU when the artefact is loaded. ``compile`` checks here, with nvcc, that the source
compiles for the target's architecture, so a template bug fails at compile time and not on the
board; ``load`` registers the compiler the runtime asks for (nvcc where installed, else NVRTC).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import warnings

from .errors import TargetError, TvmconvError


def sources(executable) -> list[str]:
    """The CUDA source of every CUDA module a compiled executable imports."""
    found, todo = [], [executable.mod]
    while todo:
        mod = todo.pop()
        if mod.kind == "cuda":
            found.append(mod.inspect_source(""))
        todo.extend(mod.imports)
    return found


def check(executable, arch: str) -> None:
    """Compile the executable's CUDA source with nvcc for ``arch``; the first compiler error
    when it fails. Without nvcc, a warning: the GPU host's compiler will be the first to see it."""
    nvcc = shutil.which("nvcc")
    if nvcc is None:
        warnings.warn("nvcc not found: the CUDA kernels were not compiled here (install the CUDA "
                      "toolkit to check them at compile time)", stacklevel=3)
        return
    with tempfile.TemporaryDirectory(prefix="tvmconv-cuda-") as tmp:
        for i, code in enumerate(sources(executable)):
            src = os.path.join(tmp, f"kernels{i}.cu")
            with open(src, "w") as f:
                f.write(code)
            done = subprocess.run([nvcc, "--fatbin", "-O3", f"-arch={arch}", "-o",
                                   os.path.join(tmp, f"kernels{i}.fatbin"), src],
                                  capture_output=True, text=True)
            if done.returncode:
                lines = [ln.strip() for ln in done.stderr.splitlines() if ln.strip()] or ["?"]
                first = next((ln for ln in lines if "error" in ln or "fatal" in ln), lines[0])
                raise TvmconvError(f"nvcc could not compile the CUDA kernels for {arch}: {first}")


def enable_runtime_compiler() -> None:
    """Let TVM's runtime compile an artefact's CUDA source when it loads: nvcc if installed,
    else NVRTC (the ``cuda-bindings`` package)."""
    if shutil.which("nvcc"):
        os.environ.setdefault("TVM_CUDA_COMPILE_MODE", "nvcc")
    else:
        try:
            import cuda.bindings  # noqa: F401  (NVRTC's Python bindings)
        except ImportError:
            raise TargetError("loading CUDA kernels needs nvcc (the CUDA toolkit) or NVRTC "
                              "(pip install cuda-bindings) on this machine") from None
    import tvm.support.nvcc  # noqa: F401  (registers tvm_callback_cuda_compile)
