"""Build: graph -> one Relax module whose ``main`` calls every scheduled kernel in order
-> artefact.

TVM's Relax VM runs the calls (about 1-2 us each) on a static memory plan, so tvmconv needs no
executor of its own. Configs come from the user's tuning log, else the shipped schedule book, else
each template's analytic default.
"""

from __future__ import annotations

import os
import sys
import tempfile
import warnings
from pathlib import Path

import numpy as np

from . import __version__, kernels, nvcc, records, templates
from .artefact import LOAD_FUNC, append_metadata
from .errors import TvmconvError, require_file
from .frontend import from_onnx
from .graph import Graph
from .passes import optimize
from .target import TargetSpec, resolve
from .workload import Workload, from_node

# PrimFunc attributes naming what a kernel computes (``kernel_table``)
LAYER_ATTR, FLOPS_ATTR, WORKLOAD_ATTR = "tvmconv.layer", "tvmconv.flops", "tvmconv.workload"


def book_paths(target_key: str) -> list[Path]:
    """The shipped schedule book for a target key (installed package data, or the checkout's)."""
    here = Path(__file__).resolve().parent
    for folder in (here / "schedules", here.parent / "schedules"):
        path = folder / f"{target_key}.jsonl"
        if path.is_file():
            return [path]
    return []


def tuned_records(target_key: str, logs, book: bool = True) -> dict[str, list[dict]]:
    """Per workload key, its records fastest first: the user's logs', then the shipped book's."""
    tuned = records.ranked(logs, target_key)
    for key, recs in records.ranked(book_paths(target_key) if book else [], target_key).items():
        tuned.setdefault(key, []).extend(dict(r, from_book=True) for r in recs)
    return tuned


def choose(wl: Workload, target: TargetSpec, tuned: dict[str, list[dict]]):
    """(template, config) for a workload: its fastest tuning record that fits the templates as
    they are now (a log older than a template change keeps its other measurements), else the
    default; a warning when a record of the user's logs had to be ignored."""
    recs = tuned.get(wl.key, [])
    for rec in recs:
        found = templates.from_record(rec, wl, target)
        if found is not None:
            return found
    if any(not r.get("from_book") for r in recs):  # the book is best effort: no warning
        warnings.warn(f"ignoring a tuning record that does not fit {wl.key}", stacklevel=2)
    template = templates.templates_for(wl.kind, target.family, wl, target)[0]
    return template, template.default(wl, target)


