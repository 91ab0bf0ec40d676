"""One workload -> one scheduled PrimFunc: the layer's compute, a template, and a config."""

from __future__ import annotations

from tvm import te, tirx
from tvm.s_tir import Schedule
from tvm.s_tir import stmt as s_stmt

from . import prefetch, templates
from .config import Config
from .layers import conv2d, dense, pointwise_depthwise, pool, reduce, transform
from .workload import Workload

COMPUTES = {
    "conv2d": conv2d.compute,
    "depthwise2d": conv2d.compute,
    "pointwise_depthwise": pointwise_depthwise.compute,
    "dense": dense.compute,
    "matmul": dense.compute_matmul,
    "pool2d": pool.compute,
    "softmax": reduce.softmax,
    "lrn": reduce.lrn,
    "instance_norm": reduce.instance_norm,
    "layer_norm": reduce.layer_norm,
    "reduce": reduce.reduce_,
    "elementwise": transform.elementwise,
    "transpose": transform.transpose,
    "concat": transform.concat,
    "slice": transform.slice_,
    "take": transform.take,
    "pad": transform.pad,
    "resize": transform.resize,
    "depth_to_space": transform.depth_to_space,
    "space_to_depth": transform.space_to_depth,
    "layout_transform": transform.layout_transform,
}


def tensors(wl: Workload, template=None, cfg: Config | None = None) -> list[te.Tensor]:
    """The kernel's TE arguments.
    A template whose config changes what is computed (Winograd, ragged row tiles) brings its own."""
    own = getattr(template, "compute", None)
    return own(wl, cfg) if own else COMPUTES[wl.kind](wl)


def prim_func(wl: Workload, target, template=None, cfg: Config | None = None):
    """The scheduled PrimFunc of a workload; the template's default config when none is given."""
    template = template or templates.templates_for(wl.kind, target.family, wl, target)[0]
    cfg = cfg if cfg is not None else template.default(wl, target)
    merged = getattr(template, "view", transform.collapsed)(wl)
    func = te.create_prim_func(tensors(merged or wl, template, cfg))
    sch = Schedule(func)
    template.apply(sch, merged or wl, cfg, target)
    func = _scheduled(sch)
    if merged is None:
        return func
    shapes = [t.shape for t in COMPUTES[wl.kind](wl)]
    whole = [tirx.decl_buffer(s, b.dtype, b.name) for s, b in zip(shapes, func.params)]
    return _viewing(func, whole, [b.data for b in whole])


def weight_func(wl: Workload, target, template, cfg: Config):
    """The scheduled PrimFunc that turns a layer's packed weights into the form its template
    reads (Winograd's taps), run once as an artefact loads; None when the template reads them as
    packed."""
    if not hasattr(template, "weight_compute"):
        return None
    sch = Schedule(te.create_prim_func(template.weight_compute(wl, cfg)))
    template.weight_schedule(sch, wl, cfg, target)
    return _scheduled(sch)


def _scheduled(sch):
    """Marked as scheduled and opaque (op_pattern 8), so that TVM's Relax pipeline neither
    reschedules it (dlight, on GPUs) nor fuses it with its neighbours: fusing thread-bound
    kernels failed on CUDA where a concat's parts are views of one buffer (ShuffleNetV2)."""
    func = prefetch.insert(sch.mod["main"])
    return func.with_attrs({"tirx.is_scheduled": True, "op_pattern": 8})


def placed(func, shape: tuple[int, ...], offset: int):
    """``func`` storing its output ``offset`` elements into a larger buffer of ``shape`` (a slab of
    a concat's output, see ``passes.place``): the output becomes a view declared in the root
    block, so the schedule's code is unchanged."""
    full = tirx.decl_buffer(shape, func.params[-1].dtype, "placed")
    data = tirx.handle_add_byte_offset(full.data, offset * full.dtype.bits // 8)
    return _viewing(func, [*func.params[:-1], full], [*[None] * (len(func.params) - 1), data])


def _viewing(func, params, data):
    """``func`` taking ``params``; each old parameter whose ``data`` is given becomes a view of
    it declared in the root block."""
    views = [tirx.DeclBuffer(old, data=d) for old, d in zip(func.params, data) if d is not None]
    root = func.body.block
    block = s_stmt.SBlock(root.iter_vars, root.reads, root.writes, root.name_hint,
                          tirx.SeqStmt([*views, root.body]), root.init, root.alloc_buffers,
                          root.match_buffers, root.annotations)
    body = s_stmt.SBlockRealize(func.body.iter_values, func.body.predicate, block)
    return tirx.PrimFunc(params, body, func.ret_type, func.attrs)
