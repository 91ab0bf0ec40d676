"""The thin runtime: load an artefact and call it with numpy arrays.
Needs only TVM's runtime + numpy."""

from __future__ import annotations

import functools
import os
import threading
from dataclasses import dataclass

import numpy as np

from .artefact import LOAD_FUNC, read_metadata
from .errors import ArtefactError, InputError, InputTypeError, TargetError
from .hostinfo import describe_here, device, runs_here


@dataclass(frozen=True)
class TensorInfo:
    name: str
    shape: tuple[int, ...]
    dtype: str = "float32"


@dataclass(frozen=True)
class KernelTime:
    """One kernel of a profile: per inference, its calls and their summed seconds (a median)."""
    name: str
    layer: str
    calls: int
    seconds: float
    flops: float | None  # of one call; None in artefacts older than the kernel table

    @property
    def gflops(self) -> float | None:
        return None if self.flops is None else self.flops * self.calls / self.seconds / 1e9


class Model:
    """A compiled network: ``m(x)``, ``m(x1, x2)`` or ``m({"name": x})`` -> numpy output(s)."""

    def __init__(self, vm_module, meta: dict, device):
        import tvm

        self._tvm = tvm
        self._vm = vm_module
        self._main = vm_module["main"]
        if meta.get("load_weights"):  # made once, here, from the weights the artefact keeps
            self._main = functools.partial(self._main, *vm_module[LOAD_FUNC]())
        self._device = device
        self.meta = meta
        self.inputs = [TensorInfo(i["name"], tuple(i["shape"]), i["dtype"]) for i in meta["inputs"]]
        self.outputs = [TensorInfo(o["name"], tuple(o["shape"]), o["dtype"])
                        for o in meta["outputs"]]
        self._fresh = [o.get("fresh", False) for o in meta["outputs"]]
        self.check_finite = True
        # Input tensors allocated once, written through zero-copy numpy views: 0.2 us for LeNet's
        # input where allocating a TVM tensor per call costs 11 us and copyfrom 5 us.
        # On a GPU the inputs are copied over and the outputs back.
        self._on_host = device.dlpack_device_type() == tvm.cpu().dlpack_device_type()
        self._staging = [tvm.runtime.empty(i.shape, i.dtype, device) for i in self.inputs]
        self._views = [np.from_dlpack(t) for t in self._staging] if self._on_host else None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        sig = ", ".join(f"{i.name}: {i.dtype}{list(i.shape)}" for i in self.inputs)
        outs = ", ".join(f"{o.name}: {o.dtype}{list(o.shape)}" for o in self.outputs)
        return f"<tvmconv.Model ({sig}) -> ({outs}) target={self.meta['target_key']}>"

    def random_inputs(self, seed: int = 0) -> dict[str, np.ndarray]:
        """Seeded standard-normal inputs by name: what a command runs when given none."""
        rng = np.random.default_rng(seed)
        return {i.name: rng.standard_normal(i.shape).astype(i.dtype) for i in self.inputs}

    def _arrange(self, args, kwargs) -> list[np.ndarray]:
        if (not kwargs and len(args) == len(self.inputs)
                and not (args and isinstance(args[0], dict))):
            return [self._check(info, x) for info, x in zip(self.inputs, args)]
        if len(args) == 1 and isinstance(args[0], dict) and not kwargs:
            kwargs, args = args[0], ()
        if kwargs:
            if args:
                raise InputTypeError("pass inputs either positionally or by name, not both")
            unknown = set(kwargs) - {i.name for i in self.inputs}
            missing = [i.name for i in self.inputs if i.name not in kwargs]
            if unknown or missing:
                raise InputError(f"inputs by name: unknown {sorted(unknown)}, missing {missing}; "
                                 f"expected {[i.name for i in self.inputs]}")
            args = tuple(kwargs[i.name] for i in self.inputs)
        if len(args) != len(self.inputs):
            raise InputTypeError(f"expected {len(self.inputs)} input(s) "
                            f"{[i.name for i in self.inputs]}, got {len(args)}")
        return [self._check(info, x) for info, x in zip(self.inputs, args)]

    def _check(self, info: TensorInfo, x) -> np.ndarray:
        if not isinstance(x, np.ndarray):
            raise InputTypeError(f"input {info.name!r} must be a numpy array, "
                                 f"got {type(x).__name__}")
        if x.dtype != info.dtype:
            raise InputTypeError(f"input {info.name!r} has dtype {x.dtype}, expected {info.dtype}")
        if x.shape != info.shape:
            raise InputError(f"input {info.name!r} has shape {tuple(x.shape)}, "
                             f"expected {info.shape}")
        if self.check_finite and not np.isfinite(x).all():
            raise InputError(f"input {info.name!r} contains NaN or infinity")
        return x

    def run(self, *args, **kwargs) -> list[np.ndarray]:
        """All outputs as a list, in the model's output order."""
        arrays = self._arrange(args, kwargs)
        with self._lock:
            if not self._on_host:
                for t, a in zip(self._staging, arrays):
                    t.copyfrom(a)
                return [r.numpy() for r in self._main(*self._staging)]
            for view, a in zip(self._views, arrays):
                view[...] = a
            # a zero-copy view of what the VM made for this call; a copy of anything else (an
            # input, a constant, another output's tensor: build.fresh_outputs)
            return [np.from_dlpack(r) if fresh else np.from_dlpack(r).copy()
                    for r, fresh in zip(self._main(*self._staging), self._fresh)]

    def __call__(self, *args, **kwargs):
        outs = self.run(*args, **kwargs)
        return outs[0] if len(outs) == 1 else outs

    def benchmark(self, *args, repeat: int = 100, warmup: int = 5) -> np.ndarray:
        """Per-call latencies in seconds of the compiled network alone
        (inputs already on device)."""
        import time

        arrays = self._arrange(args, {})
        dev = [self._tvm.runtime.tensor(a, self._device) for a in arrays]
        for _ in range(warmup):
            self._main(*dev)
        self._device.sync()
        times = []
        for _ in range(repeat):
            t0 = time.perf_counter()
            self._main(*dev)
            self._device.sync()  # a GPU runs the kernels after the call returns
            times.append(time.perf_counter() - t0)
        return np.array(times)

    def profile(self, *args, runs: int = 20, warmup: int = 3) -> list[KernelTime]:
        """Where an inference spends its time, per kernel, timed inside the network: each call
        between the VM's instrument hooks, each kernel's calls summed per inference, the median
        over ``runs`` inferences, slowest first. Each call is charged the hooks' own few
        microseconds (about 4 on a Zen 3), so very short kernels read long. A kernel timed alone
        runs with its weights and input warm in the caches: in one ``python -m tvmconv.bench``
        run on a Zen 3, SqueezeNet's first max pool took 2.3x as long inside the network as
        alone, its 512 -> 1000 classifier 1.15x. CPU targets only: on a GPU the kernels run as
        one CUDA graph."""
        import time

        if not self._on_host:
            raise TargetError("profile() times kernels on the CPU; on a GPU the VM replays them "
                              "as one CUDA graph")
        if runs < 1:
            raise InputError(f"runs must be at least 1, got {runs}")
        dev = [self._tvm.runtime.tensor(a, self._device) for a in self._arrange(args, {})]
        named = self.meta.get("kernels")  # artefacts written before the kernel table lack it

        def is_kernel(symbol: str) -> bool:  # not one of the VM's builtins
            return symbol in named if named else not symbol.startswith("vm.")

        totals: dict[str, list[float]] = {}
        calls: dict[str, int] = {}
        started, run = [0.0], 0

        def hook(func, symbol, before, ret, *call_args):
            if before:
                started[0] = time.perf_counter()
            elif is_kernel(symbol):
                totals.setdefault(symbol, [0.0] * runs)[run] += time.perf_counter() - started[0]
                calls[symbol] = calls.get(symbol, 0) + 1
            return 0

        with self._lock:
            for _ in range(warmup):
                self._main(*dev)
            self._vm.set_instrument(hook)
            try:
                for run in range(runs):
                    self._main(*dev)
            finally:
                self._vm.set_instrument(None)
        named = named or {}
        rows = [KernelTime(name, named.get(name, {}).get("layer", name), calls[name] // runs,
                           float(np.median(per_run)), named.get(name, {}).get("flops"))
                for name, per_run in totals.items()]
        return sorted(rows, key=lambda r: -r.seconds)


def relative_error(got, ref) -> float:
    """max|got - ref| / max|ref| in float64, the measure every output check here uses (absolute
    when the reference is all zeros; NaN when either holds one)."""
    got, ref = np.asarray(got, np.float64), np.asarray(ref, np.float64)
    if not ref.size:
        return 0.0
    scale, diff = float(np.abs(ref).max()), float(np.abs(got - ref).max())
    return diff / scale if scale > 0 else diff


def load(path: str | os.PathLike) -> Model:
    """Load an artefact written by ``tvmconv.compile``; refuses one built for another target."""
    meta, _ = read_metadata(path)
    built = meta.get("target_key", "?")
    if not runs_here(built):
        raise TargetError(f"{path} was compiled for {built}; {describe_here(built)}. "
                          f"Compile it again with --target for this machine")
    import tvm
    from tvm.runtime.vm import VirtualMachine

    dev = device(built)
    try:
        lib = tvm.runtime.load_module(str(path))
    except Exception as e:  # the loader's own message names the broken part
        raise ArtefactError(f"{path} could not be loaded: {str(e).splitlines()[0]}") from None
    return Model(VirtualMachine(lib, dev), meta, dev)
