"""Schedule templates per target family, and the registry from workload kind to templates.

A template module declares ``NAME``, ``KINDS`` (workload kinds it serves), ``space(wl, target)``,
``default(wl, target)`` and ``apply(sch, wl, cfg, target)`` on an ``s_tir.Schedule``; optionally
``applicable(wl, target)``, ``preferred(wl, target)`` (False: still a tuning choice, but listed
after the templates that are), ``compute(wl, cfg)`` when the config changes what is computed
(another algorithm, Winograd's, or the conv's ragged row tiles); when it reads the weights in
another form (Winograd's taps), ``transform_weights(packed, wl, cfg)`` (numpy, for the tuner's
kernel arguments) and ``weight_compute(wl, cfg)`` with ``weight_schedule(sch, wl, cfg, target)``:
the kernel an artefact runs once as it loads, so that it keeps the smaller packed weights; and
``view(wl)``: the workload it computes and schedules instead, over the same buffers reshaped (a
1x1 conv's pixels as one row). Split factors come from the config as fixed numbers, so any
tuning record replays without a search.
Adding a template is a new file plus one line in ``_MODULES``.
"""

from __future__ import annotations

import importlib

_CPU = ["conv2d_pixels", "winograd", "pointwise", "conv2d_flat", "conv2d", "depthwise",
        "pointwise_depthwise", "dense", "pool", "injective", "reduce"]
_MODULES = {
    "x86": _CPU,
    # ARM CPUs are LLVM targets too: the same templates, whose defaults follow NEON's 4 fp32 lanes
    # and 32 (A64) or 16 (v7) vector registers.
    "arm": _CPU,
    "cuda": ["conv2d", "stages", "injective"],
}
_FAMILY_DIR = {"x86": "x86", "arm": "x86", "cuda": "cuda"}


class NotApplicable(Exception):
    """The template cannot serve this workload or config; the caller tries another or skips it."""


def templates_for(kind: str, family: str, wl=None, target=None) -> list:
    """Template modules that can compute a workload kind on a target family, preferred first;
    given a workload, only those whose ``applicable(wl, target)`` (if they define one) holds, and
    those whose ``preferred(wl, target)`` does not hold after the others."""
    if family not in _MODULES:
        from ..errors import TargetError

        raise TargetError(f"no schedule templates for target family {family!r} yet")
    found = []
    for name in _MODULES[family]:
        mod = importlib.import_module(f"{__name__}.{_FAMILY_DIR[family]}.{name}")
        if kind in mod.KINDS and (wl is None or getattr(mod, "applicable",
                                                         lambda w, t: True)(wl, target)):
            found.append(mod)
    if wl is not None:
        found.sort(key=lambda mod: not getattr(mod, "preferred", lambda w, t: True)(wl, target))
    return found


def from_record(record: dict, wl, target):
    """(template, config) of a tuning record as the templates know them now: knobs added to the
    template since the record was written take their defaults, or the values that fit the
    record's other knobs (``Space.completed``). None when the template is gone or the config no
    longer fits its space."""
    try:
        template = by_name(record["template"], target.family)
    except NotApplicable:
        return None
    if wl.kind not in template.KINDS or not getattr(template, "applicable",
                                                     lambda w, t: True)(wl, target):
        return None
    cfg = template.space(wl, target).completed(record["config"],
                                               template.default(wl, target).to_json())
    return None if cfg is None else (template, cfg)


def by_name(name: str, family: str):
    for mod_name in _MODULES.get(family, []):
        mod = importlib.import_module(f"{__name__}.{_FAMILY_DIR[family]}.{mod_name}")
        if mod.NAME == name:
            return mod
    raise NotApplicable(f"no template {name!r} for {family}")
