"""CUDA: the templates' schedules compute what the layers define, and the kernels compile with nvcc
within a GPU's limits.

No GPU is needed. A CUDA schedule differs from a CPU one only in which loops run on threads: with
every thread-bound loop made serial (and shared/local buffers plain), the same scheduled kernel
runs on this CPU, so each template's index arithmetic, tiling, shared-memory staging and
cross-thread reductions are checked against onnxruntime (whole networks, through the CUDA
layout plan) and against the unscheduled layer (random configs of every template). Races and
barriers are TVM's lowering's to get right; where a GPU is present, the artefact test runs the
real kernels too.
"""

from __future__ import annotations

import ctypes
import os
import random
import re
import shutil
import subprocess
import sys

import numpy as np
import onnx
import pytest
import zoo
from conftest import (
    assert_close,
    image_to_image,
    make_model,
    rng_inputs,
    run_ort,
    scalar_after_reduce,
    single,
    weights,
)
from onnx import helper

import tvmconv
from tvmconv import kernels, nvcc, templates
from tvmconv.demo import bundled
from tvmconv.errors import TargetError
from tvmconv.hostinfo import runs_here
from tvmconv.target import resolve

CUDA = resolve("cuda")
needs_nvcc = pytest.mark.skipif(shutil.which("nvcc") is None, reason="nvcc (CUDA toolkit) absent")


def serial(func):
    """``func`` with its thread-bound loops serial and its shared/local buffers global: the CUDA
    schedule as a CPU kernel (a TVMScript round trip; TVM 0.27 has no Python IR mutator)."""
    import tvm

    text = func.script().replace("T.thread_binding(", "T.serial(")
    text = re.sub(r', thread="[^"]+"', "", text)
    text = re.sub(r', scope="(local|shared)"', "", text)
    # the printer names a parameter's data pointer ``p.source.data`` where its buffer views a
    # (1,) parameter as another shape; the parser knows it as ``p.data``
    text = text.replace(".source.data", ".data")
    return tvm.script.from_source(text)


def cpu_standin():
    """The CPU target the serial kernels compile for. LLVM's loop vectorizer miscompiles a
    serial 256-thread loop reading in1[base + i % 4] (it loads base..base+7), so it is off: the
    CPU must not auto-vectorize what a GPU runs as threads."""
    import tvm

    return tvm.target.Target({"kind": "llvm", "cl-opt": ["-vectorize-loops=false"]})


def run_cuda_plan_on_cpu(model, feeds: dict) -> list[np.ndarray]:
    """The network as compiled for CUDA (layout plan, packed weights, CUDA schedules), with every
    kernel made serial and run on this CPU."""
    import tvm
    from tvm.runtime.vm import VirtualMachine

    from tvmconv.build import lower, tuned_records
    from tvmconv.frontend import from_onnx
    from tvmconv.passes import optimize

    graph = from_onnx(model)
    optimize(graph, CUDA)
    real = kernels.prim_func
    kernels.prim_func = lambda *a, **k: serial(real(*a, **k))
    try:
        mod = lower(graph, CUDA, tuned_records(CUDA.key, []))
    finally:
        kernels.prim_func = real
    vm = VirtualMachine(tvm.compile(mod, target=cpu_standin()), tvm.cpu())
    outs = vm["main"](*[tvm.runtime.tensor(feeds[n]) for n in graph.inputs])
    return [o.numpy() for o in outs]


def _check_network(model, seed: int = 0) -> None:
    model = onnx.load(str(model)) if not isinstance(model, onnx.ModelProto) else model
    feeds = rng_inputs(model, seed)
    for k, (got, ref) in enumerate(zip(run_cuda_plan_on_cpu(model, feeds), run_ort(model, feeds))):
        assert_close(got, ref, what=f"output {k}")


@pytest.mark.parametrize("name", ["lenet5", "squeezenet", "inception", "mobilenet_v3",
                                  "shufflenet_v2", "regnet", "m5"])
def test_cuda_schedules_compute_the_zoo(zoo_model, name):
    """Whole reference networks through the CUDA plan; inception has LRN, mobilenet_v3 squeeze-
    excite gates and hard-swish, shufflenet channel shuffles and splits, regnet grouped convs of
    16 channels (in place of ResNeXt's, which took 34 s against 15: the suite's time limit),
    m5 1-D convs on 8000 samples."""
    _check_network(zoo_model(name))


