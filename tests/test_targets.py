"""Targets: names and JSON dicts resolve, old strings are refused, ARM code is generated here."""

from __future__ import annotations

import shutil

import pytest

import tvmconv
from tvmconv.demo import bundled
from tvmconv.errors import TargetError
from tvmconv.target import resolve


@pytest.mark.parametrize("name, key", [("x86-avx2", "x86-avx2"), ("x86-avx512", "x86-avx512"),
                                       ("aarch64", "aarch64-neon"), ("armv7", "armv7-neon"),
                                       ("cuda", "cuda-sm_80")])
def test_names(name, key):
    assert resolve(name).key == key


def test_json_targets():
    assert resolve('{"kind": "llvm", "mcpu": "znver3"}').key == "x86-avx2"
    assert resolve({"kind": "llvm", "mcpu": "skylake-avx512"}).key == "x86-avx512"
    assert resolve({"kind": "llvm", "mtriple": "aarch64-linux-gnu"}).family == "arm"
    with pytest.raises(TargetError, match="JSON"):
        resolve("llvm -mcpu=znver3")
    with pytest.raises(TargetError, match="unknown target"):
        resolve("tpu")
    assert resolve({"kind": "cuda", "arch": "sm_90a"}).key == "cuda-sm_90a"
    assert resolve({"kind": "cuda"}).tvm == {"kind": "cuda", "arch": "sm_80"}  # as its key says
    assert resolve("cuda-sm_86").tvm == {"kind": "cuda", "arch": "sm_86"}
    for bad in ("cuda-sm86", "cuda-xx", {"kind": "cuda", "arch": 80}):
        with pytest.raises(TargetError, match="CUDA architecture"):
            resolve(bad)


@pytest.mark.parametrize("target, fma, cc, machine", [
    ("aarch64", "fmla", "aarch64-linux-gnu-gcc", 183),  # ELF e_machine 183: AArch64
    ("armv7", "vfma", "arm-linux-gnueabihf-gcc", 40),  # 40: ARM (hard-float calls, as linked)
])
def test_arm_code_is_neon(tmp_path, target, fma, cc, machine):
    """Cross-compiling for a board: the kernels are NEON code, which this x86 host refuses to
    run, and exporting needs the cross linker (a clear error when it is missing)."""
    mod = tvmconv.compile(bundled("digits_cnn.onnx"), target=target)
    lib = mod.executable.mod
    asm = "".join(m.inspect_source("asm") for m in lib.imports if m.kind == "llvm")
    assert fma in asm and "vfmadd" not in asm
    with pytest.raises(tvmconv.TvmconvError, match=target):
        mod.model()
    if shutil.which(cc):
        path = mod.export(tmp_path / "digits-arm.so")
        assert path.read_bytes()[18] == machine
    else:
        with pytest.raises(TargetError, match=cc.rsplit("-", 1)[0]):  # in the package name
            mod.export(tmp_path / "digits-arm.so")


@pytest.mark.parametrize("gpu, runs", [(None, [False, False, False]),
                                       ("sm_80", [True, False, False]),
                                       ("sm_90", [True, True, True])])
def test_which_gpu_code_runs_here(monkeypatch, gpu, runs):
    """Code for sm_80 runs on any newer GPU; sm_90a (architecture-specific) on sm_90 alone."""
    from tvmconv import hostinfo

    monkeypatch.setattr(hostinfo, "cuda_arch", lambda: gpu)
    keys = ["cuda-sm_80", "cuda-sm_90a", "cuda-sm_86"]
    assert [hostinfo.runs_here(k) for k in keys] == runs
