"""ONNX's backend API for tvmconv, in the style of ``onnxruntime.backend``.

    import onnx.backend.test, tvmconv.onnx_backend
    globals().update(onnx.backend.test.BackendTest(tvmconv.onnx_backend, __name__).test_cases)

What it does not do: run anywhere but this machine's CPU (``supports_device("CPU")`` only), take or
return tensors other than float32 (tvmconv's activations are float32), or run operators outside
``tvmconv.frontend.SUPPORTED_OPS``; each raises ``tvmconv.UnsupportedError`` saying so.

Two choices a conformance harness needs:

- Compile-time constants given as inputs. tvmconv compiles weights, shapes, axes and bounds into
  the module, but ONNX's node tests feed them as graph inputs. So the non-float32 inputs (shapes,
  axes, pads, sizes) and the float32 inputs that the frontend needs as constants (conv weights and
  bias, BatchNorm parameters, Clip bounds) are bound to the values given at run time: such a model
  compiles at its first run, and again for other values of those inputs. A model whose inputs are
  all activations compiles in ``prepare``.
- Non-finite inputs. tvmconv's runtime refuses NaN and infinity by default (``Model.check_finite``);
  the backend turns that check off, since the conformance cases feed them on purpose.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import helper, numpy_helper, shape_inference
from onnx.backend.base import Backend, BackendRep, namedtupledict

from .errors import UnsupportedError
from .frontend import MAX_OPSET, check_supported
from .frontend.ops import ConstantRequired

TARGET = "x86"  # the host's vector ISA


class TvmconvRep(BackendRep):
    """A model prepared for this CPU; ``run(inputs)`` returns its outputs in the model's order."""

    def __init__(self, model: onnx.ModelProto):
        self.model = model
        inits = {i.name for i in model.graph.initializer}
        self.inputs = [vi for vi in model.graph.input if vi.name not in inits]
        self.output_names = [vi.name for vi in model.graph.output]
        # Inputs compiled in as constants; float32 ones are added as the frontend asks for them.
        self.bound = {vi.name for vi in self.inputs
                      if vi.type.tensor_type.elem_type != onnx.TensorProto.FLOAT}
        self._compiled: dict[tuple, object] = {}

    def run(self, inputs, **kwargs):
        if isinstance(inputs, np.ndarray):
            inputs = [inputs]
        if isinstance(inputs, dict):
            inputs = [inputs[vi.name] for vi in self.inputs]
        if len(inputs) != len(self.inputs):
            raise ValueError(f"expected {len(self.inputs)} input(s) "
                             f"{[vi.name for vi in self.inputs]}, got {len(inputs)}")
        feeds = {vi.name: np.asarray(x) for vi, x in zip(self.inputs, inputs)}
        model = self.compiled(feeds)
        outs = model.run(*(feeds[i.name] for i in model.inputs))
        return namedtupledict("Outputs", self.output_names)(*outs)

    def compiled(self, feeds: dict[str, np.ndarray] | None = None):
        """The runnable Model for these values of the bound inputs (compiled once per values)."""
        while True:
            values = {n: feeds[n] for n in sorted(self.bound)} if self.bound else {}
            key = tuple((n, v.dtype.str, v.shape, v.tobytes()) for n, v in values.items())
            if key in self._compiled:
                return self._compiled[key]
            try:
                model = _compile(self.model, values)
            except ConstantRequired as e:
                if feeds is None or e.value not in feeds or e.value in self.bound:
                    raise
                self.bound.add(e.value)
                continue
            self._compiled[key] = model
            return model


def _compile(model: onnx.ModelProto, values: dict[str, np.ndarray]):
    """Compile with ``values`` as initializers instead of inputs; a Model that takes NaN/inf."""
    from .build import compile_model

    if values:
        model = onnx.ModelProto.FromString(model.SerializeToString())
        keep = [vi for vi in model.graph.input if vi.name not in values]
        del model.graph.input[:]
        model.graph.input.extend(keep)
        model.graph.initializer.extend(numpy_helper.from_array(v, n) for n, v in values.items())
    m = compile_model(model, target=TARGET).model()
    m.check_finite = False  # conformance cases feed NaN and infinity on purpose
    return m


class TvmconvBackend(Backend):
    """``onnx.backend.base.Backend`` for tvmconv; the module-level functions below are its API."""

    @classmethod
    def supports_device(cls, device: str) -> bool:
        """Only the host CPU: tvmconv compiles for it and runs in this process."""
        return device == "CPU"

    @classmethod
    def prepare(cls, model: onnx.ModelProto, device: str = "CPU", **kwargs) -> TvmconvRep:
        """Check the model, then compile it for this CPU (at the first run if it binds inputs)."""
        if not cls.supports_device(device):
            raise UnsupportedError(f"tvmconv's ONNX backend runs on the CPU only, not {device}")
        onnx.checker.check_model(model)
        check_supported(model.graph)
        for vi in model.graph.output:
            elem = vi.type.tensor_type.elem_type
            if elem != onnx.TensorProto.FLOAT:
                raise UnsupportedError(f"output {vi.name!r} has ONNX element type "
                                       f"{onnx.TensorProto.DataType.Name(elem)}; tvmconv's "
                                       "outputs are float32")
        rep = TvmconvRep(model)
        if not rep.bound:
            try:
                rep.compiled()
            except ConstantRequired:
                pass  # compiled at the first run, with that input bound to its value
        return rep

    @classmethod
    def run_model(cls, model: onnx.ModelProto, inputs, device: str = "CPU", **kwargs):
        """``prepare`` then ``run``: the outputs, in the model's output order."""
        return cls.prepare(model, device, **kwargs).run(inputs)

    @classmethod
    def run_node(cls, node: onnx.NodeProto, inputs, device: str = "CPU", outputs_info=None,
                 **kwargs):
        """Run one node as a one-node model; inputs are given in the node's input order."""
        opset = kwargs.get("opset_version", MAX_OPSET)
        names = [n for n in node.input if n]
        arrays = [np.asarray(x) for x in inputs]
        graph_inputs = [helper.make_tensor_value_info(
            n, helper.np_dtype_to_tensor_dtype(x.dtype), x.shape) for n, x in zip(names, arrays)]
        outputs = [o for o in node.output if o]
        if outputs_info:
            graph_outputs = [helper.make_tensor_value_info(
                o, helper.np_dtype_to_tensor_dtype(np.dtype(dt)), shape)
                for o, (dt, shape) in zip(outputs, outputs_info)]
        else:  # typed by shape inference below
            graph_outputs = [onnx.ValueInfoProto(name=o) for o in outputs]
        graph = helper.make_graph([node], f"run_node_{node.op_type}", graph_inputs, graph_outputs)
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
        model = shape_inference.infer_shapes(model)
        return cls.prepare(model, device, **kwargs).run(arrays)


prepare = TvmconvBackend.prepare
run_model = TvmconvBackend.run_model
run_node = TvmconvBackend.run_node
supports_device = TvmconvBackend.supports_device
is_compatible = TvmconvBackend.is_compatible