def _layers() -> dict:
    """One model per CUDA-scheduled layer kind, at shapes without convenient divisors."""
    conv_in = (1, 13, 11, 7)
    return {
        "conv_strided": single("Conv", conv_in, {"w": weights((19, 13, 3, 3), 1, 0.2)}, ["w"],
                               strides=[2, 1], pads=[1, 0, 1, 1]),
        "conv_dilated": single("Conv", conv_in, {"w": weights((8, 13, 3, 2), 2, 0.2)}, ["w"],
                               dilations=[2, 1]),
        "conv_large_kernel": single("Conv", (1, 8, 33, 31), {"w": weights((8, 8, 29, 29), 5, 0.02)},
                                    ["w"]),
        "conv_one_weight": single("Conv", (2, 1, 21, 36), {"w": weights((1, 1, 1, 1), 6)}, ["w"],
                                  pads=[1, 0, 0, 0]),  # a one-element weight tile
        "conv_grouped": single("Conv", (1, 24, 9, 9), {"w": weights((48, 8, 3, 3), 3, 0.2)},
                               ["w"], group=3, pads=[1, 1, 1, 1]),
        "conv_1d": single("Conv", (2, 6, 29), {"w": weights((9, 2, 3), 7)}, ["w"], group=3,
                          strides=[2], pads=[1, 1]),
        "depthwise": single("Conv", (1, 16, 9, 7), {"w": weights((32, 1, 5, 5), 4)}, ["w"],
                            group=16, strides=[2, 2], pads=[2, 2, 2, 2]),
        "max_pool": single("MaxPool", (1, 5, 11, 11), kernel_shape=[3, 3], strides=[2, 2],
                           ceil_mode=1),
        "avg_pool": single("AveragePool", (1, 5, 9, 9), kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
        "global_pool": single("GlobalAveragePool", (1, 7, 30, 30)),
        "lp_pool": single("LpPool", (1, 3, 8, 8), kernel_shape=[2, 2], p=3),
        "dense": single("Gemm", (2, 700), {"w": weights((700, 13)), "b": weights(13, 2)},
                        ["w", "b"]),
        "matmul": make_model([helper.make_node("MatMul", ["a", "b"], ["y"])],
                             {"a": (3, 5, 70), "b": (1, 70, 9)}, ["y"]),
        "softmax_last": single("Softmax", (3, 1000)),
        "softmax_channels": single("Softmax", (2, 7, 5, 3), axis=1),
        "lrn": single("LRN", (1, 9, 6, 5), size=5, alpha=1e-3, beta=0.75, bias=2.0),
        "instance_norm": single("InstanceNormalization", (2, 3, 17, 19),
                                {"s": weights(3, 5), "b": weights(3, 6)}, ["s", "b"]),
        "image_to_image": image_to_image(6, (9, 13)),  # blocked norm and pads, 3-channel conv
        "layer_norm": single("LayerNormalization", (3, 7, 96),
                             {"s": weights(96, 5), "b": weights(96, 6)}, ["s", "b"], axis=-1),
        "reduce_mean": single("ReduceMean", (2, 6, 33), keepdims=0, axes=[1]),
        "scalar": scalar_after_reduce(),
        "transpose": single("Transpose", (2, 3, 5, 7), perm=[0, 2, 3, 1]),
        "slice_strided": single("Slice", (1, 5, 6, 7),
                                {"st": np.array([1, 6, 0], np.int64),
                                 "en": np.array([5, 0, 7], np.int64),
                                 "ax": np.array([1, 3, 2], np.int64),
                                 "sp": np.array([2, -2, 3], np.int64)}, ["st", "en", "ax", "sp"]),
        "pad_reflect": single("Pad", (1, 3, 5, 6),
                              {"p": np.array([0, 1, 2, 1, 0, 2, 1, 3], np.int64)}, ["p"],
                              mode="reflect"),
        "depth_to_space": single("DepthToSpace", (1, 18, 4, 5), blocksize=3, mode="CRD"),
        # an elementwise kernel viewing its (1,) operand; the serial stand-in had failed to parse
        "mul_by_one_value": single("Mul", (2, 15, 1, 6), {"k": weights(1, 7)}, ["k"]),
        # 17 channels in blocks of 4 on 32 x 68: the SE multiply's CPU stand-in had been
        # miscompiled by LLVM's loop vectorizer
        "squeeze_excite": make_model(
            [helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1]),
             helper.make_node("GlobalAveragePool", ["c"], ["g"]),
             helper.make_node("Sigmoid", ["g"], ["s"]), helper.make_node("Mul", ["c", "s"], ["y"])],
            {"x": (1, 17, 32, 68)}, ["y"], {"w": weights((17, 17, 3, 3), 8, 0.2)}),
        "take": single("Gather", (1, 9, 5, 7), {"i": np.array([[8, 0], [3, 3], [-1, 5]])}, ["i"],
                       axis=1),
        "where": make_model([helper.make_node("Greater", ["x", "k"], ["m"]),
                             helper.make_node("Where", ["m", "x", "k"], ["y"])],
                            {"x": (1, 5, 6, 7)}, ["y"], {"k": np.float32(0.25)}),
        "resize": single("Resize", (1, 3, 5, 7),
                         {"roi": np.zeros(0, np.float32),
                          "scales": np.array([1, 1, 2, 3], np.float32)},
                         ["roi", "scales"], mode="nearest"),
    }


