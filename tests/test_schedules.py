"""Schedule templates on x86 beyond their defaults: configs drawn from each template's space are
replayed through a tuning log (the path a tuned model takes) and checked against onnxruntime, and
the default schedules are checked structurally (threads and vectors where the template says)."""

from __future__ import annotations

import random
import warnings

import numpy as np
import pytest
from conftest import (
    assert_close,
    image_to_image,
    make_model,
    rng_inputs,
    run_ort,
    run_tvmconv,
    single,
    weights,
    workloads,
)
from onnx import helper

import tvmconv
from tvmconv import kernels, records, templates
from tvmconv.target import resolve


def _conv_relu():
    """3x3 stride 1 with 16 input channels: both the direct and the Winograd template apply."""
    nodes = [helper.make_node("Conv", ["x", "w", "b"], ["c"], pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c"], ["y"])]
    return make_model(nodes, {"x": (1, 16, 6, 6)}, ["y"],
                      {"w": weights((16, 16, 3, 3), 1, 0.2), "b": weights(16, 2, 0.1)})


def _conv_prime():
    return single("Conv", (1, 13, 7, 5), {"w": weights((17, 13, 3, 3), 1, 0.2)}, ["w"],
                  strides=[2, 1])


def _conv_many_blocks():
    """Several output-channel blocks: threads may split them or the rows (``rows_outer``)."""
    return single("Conv", (1, 8, 6, 5), {"w": weights((96, 8, 3, 3), 1, 0.2)}, ["w"],
                  pads=[1, 0, 1, 0])


def _conv_pointwise():
    """A 1x1 conv with a residual add on a 9x11 map: the pointwise template's flattened pixels
    (ragged last tile, per-pixel operand) beside the direct template."""
    nodes = [helper.make_node("Conv", ["x", "w", "b"], ["c"]),
             helper.make_node("Add", ["c", "x"], ["s"]), helper.make_node("Relu", ["s"], ["y"])]
    return make_model(nodes, {"x": (1, 40, 9, 11)}, ["y"],
                      {"w": weights((40, 40, 1, 1), 1, 0.2), "b": weights(40, 2, 0.1)})


def _depthwise():
    return single("Conv", (1, 16, 7, 7), {"w": weights((16, 1, 3, 3))}, ["w"], group=16,
                  pads=[1, 1, 1, 1])


def _depthwise_strided_multiplier():
    """Five outputs per input channel, strided and dilated, padded unevenly on a ragged width:
    padding tested for in each tap (``inline_pad``) reads the input channel of each lane."""
    return single("Conv", (1, 6, 11, 13), {"w": weights((30, 1, 3, 3))}, ["w"], group=6,
                  pads=[2, 0, 1, 3], strides=[2, 2], dilations=[2, 2])


def _pointwise_depthwise(c_in=8, mid=24, hw=(21, 20)):
    """A 1x1 conv + ReLU read only by a depthwise conv: one fused kernel (passes.pointwise)."""
    nodes = [helper.make_node("Conv", ["x", "w1"], ["e"]), helper.make_node("Relu", ["e"], ["r"]),
             helper.make_node("Conv", ["r", "w2"], ["y"], group=mid, pads=[1, 1, 1, 1],
                              strides=[2, 2])]
    return make_model(nodes, {"x": (1, c_in, *hw)}, ["y"],
                      {"w1": weights((mid, c_in, 1, 1), 1, 0.3), "w2": weights((mid, 1, 3, 3), 2)})


def _dense():
    return single("Gemm", (3, 40), {"w": weights((40, 24)), "b": weights(24, 2)}, ["w", "b"])


def _matmul():
    node = helper.make_node("MatMul", ["a", "b"], ["y"])
    return make_model([node], {"a": (2, 4, 5), "b": (2, 5, 16)}, ["y"])


def _pool_blocked():
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"]),
             helper.make_node("MaxPool", ["c"], ["y"], kernel_shape=[3, 3], strides=[2, 2],
                              ceil_mode=1)]
    return make_model(nodes, {"x": (1, 3, 10, 10)}, ["y"], {"w": weights((16, 3, 1, 1))})


def _max_pool_padded():
    """Unevenly padded, ceil mode, on channel blocks: the padding reads as -inf."""
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"]),
             helper.make_node("MaxPool", ["c"], ["y"], kernel_shape=[3, 3], strides=[2, 2],
                              pads=[1, 0, 2, 1], ceil_mode=1)]
    return make_model(nodes, {"x": (1, 3, 11, 10)}, ["y"], {"w": weights((16, 3, 1, 1))})


def _avg_pool_plain():
    return single("AveragePool", (1, 3, 7, 7), kernel_shape=[3, 3], pads=[1, 1, 1, 1])


def _elementwise():
    return single("Add", (2, 5, 7), {"k": weights((5, 1))}, ["k"])


def _transpose():
    return single("Transpose", (2, 3, 4, 8), perm=[0, 3, 1, 2])


def _softmax():
    return single("Softmax", (4, 10), axis=-1)


def _conv_few_channels():
    """3 output channels: vectors along rows (conv2d_pixels) beside the direct template."""
    return single("Conv", (1, 16, 5, 37), {"w": weights((3, 16, 5, 5), 1, 0.2),
                                           "b": weights(3, 2)}, ["w", "b"], pads=[2, 2, 2, 2])


def _conv_one_out_channel():
    """One output channel: Winograd's weight transform over blocks of one channel, loops of one."""
    return single("Conv", (1, 20, 9, 8), {"w": weights((1, 20, 3, 3), 1, 0.2)}, ["w"],
                  pads=[1, 1, 1, 1])


def _conv_dilated():
    """Dilated 2 on an odd size: Winograd's tiles interleave beside the direct template."""
    return single("Conv", (1, 16, 17, 23), {"w": weights((24, 16, 3, 3), 1, 0.2),
                                            "b": weights(24, 2)}, ["w", "b"],
                  pads=[2, 2, 2, 2], dilations=[2, 2])


def _conv_dilated_pad_rows():
    """Dilated 3 on a 9x11 map: 22% of the kernel rows its output rows read are padding, which the
    direct template may skip (``skip_pad_rows``), in row tiles whose rows skip alike."""
    return single("Conv", (1, 16, 9, 11), {"w": weights((24, 16, 3, 3), 1, 0.2),
                                           "b": weights(24, 2)}, ["w", "b"],
                  pads=[3, 3, 3, 3], dilations=[3, 3])


