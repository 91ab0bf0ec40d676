"""Target names users type (x86, aarch64, armv7, cuda, ...)
-> TVM 0.27 JSON targets and target keys.

A target key (``x86-avx2``, ``aarch64-neon``, ``cuda-sm_80``) says what a tuning record and an
artefact are valid for; the TVM target dict says how to generate code.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field, replace

from .errors import TargetError
from .hostinfo import cpu_flags, host_key, pool_threads, runs_here

# Names accepted on the command line, besides a raw TVM JSON dict.
TARGET_NAMES = ("x86", "x86-avx2", "x86-avx512", "aarch64", "armv7", "cuda")


@dataclass(frozen=True)
class TargetSpec:
    """Everything tvmconv needs to know about where code will run."""

    name: str  # what the user asked for
    key: str  # what records and artefacts are valid for
    family: str  # template family: "x86", "arm" or "cuda"
    tvm: dict = field(hash=False)  # TVM 0.27 target JSON
    lanes: int = 8  # fp32 lanes of one vector register
    cross_cc: str | None = None  # C compiler for export_library when not compiling for this host

    def tvm_target(self):
        import tvm

        if self.family == "cuda" and "host" not in self.tvm:  # kernel launches, the VM: here
            return tvm.target.Target(self.tvm, host={"kind": "llvm"})
        return tvm.target.Target(self.tvm)

    def export_kwargs(self) -> dict:
        """export_library arguments: the cross compiler, which must be installed."""
        import shutil

        if not self.cross_cc:
            return {}
        if shutil.which(self.cross_cc) is None:
            package = {"aarch64-linux-gnu-gcc": "gcc-aarch64-linux-gnu",
                       "arm-linux-gnueabihf-gcc": "gcc-arm-linux-gnueabihf"}.get(self.cross_cc, "")
            raise TargetError(f"{self.key} needs the cross compiler {self.cross_cc}, which is not "
                              f"installed (Debian: apt-get install {package})")
        return {"cc": self.cross_cc}

    @property
    def registers(self) -> int:
        """Vector registers a micro-kernel may keep accumulators in
        (AVX2/NEON-v7 16, AVX-512/A64 32)."""
        return 32 if self.lanes >= 16 or self.key.startswith("aarch64") else 16

    @property
    def runs_here(self) -> bool:
        return runs_here(self.key)


def _host_x86() -> tuple[str, bool]:
    """The host CPU name as LLVM knows it, and whether this CPU really has AVX-512F.

    LLVM names the CPU by its model; a hypervisor may still hide AVX-512, so the kernel's flags win.
    """
    import tvm
    from tvm.target import codegen

    cpu = str(codegen.llvm_get_system_cpu())
    model_has = "avx512f" in codegen.llvm_get_cpu_features(tvm.target.Target(_llvm(cpu)))
    flags = cpu_flags()
    has = "avx512f" in flags if flags else model_has
    if has != model_has:
        cpu = "skylake-avx512" if has else "haswell"
    return cpu, has


def resolve(target: str | dict | TargetSpec) -> TargetSpec:
    """Turn a target name, a JSON string/dict, or a spec into a TargetSpec; unknown names raise."""
    if isinstance(target, TargetSpec):
        return target
    if isinstance(target, str) and target.strip().startswith("{"):
        try:
            target = json.loads(target)
        except json.JSONDecodeError as e:
            raise TargetError(f"target is not valid JSON: {e}") from None
    if isinstance(target, dict):
        return _from_dict(target)
    if not isinstance(target, str):
        raise TargetError(f"target must be a name or a dict, not {type(target).__name__}")
    name = target.strip().lower()
    if name.startswith("llvm") or " -" in name:
        raise TargetError(
            f"target {target!r}: TVM 0.27 takes JSON targets only; use one of "
            f"{', '.join(TARGET_NAMES)} or a JSON dict such as "
            "'{\"kind\": \"llvm\", \"mcpu\": \"znver3\"}'"
        )
    if name in ("x86", "x86-avx2", "x86-avx512", "host", "cpu"):
        cpu, avx512 = _host_x86()
        if name == "x86-avx512" or (name != "x86-avx2" and avx512):
            mcpu = cpu if avx512 else "skylake-avx512"
            return TargetSpec(name, "x86-avx512", "x86", _llvm(mcpu), lanes=16)
        mcpu = cpu if not avx512 and cpu not in ("generic", "") else "haswell"
        return TargetSpec(name, "x86-avx2", "x86", _llvm(mcpu), lanes=8)
    if name in ("aarch64", "arm64", "arm"):
        tvm_t = {"kind": "llvm", "mtriple": "aarch64-linux-gnu", "mattr": ["+neon"],
                 "num-cores": 4}
        return TargetSpec(name, "aarch64-neon", "arm", tvm_t, lanes=4,
                          cross_cc="aarch64-linux-gnu-gcc")
    if name in ("armv7", "armv7a", "arm32"):
        # hard-float calls, as the gnueabihf toolchain links them (without it: "uses VFP
        # register arguments, lib0.o does not")
        tvm_t = {"kind": "llvm", "mtriple": "armv7a-linux-gnueabihf", "mfloat-abi": "hard",
                 "mattr": ["+neon", "+vfp4"], "num-cores": 4}
        return TargetSpec(name, "armv7-neon", "arm", tvm_t, lanes=4,
                          cross_cc="arm-linux-gnueabihf-gcc")
    if name == "cuda" or name.startswith("cuda-"):
        arch = _cuda_arch(name.split("-", 1)[1] if "-" in name else "sm_80")
        return TargetSpec(name, f"cuda-{arch}", "cuda", {"kind": "cuda", "arch": arch}, lanes=4)
    raise TargetError(f"unknown target {target!r}; known targets: {', '.join(TARGET_NAMES)} "
                      "(or a TVM JSON target dict)")


def _cuda_arch(arch) -> str:
    """A CUDA architecture as nvcc names it (sm_80, sm_90a); anything else is refused here rather
    than by nvcc after the whole compile."""
    if not isinstance(arch, str) or not re.fullmatch(r"sm_[1-9][0-9]{1,2}[af]?", arch):
        raise TargetError(f"CUDA architecture {arch!r}: expected sm_XY as in cuda-sm_86 "
                          "(X.Y is the GPU's compute capability)")
    return arch


def host_target() -> TargetSpec:
    """Plain LLVM code for this machine's CPU: where reference outputs are computed."""
    key = host_key()
    return TargetSpec("host", key, "x86" if key.startswith("x86") else "arm", {"kind": "llvm"},
                      lanes=1)