LAYERS = _layers()


@pytest.mark.parametrize("case", list(LAYERS))
def test_cuda_schedules_compute_each_layer(case):
    _check_network(LAYERS[case])


def _workloads(model) -> list:
    from tvmconv.measure import workloads

    return [wl for wl, _ in workloads(model, CUDA)]


@pytest.mark.parametrize("case", list(LAYERS))
def test_cuda_template_spaces(case):
    """Random configs from every CUDA template's space lower to CUDA and compute what the
    unscheduled layer does."""
    import tvm
    from tvm import te

    from tvmconv.runner import kernel_inputs

    rng = random.Random(0)
    cpu = cpu_standin()
    for wl in _workloads(LAYERS[case]):
        inputs, out_shape = kernel_inputs(wl)
        ref_lib = tvm.compile(tvm.IRModule({"main": te.create_prim_func(kernels.tensors(wl))}),
                              target=cpu)
        for template in templates.templates_for(wl.kind, "cuda", wl, CUDA):
            space = template.space(wl, CUDA)
            configs = {template.default(wl, CUDA), *(space.sample(rng) for _ in range(3))}
            for cfg in configs:
                assert space.contains(cfg)
                func = kernels.prim_func(wl, CUDA, template, cfg)
                tvm.compile(tvm.IRModule({"main": func}), target=CUDA.tvm_target())  # GPU lowering
                lib = tvm.compile(tvm.IRModule({"main": serial(func)}), target=cpu)
                outs = []
                for m in (lib, ref_lib):
                    args = [tvm.runtime.tensor(a) for a in inputs]
                    args.append(tvm.runtime.tensor(np.zeros(out_shape, "float32")))
                    m["main"](*args)
                    outs.append(args[-1].numpy())
                assert_close(outs[0], outs[1], what=f"{template.NAME} {cfg} on {wl.key}")


def _kernels(source: str) -> dict[str, str]:
    """Kernel name -> its body, from a CUDA module's source."""
    parts = re.split(r'extern "C" __global__ void (?:__launch_bounds__\(\d+\) )?(\w+)\(', source)
    return {name: body for name, body in zip(parts[1::2], parts[2::2]) if "{" in body[:400]}


# networks whose kernels also go through nvcc (the rest skip it: nvcc is slow, and these four
# cover every CUDA template)
NVCC_CHECKED = {"resnet18", "mobilenet_v2", "efficientnet", "shufflenet_v2"}