class CompiledModel:
    """The result of ``tvmconv.compile``: export it, or run it in this process (host targets)."""

    def __init__(self, executable, meta: dict, target: TargetSpec):
        self.executable = executable
        self.meta = meta
        self.target = target
        self._model = None

    def export(self, path: str | os.PathLike) -> Path:
        """Write the one-file artefact (cross-compiled with the target's C compiler if needed)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(suffix=".so", dir=path.parent)
        os.close(fd)
        try:
            self.executable.export_library(tmp, **self.target.export_kwargs())
            append_metadata(Path(tmp), self.meta)
            umask = os.umask(0)
            os.umask(umask)
            os.chmod(tmp, 0o666 & ~umask)  # as open() would make it; mkstemp's is 0600
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
        return path

    def model(self):
        """A runnable Model in this process (only for a target this machine can run)."""
        if self._model is None:
            if not self.target.runs_here:
                raise TvmconvError(f"compiled for {self.target.key}; export it and run it there")
            from tvm.runtime.vm import VirtualMachine

            from .hostinfo import device
            from .runtime import Model

            dev = device(self.target.key)
            self._model = Model(VirtualMachine(self.executable, dev), self.meta, dev)
        return self._model

    def __call__(self, *args, **kwargs):
        return self.model()(*args, **kwargs)

    @property
    def inputs(self):
        return self.model().inputs

    @property
    def outputs(self):
        return self.model().outputs


def lower(graph: Graph, target: TargetSpec, tuned: dict[str, list[dict]], progress=False):
    """The Relax IRModule of an optimised graph: ``main(*loaded, *inputs)``, and when a template
    reads its weights in another form (Winograd's taps, 4x the 3x3 weights at F(4,3)),
    ``LOAD_FUNC()``, which makes them from the packed weights kept in the artefact: the runtime
    calls it once as it loads the artefact and passes its results to every call of ``main``."""
    from tvm import relax

    bb = relax.BlockBuilder()
    params = [relax.Var(_var_name(n), relax.TensorType(graph.shapes[n], "float32"))
              for n in graph.inputs]
    env = dict(zip(graph.inputs, params))
    funcs: dict[str, object] = {}
    consts: dict[str, object] = {}
    # per (weights, load-time kernel, its output shape): the parameter of main it makes
    loaded: dict[tuple, object] = {}

    def value(name):
        if name in env:
            return env[name]
        if name not in consts:
            array = np.require(graph.consts[name], requirements="C")
            consts[name] = relax.const(array, str(array.dtype))  # without it int64 becomes int32
        return consts[name]

    nodes = graph.nodes
    if progress:
        from tqdm import tqdm

        nodes = tqdm(nodes, desc="kernels", unit="op", leave=False)
    with bb.function("main"):
        with bb.dataflow():
            for node in nodes:
                out = node.outputs[0]
                shape = graph.physical_shape(out)
                wl = from_node(node, graph)
                if wl is None:
                    if node.op == "reshape":
                        env[out] = bb.emit(relax.op.reshape(value(node.inputs[0]), shape))
                    continue  # a concat whose parts are already in its buffer
                args = [value(i) for i in node.inputs]
                root, offset = graph.places.get(out, (None, 0))
                root_shape = graph.physical_shape(root) if root is not None else None
                key = (wl.key, root_shape, offset)
                if key not in funcs:
                    template, cfg = choose(wl, target, tuned)
                    func = kernels.prim_func(wl, target, template, cfg)
                    if root is not None:
                        func = kernels.placed(func, root_shape, offset)
                    name = f"{wl.kind}_{len(funcs)}"
                    func = func.with_attrs({"global_symbol": name, LAYER_ATTR: wl.describe(),
                                            FLOPS_ATTR: wl.flops(), WORKLOAD_ATTR: wl.key})
                    load = kernels.weight_func(wl, target, template, cfg)
                    if load is not None:
                        made_shape = tuple(int(d) for d in load.params[-1].shape)
                        load = (bb.add_func(load.with_attr("global_symbol", f"{name}_weights"),
                                            f"{name}_weights"), made_shape)
                    funcs[key] = (bb.add_func(func, name), load)
                gvar, load = funcs[key]
                if load is not None:
                    made = (node.inputs[1], *load)
                    if made not in loaded:
                        loaded[made] = relax.Var(f"loaded{len(loaded)}",
                                                 relax.TensorType(load[1], "float32"))
                    args[1] = loaded[made]
                if root is None:
                    env[out] = bb.emit(relax.call_tir(gvar, args,
                                                      relax.TensorType(shape, "float32")))
                    continue
                full = relax.TensorType(root_shape, "float32")
                if root in env:  # a later part: written into the buffer the first one made
                    env[root] = bb.emit(relax.call_tir_inplace(gvar, [*args, env[root]],
                                                               [len(args)], full))
                else:
                    env[root] = bb.emit(relax.call_tir(gvar, args, full))
            result = bb.emit_output(relax.Tuple([value(o) for o in graph.outputs]))
        bb.emit_func_output(result, [*loaded.values(), *params])
    if loaded:
        with bb.function(LOAD_FUNC, []):
            with bb.dataflow():
                made = [bb.emit(relax.call_tir(func, [value(weights)],
                                               relax.TensorType(shape, "float32")))
                        for weights, func, shape in loaded]
                result = bb.emit_output(relax.Tuple(made))
            bb.emit_func_output(result)
    return bb.get()


def kernel_table(mod) -> dict[str, dict]:
    """Kernel symbol -> the layer it computes, its FLOPs and workload key, kept in an artefact's
    metadata so that a profile of the network (``runtime.Model.profile``) can name what each
    call did, and ``netconfirm`` match it to tuning records."""
    from tvm import tirx

    return {gvar.name_hint: {"layer": str(func.attrs[LAYER_ATTR]),
                             "flops": float(func.attrs[FLOPS_ATTR]),
                             "workload": str(func.attrs[WORKLOAD_ATTR])}
            for gvar, func in mod.functions_items()
            if isinstance(func, tirx.PrimFunc) and func.attrs and LAYER_ATTR in func.attrs}


def fresh_outputs(graph: Graph) -> list[bool]:
    """Per graph output, whether ``lower``'s VM makes it anew on each call. Otherwise it is an
    input, a constant, a view of one (a reshape), or a tensor another output returns too: handed
    out without a copy, the caller's array would change on the next call, or writing into it
    would change what every later call returns."""
    made, base = set(), {}
    for node in graph.nodes:
        out = node.outputs[0]
        if from_node(node, graph) is not None:
            made.add(graph.places.get(out, (out, 0))[0])
        elif node.op == "reshape":
            base[out] = base.get(node.inputs[0], node.inputs[0])
    fresh, seen = [], set()
    for out in graph.outputs:
        root = base.get(out, out)
        fresh.append(root in made and root not in seen)
        seen.add(root)
    return fresh


def _var_name(name: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in name) or "input"


def vm_config(spec) -> dict:
    """Relax's build options for ``spec``. On a GPU the VM captures the kernels between the first
    and the last (those that read the input or write the output) as a CUDA graph at the first
    call and replays it after, one launch for all of them: on an H200, LeNet-5 1.37x faster,
    MobileNetV2 1.06x, SqueezeNet 1.04x, ResNet-18 1.01x."""
    return {"relax.backend.use_cuda_graph": True} if spec.family == "cuda" else {}


def compile_model(model, target="x86", log=None, input_shapes=None, progress=False, book=True):
    """ONNX (path or ModelProto) -> CompiledModel for ``target``, with an optional tuning log;
    ``book=False`` ignores the shipped schedule book (analytic defaults only)."""
    import tvm

    spec = resolve(target)
    logs = [log] if isinstance(log, (str, os.PathLike)) else list(log or [])
    for path in logs:
        records.check(require_file(path, "tuning log"))
    graph = from_onnx(model, input_shapes)
    meta = {
        "inputs": [{"name": n, "shape": list(graph.shapes[n]), "dtype": "float32"}
                   for n in graph.inputs],
        "outputs": [{"name": name, "shape": list(graph.shapes[v]),
                     "dtype": str(graph.consts[v].dtype) if v in graph.consts else "float32"}
                    for name, v in zip(graph.output_names, graph.outputs)],
        "target": spec.tvm, "target_key": spec.key, "tvmconv_version": __version__,
        "tvm_version": tvm.__version__,
    }
    optimize(graph, spec)
    for info, fresh in zip(meta["outputs"], fresh_outputs(graph)):
        info["fresh"] = fresh
    mod = lower(graph, spec, tuned_records(spec.key, logs, book), progress)
    meta["kernels"] = kernel_table(mod)
    meta["load_weights"] = any(g.name_hint == LOAD_FUNC for g in mod.get_global_vars())
    with tvm.transform.PassContext(config=vm_config(spec)):
        executable = tvm.compile(mod, target=spec.tvm_target())
    if spec.family == "cuda":
        if progress:  # seconds of nvcc after the kernels' bar has finished
            print("checking the CUDA kernels with nvcc ...", file=sys.stderr, flush=True)
        nvcc.check(executable, spec.tvm["arch"])
    return CompiledModel(executable, meta, spec)