def _llvm(mcpu: str) -> dict:
    return {"kind": "llvm", "mcpu": mcpu, "num-cores": pool_threads()}


def _from_dict(d: dict) -> TargetSpec:
    kind = d.get("kind")
    if kind == "cuda":  # the key's architecture is the one code is generated for
        arch = _cuda_arch(d.get("arch", "sm_80"))
        return _checked(TargetSpec(json.dumps(d), f"cuda-{arch}", "cuda", {**d, "arch": arch},
                                   lanes=4))
    if kind != "llvm":
        raise TargetError(f"target kind {kind!r} is not supported (llvm or cuda)")
    triple = str(d.get("mtriple", ""))
    if triple.startswith("aarch64"):
        return _checked(TargetSpec(json.dumps(d), "aarch64-neon", "arm", dict(d), lanes=4,
                                   cross_cc="aarch64-linux-gnu-gcc"))
    if triple.startswith("arm"):
        return _checked(TargetSpec(json.dumps(d), "armv7-neon", "arm", dict(d), lanes=4,
                                   cross_cc="arm-linux-gnueabihf-gcc"))
    from tvm.target import codegen

    x86 = _checked(TargetSpec(json.dumps(d), "x86-avx2", "x86",
                              {"num-cores": pool_threads(), **d}))
    if "avx512f" in codegen.llvm_get_cpu_features(x86.tvm_target()):
        return replace(x86, key="x86-avx512", lanes=16)
    return x86


def _checked(spec: TargetSpec) -> TargetSpec:
    """A JSON target as TVM and LLVM take it; else a TargetError naming what they refuse (an
    unknown option, a value of the wrong type, a CPU LLVM does not know), before any work."""
    from tvm.target import codegen

    mcpu, triple = spec.tvm.get("mcpu"), spec.tvm.get("mtriple")
    # asked first: TVM would log LLVM's complaint about it while making the target
    if spec.tvm["kind"] == "llvm" and isinstance(mcpu, str) and not codegen.llvm_is_valid_cpu(
            mcpu, str(triple or codegen.llvm_get_system_triple())):
        raise TargetError(f"target {spec.name}: LLVM knows no CPU {mcpu!r} for "
                          f"{triple or 'this machine'} (names as in clang -mcpu=..., such as "
                          "znver3, skylake-avx512 or cortex-a72)")
    try:
        spec.tvm_target()
    except Exception as e:  # TVM's first sentence names the option
        reason = str(e).strip().splitlines()[0].split(" Target creation from")[0]
        raise TargetError(f"target {spec.name}: {reason}") from None
    return spec