@pytest.mark.parametrize("name", list(zoo.MODELS))
def test_zoo_compiles_for_cuda(zoo_model, name, monkeypatch):
    """Every reference network through TVM's CUDA pipeline, each kernel its own: fusing
    neighbouring kernels failed on ShuffleNetV2's concat views. For four of them compile also runs
    nvcc, and each kernel stays within 1024 threads and 48 KiB of shared memory per block (the
    limits of every CUDA GPU), whatever the template estimated."""
    with_nvcc = name in NVCC_CHECKED and shutil.which("nvcc") is not None
    if not with_nvcc:
        monkeypatch.setattr(nvcc, "check", lambda executable, arch: None)
    compiled = tvmconv.compile(zoo_model(name), target="cuda")
    (source,) = nvcc.sources(compiled.executable)
    found = _kernels(source)
    # TVM's own copies of the VM's reshapes (unused: the VM reshapes in place) aside
    fused = [k for k in found if k.startswith("fused") and "reshape" not in k]
    assert not fused
    if not with_nvcc:
        return
    assert len(found) >= 10
    for kernel, body in found.items():
        shared = sum(int(n) for n in re.findall(r"__shared__[^;\[]*\[(\d+)\]", body))
        assert 4 * shared <= 48 * 1024, f"{kernel}: {4 * shared} bytes of shared memory"
    bounds = [int(b) for b in re.findall(r"__launch_bounds__\((\d+)\)", source)]
    assert bounds and max(bounds) <= 1024