def _conv_row_operand(k=1, operand=(17,)):
    """A conv on ragged 17-pixel rows times a constant broadcast along rows or columns: the
    flattened-pixel templates cannot index it, and must not take the conv."""
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], pads=[k // 2] * 4),
             helper.make_node("Mul", ["c", "k"], ["y"])]
    return make_model(nodes, {"x": (1, 16, 3, 17)}, ["y"],
                      {"w": weights((16, 16, k, k), 1, 0.2), "k": weights(operand, 2)})


def _conv_spanning(kh, kw, size=(11, 13)):
    """A kh x kw conv (Inception's 1 x 7, 7 x 1 and 5 x 5, M5's 1-D 1 x 3): Winograd F(m, r)
    along the axes the kernel spans, beside the direct templates."""
    return single("Conv", (1, 16, *size), {"w": weights((32, 16, kh, kw), 1, 0.2),
                                           "b": weights(32, 2)}, ["w", "b"],
                  pads=[kh // 2, kw // 2] * 2)


CASES = {
    # id: (model builder, workload kind the configs are drawn for)
    "conv2d_1x7": (lambda: _conv_spanning(1, 7), "conv2d"),
    "conv2d_7x1": (lambda: _conv_spanning(7, 1), "conv2d"),
    "conv2d_5x5": (lambda: _conv_spanning(5, 5), "conv2d"),
    "conv1d_1x3": (lambda: _conv_spanning(1, 3, (1, 37)), "conv2d"),
    "conv2d_row_operand": (_conv_row_operand, "conv2d"),
    "conv2d_3x3_column_operand": (lambda: _conv_row_operand(3, (3, 1)), "conv2d"),
    "conv2d_dilated": (_conv_dilated, "conv2d"),
    "conv2d_dilated_pad_rows": (_conv_dilated_pad_rows, "conv2d"),
    "conv2d_few_channels": (_conv_few_channels, "conv2d"),
    "conv2d_one_out_channel": (_conv_one_out_channel, "conv2d"),
    "instance_norm_blocked": (lambda: image_to_image(), "instance_norm"),
    "conv2d_relu": (_conv_relu, "conv2d"),
    "conv2d_prime": (_conv_prime, "conv2d"),
    "conv2d_many_blocks": (_conv_many_blocks, "conv2d"),
    "conv2d_pointwise": (_conv_pointwise, "conv2d"),
    "depthwise": (_depthwise, "depthwise2d"),
    "depthwise_strided_multiplier": (_depthwise_strided_multiplier, "depthwise2d"),
    "pointwise_depthwise": (_pointwise_depthwise, "pointwise_depthwise"),
    "dense": (_dense, "dense"),
    "matmul": (_matmul, "matmul"),
    "pool_blocked": (_pool_blocked, "pool2d"),
    "max_pool_padded": (_max_pool_padded, "pool2d"),
    "pool_plain": (_avg_pool_plain, "pool2d"),
    "elementwise": (_elementwise, "elementwise"),
    "transpose": (_transpose, "transpose"),
    "softmax": (_softmax, "softmax"),
}
SPEC = resolve("x86")


def _workload(model, kind):
    found = [w for w in workloads(model) if w.kind == kind]
    assert len(found) == 1, f"expected one {kind} kernel, got {[w.key for w in found]}"
    return found[0]


def _configs(template, wl, n: int = 3) -> list:
    """The template's default and up to ``n`` other configs of its space, seeded."""
    space = template.space(wl, SPEC)
    default = template.default(wl, SPEC)
    assert space.contains(default), f"default {default} is outside the space of {wl.key}"
    others = [c for c in space if c != default]
    return [default] + random.Random(0).sample(others, min(n, len(others)))


def _templates(wl) -> list:
    """Every template that serves this workload on x86 (Winograd beside direct for 3x3 s1)."""
    found = templates.templates_for(wl.kind, SPEC.family, wl, SPEC)
    assert found, f"no template for {wl.key}"
    return found


@pytest.mark.parametrize("case", list(CASES))
def test_configs_replayed_from_a_log(case, tmp_path):
    build, kind = CASES[case]
    model = build()
    wl = _workload(model, kind)
    feeds = rng_inputs(model)
    ref = run_ort(model, feeds)
    for template in _templates(wl):
        for k, cfg in enumerate(_configs(template, wl)):
            log = tmp_path / f"{template.NAME}{k}.jsonl"
            records.append(log, [records.make(SPEC.key, wl.key, template.NAME, cfg.to_json(),
                                              latencies=[1e-3])])
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                got = tvmconv.compile(model, target="x86", log=log).model().run(feeds)
            ignored = [str(w.message) for w in caught if "does not fit" in str(w.message)]
            assert not ignored, f"{template.NAME} config {cfg} was not used: {ignored}"
            for g, r in zip(got, ref):
                assert_close(g, r, what=f"{template.NAME} with {cfg}")


BIG = {
    # id: (model, kind); big enough (> 2 MFLOP) that every template should use threads
    "conv2d": (lambda: single("Conv", (1, 32, 16, 16), {"w": weights((64, 32, 3, 3))}, ["w"],
                              pads=[1, 1, 1, 1]), "conv2d"),
    "depthwise": (lambda: single("Conv", (1, 64, 56, 56), {"w": weights((64, 1, 3, 3))}, ["w"],
                                 group=64, pads=[1, 1, 1, 1]), "depthwise2d"),
    "conv2d_pointwise": (lambda: single("Conv", (1, 64, 27, 27), {"w": weights((48, 64, 1, 1))},
                                        ["w"]), "conv2d"),
    "pointwise_depthwise": (lambda: _pointwise_depthwise(32, 96, (56, 56)), "pointwise_depthwise"),
    "pool": (lambda: make_model(
        [helper.make_node("Conv", ["x", "w"], ["c"]),
         helper.make_node("MaxPool", ["c"], ["y"], kernel_shape=[3, 3], pads=[1, 1, 1, 1])],
        {"x": (1, 3, 64, 64)}, ["y"], {"w": weights((64, 3, 1, 1))}), "pool2d"),
    "unblock": (lambda: single("Conv", (1, 3, 64, 64), {"w": weights((48, 3, 3, 3))}, ["w"]),
                "layout_transform"),  # the output, from channel blocks to NCHW
    "block": (lambda: make_model(  # the input, into the depthwise conv's 8-channel blocks
        [helper.make_node("Conv", ["x", "w"], ["d"], group=8, pads=[1, 1, 1, 1]),
         helper.make_node("GlobalAveragePool", ["d"], ["y"])],
        {"x": (1, 8, 96, 96)}, ["y"], {"w": weights((8, 1, 3, 3))}), "layout_transform"),
    "global_pool_plain": (lambda: single("GlobalAveragePool", (1, 256, 28, 28)), "pool2d"),
    "conv2d_few_channels": (lambda: single("Conv", (1, 32, 64, 64), {"w": weights((3, 32, 7, 7))},
                                           ["w"]), "conv2d"),
    "instance_norm_blocked": (lambda: image_to_image(64, (56, 56)), "instance_norm"),
    "channel_shuffle": (lambda: single("Transpose", (1, 2, 58, 28, 28), perm=[0, 2, 1, 3, 4]),
                        "transpose"),  # over its fewest axes, vectors along the last
    "channel_split": (lambda: single("Slice", (1, 116, 28, 28), {
        "s": np.array([58]), "e": np.array([116]), "a": np.array([1])}, ["s", "e", "a"]),
        "slice"),
}


def test_direct_conv_skips_kernel_taps_that_read_padding(tmp_path):
    """A conv whose output rows and columns read padding with 22% of their kernel rows (columns)
    skips them by default; a tile whose rows (columns) skip different kernel rows (columns)
    cannot (its branch would be per row, inside the tile), and where few read padding the knobs
    are not offered. Tiles of two rows and two columns that skip give onnxruntime's answer."""
    from tvmconv.templates.x86 import conv2d as direct

    def conv(size, dilation):
        return single("Conv", (1, 32, size, size), {"w": weights((32, 32, 3, 3), 1, 0.2)},
                      ["w"], pads=[dilation] * 4, dilations=[dilation] * 2)

    model = conv(6, 2)  # rows 0-1 skip kernel row 0, rows 4-5 kernel row 2; columns alike
    wl = _workload(model, "conv2d")
    space = direct.space(wl, SPEC)
    default = direct.default(wl, SPEC)
    assert default["skip_pad_rows"] == 1
    assert default["skip_pad_cols"] == int(default["tile_w"] in (1, 2))
    assert {c["tile_h"] for c in space if c["skip_pad_rows"]} == {1, 2}
    assert {c["tile_h"] for c in space if not c["skip_pad_rows"]} == {1, 2, 3}
    assert {c["tile_w"] for c in space if c["skip_pad_cols"]} == {1, 2}
    assert 3 in {c["tile_w"] for c in space if not c["skip_pad_cols"]}
    knobs = direct.space(_workload(conv(14, 1), "conv2d"), SPEC).knobs
    assert "skip_pad_rows" not in knobs and "skip_pad_cols" not in knobs  # 2 of 42: 5%

    cfg = next(c for c in space if c["skip_pad_rows"] and c["skip_pad_cols"]
               and c["tile_h"] == 2 and c["tile_w"] == 2)
    log = tmp_path / "skip.jsonl"
    records.append(log, [records.make(SPEC.key, wl.key, direct.NAME, cfg.to_json(),
                                      latencies=[1e-3])])
    feeds = rng_inputs(model)
    got = tvmconv.compile(model, target="x86", log=log).model().run(feeds)
    assert_close(got[0], run_ort(model, feeds)[0], what=f"direct with {cfg}")


@pytest.mark.parametrize("build, kind, name", [
    (_depthwise, "depthwise2d", "depthwise_direct"),
    (_depthwise_strided_multiplier, "depthwise2d", "depthwise_direct"),
    (lambda: _pointwise_depthwise(8, 24, (21, 20)), "pointwise_depthwise", "pointwise_depthwise"),
    (_conv_relu, "conv2d", "conv2d_winograd"),
    (_conv_dilated, "conv2d", "conv2d_winograd"),
    (_max_pool_padded, "pool2d", "pool_blocked"),
    (_avg_pool_plain, "pool2d", "pool_blocked"),
])
def test_padding_tested_in_each_tap(build, kind, name, tmp_path):
    """A padded depthwise conv or pool, and Winograd's input transform, store no padded copy by
    default: each tap tests its row and column (twice as fast alone as a padded copy on
    MobileNetV2's 14x14 depthwise layers; ResNet-18 7% faster end to end with Winograd's).
    Stored padding stays a tuning choice, and both give onnxruntime's answer."""
    model = build()
    wl = _workload(model, kind)
    template = templates.by_name(name, SPEC.family)
    default = template.default(wl, SPEC)
    assert default["inline_pad"] == 1
    assert "pad" not in kernels.prim_func(wl, SPEC, template, default).script()
    stored = next(c for c in template.space(wl, SPEC) if not c["inline_pad"])
    assert "pad" in kernels.prim_func(wl, SPEC, template, stored).script()
    feeds = rng_inputs(model)
    ref = run_ort(model, feeds)
    for k, cfg in enumerate((default, stored)):
        log = tmp_path / f"{k}.jsonl"
        records.append(log, [records.make(SPEC.key, wl.key, template.NAME, cfg.to_json(),
                                          latencies=[1e-3])])
        got = tvmconv.compile(model, target="x86", log=log).model().run(feeds)
        assert_close(got[0], ref[0], what=f"{template.NAME} with {cfg}")


def test_records_older_than_a_knob_replay():
    """A record written before ``inline_pad`` existed takes its default, unless its other knobs
    rule that out: row padding (``pad_rows``) stores the padding, so such a record replays as it
    was measured. A record naming a knob the template lacks replays not at all."""
    wl = _workload(_depthwise(), "depthwise2d")

    def replayed(config):
        rec = records.make(SPEC.key, wl.key, "depthwise_direct", config, latencies=[1e-3])
        found = templates.from_record(rec, wl, SPEC)
        return None if found is None else found[1].to_json()

    old = {"tile_w": 7, "unroll_taps": 1}
    assert replayed({**old, "pad_rows": 0}) == {**old, "pad_rows": 0, "inline_pad": 1}
    assert replayed({**old, "pad_rows": 1}) == {**old, "pad_rows": 1, "inline_pad": 0}
    assert replayed({**old, "pad_rows": 0, "no_such_knob": 1}) is None


@pytest.mark.parametrize("case", list(BIG))
def test_default_schedule_structure(case):
    """Kernels of real size run threaded over outer axes and vectorised (blocked ones over
    channels)."""
    build, kind = BIG[case]
    wl = _workload(build(), kind)
    for template in _templates(wl):
        text = kernels.prim_func(wl, SPEC, template).script()
        missing = [m for m in ("T.parallel", "T.vectorized") if m not in text]
        assert not missing, f"{template.NAME} on {wl.key}: the kernel has no {missing}"


@pytest.mark.parametrize("size, dilation, default_tile", [
    ((28, 28), 2, 4),     # 14 outputs per residue: F(4,3)'s 2 wasted rows in 16 still pay
    ((33, 33), 3, 4),
    ((14, 14), 2, 4),
    ((28, 28), 6, None),  # 5 per residue: F(2,3) computes 6, 1.65x the pixels; direct ties it
    ((28, 28), 12, None),
])
def test_winograd_for_dilated_convs_where_its_tiles_pay(size, dilation, default_tile):
    """A dilated conv's residues are tiled apart: at sizes near d x m most tile pixels would fall
    past the edge, and then the direct template serves it."""
    from tvmconv.templates.x86 import winograd

    model = make_model(
        [helper.make_node("Conv", ["x", "w0"], ["a"]),
         helper.make_node("Conv", ["a", "w"], ["y"], pads=[dilation] * 4,
                          dilations=[dilation, dilation])],
        {"x": (1, 16, *size)}, ["y"], {"w0": weights((64, 16, 1, 1)), "w": weights((64, 64, 3, 3))})
    wl = [w for w in workloads(model, "x86-avx512") if w.kind == "conv2d"][-1]
    chosen = templates.templates_for(wl.kind, SPEC.family, wl, SPEC)[0]
    if default_tile is None:
        assert chosen.NAME == "conv2d_direct", wl.key
    else:
        assert chosen.NAME == winograd.NAME and winograd.default(wl, SPEC)["tile_m"] == default_tile


@pytest.mark.parametrize("target", ["x86-avx2", "x86-avx512"])
@pytest.mark.parametrize("width", [13, 55, 28])
def test_direct_conv_default_fills_the_registers(target, width):
    """The default register tile keeps enough independent sums to hide the FMA latency even when
    the width has no divisor near the ideal tile: a 13-wide image on AVX2 has only 1 or 13 pixels
    per tile, and a 1-pixel tile ran SqueezeNet's 1000-class 1x1 conv 30x slower."""
    from tvmconv.templates.x86 import conv2d

    spec = resolve(target)
    model = single("Conv", (1, 64, width, width), {"w": weights((1000, 64, 1, 1), 1, 0.1)}, ["w"])
    wl = next(w for w in workloads(model, target) if w.kind == "conv2d")
    cfg = conv2d.default(wl, spec)
    assert conv2d.accumulators(cfg, wl.params["out"][4], spec.lanes) >= 8, (wl.key, cfg)


@pytest.mark.parametrize("target", ["x86-avx512", "x86-avx2"])
def test_direct_conv_tiles_span_narrow_blocks_within_a_group(target):
    """RegNetX-1.6GF's groups of 24 channels are stored as blocks of 8: the default register tile
    spans a group's three blocks (one broadcast per three FMAs, not per one), no offered tile
    spans two groups, and the result matches onnxruntime."""
    from tvmconv.templates.x86 import conv2d

    spec = resolve(target)
    model = single("Conv", (1, 72, 9, 11), {"w": weights((72, 24, 3, 3), 3, 0.1)}, ["w"],
                   group=3, pads=[1, 1, 1, 1])
    wl = next(w for w in workloads(model, target) if w.kind == "conv2d")
    _, blocks, _, _, block = wl.params["out"]
    assert block == 8 and conv2d.default(wl, spec)["tile_oc"] == 24, wl.key
    spans = {t // block for t in conv2d.space(wl, spec).knobs["tile_oc"] if t > block}
    assert spans and all((blocks // wl.params["groups"]) % k == 0 for k in spans), spans
    feeds = rng_inputs(model)
    assert_close(run_tvmconv(model, feeds, target=target)[0], run_ort(model, feeds)[0])


@pytest.mark.parametrize("size, channels, block, tile_oc", [
    (13, 1000, 16, 16), (7, 48, 16, 16), (5, 32, 16, 16),
    (28, 24, 8, 24),  # three one-vector blocks in one tile
])
def test_pointwise_default_tiles_flattened_pixels(size, channels, block, tile_oc):
    """A 1x1 conv's default is the pointwise template, with register tiles of two vectors or
    more on AVX2: 1000 channels are padded to 63 blocks of 16 and 13 x 13 = 169 pixels take
    tiles of 6 (3% wasted), where the 13-wide rows allowed only 13 px x 8 channels or 4 px tiles
    wasting 23%; 24 channels (3 blocks of 8) take tiles of all three. Matches onnxruntime with
    the flattened view's ragged last tile."""
    from tvmconv.templates.x86 import pointwise

    spec = resolve("x86-avx2")
    model = single("Conv", (1, 64, size, size), {"w": weights((channels, 64, 1, 1), 6, 0.1)},
                   ["w"])
    wl = next(w for w in workloads(model, "x86-avx2") if w.kind == "conv2d")
    chosen = templates.templates_for(wl.kind, spec.family, wl, spec)[0]
    cfg = pointwise.default(wl, spec)
    assert chosen is pointwise and wl.params["out"][4] == block, wl.key
    assert cfg["tile_oc"] == tile_oc and cfg["tile_w"] * tile_oc // spec.lanes >= 8, cfg
    feeds = rng_inputs(model)
    assert_close(run_tvmconv(model, feeds, target="x86-avx2")[0], run_ort(model, feeds)[0])


@pytest.mark.parametrize("target, size, channels, chosen", [
    ("x86-avx512", 13, 64, "conv2d_direct"), ("x86-avx512", 28, 64, "conv2d_direct"),
    ("x86-avx512", 17, 64, "conv2d_pointwise"),  # no default row tile divides 17 pixels
    ("x86-avx512", 13, 48, "conv2d_pointwise"),  # blocks of one vector: tiles span them
    ("x86-avx2", 13, 48, "conv2d_pointwise"), ("aarch64", 13, 48, "conv2d_pointwise"),
])
def test_pointwise_conv_default_template_per_target(target, size, channels, chosen):
    """On AVX-512 a 1x1 conv whose rows the direct template's default tile divides runs on it by
    default (faster in whole networks there), unless its output blocks are one vector each (48
    channels as 3 x 16), which only this template's tiles span; the pointwise template stays a
    tuning choice, and the default where rows are ragged, on AVX2 and on ARM. Matches
    onnxruntime where it runs."""
    from tvmconv.templates.x86 import pointwise

    spec = resolve(target)
    model = single("Conv", (1, 64, size, size), {"w": weights((channels, 64, 1, 1), 6, 0.1)},
                   ["w"])
    wl = next(w for w in workloads(model, target) if w.kind == "conv2d")
    names = [t.NAME for t in templates.templates_for(wl.kind, spec.family, wl, spec)]
    assert names[0] == chosen and {"conv2d_direct", "conv2d_pointwise"} <= set(names), names
    if wl.params["out"][4] == spec.lanes:
        assert pointwise.default(wl, spec)["tile_oc"] > spec.lanes, wl.key
    if spec.family == "x86":
        feeds = rng_inputs(model)
        assert_close(run_tvmconv(model, feeds, target=target)[0], run_ort(model, feeds)[0])

@pytest.mark.parametrize("size, stride, sliced", [(14, 2, True), (19, 3, True), (56, 2, False)])
def test_strided_pointwise_conv_on_ragged_rows_is_sliced(size, stride, sliced):
    """A strided 1x1 conv whose direct row tiles would run past its 7-pixel rows becomes a slice
    of the pixels it reads and a stride-1 1x1 conv over flattened pixels; on 28-pixel rows, which
    whole tiles cover, it stays one conv. Both match onnxruntime."""
    model = single("Conv", (1, 64, size, size), {"w": weights((96, 64, 1, 1), 3, 0.1)}, ["w"],
                   strides=[stride, stride])
    found = workloads(model, "x86-avx2")
    conv = next(w for w in found if w.kind == "conv2d")
    assert (conv.params["strides"] == (1, 1)) == sliced == ("slice" in {w.kind for w in found})
    feeds = rng_inputs(model)
    assert_close(run_tvmconv(model, feeds, target="x86-avx2")[0], run_ort(model, feeds)[0])


@pytest.mark.parametrize("case", ["3x3 s2", "5x5 dilated", "3x3 s2 + residual"])
def test_conv_on_ragged_rows_runs_over_flattened_pixels(case):
    """A conv whose rows the direct template's tile does not divide (7 and 11 pixels on AVX2)
    runs over its output pixels as one row (``conv2d_flat``), each pixel's input found by a
    division: strided, dilated and padded windows, and a residual added in its epilogue (the
    operand viewed flat too), match onnxruntime."""
    from tvmconv.build import choose

    ic, oc, size, k = (24, 32, 11, 5) if case == "5x5 dilated" else (64, 96, 14, 3)
    attrs = ({"pads": [4, 4, 4, 4], "dilations": [2, 2]} if case == "5x5 dilated"
             else {"pads": [1, 0, 1, 1], "strides": [2, 2]})
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], **attrs)]
    inputs = {"x": (1, ic, size, size)}
    if case.endswith("residual"):
        nodes += [helper.make_node("Add", ["c", "r"], ["s"]),
                  helper.make_node("Relu", ["s"], ["y"])]
        inputs["r"] = (1, oc, 7, 7)
    else:
        nodes[0].output[0] = "y"
    model = make_model(nodes, inputs, ["y"], {"w": weights((oc, ic, k, k), 5, 0.1)})
    spec = resolve("x86-avx2")
    wl = next(w for w in workloads(model, "x86-avx2") if w.kind == "conv2d")
    assert choose(wl, spec, {})[0].NAME == "conv2d_flat", wl.key
    feeds = rng_inputs(model)
    assert_close(run_tvmconv(model, feeds, target="x86-avx2")[0], run_ort(model, feeds)[0])


@pytest.mark.parametrize("width", [7, 27])
def test_direct_conv_default_keeps_two_vector_blocks_whole_on_avx2(width):
    """On AVX2 a 16-channel block is two vectors: 7- and 27-wide maps, whose exact row tiles
    would hold only half a block, get a whole-block tile (ragged where needed), and the result
    still matches onnxruntime."""
    from tvmconv.templates.x86 import conv2d

    spec = resolve("x86-avx2")
    model = single("Conv", (1, 32, width, width), {"w": weights((48, 32, 1, 1), 4, 0.1)}, ["w"])
    wl = next(w for w in workloads(model, "x86-avx2") if w.kind == "conv2d")
    cfg = conv2d.default(wl, spec)
    assert cfg["tile_oc"] == wl.params["out"][4] == 16, (wl.key, cfg)
    assert conv2d.accumulators(cfg, 16, spec.lanes) > 4, cfg
    feeds = rng_inputs(model)
    assert_close(run_tvmconv(model, feeds, target="x86-avx2")[0], run_ort(model, feeds)[0])


@pytest.mark.parametrize("target", ["x86-avx2", "x86-avx512"])
@pytest.mark.parametrize("size, cin, cout, rows_outer, offered", [
    (28, 512, 128, 1, [1]),      # a large input, small weights: threads split the rows
    (7, 512, 2048, 0, [0, 1]),   # large weights, a small map: threads split the output channels
])
def test_direct_conv_default_thread_order_moves_fewer_bytes(target, size, cin, cout, rows_outer,
                                                            offered):
    """Threads over rows re-read the weights per row tile, threads over output channels re-read
    the input per block: the default picks the order with less traffic (ResNet-50's 1x1 convs);
    only rows where the input outgrows L2 and the weights do not (``thread_orders``). The conv it
    compiles matches onnxruntime."""
    from tvmconv.templates.x86 import conv2d

    model = single("Conv", (1, cin, size, size), {"w": weights((cout, cin, 1, 1), 5, 0.05)},
                   ["w"])
    wl = next(w for w in workloads(model, target) if w.kind == "conv2d")
    assert conv2d.default(wl, resolve(target))["rows_outer"] == rows_outer, wl.key
    assert conv2d.space(wl, resolve(target)).knobs["rows_outer"] == offered
    feeds = rng_inputs(model)
    assert_close(run_tvmconv(model, feeds, target=target)[0], run_ort(model, feeds)[0])


@pytest.mark.parametrize("groups, offered", [(1, [1]), (2, [0, 1]), (16, [0, 1])])
def test_grouped_conv_thread_orders_count_a_groups_input(groups, offered):
    """An output-channel block of a grouped conv reads only its group's input: with 1.6 MB in,
    threads over blocks stream 0.8 MB each with two groups, which L2 holds, so both orders stay
    offered; ungrouped, each thread would stream it all."""
    from tvmconv.templates.x86 import conv2d

    model = single("Conv", (1, 128, 56, 56), {"w": weights((128, 128 // groups, 3, 3), 6, 0.05)},
                   ["w"], pads=[1, 1, 1, 1], group=groups)
    wl = next(w for w in workloads(model, "x86-avx512") if w.kind == "conv2d")
    assert conv2d.space(wl, resolve("x86-avx512")).knobs["rows_outer"] == offered, wl.key


@pytest.mark.parametrize("size, cin, cout, pixels_outer, offered", [
    (56, 256, 64, 1, [1]),      # 3.2 MB of input: re-read per channel block, it would come from L3
    (28, 64, 256, 0, [0, 1]),   # 0.2 MB of input, 4 KB of weights per block: threads split channels
    (14, 1024, 256, 1, [0, 1]),  # 64 KB of weights per block (past L1), 1 MB in all: split pixels
    (7, 512, 2048, 0, [0, 1]),  # 4 MB of weights: threads split the channels
])
def test_pointwise_default_thread_order(size, cin, cout, pixels_outer, offered, tmp_path):
    """The pointwise template's threads run over pixel tiles or channel blocks by where the input
    and weights fit (ResNet-50's 1x1 convs); only over pixel tiles where the input outgrows L2
    and the weights do not (``thread_splits``). Each order offered matches onnxruntime."""
    from tvmconv.templates.x86 import pointwise

    spec = resolve("x86-avx2")
    model = single("Conv", (1, cin, size, size), {"w": weights((cout, cin, 1, 1), 7, 0.05)},
                   ["w"])
    wl = next(w for w in workloads(model, "x86-avx2") if w.kind == "conv2d")
    cfg = pointwise.default(wl, spec)
    assert cfg["pixels_outer"] == pixels_outer, (wl.key, cfg)
    assert pointwise.space(wl, spec).knobs["pixels_outer"] == offered
    feeds = rng_inputs(model)
    ref = run_ort(model, feeds)[0]
    for order in offered:
        log = records.make(spec.key, wl.key, pointwise.NAME,
                           {**cfg.to_json(), "pixels_outer": order}, latencies=[1e-3])
        path = tmp_path / f"order{order}.jsonl"
        records.append(path, [log])
        got = tvmconv.compile(model, target="x86-avx2", log=path).model().run(feeds)[0]
        assert_close(got, ref, what=f"pixels_outer={order}")


@pytest.mark.parametrize("target", ["x86-avx2", "x86-avx512"])
def test_ragged_row_tiles_on_prime_widths(target):
    """19 and 23 columns have no divisor from 4 to 8: the direct and depthwise templates then
    compute whole tiles of a non-divisor width into zero padding and store the real columns."""
    nodes = [helper.make_node("Conv", ["x", "w1"], ["a"], pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["a"], ["r"]),
             helper.make_node("Conv", ["r", "wd"], ["d"], group=32, pads=[1, 1, 1, 1]),
             helper.make_node("Conv", ["d", "w2"], ["y"], pads=[0, 2, 0, 2])]  # 23 columns
    model = make_model(nodes, {"x": (1, 16, 11, 19)}, ["y"], {
        "w1": weights((32, 16, 3, 3), 1, 0.1), "wd": weights((32, 1, 3, 3), 2, 0.3),
        "w2": weights((24, 32, 1, 1), 3, 0.2)})
    spec = resolve(target)
    ragged = []
    for wl in workloads(model, target):
        if wl.kind in ("conv2d", "depthwise2d"):
            template = templates.templates_for(wl.kind, spec.family, wl, spec)[-1]
            cfg = template.default(wl, spec)
            if wl.params["out"][3] % cfg["tile_w"]:
                ragged.append(wl.kind)
    assert sorted(ragged) == ["conv2d", "conv2d", "depthwise2d"], ragged
    feeds = rng_inputs(model)
    ref = run_ort(model, feeds)
    assert_close(run_tvmconv(model, feeds, target=target)[0], ref[0])


@pytest.mark.parametrize("target", ["x86-avx2", "x86-avx512"])
def test_winograd_gemm_tiles_on_a_prime_tile_count(target):
    """DenseNet's 3x3 convs at 197x261 have 33-column maps: 17 F(2,3) tiles a row, whose only
    divisors gave a 1-tile GEMM register tile. The row is now computed in whole GEMM tiles of a
    non-divisor count, the tiles past the edge reading zero padding. (7 rows: too few for
    F(4,3), which AVX2 would pick on 25 of them.)"""
    from tvmconv.templates.x86 import winograd

    spec = resolve(target)
    model = make_model([helper.make_node("Conv", ["x", "w"], ["y"], pads=[1, 1, 1, 1])],
                       {"x": (1, 32, 7, 33)}, ["y"], {"w": weights((32, 32, 3, 3), 1, 0.05)})
    wl = next(w for w in workloads(model, target) if w.kind == "conv2d")
    template = templates.templates_for(wl.kind, spec.family, wl, spec)[0]
    cfg = winograd.default(wl, spec)
    assert template.NAME == winograd.NAME and cfg["tile_m"] == 2, (wl.key, template.NAME)
    assert 17 % cfg["tile_p"] and cfg["tile_p"] > 1, cfg
    feeds = rng_inputs(model)
    assert_close(run_tvmconv(model, feeds, target=target)[0], run_ort(model, feeds)[0])


@pytest.mark.parametrize("size, tile_m, tile_p", [(56, 4, 5), (28, 4, 4), (14, 4, 4), (7, 2, 4)])
def test_winograd_default_keeps_two_vector_blocks_whole_on_avx2(size, tile_m, tile_p, tmp_path):
    """On AVX2 the Winograd GEMM tile holds a whole 16-channel block (two vectors), ragged where
    the row's tile count has no divisor that fits (14 F(4,3) tiles a row at 56 wide: 5 x 16, not
    the exact 7 x 8); 14x14 maps take F(4,3), which computes 16 x 16 with fewer products than
    F(2,3); and the conv compiled with it matches onnxruntime."""
    from tvmconv.templates.x86 import winograd

    spec = resolve("x86-avx2")
    model = single("Conv", (1, 32, size, size), {"w": weights((32, 32, 3, 3), 1, 0.05)}, ["w"],
                   pads=[1, 1, 1, 1])
    wl = next(w for w in workloads(model, "x86-avx2") if w.kind == "conv2d")
    cfg = winograd.default(wl, spec)
    assert (cfg["tile_m"], cfg["tile_p"], cfg["tile_oc"]) == (tile_m, tile_p, 16), (wl.key, cfg)
    log = tmp_path / "winograd.jsonl"
    records.append(log, [records.make(spec.key, wl.key, winograd.NAME, cfg.to_json(),
                                      latencies=[1e-3])])
    feeds = rng_inputs(model)
    got = tvmconv.compile(model, target="x86-avx2", log=log).model().run(feeds)
    assert_close(got[0], run_ort(model, feeds)[0])


@pytest.mark.parametrize("size, tile_p", [(56, 7), (112, 7), (28, 7), (32, 8)])
def test_winograd_default_fills_half_the_registers_on_avx512(size, tile_p):
    """With AVX-512's 32 registers the Winograd GEMM tile holds at most 16 accumulators (14 F(4,3)
    tiles a row at 56 wide: 7 x 2 vectors, which ran 5-13% faster inside five networks than the
    28 of 14 x 2); 28 stay in the tuner's space. Matches onnxruntime where it runs."""
    from tvmconv.templates.x86 import winograd

    spec = resolve("x86-avx512")
    model = single("Conv", (1, 64, size, size), {"w": weights((64, 64, 3, 3), 1, 0.05)}, ["w"],
                   pads=[1, 1, 1, 1])
    wl = next(w for w in workloads(model, spec.key) if w.kind == "conv2d")
    cfg = winograd.default(wl, spec)
    assert (cfg["tile_m"], cfg["tile_p"], cfg["tile_oc"]) == (4, tile_p, 32), (wl.key, cfg)
    assert any(c["tile_p"] * c["tile_oc"] // 16 > 16 for c in winograd.space(wl, spec))
    feeds = rng_inputs(model)
    assert_close(run_tvmconv(model, feeds, target=spec.key)[0], run_ort(model, feeds)[0])


@pytest.mark.parametrize("size, dilation, tile_m, rows", [
    ((7, 7), 1, 2, 2), ((4, 4), 1, 2, 2), ((6, 4), 1, 2, 3), ((8, 8), 2, 4, 2)])
def test_winograd_tile_spans_rows_of_a_narrow_grid(size, dilation, tile_m, rows):
    """With AVX-512, where a whole row of F(2,3) tiles and a whole channel block leave 16
    accumulators half empty (ResNet-18's 512x7x7 layers: 4 tiles x 2 vectors), the GEMM register
    tile takes rows of tiles too, each weight vector loaded serving them all (0.92x the time
    inside ResNet-18); dilated tiles interleave, and span rows alike. Matches onnxruntime."""
    from tvmconv.layers.winograd import tiles_along
    from tvmconv.templates.x86 import winograd

    spec = resolve("x86-avx512")
    model = single("Conv", (1, 64, *size), {"w": weights((64, 64, 3, 3), 1, 0.05)}, ["w"],
                   pads=[dilation] * 4, dilations=[dilation] * 2)
    wl = next(w for w in workloads(model, spec.key) if w.kind == "conv2d")
    cfg = winograd.default(wl, spec)
    per_row = tiles_along(size[1], dilation, tile_m)
    assert (cfg["tile_m"], cfg["tile_rows"], cfg["tile_p"], cfg["tile_oc"]) == (
        tile_m, rows, per_row, wl.params["out"][4]), (wl.key, cfg)
    feeds = rng_inputs(model)
    assert_close(run_tvmconv(model, feeds, target=spec.key)[0], run_ort(model, feeds)[0])


@pytest.mark.parametrize("channels, size, target, f43", [
    (64, 14, "x86-avx512", True),    # F(4,3) weights 0.6 MB: they stay cached
    (256, 14, "x86-avx512", False),  # 9.4 MB read by only 16 tiles: bound by memory
    (256, 14, "x86-avx2", True),     # half the flops per second: 16 tiles keep up with memory
    (256, 28, "x86-avx512", True),   # 49 tiles per weight
])
def test_winograd_f43_when_its_weights_pay(channels, size, target, f43):
    """F(4,3) stores 4x the weights; it is offered when they stay cached or serve enough tiles."""
    from tvmconv.templates.x86 import winograd

    spec = resolve(target)
    model = single("Conv", (1, channels, size, size), {
        "w": weights((channels, channels, 3, 3), 1, 0.05)}, ["w"], pads=[1, 1, 1, 1])
    wl = next(w for w in workloads(model, target) if w.kind == "conv2d")
    tiles = winograd.space(wl, spec).knobs["tile_m"]
    assert (4 in tiles) == f43 and 2 in tiles, (wl.key, tiles)


@pytest.mark.parametrize("size, target, winograd_first", [
    ((5, 6), "x86-avx512", False),  # 9 F(2,3) tiles: the direct template by default
    ((7, 6), "x86-avx512", True),   # 12 tiles
    ((12, 12), "x86-avx512", True),  # 9 F(4,3) tiles
    ((6, 6), "x86-avx512", True),   # 9 F(2,3) tiles, none partial
    ((4, 4), "x86-avx512", True),   # 4: the GEMM tile spans both rows of tiles
    ((6, 4), "x86-avx512", True),   # 6: all three rows
    ((5, 6), "x86-avx2", True),     # measured only with AVX-512
])
def test_winograd_default_only_with_enough_tiles(size, target, winograd_first):
    """With AVX-512, a 3x3 conv whose F(2,3) GEMMs have few tiles (fewer than 10, or 9 covering
    the map exactly) runs the direct template by default, unless its GEMM register tile can span
    rows of tiles; Winograd stays in the space, for the tuner."""
    spec = resolve(target)
    model = single("Conv", (1, 64, *size), {"w": weights((64, 64, 3, 3), 1, 0.05)}, ["w"],
                   pads=[1, 1, 1, 1])
    wl = next(w for w in workloads(model, target) if w.kind == "conv2d")
    names = [t.NAME for t in templates.templates_for(wl.kind, spec.family, wl, spec)]
    assert "conv2d_winograd" in names, names
    assert (names[0] == "conv2d_winograd") == winograd_first, names


@pytest.mark.parametrize("target", ["x86-avx2", "x86-avx512"])
@pytest.mark.parametrize("kernel, size", [((1, 7), (17, 17)), ((7, 1), (17, 17)),
                                          ((5, 5), (35, 35)), ((1, 3), (1, 123))])
def test_winograd_default_for_kernels_beyond_3x3(target, kernel, size):
    """Inception-v3's 1 x 7, 7 x 1 and 5 x 5 convs and M5's 1-D ones run Winograd F(m, r) along
    the axes their kernel spans by default: alone, F(4,7) ran Inception's 17x17 1 x 7 and 7 x 1
    layers 1.4-2.5x faster than the direct template (AVX-512 and AVX2), F(4x4,5x5) its 35x35 5 x 5
    1.2-2.5x, F(4,3) M5's 1 x 3 1.4-2.2x; the whole net 1.23x (interleaved). The weights are
    transformed as the artefact loads, so this compares the whole path with onnxruntime."""
    spec = resolve(target)
    model = single("Conv", (1, 48, *size), {"w": weights((64, 48, *kernel), 1, 0.05),
                                            "b": weights(64, 2)}, ["w", "b"],
                   pads=[kernel[0] // 2, kernel[1] // 2] * 2)
    wl = next(w for w in workloads(model, target) if w.kind == "conv2d")
    chosen = templates.templates_for(wl.kind, spec.family, wl, spec)[0]
    assert chosen.NAME == "conv2d_winograd", (wl.key, chosen.NAME)
    assert chosen.default(wl, spec)["tile_m"] == 4, chosen.default(wl, spec)
    feeds = rng_inputs(model)
    assert_close(run_tvmconv(model, feeds, target=target)[0], run_ort(model, feeds)[0])


def test_winograd_not_for_few_output_channels():
    """Winograd's GEMMs vectorise over output channels: CycleGAN's last 32 -> 3 7x7 conv ran 10x
    slower that way than the direct template."""
    model = single("Conv", (1, 32, 40, 40), {"w": weights((3, 32, 7, 7), 1, 0.05)}, ["w"],
                   pads=[3, 3, 3, 3])
    for target in ("x86-avx2", "x86-avx512", "aarch64"):
        spec = resolve(target)
        wl = next(w for w in workloads(model, target) if w.kind == "conv2d")
        names = [t.NAME for t in templates.templates_for(wl.kind, spec.family, wl, spec)]
        assert names and "conv2d_winograd" not in names, (target, names)


def test_winograd_tiles_bounded_by_their_error():
    """A 7x7 conv's F(4x4,7x7) tiles (10 x 10 transformed) lose float32 accuracy: a 59-channel
    one differed from onnxruntime by 1.2e-4. 2-D tiles stop at 8 x 8 points (F(2,7), F(4,5)),
    1-D ones at 10 (F(4,7))."""
    from tvmconv.templates.x86 import winograd

    spec = resolve("x86-avx2")
    tiles = {}
    for kernel in ((7, 7), (5, 5), (1, 7)):
        model = single("Conv", (1, 59, 29, 24), {"w": weights((44, 59, *kernel), 1, 0.1)},
                       ["w"], pads=[1, 3, 5, 0])
        wl = next(w for w in workloads(model, spec.key) if w.kind == "conv2d")
        tiles[kernel] = winograd.space(wl, spec).knobs["tile_m"]
        if kernel == (7, 7):
            feeds = rng_inputs(model)
            assert_close(run_tvmconv(model, feeds, target=spec.key)[0], run_ort(model, feeds)[0])
    assert tiles == {(7, 7): [2], (5, 5): [4, 2], (1, 7): [4, 2]}, tiles


@pytest.mark.parametrize("kernel, c_in, c_out, shape, attrs", [
    ((3, 3), 200, 208, (1, 5, 6), {"pads": [1, 1, 1, 1]}),
    ((3, 5), 144, 240, (2, 9, 11), {"pads": [1, 2, 0, 2], "strides": [2, 2], "dilations": [1, 2]}),
    ((1, 1), 1100, 320, (1, 3, 7), {}),
    ((3, 3), 512, 512, (1, 4, 4), {"pads": [1, 1, 1, 1], "group": 2}),
])
def test_streamed_tiles(kernel, c_in, c_out, shape, attrs, tmp_path):
    """Where weights stream, the direct template keeps each input-channel block's weights in L1
    for every row tile and prefetches the next block's a few lines at a time
    (``conv2d.streamed_tile``): the results stay onnxruntime's for its default and other tiles,
    on odd shapes, strides, dilations, groups and a batch of 2."""
    from tvmconv.templates.x86 import conv2d as direct

    batch, *size = shape
    group = attrs.get("group", 1)
    model = single("Conv", (batch, c_in, *size),
                   {"w": weights((c_out, c_in // group, *kernel), 1, 0.05)}, ["w"], **attrs)
    wl = _workload(model, "conv2d")
    feeds = rng_inputs(model)
    ref = run_ort(model, feeds)[0]
    streamed = [c for c in _configs(direct, wl, 12) if direct.streams_by_blocks(wl, SPEC, c)]
    assert direct.default(wl, SPEC) in streamed, wl.key
    for cfg in streamed[:4]:
        assert "kernel_next" in kernels.prim_func(wl, SPEC, direct, cfg).script(), cfg
        log = tmp_path / "log.jsonl"
        log.unlink(missing_ok=True)
        records.append(log, [records.make(SPEC.key, wl.key, direct.NAME, cfg.to_json(),
                                          latencies=[1e-3])])
        got = tvmconv.compile(model, target="x86", log=log).model().run(feeds)[0]
        assert_close(got, ref, what=str(cfg))


@pytest.mark.parametrize("kernel, c_in, shape, prefetched", [
    ((3, 3), 256, (1, 4, 4), True),    # 2.4 MB of weights, 16 output pixels: streamed
    ((1, 1), 1280, (1, 5, 5), True),   # 1.3 MB, the 1x1 templates
    ((3, 3), 256, (1, 9, 8), False),   # 72 pixels per weight hide the stream
    ((3, 3), 256, (5, 4, 4), False),   # and so do 80 over a batch of 5
    ((3, 3), 96, (1, 4, 3), False),    # 0.3 MB stay in L2
])
def test_streamed_weights_are_prefetched(kernel, c_in, shape, prefetched, tmp_path):
    """Weights that outgrow L2 and serve few output pixels each get software prefetches in every
    template's micro-kernel (``templates.x86.conv2d.weights_streamed``); Winograd's GEMMs
    prefetch their next block of taps always. The results stay those of onnxruntime whichever
    template computes the conv."""
    from tvmconv.templates.x86 import winograd

    batch, *size = shape
    model = single("Conv", (batch, c_in, *size), {"w": weights((256, c_in, *kernel), 1, 0.05)},
                   ["w"], pads=[kernel[0] // 2, kernel[1] // 2] * 2)
    wl = _workload(model, "conv2d")
    feeds = rng_inputs(model)
    ref = run_ort(model, feeds)[0]
    for template in _templates(wl):
        cfg = template.default(wl, SPEC)
        script = kernels.prim_func(wl, SPEC, template, cfg).script()
        assert ("T.prefetch" in script) == (prefetched or template is winograd), template.NAME
        if prefetched or template is winograd:
            log = tmp_path / f"{template.NAME}.jsonl"
            records.append(log, [records.make(SPEC.key, wl.key, template.NAME, cfg.to_json(),
                                              latencies=[1e-3])])
            got = tvmconv.compile(model, target="x86", log=log).model().run(feeds)[0]
            assert_close(got, ref, what=template.NAME)
