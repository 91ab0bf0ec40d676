"""Targets: names and JSON dicts resolve, old strings are refused, ARM code is generated here."""

from __future__ import annotations

import shutil
from dataclasses import replace

import pytest
from conftest import check_vs_ort, make_model, weights, workloads
from onnx import helper

import tvmconv
from tvmconv.build import choose
from tvmconv.demo import bundled
from tvmconv.errors import TargetError
from tvmconv.target import TargetSpec, resolve


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


def arm_layers():
    """Odd-sized layers that take each ARM template: a 3x3 conv from 3 channels, Winograd (3x3,
    and 1x7 along rows), 1x1 over 437 pixels, depthwise, a strided 3x3, pools and a classifier."""
    conv = lambda i, o, w, **a: helper.make_node("Conv", [i, w], [o], **a)  # noqa: E731
    nodes = [conv("x", "c1", "w1", pads=[1, 1, 1, 1]), helper.make_node("Relu", ["c1"], ["r1"]),
             conv("r1", "c2", "w2", pads=[1, 1, 1, 1]), helper.make_node("Relu", ["c2"], ["r2"]),
             conv("r2", "c7", "w7", pads=[0, 3, 0, 3]), conv("c7", "c3", "w3"),
             conv("c3", "c4", "w4", pads=[1, 1, 1, 1], group=36),
             helper.make_node("Relu", ["c4"], ["r4"]), conv("r4", "c5", "w5"),
             conv("c5", "c6", "w6", pads=[1, 1, 1, 1], strides=[2, 2]),
             helper.make_node("MaxPool", ["c6"], ["p"], kernel_shape=[2, 2], strides=[2, 2]),
             helper.make_node("GlobalAveragePool", ["p"], ["g"]),
             helper.make_node("Flatten", ["g"], ["f"]),
             helper.make_node("Gemm", ["f", "wd", "bd"], ["y"], transB=1)]
    shapes = {"w1": (20, 3, 3, 3), "w2": (24, 20, 3, 3), "w7": (24, 24, 1, 7),
              "w3": (36, 24, 1, 1),
              "w4": (36, 1, 3, 3), "w5": (20, 36, 1, 1), "w6": (28, 20, 3, 3), "wd": (10, 28),
              "bd": (10,)}
    consts = {n: weights(s, seed, 0.3) for seed, (n, s) in enumerate(shapes.items())}
    return make_model(nodes, {"x": (1, 3, 23, 19)}, ["y"], consts)


@pytest.mark.parametrize("board", ["aarch64", "armv7"])
def test_arm_schedules_compute_right(monkeypatch, board):
    """ARM's templates and their NEON-sized defaults (4 lanes; 32 or 16 registers), built for this
    host's plain x86-64 (4-lane SSE) so that they run here against onnxruntime."""
    model = arm_layers()
    spec = replace(resolve(board), tvm={"kind": "llvm", "mcpu": "x86-64"}, cross_cc=None)
    picks = {wl.describe(): choose(wl, spec, {})[0].NAME for wl in workloads(model, board)}
    chosen = set(picks.values())
    assert {"conv2d_winograd", "conv2d_pointwise", "conv2d_direct"} <= chosen
    assert [name for layer, name in picks.items() if "k1x7" in layer] == ["conv2d_winograd"]
    assert chosen & {"depthwise_direct", "pointwise_depthwise"}
    monkeypatch.setattr(TargetSpec, "runs_here", property(lambda self: True))
    check_vs_ort(model, target=spec)


@pytest.mark.parametrize("gpu, runs", [(None, [False, False, False]),
                                       ("sm_80", [True, False, False]),
                                       ("sm_90", [True, True, True])])
def test_which_gpu_code_runs_here(monkeypatch, gpu, runs):
    """Code for sm_80 runs on any newer GPU; sm_90a (architecture-specific) on sm_90 alone."""
    from tvmconv import hostinfo

    monkeypatch.setattr(hostinfo, "cuda_arch", lambda: gpu)
    keys = ["cuda-sm_80", "cuda-sm_90a", "cuda-sm_86"]
    assert [hostinfo.runs_here(k) for k in keys] == runs