def _behind_a_1x1(channels: int, hw: tuple[int, int], out: int, k: tuple[int, int], **attrs):
    """A conv whose input comes blocked from a 1x1 conv (the layout plan picks the block)."""
    nodes = [helper.make_node("Conv", ["x", "w1"], ["c"]),
             helper.make_node("Conv", ["c", "w2"], ["y"], **attrs)]
    group = attrs.get("group", 1)
    return make_model(nodes, {"x": (1, 5, *hw)}, ["y"], {
        "w1": weights((channels, 5, 1, 1), 1), "w2": weights((out, channels // group, *k), 2)})


SHARED = {  # convs where TVM's staged region once outgrew the template's count
    "odd_channels_in_blocks": _behind_a_1x1(65, (12, 20), 65, (3, 3), pads=[1, 1, 1, 1]),
    "groups_of_several_blocks": _behind_a_1x1(70, (67, 8), 64, (2, 5), group=2),
    "groups_of_odd_blocks": _behind_a_1x1(28, (6, 64), 44, (5, 5), group=2),
}


@pytest.mark.parametrize("case", list(SHARED))
def test_shared_memory_count_bounds_what_tvm_stages(case):
    """``shared_floats``, which keeps a config within a block's 48 KB, counts at least what the
    generated CUDA declares, for the default and random configs. A fuzzed network found a default
    that staged 50 KB where it counted 12 (nvcc refused it)."""
    import tvm

    from tvmconv.templates.cuda import conv2d

    rng = random.Random(0)
    for wl in _workloads(SHARED[case]):
        if wl.kind != "conv2d" or not conv2d.applicable(wl, CUDA):
            continue
        space = conv2d.space(wl, CUDA)
        for cfg in {conv2d.default(wl, CUDA), *(space.sample(rng) for _ in range(16))}:
            func = kernels.prim_func(wl, CUDA, conv2d, cfg)
            source = "".join(nvcc.sources(tvm.compile(tvm.IRModule({"main": func}),
                                                      target=CUDA.tvm_target())))
            staged = sum(map(int, re.findall(r"__shared__ [^\[]*\[(\d+)\]", source)))
            assert 0 < staged <= conv2d.shared_floats(wl, cfg), (wl.key, cfg, staged)


@needs_nvcc
def test_cuda_artefact(tmp_path):
    """A CUDA artefact exports as one file; on a machine with a GPU it runs and matches
    onnxruntime, elsewhere loading it says why it cannot run."""
    model = onnx.load(str(bundled("digits_cnn.onnx")))
    path = tvmconv.compile(model, target="cuda").export(tmp_path / "digits-cuda.so")
    feeds = rng_inputs(model)
    if runs_here(CUDA.key):
        assert_close(tvmconv.load(path).run(feeds)[0], run_ort(model, feeds)[0])
    else:
        with pytest.raises(TargetError, match="cuda-sm_80; this machine has no CUDA GPU"):
            tvmconv.load(path)


@pytest.mark.skipif(not runs_here(CUDA.key), reason="needs an NVIDIA GPU (sm_80 or newer)")
@pytest.mark.parametrize("name", ["resnet18", "mobilenet_v2", "inception", "shufflenet_v2"])
def test_zoo_on_the_gpu(zoo_model, name):
    """The real kernels on a GPU: whole reference networks against onnxruntime on the CPU, called
    three times with new inputs (the first call captures the CUDA graph, the others replay it)."""
    model = onnx.load(str(zoo_model(name)))
    compiled = tvmconv.compile(model, target="cuda").model()
    for seed in range(3):
        feeds = rng_inputs(model, seed)
        assert_close(compiled.run(feeds)[0], run_ort(model, feeds)[0])


def test_gpu_artefacts_replay_a_cuda_graph():
    """On a GPU the VM launches the kernels between the first and the last as one CUDA graph;
    CPU artefacts have none."""
    model = bundled("digits_cnn.onnx")
    calls = tvmconv.compile(model, target="cuda").executable.as_text()
    assert calls.count("vm.builtin.cuda_graph.run_or_capture in:") == 1
    assert "cuda_graph" not in tvmconv.compile(model, target="x86").executable.as_text()


@needs_nvcc
def test_nvcc_errors_surface_at_compile_time(monkeypatch):
    """A kernel nvcc refuses fails ``compile`` with nvcc's first error, not a board's load."""
    real = nvcc.sources
    monkeypatch.setattr(nvcc, "sources", lambda ex: [s + "\nint broken(" for s in real(ex)])
    with pytest.raises(tvmconv.TvmconvError, match="nvcc could not compile"):
        tvmconv.compile(bundled("digits_cnn.onnx"), target="cuda")


def test_without_nvcc_compile_warns(monkeypatch):
    """Without the CUDA toolkit the artefact is still written (the GPU machine compiles its
    kernels when it loads them), with a warning that nothing checked them here."""
    monkeypatch.setattr(nvcc.shutil, "which", lambda name: None)
    with pytest.warns(UserWarning, match="nvcc not found"):
        compiled = tvmconv.compile(bundled("digits_cnn.onnx"), target="cuda")
    assert nvcc.sources(compiled.executable)


@needs_nvcc
def test_gpu_check_prepares_what_a_gpu_machine_runs(tmp_path):
    """scripts/gpu_check.py: artefacts and onnxruntime's outputs are written here; running them
    needs the GPU (and, where there is one, matches)."""
    import gpu_check

    gpu_check.prepare(tmp_path, ["lenet5"], "sm_80")
    assert sorted(p.suffix for p in tmp_path.iterdir()) == [".npz", ".so"]
    data = np.load(next(tmp_path.glob("*.npz")))
    assert {"in_input", "out_0"} <= set(data.files) and np.abs(data["out_0"]).max() > 0
    if runs_here(CUDA.key):
        assert gpu_check.run(tmp_path, repeat=5) == 0
    else:
        with pytest.raises(TargetError, match="no CUDA GPU"):
            gpu_check.run(tmp_path, repeat=5)


def test_gpu_bench_against_pytorch_on_the_same_gpu(tmp_path):
    """scripts/gpu_bench.py: on a GPU, tvmconv's LeNet-5 beside PyTorch's with the same weights
    (outputs within 1e-4); elsewhere one clear error."""
    import gpu_bench

    if not runs_here(CUDA.key):
        with pytest.raises(TargetError, match="needs an NVIDIA GPU"):
            gpu_bench.main(["lenet5"])
        return
    out = tmp_path / "gpu.md"
    assert gpu_bench.main(["lenet5", "--rounds", "1", "--per-round", "2", "--out", str(out)]) == 0
    rows = [r.split("|")[1:-1] for r in out.read_text().splitlines() if r.startswith("| lenet5")]
    assert [r[1].strip() for r in rows] == ["tvmconv", "PyTorch eager", "PyTorch CUDA graph"]
    assert float(rows[0][4]) <= 1e-4


def test_cuda_runtime_loads_with_tvms_runtime_alone():
    """Under ``TVM_USE_RUNTIME_LIB=1`` (``gpu_check.py run`` on a GPU machine) TVM's CUDA device
    API is loaded by hand: present where the driver is, and nothing breaks where it is not."""
    code = "from tvmconv.hostinfo import cuda_runtime; print(cuda_runtime())"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env={**os.environ, "TVM_USE_RUNTIME_LIB": "1"})
    assert proc.returncode == 0, proc.stderr
    try:
        ctypes.CDLL("libcuda.so.1")
        driver = True
    except OSError:
        driver = False
    assert proc.stdout.split()[-1] == str(driver), proc.stdout
