"""Every layer family against onnxruntime through small ONNX graphs compiled for x86, default
schedules applied; shapes chosen to hit the awkward paths (1x1 images, prime channel counts that do
not fill a vector block, stride > kernel, big or one-sided pads, groups, fused epilogues)."""

from __future__ import annotations

import re

import numpy as np
import onnx
import pytest
from conftest import (
    assert_close,
    check_vs_ort,
    image_to_image,
    make_model,
    rng_inputs,
    run_tvmconv,
    scalar_after_reduce,
    single,
    weights,
    workloads,
)
from onnx import helper

import tvmconv
from tvmconv.target import resolve


def _he(shape, seed=1):
    """Weights scaled by fan-in, so deep reductions stay O(1) and relative errors meaningful."""
    return weights(shape, seed, float(np.sqrt(2.0 / np.prod(shape[1:]))))


# -- Conv ---------------------------------------------------------------------------------------

CONVS = {
    # id: (input shape, weight shape, bias?, attributes)
    "3x3_pad1": ((1, 8, 10, 10), (16, 8, 3, 3), True, {"pads": [1, 1, 1, 1]}),
    "image_1x1": ((1, 7, 1, 1), (13, 7, 1, 1), True, {}),
    "image_1x1_k3_pad1": ((1, 3, 1, 1), (5, 3, 3, 3), False, {"pads": [1, 1, 1, 1]}),
    "prime_13_to_17": ((1, 13, 9, 9), (17, 13, 3, 3), True, {}),
    "stride3_kernel2": ((1, 3, 11, 11), (7, 3, 2, 2), True, {"strides": [3, 3]}),
    "pad2_kernel3": ((1, 4, 6, 6), (5, 4, 3, 3), False, {"pads": [2, 2, 2, 2]}),
    "dilation2": ((1, 4, 12, 12), (8, 4, 3, 3), True, {"dilations": [2, 2], "pads": [2, 2, 2, 2]}),
    "dilation_1x3": ((1, 3, 10, 14), (4, 3, 3, 3), False, {"dilations": [1, 3]}),
    "asym_pads": ((1, 5, 8, 9), (6, 5, 3, 3), True, {"pads": [0, 1, 2, 3]}),
    "same_upper_s2": ((1, 3, 10, 10), (4, 3, 4, 4), True, {"auto_pad": "SAME_UPPER",
                                                                "strides": [2, 2]}),
    "same_lower": ((1, 3, 9, 9), (4, 3, 2, 4), False, {"auto_pad": "SAME_LOWER"}),
    "valid_s2": ((1, 6, 9, 9), (8, 6, 3, 3), True, {"auto_pad": "VALID", "strides": [2, 2]}),
    "groups2": ((1, 8, 8, 8), (12, 4, 3, 3), True, {"group": 2, "pads": [1, 1, 1, 1]}),
    "groups4": ((1, 16, 7, 7), (8, 4, 3, 3), False, {"group": 4}),
    "groups3_prime": ((1, 9, 6, 6), (21, 3, 3, 3), True, {"group": 3, "pads": [1, 1, 1, 1]}),
    "depthwise_s2": ((1, 32, 9, 9), (32, 1, 3, 3), True, {"group": 32, "strides": [2, 2],
                                                              "pads": [1, 1, 1, 1]}),
    "depthwise_mult2": ((1, 8, 8, 8), (16, 1, 3, 3), True, {"group": 8, "pads": [1, 1, 1, 1]}),
    "depthwise_prime7_k5": ((1, 7, 6, 6), (7, 1, 5, 5), False, {"group": 7, "pads": [2, 2, 2, 2]}),
    # 5 outputs per input channel in blocks of 4: a block reads one or two input channels
    "depthwise_mult5_s2": ((2, 4, 24, 28), (20, 1, 1, 5), False, {"group": 4, "strides": [2, 2],
                                                                  "pads": [0, 0, 0, 4]}),
    "pointwise_s2": ((1, 24, 8, 8), (40, 24, 1, 1), True, {"strides": [2, 2]}),
    "kernel_1x7": ((1, 5, 9, 11), (6, 5, 1, 7), True, {"pads": [0, 3, 0, 3]}),
    "kernel_5x2_s21": ((1, 4, 12, 7), (3, 4, 5, 2), False, {"strides": [2, 1]}),
    "batch2": ((2, 3, 8, 8), (16, 3, 3, 3), True, {"pads": [1, 1, 1, 1]}),
    "stem_7x7_s2": ((1, 3, 32, 32), (64, 3, 7, 7), False, {"strides": [2, 2],
                                                               "pads": [3, 3, 3, 3]}),
    # taps that read only padding (passes.taps): DeepLab's atrous pyramid on a small map, cropped
    # to its centre tap or split into bands of rows and columns that read the same taps
    "aspp_d24_centre_only": ((1, 20, 14, 14), (24, 20, 3, 3), True,
                             {"dilations": [24, 24], "pads": [24, 24, 24, 24]}),
    "aspp_d12_bands": ((1, 20, 14, 14), (24, 20, 3, 3), True,
                       {"dilations": [12, 12], "pads": [12, 12, 12, 12]}),
    "dilated_d4_kept_whole": ((1, 8, 10, 12), (8, 8, 3, 3), True,
                              {"dilations": [4, 4], "pads": [4, 4, 4, 4]}),
    "dilated_bands_s2_asym": ((2, 9, 21, 19), (10, 9, 3, 5), False,
                              {"dilations": [10, 7], "strides": [2, 1], "pads": [10, 14, 9, 14]}),
    "depthwise_d6_bands": ((1, 16, 9, 11), (16, 1, 3, 3), True,
                           {"group": 16, "dilations": [6, 6], "pads": [6, 6, 6, 6]}),
    "outputs_reading_only_padding": ((1, 3, 5, 5), (4, 3, 3, 3), True, {"pads": [4, 4, 4, 4]}),
}


@pytest.mark.parametrize("case", list(CONVS), ids=list(CONVS))
def test_conv(case):
    x_shape, w_shape, bias, attrs = CONVS[case]
    consts = {"w": _he(w_shape)}
    if bias:
        consts["b"] = weights(w_shape[0], seed=2, scale=0.1)
    check_vs_ort(single("Conv", x_shape, consts, list(consts), **attrs))


def test_taps_reading_only_padding_are_dropped():
    """A dilated conv whose outer taps read only padding runs as the conv of its live taps: dilated
    by 24 on a 14x14 map, one 1x1 conv; by 12, a conv per band pair of rows and columns (the
    centre 10x10 outputs read the centre tap only). Dilated by 4 on a 10x12 map, 43% of its
    multiply-adds read padding, but its nine band pairs would read 49 taps' weights for 9 to
    save them on 120 pixels: it stays one conv (DeepLabV3 at 75x91 ran 13% faster so)."""
    def kernels(case):
        x_shape, w_shape, bias, attrs = CONVS[case]
        model = single("Conv", x_shape, {"w": _he(w_shape), "b": weights(w_shape[0], seed=2)},
                       ["w", "b"], **attrs)
        return sorted((wl.params["kernel_hw"], wl.params["out"][2:4])
                      for wl in workloads(model) if wl.kind == "conv2d")

    assert kernels("aspp_d24_centre_only") == [((1, 1), (14, 14))]
    assert ((1, 1), (10, 10)) in kernels("aspp_d12_bands")
    assert len(kernels("aspp_d12_bands")) == 9
    assert max(k for k, _ in kernels("aspp_d12_bands")) == (2, 2)
    assert kernels("dilated_d4_kept_whole") == [((3, 3), (10, 12))]


def _conv_node(x, out, w_name, **attrs):
    return helper.make_node("Conv", [x, w_name], [out], **attrs)


def _bn_consts(c, prefix="bn", seed=3):
    rng = np.random.default_rng(seed)
    return {f"{prefix}_s": rng.uniform(0.5, 1.5, c).astype(np.float32),
            f"{prefix}_b": rng.uniform(-0.2, 0.2, c).astype(np.float32),
            f"{prefix}_m": rng.uniform(-0.5, 0.5, c).astype(np.float32),
            f"{prefix}_v": rng.uniform(0.5, 2.0, c).astype(np.float32)}


def _bn_node(x, out, prefix="bn"):
    return helper.make_node("BatchNormalization", [x] + [f"{prefix}_{k}" for k in "sbmv"], [out],
                            epsilon=1e-3)


def _epilogue_conv_bn_relu():
    c = 11
    nodes = [_conv_node("x", "c", "w", pads=[1, 1, 1, 1]), _bn_node("c", "n"),
             helper.make_node("Relu", ["n"], ["y"])]
    return make_model(nodes, {"x": (1, 5, 7, 7)}, ["y"], {"w": _he((c, 5, 3, 3)), **_bn_consts(c)})


def _epilogue_residual_relu():
    """The ResNet block tail: conv -> BN -> add the block input -> relu, one fused kernel."""
    c = 16
    nodes = [_conv_node("x", "c", "w", pads=[1, 1, 1, 1]), _bn_node("c", "n"),
             helper.make_node("Add", ["n", "x"], ["s"]), helper.make_node("Relu", ["s"], ["y"])]
    return make_model(nodes, {"x": (1, c, 6, 6)}, ["y"], {"w": _he((c, c, 3, 3)),
                                                          **_bn_consts(c)})


def _epilogue_residual_two_convs():
    """Residual add of two conv outputs (the add's left operand is not the last conv)."""
    nodes = [_conv_node("x", "a", "w1", pads=[1, 1, 1, 1]),
             _conv_node("x", "b", "w2"),
             helper.make_node("Add", ["b", "a"], ["s"]), helper.make_node("Relu", ["s"], ["y"])]
    return make_model(nodes, {"x": (1, 6, 5, 5)}, ["y"], {"w1": _he((10, 6, 3, 3)),
                                                          "w2": _he((10, 6, 1, 1), seed=4)})


def _epilogue_relu6():
    nodes = [_conv_node("x", "c", "w", group=6, pads=[1, 1, 1, 1]),
             helper.make_node("Clip", ["c", "lo", "hi"], ["y"])]
    return make_model(nodes, {"x": (1, 6, 8, 8)}, ["y"], {
        "w": _he((6, 1, 3, 3)), "lo": np.float32(0.0), "hi": np.float32(0.5)})


def _epilogue_affine_sigmoid():
    """Per-channel mul and add after a conv fold into its weights; the sigmoid stays fused."""
    nodes = [_conv_node("x", "c", "w"), helper.make_node("Mul", ["c", "s"], ["m"]),
             helper.make_node("Add", ["m", "t"], ["a"]),
             helper.make_node("Sigmoid", ["a"], ["y"])]
    return make_model(nodes, {"x": (1, 3, 5, 5)}, ["y"], {
        "w": _he((9, 3, 1, 1)), "s": weights((9, 1, 1), 5), "t": weights((1, 9, 1, 1), 6)})


def _epilogue_spatial_operand():
    """An operand that varies over H and W (not per channel) must not be folded into the bias."""
    nodes = [_conv_node("x", "c", "w", pads=[1, 1, 1, 1]),
             helper.make_node("Add", ["c", "p"], ["a"]), helper.make_node("Mul", ["a", "q"], ["y"])]
    return make_model(nodes, {"x": (1, 8, 6, 7)}, ["y"], {
        "w": _he((16, 8, 3, 3)), "p": weights((1, 1, 6, 7), 7), "q": weights((16, 6, 7), 8)})


def _epilogue_shared_output():
    """A conv output read by two consumers and also a graph output: nothing may fuse into it."""
    nodes = [_conv_node("x", "c", "w"), helper.make_node("Relu", ["c"], ["r"]),
             helper.make_node("Sigmoid", ["c"], ["s"]), helper.make_node("Add", ["r", "s"], ["y"])]
    return make_model(nodes, {"x": (1, 4, 5, 5)}, ["y", "c"], {"w": _he((8, 4, 3, 3))})


def _epilogue_residual_second_operand():
    """MobileNetV2's block tail: Add(block input, conv) with the conv as the add's second operand,
    the block input read by others too."""
    nodes = [_conv_node("x", "a", "w1", pads=[1, 1, 1, 1]), helper.make_node("Relu", ["a"], ["r"]),
             _conv_node("r", "b", "w2"), helper.make_node("Add", ["r", "b"], ["y"])]
    return make_model(nodes, {"x": (1, 6, 5, 5)}, ["y"], {"w1": _he((16, 6, 3, 3)),
                                                          "w2": _he((16, 16, 1, 1), seed=4)})


def _epilogue_atrous_bands():
    """Convs whose outer taps mostly read padding (passes.taps) with fused epilogues: BN and ReLU
    per band; a residual operand that varies over the pixels; a dilation that leaves one tap."""
    c = 12
    nodes = [_conv_node("x", "a", "w1", dilations=[9, 9], pads=[9, 9, 9, 9]),
             _bn_node("a", "n"), helper.make_node("Relu", ["n"], ["r"]),
             _conv_node("r", "b", "w2", dilations=[8, 8], pads=[8, 8, 8, 8]),
             helper.make_node("Add", ["b", "x"], ["s"]),
             _conv_node("s", "y", "w3", dilations=[20, 20], pads=[20, 20, 20, 20])]
    return make_model(nodes, {"x": (1, c, 11, 10)}, ["y"], {
        "w1": _he((c, c, 3, 3)), "w2": _he((c, c, 3, 3), seed=4), "w3": _he((c, c, 3, 3), seed=5),
        **_bn_consts(c)})


def _epilogue_atrous_bands_pixel_constants():
    """Constants of rank below 3 broadcast as numpy does, along the pixels ((H, W) and (W,)):
    fused into a conv whose taps split it into bands, each band would read them at its own
    positions, so that conv keeps its dead taps."""
    c, h, w = 8, 11, 10
    rng = np.random.default_rng(6)
    nodes = [_conv_node("x", "a", "w1", dilations=[9, 9], pads=[9, 9, 9, 9]),
             helper.make_node("Mul", ["a", "hw"], ["m"]),
             helper.make_node("Add", ["m", "row"], ["y"])]
    return make_model(nodes, {"x": (1, c, h, w)}, ["y"], {
        "w1": _he((c, c, 3, 3)), "hw": rng.standard_normal((h, w)).astype(np.float32),
        "row": rng.standard_normal(w).astype(np.float32)})


EPILOGUES = [_epilogue_conv_bn_relu, _epilogue_residual_relu, _epilogue_residual_two_convs,
             _epilogue_relu6, _epilogue_affine_sigmoid, _epilogue_spatial_operand,
             _epilogue_shared_output, _epilogue_residual_second_operand, _epilogue_atrous_bands,
             _epilogue_atrous_bands_pixel_constants]


@pytest.mark.parametrize("build", EPILOGUES, ids=lambda f: f.__name__[len("_epilogue_"):])
def test_conv_epilogue(build):
    check_vs_ort(build())


def test_residual_add_fuses_whichever_operand_the_conv_is():
    kinds = [wl.kind for wl in workloads(_epilogue_residual_second_operand())]
    assert kinds.count("elementwise") == 0, kinds


@pytest.mark.parametrize("target", ["x86-avx2", "x86-avx512"])
def test_rgb_input_is_read_in_place(target):
    """An input with fewer channels than a vector (an RGB image) is read as NCHW1c, which has the
    bytes of NCHW: the first conv needs no layout_transform kernel in front of it."""
    model = make_model([_conv_node("x", "c", "w", pads=[1, 1, 1, 1]),
                        helper.make_node("Relu", ["c"], ["y"])],
                       {"x": (1, 3, 12, 11)}, ["y"], {"w": _he((16, 3, 3, 3))})
    found = workloads(model, target)
    assert found[0].kind == "conv2d" and found[0].params["data"] == (1, 3, 12, 11, 1), found[0]
    check_vs_ort(model)


@pytest.mark.parametrize("target", ["x86-avx2", "x86-avx512"])
@pytest.mark.parametrize("channels, kernel, strides, blocked", [
    (40, (3, 3), 1, True), (40, (1, 7), 1, True), (40, (1, 1), 1, False), (40, (3, 3), 2, False),
    (37, (3, 3), 1, False)])
def test_wide_input_moved_into_blocks_for_spatial_convs(target, channels, kernel, strides,
                                                        blocked):
    """An input of many channels (a network that starts from a feature map) is moved into
    channel blocks before a stride-1 spatial conv: read in place as NCHW1c, Winograd's transforms
    ran one channel at a time (a lone 64 -> 64 3x3 conv at 56x56 2.7x slower end to end). A 1x1
    or strided conv still reads it in place, and so does one that would read the blocks a
    channel at a time anyway (37 channels: 1.13-1.38x faster without the transform)."""
    model = make_model([_conv_node("x", "c", "w", pads=[kernel[0] // 2, kernel[1] // 2] * 2,
                                   strides=[strides] * 2),
                        helper.make_node("Relu", ["c"], ["y"])],
                       {"x": (1, channels, 13, 12)}, ["y"], {"w": _he((32, channels, *kernel))})
    found = workloads(model, target)
    assert (found[0].kind == "layout_transform") == blocked, found[0]
    conv = next(w for w in found if w.kind == "conv2d")
    assert (conv.params["data"][4] > 1) == blocked, conv
    check_vs_ort(model, target=target)


@pytest.mark.parametrize("target", ["x86-avx2", "x86-avx512"])
@pytest.mark.parametrize("size, along_rows",
                         [((32, 32), True), ((16, 64), True), ((30, 32), False)])
def test_transform_into_blocks_along_rows_on_4kb_planes(target, size, along_rows):
    """Into wide channel blocks, vectors gather across channel planes, except where the planes
    are a whole number of 4 KB long: every lane then falls in one L1 set, and vectors along rows
    ran 1.7-4.4x faster."""
    from tvmconv.templates.x86 import injective

    model = make_model([_conv_node("x", "c", "w", pads=[1, 1, 1, 1])], {"x": (2, 32, *size)},
                       ["c"], {"w": _he((32, 32, 3, 3))})
    into = next(w for w in workloads(model, target) if w.kind == "layout_transform")
    assert into.params["src"] == 0 and into.params["out"][-1] >= 16, into
    assert injective._into_blocks_along_rows(into) == along_rows
    check_vs_ort(model, target=target)


@pytest.mark.parametrize("target", ["x86-avx2", "x86-avx512"])
def test_prelu_fused_behind_a_grouped_conv(target):
    """PReLU reads its per-channel slope inside the fused epilogue's vector loop. Read under the
    binding of the conv's value, TVM's common-subexpression pass emitted LLVM IR that failed to
    verify (groups of 16 channels, AVX2); a fuzzed network found it."""
    c = 48
    nodes = [_conv_node("x", "c", "w", group=3, pads=[1, 1, 1, 1]),
             helper.make_node("Add", ["c", "x"], ["a"]),
             helper.make_node("PRelu", ["a", "s"], ["y"])]
    check_vs_ort(make_model(nodes, {"x": (1, c, 9, 10)}, ["y"], {
        "w": _he((c, c // 3, 3, 3)), "s": weights((c, 1, 1), 5, 0.3)}), target=target)


CONV_TRANSPOSES = {
    # id: (input shape, weight shape (IC, OC/groups, KH, KW), attributes)
    "k4_s2_p1": ((1, 16, 6, 7), (16, 8, 4, 4), {"strides": [2, 2], "pads": [1, 1, 1, 1]}),
    "k3_s2_output_padding": ((1, 8, 5, 7), (8, 4, 3, 3), {"strides": [2, 2], "pads": [1, 1, 1, 1],
                                                          "output_padding": [1, 1]}),
    "k2_s2": ((2, 16, 6, 5), (16, 8, 2, 2), {"strides": [2, 2]}),
    "s3x2_groups_asymmetric_pads": ((1, 8, 5, 7), (8, 2, 3, 5), {"strides": [3, 2], "group": 2,
                                                                  "pads": [0, 2, 1, 0]}),
    "depthwise_k4_s2": ((1, 8, 5, 7), (8, 1, 4, 4), {"strides": [2, 2], "group": 8,
                                                      "pads": [1, 1, 1, 1]}),
    "s1_dilation2": ((1, 6, 5, 4), (6, 3, 3, 3), {"dilations": [2, 2], "pads": [1, 0, 2, 1]}),
    "output_shape_odd_crop": ((1, 4, 5, 5), (4, 5, 3, 3), {"strides": [2, 2],
                                                            "output_shape": [9, 10]}),
    "output_shape_past_the_taps": ((1, 4, 3, 3), (4, 5, 3, 3), {"strides": [3, 2],
                                                                 "output_shape": [10, 8]}),
    "same_lower": ((1, 4, 3, 3), (4, 5, 3, 3), {"strides": [2, 2], "auto_pad": "SAME_LOWER"}),
    "same_upper_kernel_below_stride": ((1, 8, 12, 11), (8, 2, 2, 2), {
        "strides": [3, 3], "group": 8, "auto_pad": "SAME_UPPER"}),  # no pads: 35 x 32, not 36 x 33
    "pads_beyond_stride": ((1, 4, 5, 5), (4, 5, 5, 5), {"strides": [2, 2], "pads": [4, 4, 4, 4]}),
    # dilation on a strided axis: zero taps of an undilated kernel
    "s2_dilation2": ((1, 6, 5, 4), (6, 3, 3, 3), {"strides": [2, 2], "dilations": [2, 2],
                                                  "pads": [1, 0, 2, 1]}),
    "s2x1_dilation2x3_output_padding": ((1, 4, 5, 6), (4, 3, 2, 3), {
        "strides": [2, 1], "dilations": [2, 3], "output_padding": [1, 0]}),
    "depthwise_s3_dilation2": ((1, 8, 4, 5), (8, 1, 3, 3), {
        "strides": [3, 3], "dilations": [2, 2], "group": 8, "pads": [1, 1, 1, 1]}),
}


@pytest.mark.parametrize("bias", [False, True])
@pytest.mark.parametrize("case", list(CONV_TRANSPOSES))
def test_conv_transpose(case, bias):
    """ConvTranspose (U-Net, FCN and GAN decoders) against onnxruntime: strides, groups,
    dilation (strided too), pads, output_padding, output_shape and auto_pad."""
    x_shape, w_shape, attrs = CONV_TRANSPOSES[case]
    consts, inputs = {"w": _he(w_shape)}, ["x", "w"]
    if bias:
        consts["b"], inputs = weights(w_shape[1] * attrs.get("group", 1), 2, 0.1), inputs + ["b"]
    node = helper.make_node("ConvTranspose", inputs, ["y"], **attrs)
    check_vs_ort(make_model([node], {"x": x_shape}, ["y"], consts))


@pytest.mark.parametrize("target", ["x86-avx2", "x86-avx512"])
@pytest.mark.parametrize("kernel", [2, 4])
def test_unet_decoder_step(target, kernel):
    """A U-Net decoder step: a 2x transposed conv of the coarse map, concatenated with the skip
    connection, then a 3x3 conv. The transposed conv runs as one stride-1 conv over the small
    input (its four phases as output channels), with no zeros inserted; the pixel shuffle and the
    crop of its pads move whole channel blocks, so no layout transform runs between the convs."""
    nodes = [_conv_node("x", "skip", "w0", pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["skip"], ["s"]),
             helper.make_node("MaxPool", ["s"], ["p"], kernel_shape=[2, 2], strides=[2, 2]),
             _conv_node("p", "c", "w1", pads=[1, 1, 1, 1]),
             helper.make_node("ConvTranspose", ["c", "wt", "bt"], ["up"], strides=[2, 2],
                              pads=[kernel // 2 - 1] * 4),
             helper.make_node("Concat", ["up", "s"], ["cat"], axis=1),
             _conv_node("cat", "y", "w2", pads=[1, 1, 1, 1])]
    model = make_model(nodes, {"x": (1, 3, 12, 10)}, ["y"], {
        "w0": _he((16, 3, 3, 3)), "w1": _he((32, 16, 3, 3), 2),
        "wt": _he((32, 16, kernel, kernel), 3), "bt": weights(16, 4, 0.1),
        "w2": _he((8, 32, 3, 3), 5)})
    found = workloads(model, target)
    deconv = [wl for wl in found if wl.kind == "conv2d" and wl.params["strides"] == (1, 1)
              and wl.params["kernel_hw"] == (kernel // 2, kernel // 2)]
    assert len(deconv) == 1, [wl.key for wl in found]
    if kernel == 2:  # each of the 16 x 12 x 10 outputs: one tap from each of 32 input channels
        assert deconv[0].flops() == 2 * (16 * 12 * 10) * 32
    moves = [wl for wl in found if wl.kind in ("depth_to_space", "slice")]
    assert len(moves) == (1 if kernel == 2 else 2), [wl.kind for wl in found]
    assert all(len(wl.params["out"]) == 5 for wl in moves), moves
    to_plain = [wl for wl in found if wl.kind == "layout_transform" and len(wl.params["out"]) == 4]
    assert len(to_plain) == 1, to_plain  # the network output's
    check_vs_ort(model, target=target)


@pytest.mark.parametrize("target", ["x86-avx2", "x86-avx512"])
def test_decoder_concat_of_mixed_blocks(target):
    """A decoder joining a resized 32-channel map and a 16-channel transposed-conv output: their
    own blocks differ on AVX-512 (32 and 16), so the convs behind the resize and the pixel
    shuffle write one common block, and the concat stays blocked (and in place): the only
    layout transform is the network output's."""
    nodes = [_conv_node("x", "a", "w0", pads=[1, 1, 1, 1], strides=[2, 2]),
             helper.make_node("Relu", ["a"], ["r"]),
             helper.make_node("ConvTranspose", ["r", "wt", "bt"], ["up"], strides=[2, 2],
                              pads=[1, 1, 1, 1]),
             helper.make_node("Resize", ["r", "", "s"], ["rs"], mode="linear"),
             helper.make_node("Concat", ["up", "rs"], ["cat"], axis=1),
             _conv_node("cat", "y", "w1", pads=[1, 1, 1, 1])]
    model = make_model(nodes, {"x": (1, 3, 18, 14)}, ["y"], {
        "w0": _he((32, 3, 3, 3)), "wt": _he((32, 16, 4, 4), 2), "bt": weights(16, 3, 0.1),
        "s": np.array([1, 1, 2, 2], np.float32), "w1": _he((8, 48, 3, 3), 4)})
    kinds = [wl.kind for wl in workloads(model, target)]
    assert kinds.count("layout_transform") == 1 and "concat" not in kinds, kinds
    check_vs_ort(model, target=target)


def _widen_then_filter(c_in, mid, hw, kernel=3, stride=1, pads=1, dilation=1, operand=False,
                       shared=False, batch=1):
    """MobileNetV2's inverted residual: 1x1 conv + BN + ReLU6 (with ``operand``, + another input
    first), depthwise conv + BN + ReLU6, 1x1 conv; with ``shared`` the widened map is an output
    too."""
    clip = {"lo": np.array(0.0, np.float32), "hi": np.array(6.0, np.float32)}
    nodes = [_conv_node("x", "e", "w1"), _bn_node("e", "en", "bn1")]
    inputs = {"x": (batch, c_in, *hw)}
    if operand:
        nodes.append(helper.make_node("Add", ["en", "o"], ["eo"]))
        inputs["o"] = (batch, mid, *hw)
    nodes += [helper.make_node("Clip", ["eo" if operand else "en", "lo", "hi"], ["r"]),
              _conv_node("r", "d", "w2", group=mid, pads=[pads] * 4, strides=[stride] * 2,
                         dilations=[dilation] * 2, kernel_shape=[kernel] * 2),
              _bn_node("d", "dn", "bn2"), helper.make_node("Clip", ["dn", "lo", "hi"], ["a"]),
              _conv_node("a", "y", "w3")]
    consts = {"w1": _he((mid, c_in, 1, 1)), "w2": _he((mid, 1, kernel, kernel), 2),
              "w3": _he((7, mid, 1, 1), 3), **_bn_consts(mid, "bn1"), **_bn_consts(mid, "bn2", 4),
              **clip}
    return make_model(nodes, inputs, ["y", "r"] if shared else ["y"], consts)


WIDEN_THEN_FILTER = {
    # id: keyword arguments of _widen_then_filter
    "odd_channels_and_map": dict(c_in=5, mid=24, hw=(23, 21)),
    "strided": dict(c_in=16, mid=40, hw=(29, 22), stride=2),
    "bands_of_rows": dict(c_in=8, mid=48, hw=(40, 24)),  # 3 channel blocks: 2 bands each
    "unpadded_5x5_dilated": dict(c_in=6, mid=32, hw=(21, 22), kernel=5, pads=0, dilation=2),
    "operand_before_the_filter": dict(c_in=9, mid=32, hw=(24, 20), operand=True),
    "batch_of_three": dict(c_in=12, mid=40, hw=(30, 26), stride=2, batch=3),
}


@pytest.mark.parametrize("target", ["x86-avx2", "x86-avx512"])
@pytest.mark.parametrize("case", list(WIDEN_THEN_FILTER))
def test_pointwise_conv_fused_into_the_depthwise(case, target):
    """A 1x1 conv and the depthwise conv reading it run as one kernel (``passes.pointwise``) and
    match onnxruntime."""
    model = _widen_then_filter(**WIDEN_THEN_FILTER[case])
    kinds = [wl.kind for wl in workloads(model, target)]
    assert "pointwise_depthwise" in kinds and "depthwise2d" not in kinds, kinds
    check_vs_ort(model, target=target)


def test_fused_pair_written_into_a_concat():
    """The fused kernel stores its output straight into a concat's buffer (``passes.place``),
    as a lone depthwise conv would."""
    from tvmconv.frontend import from_onnx
    from tvmconv.passes import optimize

    nodes = [_conv_node("x", "e", "w1"), helper.make_node("Relu", ["e"], ["r"]),
             _conv_node("r", "d", "w2", group=32, pads=[1, 1, 1, 1]), _conv_node("x", "c", "w3"),
             helper.make_node("Concat", ["d", "c"], ["y"], axis=1)]
    model = make_model(nodes, {"x": (1, 12, 30, 26)}, ["y"], {
        "w1": _he((32, 12, 1, 1)), "w2": _he((32, 1, 3, 3), 2), "w3": _he((16, 12, 1, 1), 3)})
    graph = optimize(from_onnx(model), resolve("x86-avx2"))
    fused = [n for n in graph.nodes if n.op == "pointwise_depthwise"]
    assert len(fused) == 1 and fused[0].outputs[0] in graph.places, graph.nodes
    for target in ("x86-avx2", "x86-avx512"):
        check_vs_ort(model, target=target)


@pytest.mark.parametrize("case, kwargs", [
    ("widened_map_read_elsewhere", dict(c_in=5, mid=24, hw=(23, 21), shared=True)),
    ("small_map", dict(c_in=5, mid=24, hw=(14, 14))),  # fusing lost in the network there
    ("stride_past_the_window", dict(c_in=5, mid=24, hw=(23, 21), kernel=2, stride=3, pads=0)),
])
def test_pointwise_conv_not_fused(case, kwargs):
    """A widened map that is also an output (or read by another node) must be stored; a small
    one stays in cache anyway; windows that skip rows are not fused (s_tir refuses the
    schedule). All run as two kernels."""
    model = _widen_then_filter(**kwargs)
    kinds = [wl.kind for wl in workloads(model)]
    assert "pointwise_depthwise" not in kinds and "depthwise2d" in kinds, kinds
    check_vs_ort(model)


# -- Pooling --------------------------------------------------------------------------------------

POOLS = {
    "max_k3s2p1": ("MaxPool", (1, 5, 9, 9), {"kernel_shape": [3, 3], "strides": [2, 2],
                                                  "pads": [1, 1, 1, 1]}),
    "max_ceil": ("MaxPool", (1, 3, 8, 8), {"kernel_shape": [3, 3], "strides": [2, 2],
                                           "ceil_mode": 1}),
    "max_dilation": ("MaxPool", (1, 2, 9, 9), {"kernel_shape": [2, 2], "dilations": [2, 2]}),
    "max_asym_2x3": ("MaxPool", (1, 3, 6, 7), {"kernel_shape": [2, 3], "pads": [0, 2, 1, 0]}),
    "max_same_upper": ("MaxPool", (1, 3, 7, 7), {"kernel_shape": [2, 2], "strides": [2, 2],
                                                      "auto_pad": "SAME_UPPER"}),
    "max_image_1x1": ("MaxPool", (1, 7, 1, 1), {"kernel_shape": [3, 3], "pads": [1, 1, 1, 1]}),
    "avg_pads_exclude": ("AveragePool", (1, 3, 7, 7), {"kernel_shape": [3, 3],
                                                           "pads": [1, 1, 1, 1]}),
    "avg_pads_include": ("AveragePool", (1, 3, 7, 7), {"kernel_shape": [3, 3], "pads": [1, 1, 1, 1],
                                                           "count_include_pad": 1}),
    "avg_ceil_include": ("AveragePool", (1, 2, 6, 6), {"kernel_shape": [3, 3], "strides": [2, 2],
                                                           "pads": [1, 1, 1, 1], "ceil_mode": 1,
                                                           "count_include_pad": 1}),
    "avg_ceil_exclude": ("AveragePool", (1, 2, 6, 6), {"kernel_shape": [3, 3], "strides": [2, 2],
                                                           "ceil_mode": 1}),
    "avg_stride3_k2": ("AveragePool", (1, 4, 10, 10), {"kernel_shape": [2, 2], "strides": [3, 3]}),
    "lp_p2": ("LpPool", (1, 3, 6, 6), {"kernel_shape": [2, 2], "strides": [2, 2], "p": 2}),
    "lp_p3": ("LpPool", (1, 3, 5, 5), {"kernel_shape": [3, 3], "p": 3}),
    # a window longer than the padded input by less than a stride: one output, as onnxruntime
    # computes it (the division of the output size truncates toward zero)
    "max_window_past_input": ("MaxPool", (1, 8, 2, 7), {"kernel_shape": [3, 1],
                                                        "strides": [2, 2]}),
    "avg_window_past_input": ("AveragePool", (1, 3, 2, 5), {
        "kernel_shape": [4, 2], "strides": [3, 1], "pads": [1, 0, 0, 0], "count_include_pad": 1}),
    "lp_window_past_input": ("LpPool", (2, 3, 6, 2), {"kernel_shape": [1, 3], "strides": [3, 3]}),
    # with ceil_mode the count stops at the padded input's end
    "avg_ceil_window_past_input": ("AveragePool", (1, 2, 5, 5), {
        "kernel_shape": [2, 7], "strides": [2, 8], "pads": [0, 1, 0, 0], "count_include_pad": 1,
        "ceil_mode": 1}),
    "global_avg": ("GlobalAveragePool", (2, 5, 7, 3), {}),
    "global_max": ("GlobalMaxPool", (1, 13, 4, 4), {}),
    "global_lp": ("GlobalLpPool", (1, 3, 5, 5), {"p": 2}),
}


@pytest.mark.parametrize("case", list(POOLS), ids=list(POOLS))
def test_pool(case):
    op, x_shape, attrs = POOLS[case]
    check_vs_ort(single(op, x_shape, **attrs))


@pytest.mark.parametrize("op, attrs, hw", [
    ("MaxPool", {"kernel_shape": [3, 3], "strides": [2, 2], "ceil_mode": 1}, (9, 9)),
    ("AveragePool", {"kernel_shape": [3, 3], "strides": [2, 2], "pads": [1, 1, 1, 1]}, (9, 9)),
    ("LpPool", {"kernel_shape": [2, 2], "strides": [2, 2], "p": 2}, (9, 9)),
    ("GlobalAveragePool", {}, (9, 9)),
    ("GlobalAveragePool", {}, (37, 41)),
    ("GlobalMaxPool", {}, (37, 41)),
    ("GlobalLpPool", {"p": 3}, (37, 41)),
], ids=["max_ceil", "avg_pads", "lp", "global_avg", "global_avg_rows_first",
        "global_max_rows_first", "global_lp_rows_first"])
def test_pool_after_conv(op, attrs, hw):
    """Pools reading a conv output run on the blocked NCHW[x]c layout, not on plain NCHW; global
    ones over 1024 pixels or more sum each row first."""
    nodes = [_conv_node("x", "c", "w", pads=[1, 1, 1, 1]),
             helper.make_node(op, ["c"], ["y"], **attrs)]
    check_vs_ort(make_model(nodes, {"x": (1, 3, *hw)}, ["y"], {"w": _he((16, 3, 3, 3))}))


@pytest.mark.parametrize("power", [2, 3, 4])
def test_lp_pool_multiplies_its_power_out(power):
    """LpPool's |x| ** p for p up to 4 is multiplied out, which vectorises: a powf call per
    element made p=3 over 64x56x56 12x slower (and TVM warned about it on every compile)."""
    from tvmconv import kernels, templates

    model = single("LpPool", (1, 8, 9, 9), kernel_shape=[3, 3], p=power)
    target = resolve("x86")
    (wl,) = [w for w in workloads(model) if w.kind == "pool2d"]
    template = templates.templates_for(wl.kind, target.family, wl, target)[0]
    func = kernels.prim_func(wl, target, template, template.default(wl, target))
    assert "pow" not in func.script()
    check_vs_ort(model)


@pytest.mark.parametrize("channels", [1, 16])
def test_global_average_pool_of_a_big_image_is_exact(channels):
    """An average over 693 x 673 pixels (blocked: after a conv) against float64 numpy. One
    accumulator per lane had been 1.2e-5 off here, and 3e-3 in a fuzzed network (onnxruntime
    9e-5); summing each row first, 2e-7."""
    x = np.random.default_rng(0).normal(0.002, 1.0, (1, 2, 693, 673)).astype(np.float32)
    w = np.full((channels, 2, 1, 1), 0.5, np.float32)
    model = make_model([_conv_node("x", "c", "w"), helper.make_node("GlobalAveragePool", ["c"],
                                                                    ["y"])],
                       {"x": x.shape}, ["y"], {"w": w})
    exact = np.broadcast_to(x.astype(np.float64).sum(1).mean() * 0.5, (1, channels, 1, 1))
    assert_close(run_tvmconv(model, {"x": x})[0], exact, tol=2e-6)


# -- Gemm and MatMul ------------------------------------------------------------------------------

GEMMS = {
    # id: (A shape, B shape, C shape or None, attributes); B is a constant
    "transB_biasN": ((3, 10), (7, 10), (7,), {"transB": 1}),
    "transA_alpha_beta_CMN": ((10, 4), (10, 6), (4, 6), {"transA": 1, "alpha": 0.5, "beta": 2.0}),
    "C_scalar": ((2, 5), (5, 3), (1,), {"beta": -1.0}),
    "C_row": ((4, 6), (6, 9), (1, 9), {}),
    "C_column": ((4, 6), (6, 9), (4, 1), {"alpha": 1.5}),
    "no_C": ((1, 17), (13, 17), None, {"transB": 1}),
}


@pytest.mark.parametrize("case", list(GEMMS), ids=list(GEMMS))
def test_gemm(case):
    a_shape, b_shape, c_shape, attrs = GEMMS[case]
    consts = {"b": weights(b_shape, 1)}
    if c_shape is not None:
        consts["c"] = weights(c_shape, 2)
    check_vs_ort(single("Gemm", a_shape, consts, list(consts), **attrs))


def test_gemm_two_activations():
    """B and C as activations: the general matmul path, with beta scaling an activation."""
    node = helper.make_node("Gemm", ["a", "b", "c"], ["y"], transB=1, alpha=0.7, beta=0.3)
    check_vs_ort(make_model([node], {"a": (3, 8), "b": (5, 8), "c": (3, 5)}, ["y"]))


MATMULS = {
    # id: (A shape, B shape, which operands are constants)
    "2d_const_b": ((5, 7), (7, 13), "b"),
    "3d_act_const_b": ((2, 5, 7), (7, 3), "b"),
    "batched_acts": ((2, 3, 4, 5), (2, 3, 5, 6), ""),
    "broadcast_batch": ((3, 4, 5), (1, 5, 6), ""),
    "const_a": ((4, 5), (5, 6), "a"),
    "vector_a": ((5,), (5, 6), ""),
}


@pytest.mark.parametrize("case", list(MATMULS), ids=list(MATMULS))
def test_matmul(case):
    a_shape, b_shape, const = MATMULS[case]
    consts = {n: weights(s, k) for k, (n, s) in enumerate([("a", a_shape), ("b", b_shape)])
              if n in const}
    inputs = {n: s for n, s in [("a", a_shape), ("b", b_shape)] if n not in const}
    node = helper.make_node("MatMul", ["a", "b"], ["y"])
    check_vs_ort(make_model([node], inputs, ["y"], consts))


# -- Normalisation --------------------------------------------------------------------------------

@pytest.mark.parametrize("x_shape", [(1, 5, 4, 4), (3, 7), (2, 3, 6)], ids=["nchw", "nc", "ncl"])
def test_batchnorm_standalone(x_shape):
    """BatchNorm on a graph input (nothing to fold into) is a per-channel affine kernel."""
    node = _bn_node("x", "y")
    check_vs_ort(make_model([node], {"x": x_shape}, ["y"], _bn_consts(x_shape[1])))


@pytest.mark.parametrize("x_shape", [(1, 5, 6, 6), (2, 3, 4, 7)])
def test_instance_norm(x_shape):
    c = x_shape[1]
    check_vs_ort(single("InstanceNormalization", x_shape,
                        {"s": weights(c, 1), "b": weights(c, 2)}, ["s", "b"], epsilon=1e-4))


@pytest.mark.parametrize("channels, out_channels", [(16, 3), (20, 8), (32, 1), (8, 5)])
@pytest.mark.parametrize("target", ["x86-avx2", "x86-avx512"])
def test_image_to_image_tail(channels, out_channels, target):
    """Reflection pads and instance norms on channel blocks, a ReLU fused into the norm, and a
    last conv to few channels (vectors along rows when they fill less than half a vector)."""
    check_vs_ort(image_to_image(channels, (11, 37), out_channels), target=target)


def test_image_to_image_tail_runs_blocked():
    """No layout transform between the first conv and the last one's input; the ReLU is fused
    into the norm; the last conv (3 channels) runs on plain NCHW, vectors along rows."""
    kinds = [wl.kind for wl in workloads(image_to_image(), "x86-avx512")]
    assert kinds == ["pad", "conv2d", "instance_norm", "pad", "layout_transform", "conv2d"], kinds
    last = workloads(image_to_image(), "x86-avx512")[-1]
    spec = tvmconv.target.resolve("x86-avx512")
    assert tvmconv.templates.templates_for("conv2d", "x86", last, spec)[0].NAME == "conv2d_pixels"


@pytest.mark.parametrize("size, x_shape, alpha, beta, bias, spread", [
    (3, (1, 7, 5, 5), 0.5, 0.75, 2.0, 1.0), (5, (2, 16, 3, 4), 1e-4, 1.7, 1.0, 1.0),
    (7, (1, 9, 6, 7), 3.0, 0.3, 0.5, 100.0)], ids=["googlenet", "onnx_defaults", "wide_range"])
def test_lrn(size, x_shape, alpha, beta, bias, spread):
    """LRN's power runs as exp(beta * log(base)) with vectorised exp and log: bases from 0.5 to
    ~1e5 (wide_range) check both over many octaves."""
    model = single("LRN", x_shape, size=size, alpha=alpha, beta=beta, bias=bias)
    feeds = {"x": (rng_inputs(model)["x"] * spread).astype(np.float32)}
    check_vs_ort(model, feeds)


def test_lrn_after_conv():
    """LRN reads a blocked conv output (GoogLeNet's order)."""
    nodes = [_conv_node("x", "c", "w", pads=[1, 1, 1, 1]),
             helper.make_node("LRN", ["c"], ["y"], size=5, alpha=0.5, beta=0.75, bias=2.0)]
    check_vs_ort(make_model(nodes, {"x": (1, 3, 6, 7)}, ["y"], {"w": _he((48, 3, 3, 3))}))


# -- Reductions -----------------------------------------------------------------------------------

@pytest.mark.parametrize("op, x_shape, axes, keepdims, opset", [
    ("ReduceMean", (2, 5, 7, 3), (2, 3), 0, 13),  # a global pool
    ("ReduceMax", (1, 6, 5, 9), (-1, -2), 1, 18),  # a global pool, axes as an input
    ("ReduceMean", (1, 6, 5, 9), (1,), 1, 18),  # CBAM's channel mean
    ("ReduceMin", (3, 4, 5), (0, 2), 0, 13),
    ("ReduceSum", (2, 7, 3, 5), (1, 3), 1, 11),
    ("ReduceSumSquare", (4, 9), (1,), 0, 18),
    ("ReduceL1", (2, 3, 4, 5), (0,), 1, 18),
    ("ReduceL2", (2, 3, 11), None, 1, 13),  # every axis
])
def test_reduce(op, x_shape, axes, keepdims, opset):
    consts, inputs, attrs = {}, (), {"keepdims": keepdims}
    if axes is not None and opset >= 18:
        consts, inputs = {"axes": np.array(axes, np.int64)}, ("axes",)
    elif axes is not None:
        attrs["axes"] = list(axes)
    check_vs_ort(single(op, x_shape, consts, inputs, opset=opset, **attrs))


def test_reduce_heads_after_convs():
    """Reductions of blocked conv outputs: ShuffleNet's ``x.mean([2, 3])`` head into a Gemm, and
    CBAM's spatial attention (channel mean and max, concatenated, a 7x7 conv, a sigmoid gate)."""
    c = 20
    nodes = [_conv_node("x", "a", "w1", pads=[1, 1, 1, 1]), helper.make_node("Relu", ["a"], ["h"]),
             helper.make_node("ReduceMean", ["h"], ["cm"], axes=[1], keepdims=1),
             helper.make_node("ReduceMax", ["h"], ["cx"], axes=[1], keepdims=1),
             helper.make_node("Concat", ["cm", "cx"], ["att"], axis=1),
             _conv_node("att", "s", "w2", pads=[3, 3, 3, 3]),
             helper.make_node("Sigmoid", ["s"], ["gate"]),
             helper.make_node("Mul", ["h", "gate"], ["g"]),
             helper.make_node("ReduceMean", ["g"], ["pooled"], axes=[2, 3], keepdims=0),
             helper.make_node("Gemm", ["pooled", "fc"], ["y"])]
    check_vs_ort(make_model(nodes, {"x": (1, 3, 15, 13)}, ["y"], {
        "w1": _he((c, 3, 3, 3)), "w2": _he((1, 2, 7, 7), 2), "fc": _he((c, 10), 3)}, opset=13))


def test_elementwise_on_a_scalar():
    check_vs_ort(scalar_after_reduce())


@pytest.mark.parametrize("reduce_axis, op", [(1, "Mul"), (3, "Add")],
                         ids=["spatial_gate", "row_mean"])
def test_conv_times_an_activation_broadcast_over_channels_or_pixels(reduce_axis, op):
    """A conv output read only by a Mul/Add with an activation that is neither whole nor one value
    per channel (CBAM's spatial gate N x 1 x H x W; a row mean N x C x H x 1): the op cannot
    read it in the conv's channel blocks, so it runs after the conv instead of in its
    epilogue."""
    nodes = [_conv_node("x", "c", "w", pads=[1, 1, 1, 1]),
             helper.make_node("ReduceMean", ["x"], ["r"], axes=[reduce_axis], keepdims=1),
             helper.make_node("Sigmoid", ["r"], ["s"]), helper.make_node(op, ["c", "s"], ["y"])]
    check_vs_ort(make_model(nodes, {"x": (2, 16, 9, 7)}, ["y"], {"w": _he((16, 16, 3, 3))}))


@pytest.mark.parametrize("x_shape, axis, bias", [((2, 6, 5, 16), -1, True), ((3, 4, 7), 1, False),
                                                 ((5, 9), 0, True)])
def test_layer_norm(x_shape, axis, bias):
    inner = x_shape[axis:]
    consts = {"s": weights(inner, 1), "b": weights(inner, 2)}
    inputs = ("s", "b") if bias else ("s",)
    check_vs_ort(single("LayerNormalization", x_shape, consts, inputs, opset=17, axis=axis,
                        epsilon=1e-3))


@pytest.mark.parametrize("target", ["x86-avx2", "x86-avx512"])
@pytest.mark.parametrize("op, x_shape, attrs", [
    ("LayerNormalization", (1, 7, 5, 48), {"axis": -1}),
    ("Softmax", (3, 5, 32), {"axis": -1}),
    ("ReduceMax", (2, 6, 64), {"axes": [2], "keepdims": 0}),
    ("ReduceMean", (2, 3, 5, 16), {"axes": [-1], "keepdims": 1}),
    ("LayerNormalization", (2, 3, 203), {"axis": -1}),
    ("Softmax", (2, 1000), {"axis": -1}),
    ("ReduceMin", (3, 2, 131), {"axes": [2], "keepdims": 0}),
], ids=["layer_norm", "softmax", "reduce_max", "reduce_mean", "layer_norm_ragged_long",
        "softmax_1000", "reduce_min_ragged_long"])
def test_row_reductions_in_vector_lanes(target, op, x_shape, attrs):
    """Rows whose length fills whole vectors, or long rows (their last vector masked), reduce in
    the lanes (rfactor), at 8 and 16 lanes."""
    consts, inputs = {}, ()
    if op == "LayerNormalization":
        consts, inputs = {"s": weights(x_shape[-1], 1), "b": weights(x_shape[-1], 2)}, ("s", "b")
    check_vs_ort(single(op, x_shape, consts, inputs, opset=17, **attrs), target=target)


def test_layer_norm_of_a_long_ragged_row_is_exact():
    """A LayerNorm over 29 x 132 x 194 values (not whole vectors) against float64 numpy: its
    moments, one serial sum each, had been 1.6e-4 off; in lanes of partial sums, 2.3e-6."""
    shape = (1, 29, 132, 194)
    model = single("LayerNormalization", shape, {"s": np.ones(shape[1:], np.float32)}, ["s"],
                   opset=17, axis=1)
    x = np.random.default_rng(0).normal(2.0, 0.3, shape).astype(np.float32)
    x64 = x.astype(np.float64)
    exact = (x64 - x64.mean()) / np.sqrt(x64.var() + 1e-5)
    assert_close(run_tvmconv(model, {"x": x})[0], exact, tol=2e-5)


def _convnext_block(c: int):
    """ConvNeXt: a 7x7 depthwise conv, a permute to channels-last, LayerNorm, a 4x MLP with GELU
    (Erf, as PyTorch exports it), a layer scale, a permute back and the residual."""
    nodes = [_conv_node("x", "s", "ws", strides=[4, 4]),
             _conv_node("s", "d", "wd", pads=[3, 3, 3, 3], group=c),
             helper.make_node("Transpose", ["d"], ["t"], perm=[0, 2, 3, 1]),
             helper.make_node("LayerNormalization", ["t", "g", "be"], ["n"], epsilon=1e-6),
             helper.make_node("MatMul", ["n", "w1"], ["h"]),
             helper.make_node("Div", ["h", "r2"], ["hs"]), helper.make_node("Erf", ["hs"], ["e"]),
             helper.make_node("Add", ["e", "one"], ["e1"]),
             helper.make_node("Mul", ["h", "e1"], ["hg"]),
             helper.make_node("Mul", ["hg", "half"], ["gelu"]),
             helper.make_node("MatMul", ["gelu", "w2"], ["m"]),
             helper.make_node("Mul", ["m", "ls"], ["ml"]),
             helper.make_node("Transpose", ["ml"], ["mt"], perm=[0, 3, 1, 2]),
             helper.make_node("Add", ["s", "mt"], ["y"])]
    f32 = np.float32
    return make_model(nodes, {"x": (1, 3, 36, 28)}, ["y"], {
        "ws": _he((c, 3, 4, 4)), "wd": _he((c, 1, 7, 7), 2), "g": weights(c, 3),
        "be": weights(c, 4), "w1": _he((c, 4 * c), 5), "w2": _he((4 * c, c), 6),
        "ls": weights(c, 7, 0.5), "r2": f32(2 ** 0.5), "one": f32(1.0), "half": f32(0.5)},
        opset=17)


@pytest.mark.parametrize("target", ["x86-avx2", "x86-avx512"])
@pytest.mark.parametrize("c", [16, 48, 20])
def test_convnext_block(c, target):
    check_vs_ort(_convnext_block(c), target=target)


def test_convnext_block_kernels():
    """The permutes move whole channel blocks (no layout transform but the output's, to NCHW),
    the GELU and the layer scale run in the dense layers' epilogues (no elementwise kernel but the
    residual add)."""
    kinds = [wl.kind for wl in workloads(_convnext_block(48), "x86-avx512")]
    assert kinds == ["conv2d", "depthwise2d", "transpose", "layer_norm", "dense", "dense",
                     "transpose", "elementwise", "layout_transform"], kinds


def _atrous_block(c: int, size: tuple[int, int], dilations: tuple[int, int]):
    """DeepLab's atrous layers: a 1x1 conv, a dilated 3x3 conv with bias and ReLU, a dilated 3x3
    conv added to the block's input (a fused residual)."""
    pads = [dilations[0], dilations[1]] * 2
    nodes = [_conv_node("x", "a", "w0"), helper.make_node("Relu", ["a"], ["r0"]),
             helper.make_node("Conv", ["r0", "w1", "b1"], ["c1"], pads=pads,
                              dilations=list(dilations)),
             helper.make_node("Relu", ["c1"], ["r1"]),
             _conv_node("r1", "c2", "w2", pads=pads, dilations=list(dilations)),
             helper.make_node("Add", ["c2", "r0"], ["y"])]
    return make_model(nodes, {"x": (1, 8, *size)}, ["y"], {
        "w0": _he((c, 8, 1, 1)), "w1": _he((c, c, 3, 3), 2), "b1": weights(c, 3, 0.1),
        "w2": _he((c, c, 3, 3), 4)})


ATROUS = {
    # id: (channels, size, dilations)
    "d2_odd": (32, (17, 23), (2, 2)),
    "d3_prime_channels": (19, (29, 31), (3, 3)),
    "d4": (16, (28, 28), (4, 4)),
    "d2x1": (24, (26, 19), (2, 1)),
    "d6_wide": (16, (13, 65), (6, 6)),
}


@pytest.mark.parametrize("target", ["x86-avx2", "x86-avx512"])
@pytest.mark.parametrize("case", list(ATROUS))
def test_atrous_conv(case, target):
    """Dilated 3x3 convs at odd sizes; Winograd serves them where its edge tiles pay."""
    check_vs_ort(_atrous_block(*ATROUS[case]), target=target)


def _nhwc_model(c: int):
    """A TensorFlow export: NHWC in, a permute to NCHW, conv and ReLU, a permute back."""
    nodes = [helper.make_node("Transpose", ["x"], ["t"], perm=[0, 3, 1, 2]),
             _conv_node("t", "c", "w", pads=[1, 1, 1, 1]), helper.make_node("Relu", ["c"], ["r"]),
             helper.make_node("Transpose", ["r"], ["y"], perm=[0, 2, 3, 1])]
    return make_model(nodes, {"x": (1, 10, 13, c)}, ["y"], {"w": _he((c, c, 3, 3))})


@pytest.mark.parametrize("c", [32, 24, 3])
def test_nhwc_model(c):
    check_vs_ort(_nhwc_model(c))


def test_nhwc_model_runs_no_layout_transform():
    kinds = [wl.kind for wl in workloads(_nhwc_model(32), "x86-avx512")]
    assert kinds == ["transpose", "conv2d", "transpose"], kinds


def test_expand_activation():
    """F.normalize's divisor: an L2 norm with keepdims, clamped, expanded back to the input."""
    nodes = [helper.make_node("ReduceL2", ["x"], ["n"], axes=[1], keepdims=1),
             helper.make_node("Clip", ["n", "eps", ""], ["nc"]),
             helper.make_node("Expand", ["nc", "shape"], ["ne"]),
             helper.make_node("Div", ["x", "ne"], ["y"])]
    check_vs_ort(make_model(nodes, {"x": (3, 10)}, ["y"], {
        "eps": np.float32(1e-12), "shape": np.array([3, 10], np.int64)}, opset=13))


# -- Softmax --------------------------------------------------------------------------------------

@pytest.mark.parametrize("op, x_shape, axis, opset", [
    ("Softmax", (2, 10), -1, 17),
    ("Softmax", (1, 5, 3, 4), 1, 17),
    ("LogSoftmax", (2, 3, 4), 2, 17),
    ("LogSoftmax", (4, 3, 2), 0, 13),
    ("Softmax", (2, 3, 4), 1, 11),  # opsets < 13 coerce to 2-D at the axis
    ("LogSoftmax", (2, 3, 4), 0, 11),
])
def test_softmax(op, x_shape, axis, opset):
    check_vs_ort(single(op, x_shape, opset=opset, axis=axis), tol=1e-5)


# -- Activations ----------------------------------------------------------------------------------

ACTIVATIONS = {
    "Relu": {}, "LeakyRelu": {"alpha": 0.1}, "Sigmoid": {}, "Tanh": {},
    "HardSigmoid": {"alpha": 0.3, "beta": 0.4}, "HardSwish": {}, "Elu": {"alpha": 0.7},
    "Selu": {}, "Celu": {"alpha": 1.3}, "Softplus": {}, "Softsign": {}, "Mish": {},
    "ThresholdedRelu": {"alpha": 0.6},
}


@pytest.mark.parametrize("op", list(ACTIVATIONS))
def test_activation(op):
    model = single(op, (2, 5, 3, 4), opset=18, **ACTIVATIONS[op])
    x = rng_inputs(model)["x"] * 4  # reach the saturated and negative branches
    check_vs_ort(model, {"x": x})


@pytest.mark.parametrize("approximate", ["none", "tanh"])
def test_gelu_after_conv(approximate):
    """Gelu (opset 20, ConvNeXt's activation), fused behind a conv and standalone on a plain
    tensor."""
    nodes = [_conv_node("x", "c", "w", pads=[1, 1, 1, 1]),
             helper.make_node("Gelu", ["c"], ["y"], approximate=approximate),
             helper.make_node("Gelu", ["x"], ["z"], approximate=approximate)]
    model = make_model(nodes, {"x": (1, 5, 7, 6)}, ["y", "z"], {"w": _he((16, 5, 3, 3))}, opset=20)
    check_vs_ort(model, {"x": rng_inputs(model)["x"] * 3})


def test_log_over_the_float_range():
    """Log runs as a vectorised polynomial: normal floats from 1e-37 to 1e37, 0 (-inf) and
    negatives (NaN) as onnxruntime gives them."""
    x = np.concatenate([np.geomspace(1e-37, 1e37, 117), [0.0, -1.0, 1.0]])
    model = single("Log", (1, 120))
    check_vs_ort(model, {"x": x.astype(np.float32)[None]})


@pytest.mark.parametrize("op, attrs", [
    ("Relu", {}), ("Clip", {}), ("Sigmoid", {}), ("Tanh", {}), ("HardSigmoid", {}), ("Exp", {}),
    ("Softplus", {}), ("Celu", {"alpha": 0.7}), ("Erf", {}), ("Elu", {}), ("Mish", {}),
    ("HardSwish", {}), ("Log", {}),
])
def test_activations_keep_a_nan_made_inside_the_model(op, attrs):
    """A NaN made inside the model (the log of a negative) stays NaN through each activation,
    fused behind a conv and standalone, as in onnxruntime: clamps would make it a number."""
    clip = op == "Clip"
    nodes = [_conv_node("x", "c", "w", pads=[1, 1, 1, 1]), helper.make_node("Log", ["c"], ["lc"]),
             helper.make_node(op, ["lc", *(["lo", "hi"] if clip else [])], ["y"], **attrs),
             helper.make_node("Log", ["x"], ["lx"]),
             helper.make_node(op, ["lx", *(["lo", "hi"] if clip else [])], ["z"], **attrs)]
    consts = {"w": _he((16, 4, 3, 3))}
    if clip:
        consts.update(lo=np.float32(0.0), hi=np.float32(6.0))
    model = make_model(nodes, {"x": (1, 4, 6, 7)}, ["y", "z"], consts, opset=18)
    for got in check_vs_ort(model):  # NaNs where onnxruntime has them
        assert np.isnan(got).any()


@pytest.mark.parametrize("exponent", [3.0, 2.0, -1.0, -2.0, 0.5, 1.7, -0.75, 5.0])
def test_pow_constant_exponent(exponent):
    """A constant exponent: multiplications for small integers, a square root for 0.5, exp and
    log for other fractions, powf otherwise; negative and zero bases give what onnxruntime gives
    (NaN for the fractional ones, inf for 0 ** -0.75)."""
    model = single("Pow", (2, 5, 3, 4), {"p": np.array(exponent, np.float32)}, ["p"])
    x = rng_inputs(model)["x"] * 2
    x[0, 0, 0, :2] = 0.0
    check_vs_ort(model, {"x": x})


@pytest.mark.parametrize("lo, hi", [(-1.0, 2.0), (0.5, None), (None, -0.2)])
def test_clip(lo, hi):
    consts = {k: np.float32(v) for k, v in (("lo", lo), ("hi", hi)) if v is not None}
    check_vs_ort(single("Clip", (1, 6, 4, 4), consts, ["lo" if lo is not None else "",
                                                       "hi" if hi is not None else ""]))


@pytest.mark.parametrize("slope_shape", [(5, 1, 1), (1,), (4,)], ids=["channel", "scalar", "last"])
def test_prelu(slope_shape):
    check_vs_ort(single("PRelu", (2, 5, 3, 4), {"s": weights(slope_shape)}, ["s"]))


# -- Data movement --------------------------------------------------------------------------------

RESIZES = {
    # id: (opset, attributes, scales or None, sizes or None)
    "nearest_x2_asymmetric_floor": (13, {"coordinate_transformation_mode": "asymmetric",
                                         "nearest_mode": "floor"}, [1, 1, 2, 2], None),
    "nearest_half_pixel_odd": (13, {}, [1, 1, 1.7, 0.6], None),
    "nearest_align_corners_ceil": (13, {"coordinate_transformation_mode": "align_corners",
                                        "nearest_mode": "round_prefer_ceil"}, None, [1, 5, 11, 4]),
    "linear_half_pixel_down": (13, {"mode": "linear"}, [1, 1, 0.5, 0.75], None),
    "linear_align_corners_sizes": (13, {"mode": "linear",
                                        "coordinate_transformation_mode": "align_corners"},
                                   None, [1, 5, 13, 17]),
    "linear_pytorch_half_pixel": (13, {"mode": "linear",
                                       "coordinate_transformation_mode": "pytorch_half_pixel"},
                                  [1, 1, 2.5, 1.5], None),
    "linear_symmetric_opset19": (19, {"mode": "linear",
                                      "coordinate_transformation_mode": "half_pixel_symmetric"},
                                 [1, 1, 1.3, 2.1], None),
    "axes_not_larger_opset18": (18, {"axes": [3, 2], "keep_aspect_ratio_policy": "not_larger"},
                                None, [20, 10]),
    # found by fuzzing: where onnxruntime keeps an axis (or the whole input) as it is
    "nearest_tf_half_pixel_ceil_unit_scale": (13, {"coordinate_transformation_mode":
                                                   "tf_half_pixel_for_nn", "nearest_mode": "ceil"},
                                              [1, 1, 3, 1], None),
    "linear_same_size_scales_not_1": (13, {"mode": "linear"}, [1, 1, 1.1, 1.05], None),
    "linear_pytorch_half_pixel_to_one_row": (13, {"mode": "linear",
                                                  "coordinate_transformation_mode":
                                                  "pytorch_half_pixel"}, [1, 1, 0.2, 1.5], None),
    "resize_opset10": (10, {"mode": "linear"}, [1, 1, 2, 3], None),
    "upsample_opset9": (9, {"mode": "nearest"}, [1, 1, 3, 2], None),
}


@pytest.mark.parametrize("case", list(RESIZES))
def test_resize(case):
    """Resize and Upsample over H and W: nearest and linear, each coordinate mode, scales or
    sizes, up and down, odd factors; the source tables are computed as onnxruntime does."""
    opset, attrs, scales, sizes = RESIZES[case]
    op = "Upsample" if opset < 10 else "Resize"
    consts, inputs = {}, []
    if opset < 11:
        consts["s"], inputs = np.array(scales, np.float32), ["s"]
    elif scales is not None:
        consts["s"], inputs = np.array(scales, np.float32), ["", "s"]
    else:
        consts["z"], inputs = np.array(sizes, np.int64), ["", "", "z"]
    check_vs_ort(single(op, (1, 5, 7, 9), consts, inputs, opset=min(opset, 19), **attrs))


@pytest.mark.parametrize("target", ["x86-avx2", "x86-avx512"])
def test_resize_between_convs(target):
    """An FPN step: a coarse map upsampled 2x and added to a lateral 1x1 conv, then a 3x3 conv.
    The resizes read and write the convs' channel blocks."""
    nodes = [_conv_node("x", "c", "w1", strides=[2, 2], pads=[1, 1, 1, 1]),
             helper.make_node("Resize", ["c", "", "s"], ["up"], mode="nearest"),
             _conv_node("x", "lat", "w2"), helper.make_node("Add", ["up", "lat"], ["sum"]),
             helper.make_node("Resize", ["sum", "", "", "z"], ["lin"], mode="linear"),
             _conv_node("lin", "y", "w3", pads=[1, 1, 1, 1])]
    model = make_model(nodes, {"x": (1, 8, 14, 18)}, ["y"], {
        "w1": _he((32, 8, 3, 3)), "w2": _he((32, 8, 1, 1), 2), "w3": _he((16, 32, 3, 3), 3),
        "s": np.array([1, 1, 2, 2], np.float32), "z": np.array([1, 32, 19, 23], np.int64)})
    resizes = [wl for wl in workloads(model, target) if wl.kind == "resize"]
    assert len(resizes) == 2 and all(len(wl.params["inputs"][0]) == len(wl.params["out"]) == 5
                                     for wl in resizes), resizes
    check_vs_ort(model, target=target)


def test_concat_with_constant():
    node = helper.make_node("Concat", ["x", "k", "z"], ["y"], axis=-1)
    check_vs_ort(make_model([node], {"x": (2, 3, 4), "z": (2, 3, 1)}, ["y"],
                            {"k": weights((2, 3, 5))}))


@pytest.mark.parametrize("channels", [(8, 5, 8), (16, 16, 16), (64, 16, 32, 48)],
                         ids=["mixed", "whole_blocks", "one_common_block"])
def test_concat_of_convs(channels):
    """Channel concat of conv outputs (Inception/SqueezeNet): in plain layout when a channel count
    splits a block, kept blocked when every part is whole blocks, the convs writing one common
    block when their own blocks differ (then no transform runs before the consumer conv). Blocked,
    the convs store their parts in the concat's buffer and no concat kernel runs."""
    consts, nodes = {"wn": _he((8, sum(channels), 1, 1), 9)}, []
    for k, c in enumerate(channels):
        k_size = 3 if k == 1 else 1
        consts[f"w{k}"] = _he((c, 4, k_size, k_size), k + 1)
        nodes.append(_conv_node("x", f"c{k}", f"w{k}", pads=[k_size // 2] * 4))
    nodes.append(helper.make_node("Concat", [f"c{k}" for k in range(len(channels))], ["y"],
                                  axis=1))
    nodes.append(_conv_node("y", "z", "wn"))
    model = make_model(nodes, {"x": (1, 4, 5, 5)}, ["y", "z"], consts)
    if all(c % 16 == 0 for c in channels):
        kinds = [wl.kind for wl in workloads(model, "x86-avx512")]
        assert kinds.count("concat") == 0 and kinds.count("layout_transform") == 2, kinds
    check_vs_ort(model)


def _placed_concats(model, target="x86-avx512"):
    """(concat nodes after the passes, the values the passes store in another value's buffer)."""
    from tvmconv.frontend import from_onnx
    from tvmconv.passes import optimize
    from tvmconv.target import resolve

    graph = optimize(from_onnx(model), resolve(target))
    return [n for n in graph.nodes if n.op == "concat"], graph.places


@pytest.mark.parametrize("target", ["x86-avx2", "x86-avx512"])
def test_concat_in_place(target):
    """Concat parts written straight into the concat's buffer by their producers: a fire module
    (1x1 and 3x3 expands), an inception module with a pool branch whose concat is itself a part
    of an outer concat (all its parts land in the outer buffer), and a concat one of whose parts
    is also read by an Add (that one keeps its concat kernel)."""
    relu = lambda a, b: helper.make_node("Relu", [a], [b])  # noqa: E731
    nodes = [_conv_node("x", "s0", "ws"), relu("s0", "s"),
             _conv_node("s", "e1_", "we1"), relu("e1_", "e1"),
             _conv_node("s", "e3_", "we3", pads=[1, 1, 1, 1]), relu("e3_", "e3"),
             helper.make_node("Concat", ["e1", "e3"], ["fire"], axis=1),
             helper.make_node("MaxPool", ["fire"], ["p"], kernel_shape=[3, 3], pads=[1] * 4),
             _conv_node("p", "pb", "wp"), _conv_node("fire", "b1", "wb1"),
             helper.make_node("Concat", ["pb", "b1"], ["inner"], axis=1),
             _conv_node("fire", "b2", "wb2", pads=[2] * 4, kernel_shape=[5, 5]),
             helper.make_node("Concat", ["inner", "b2"], ["outer"], axis=1),
             _conv_node("outer", "r", "wr"), _conv_node("outer", "q", "wq"),
             helper.make_node("Concat", ["r", "q"], ["cat"], axis=1),
             helper.make_node("Add", ["r", "q"], ["rq"]),
             _conv_node("cat", "y", "wy")]
    consts = {"ws": _he((16, 8, 1, 1)), "we1": _he((16, 16, 1, 1), 2),
              "we3": _he((32, 16, 3, 3), 3), "wp": _he((16, 48, 1, 1), 4),
              "wb1": _he((32, 48, 1, 1), 5), "wb2": _he((16, 48, 5, 5), 6),
              "wr": _he((16, 64, 1, 1), 7), "wq": _he((16, 64, 1, 1), 8),
              "wy": _he((8, 32, 1, 1), 9)}
    model = make_model(nodes, {"x": (1, 8, 9, 11)}, ["y", "rq"], consts)
    concats, places = _placed_concats(model, target)
    kept = [n for n in concats if n.inputs[0] not in places]
    assert len(concats) == 4 and len(kept) == 1, concats
    inner = next(n for n in concats if n.outputs[0] in places)
    root, offset = places[inner.outputs[0]]
    assert [places[i] for i in inner.inputs] == [(root, offset), (root, offset + 16 * 9 * 11)]
    assert [wl.kind for wl in workloads(model, target)].count("concat") == 1
    check_vs_ort(model, target=target)


@pytest.mark.parametrize("batch", [1, 3])
def test_concat_of_dense_outputs(batch):
    """Plain 2-D parts: with one row each part is a contiguous slab the dense writes in place;
    with three rows the parts interleave, so a concat kernel copies them."""
    nodes = [helper.make_node("Gemm", ["x", "wa"], ["a"]),
             helper.make_node("Gemm", ["x", "wb"], ["b"]),
             helper.make_node("Concat", ["a", "b"], ["c"], axis=1),
             helper.make_node("Gemm", ["c", "wc"], ["y"])]
    model = make_model(nodes, {"x": (batch, 20)}, ["y"], {
        "wa": _he((20, 32)), "wb": _he((20, 48), 2), "wc": _he((80, 10), 3)})
    concats, places = _placed_concats(model)
    assert (concats[0].inputs[0] in places) == (batch == 1), places
    check_vs_ort(model)


def test_padded_channel_blocks():
    """44 and 100 channels fill no whole vector block at 8 or 16 lanes, so convs store them with a
    zero-weight padded last block. Everything that reads such a tensor must see the real channels
    only: a conv's reduction, depthwise, pool, a residual add, a concat (plain), the 1x1 image after
    a global pool, graph outputs, the dense after a flatten, and a plain input joining them."""
    c1, c2 = 44, 100
    nodes = [
        helper.make_node("Conv", ["x", "w1", "b1"], ["a"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["a"], ["ar"]),
        _conv_node("ar", "d", "wd", group=c1, pads=[1, 1, 1, 1]),
        helper.make_node("Sigmoid", ["d"], ["ds"]),
        helper.make_node("Add", ["ds", "ar"], ["r"]),
        helper.make_node("MaxPool", ["r"], ["p"], kernel_shape=[2, 2], strides=[2, 2]),
        _conv_node("p", "b", "w2"),
        helper.make_node("Concat", ["b", "p"], ["cat"], axis=1),
        helper.make_node("GlobalAveragePool", ["b"], ["g"]),
        helper.make_node("Flatten", ["g"], ["f"]),
        helper.make_node("Gemm", ["f", "wf"], ["y"], transB=1),
        helper.make_node("Mul", ["ar", "x2"], ["q"]),  # a plain input moved into padded blocks
    ]
    model = make_model(nodes, {"x": (1, 8, 9, 9), "x2": (1, c1, 9, 9)}, ["y", "cat", "r", "q"], {
        "w1": _he((c1, 8, 3, 3)), "b1": weights(c1, 2, 0.1), "wd": _he((c1, 1, 3, 3), 3),
        "w2": _he((c2, c1, 1, 1), 4), "wf": _he((7, c2), 5)})
    padded = [wl for wl in workloads(model) if wl.kind in ("conv2d", "depthwise2d")
              and wl.params["out"][1] * wl.params["out"][4] not in (c1, c2)]
    assert padded, "no conv stored a padded channel block: the path under test was not taken"
    check_vs_ort(model)


@pytest.mark.parametrize("opset, split, n_out", [(13, None, 3), (13, [1, 4, 2], 3),
                                                 (18, None, 3)])
def test_split(opset, split, n_out):
    """Even split, explicit sizes, and opset 18's num_outputs with an uneven last part."""
    consts, inputs, attrs = {}, [], {"axis": 1}
    if split is not None:
        consts["s"], inputs = np.array(split, np.int64), ["s"]
    if opset >= 18:
        attrs["num_outputs"] = n_out
    x_shape = (2, 7, 3) if split or opset >= 18 else (2, 6, 3)
    check_vs_ort(single("Split", x_shape, consts, inputs, n_out=n_out, opset=opset, **attrs))


def _res2_block(c: int, parts: list[int]):
    """Res2Net's block: a 1x1 conv split along channels; each part's 3x3 conv adds into the next
    part's input; the convs' outputs and the last part concatenate into a 1x1 conv."""
    nodes = [_conv_node("x", "a", "w0"), helper.make_node("Relu", ["a"], ["r"]),
             helper.make_node("Split", ["r", "sizes"], [f"s{i}" for i in range(len(parts))],
                              axis=1)]
    consts = {"w0": _he((c, 8, 1, 1)), "sizes": np.array(parts, np.int64)}
    outs, prev = [], None
    for i, width in enumerate(parts[:-1]):
        src = f"s{i}"
        if prev is not None:
            nodes.append(helper.make_node("Add", [src, prev], [f"in{i}"]))
            src = f"in{i}"
        nodes.append(_conv_node(src, f"c{i}", f"w{i + 1}", pads=[1, 1, 1, 1]))
        consts[f"w{i + 1}"] = _he((width, width, 3, 3), i + 2)
        prev = f"c{i}"
        outs.append(prev)
    nodes += [helper.make_node("Concat", [*outs, f"s{len(parts) - 1}"], ["cat"], axis=1),
              _conv_node("cat", "y", "wl")]
    consts["wl"] = _he((c, c, 1, 1), 9)
    return make_model(nodes, {"x": (1, 8, 11, 13)}, ["y"], consts)


@pytest.mark.parametrize("target", ["x86-avx2", "x86-avx512"])
@pytest.mark.parametrize("parts", [[32, 32, 32, 32], [16, 16, 32], [24, 24, 24, 24], [20, 20, 8]])
def test_channel_split_into_scales(parts, target):
    """Splits at whole channel blocks stay blocked; others (24s in blocks of 32) go through plain
    NCHW."""
    check_vs_ort(_res2_block(sum(parts), parts), target=target)


def test_channel_split_at_whole_blocks_moves_no_layout():
    kinds = [wl.kind for wl in workloads(_res2_block(128, [32] * 4), "x86-avx512")]
    assert "layout_transform" not in kinds[:-1] and kinds.count("slice") == 4, kinds


def _mixconv_block(c: int, parts: list[int]):
    """MixNet's MixConv: a 1x1 conv split along channels into parts that fill no whole block,
    each a depthwise conv of its own kernel size, concatenated and SiLU-gated into a 1x1 conv."""
    nodes = [_conv_node("x", "a", "w0"),
             helper.make_node("Split", ["a", "sizes"], [f"s{i}" for i in range(len(parts))],
                              axis=1)]
    consts = {"w0": _he((c, 8, 1, 1)), "sizes": np.array(parts, np.int64)}
    for i, width in enumerate(parts):
        k = 2 * i + 3
        nodes.append(_conv_node(f"s{i}", f"d{i}", f"wd{i}", group=width, pads=[k // 2] * 4))
        consts[f"wd{i}"] = _he((width, 1, k, k), i + 2)
    nodes += [helper.make_node("Concat", [f"d{i}" for i in range(len(parts))], ["cat"], axis=1),
              helper.make_node("Sigmoid", ["cat"], ["g"]),
              helper.make_node("Mul", ["cat", "g"], ["act"]), _conv_node("act", "y", "wl")]
    consts["wl"] = _he((16, c, 1, 1), 9)
    return make_model(nodes, {"x": (1, 8, 23, 17)}, ["y"], consts)


@pytest.mark.parametrize("target", ["x86-avx2", "x86-avx512"])
@pytest.mark.parametrize("parts", [[18, 18, 18, 18], [10, 9], [21, 30, 19]])
def test_mixed_kernel_depthwise_split(parts, target):
    """Parts of 9-30 channels: padded half-vector blocks, transforms into them along rows."""
    check_vs_ort(_mixconv_block(sum(parts), parts), target=target)


def test_odd_channel_counts_get_padded_half_vector_blocks():
    """18 channels in one 18-lane block ran AVX-512 transforms at 2.6 GFLOP/s: a padded block of
    8 when whole vectors would waste more than half; NEON's 4 lanes stay whole."""
    from tvmconv.passes.layout import out_block

    assert [out_block(c, 16) for c in (17, 18, 21, 24, 36, 1000)] == [8, 8, 8, 32, 16, 16]
    assert [out_block(c, 8) for c in (9, 10, 18, 24)] == [4, 4, 8, 8]
    assert [out_block(c, 4) for c in (5, 9, 18)] == [5, 4, 4]


def test_one_vector_blocks_pair_up_with_sixteen_registers():
    """With AVX2's 16 registers a one-vector block is padded to two when that wastes <= 2%
    (1000 classes as 63 x 16); not when it wastes more, nor with 32 registers."""
    from tvmconv.passes.layout import out_block

    assert [out_block(c, 8, 16) for c in (1000, 408, 200, 24, 1008)] == [16, 16, 8, 8, 16]
    assert [out_block(c, 8, 32) for c in (1000, 408)] == [8, 8]


SLICES = {
    # id: (starts, ends, axes, steps)
    "basic": ([1, 0], [3, 4], [1, 2], [1, 2]),
    "negative_step": ([-1, 5], [-100, 0], [2, 3], [-1, -2]),
    "negative_bounds": ([-3], [-1], [-1], None),
    "end_past_size": ([2], [2**62], [1], None),
}


@pytest.mark.parametrize("case", list(SLICES), ids=list(SLICES))
def test_slice(case):
    starts, ends, axes, steps = SLICES[case]
    consts = {"st": np.array(starts, np.int64), "en": np.array(ends, np.int64),
              "ax": np.array(axes, np.int64)}
    if steps is not None:
        consts["sp"] = np.array(steps, np.int64)
    check_vs_ort(single("Slice", (1, 5, 6, 7), consts, list(consts)))


GATHERS = {
    # id: (input shape, axis, constant indices)
    "as_strided_identity": ((120,), 0, np.arange(120)),  # dynamo's as_strided after a pool
    "one_channel": ((1, 5, 6, 7), 1, np.array(3)),
    "every_other_row_backwards": ((1, 5, 6, 7), 2, np.array([4, 2, 0])),
    "runs_and_repeats": ((1, 9, 4, 5), 1, np.array([0, 2, 4, 1, 1, 8, -1])),
    "indices_2d": ((2, 3, 10), 2, np.array([[0, 1, 2], [9, 5, 1]])),
    "permutation": ((1, 200, 3), 1, np.random.default_rng(0).permutation(200)),
    "last_axis": ((1, 4, 5, 9), 3, np.array([8, 0, 0, 3, 7, 7])),
}


@pytest.mark.parametrize("case", list(GATHERS), ids=list(GATHERS))
def test_gather_from_an_activation(case):
    shape, axis, indices = GATHERS[case]
    check_vs_ort(single("Gather", shape, {"i": indices.astype(np.int64)}, ["i"], axis=axis))


def test_gather_behind_a_conv_and_pool():
    """ConvNeXt as PyTorch's dynamo exporter writes it: pooled, flattened, gathered."""
    c = 24
    nodes = [_conv_node("x", "c", "w", pads=[1, 1, 1, 1]),
             helper.make_node("GlobalAveragePool", ["c"], ["p"]),
             helper.make_node("Reshape", ["p", "flat"], ["f"]),
             helper.make_node("Gather", ["f", "i"], ["g"], axis=0),
             helper.make_node("Reshape", ["g", "back"], ["y"])]
    check_vs_ort(make_model(nodes, {"x": (1, 5, 9, 11)}, ["y"], {
        "w": weights((c, 5, 3, 3)), "flat": np.array([-1], np.int64),
        "i": np.arange(c, dtype=np.int64), "back": np.array([1, c], np.int64)}))


GATHER_NDS = {
    # id: (input shape, constant indices)
    "pixels": ((13, 11, 1, 6), np.random.default_rng(1).integers(0, 11, (5, 4, 3, 2))),
    "rows": ((7, 3, 5), np.array([[6], [0], [-1], [2]])),
    "one_row": ((2, 3, 4, 5), np.array([1, 2, 3])),
}


@pytest.mark.parametrize("case", list(GATHER_NDS), ids=list(GATHER_NDS))
def test_gather_nd_from_an_activation(case):
    shape, indices = GATHER_NDS[case]
    check_vs_ort(single("GatherND", shape, {"i": indices.astype(np.int64)}, ["i"]))


def test_adaptive_pool_as_the_dynamo_exporter_writes_it():
    """F.adaptive_avg_pool2d(x, (2, 2)) of a 3x5 map, as PyTorch 2's dynamo exporter writes an
    output size that does not divide the input: each window's pixels gathered (GatherND), the
    padding of short windows masked (Where), summed and divided."""
    rows = [(0, 2), (1, 3)]  # windows [start, end) per output row, of a 3-row map
    cols = [(0, 3), (2, 5)]
    kh, kw = 2, 3
    idx = np.zeros((2, 2, kh, kw, 2), np.int64)
    mask = np.zeros((2, 2, kh, kw, 1, 1), bool)
    for i, (r0, r1) in enumerate(rows):
        for j, (c0, c1) in enumerate(cols):
            for a in range(kh):
                for b in range(kw):
                    idx[i, j, a, b] = (min(r0 + a, 2), min(c0 + b, 4))
                    mask[i, j, a, b] = r0 + a >= r1 or c0 + b >= c1
    counts = np.array([[(r1 - r0) * (c1 - c0) for c0, c1 in cols] for r0, r1 in rows], np.float32)
    nodes = [_conv_node("x", "c", "w", pads=[1, 1, 1, 1]),
             helper.make_node("Transpose", ["c"], ["t"], perm=[2, 3, 0, 1]),
             helper.make_node("GatherND", ["t", "idx"], ["g"]),
             helper.make_node("Where", ["mask", "zero", "g"], ["m"]),
             helper.make_node("ReduceSum", ["m", "axes"], ["s"], keepdims=0),
             helper.make_node("Transpose", ["s"], ["p"], perm=[2, 3, 0, 1]),
             helper.make_node("Div", ["p", "counts"], ["y"])]
    check_vs_ort(make_model(nodes, {"x": (1, 4, 3, 5)}, ["y"], {
        "w": weights((6, 4, 3, 3)), "idx": idx, "mask": mask, "zero": np.float32(0.0),
        "axes": np.array([2, 3], np.int64), "counts": counts}))


@pytest.mark.parametrize("op, indices, match", [
    ("Gather", np.array([0, 200]), r"indices outside \[-200, 200\)"),
    ("GatherND", np.array([[1, -3]]), r"outside the sizes \[1, 200\] of the axes"),
])
def test_gather_out_of_range_refused(op, indices, match):
    model = single(op, (1, 200), {"i": indices.astype(np.int64)}, ["i"], **(
        {"axis": 1} if op == "Gather" else {}))
    with pytest.raises(tvmconv.ModelError, match=match):
        tvmconv.compile(model, "x86")


def _where_leaky():
    """torch.where(x > 0, x, 0.1 * x)."""
    return [helper.make_node("Greater", ["x", "zero"], ["m"]),
            helper.make_node("Mul", ["x", "tenth"], ["s"]),
            helper.make_node("Where", ["m", "x", "s"], ["y"])], {}


def _where_masked_fill():
    """PyTorch's masked_fill: a constant mask, a constant fill, the activation last."""
    mask = np.random.default_rng(0).random((1, 1, 6, 7)) < 0.3
    return [helper.make_node("Where", ["mask", "zero", "x"], ["y"])], {"mask": mask}


def _where_constant_left():
    """A comparison with its constant first, a constant second branch."""
    return [helper.make_node("Less", ["tenth", "x"], ["m"]),
            helper.make_node("Where", ["m", "x", "big"], ["y"])], {"big": np.float32(3.0)}


def _where_constant_branches():
    """torch.where(x > 0, 1.0, per-channel constants): the mask is the only activation."""
    return [helper.make_node("Greater", ["x", "zero"], ["m"]),
            helper.make_node("Where", ["m", "one", "per_channel"], ["y"])], {
        "one": np.float32(1.0), "per_channel": weights((1, 5, 1, 1), 4)}


def _comparisons_as_floats():
    return [helper.make_node("GreaterOrEqual", ["x", "x2"], ["ge"]),
            helper.make_node("LessOrEqual", ["x", "tenth"], ["le"]),
            helper.make_node("Equal", ["x", "x"], ["eq"]),
            helper.make_node("Not", ["eq"], ["ne"]),
            helper.make_node("Cast", ["ge"], ["f1"], to=onnx.TensorProto.FLOAT),
            helper.make_node("Cast", ["le"], ["f2"], to=onnx.TensorProto.FLOAT),
            helper.make_node("Cast", ["ne"], ["f3"], to=onnx.TensorProto.FLOAT),
            helper.make_node("Sum", ["f1", "f2", "f3", "x"], ["y"])], {}


def _where_behind_a_conv():
    return [_conv_node("x", "c", "w", pads=[1, 1, 1, 1]),
            helper.make_node("Greater", ["c", "tenth"], ["m"]),
            helper.make_node("Neg", ["c"], ["n"]),
            helper.make_node("Where", ["m", "c", "n"], ["y"])], {"w": weights((8, 5, 3, 3))}


def _mask_logic():
    """(x > 0.1) & (x <= x2), | and ^ with its negation, as floats; Sign and Round beside."""
    return [helper.make_node("Greater", ["x", "tenth"], ["a"]),
            helper.make_node("LessOrEqual", ["x", "x2"], ["b"]),
            helper.make_node("And", ["a", "b"], ["ab"]),
            helper.make_node("Not", ["b"], ["nb"]),
            helper.make_node("Or", ["ab", "nb"], ["o"]),
            helper.make_node("Xor", ["a", "o"], ["xo"]),
            helper.make_node("Where", ["xo", "x", "x2"], ["w"]),
            helper.make_node("Mul", ["x", "three"], ["x3"]),
            helper.make_node("Round", ["x3"], ["r"]),
            helper.make_node("Sign", ["x"], ["s"]),
            helper.make_node("Sum", ["w", "r", "s"], ["y"])], {"three": np.float32(3.0)}


WHERES = {"leaky": _where_leaky, "mask_logic": _mask_logic, "masked_fill": _where_masked_fill,
          "constant_left": _where_constant_left, "constant_branches": _where_constant_branches,
          "comparisons": _comparisons_as_floats,
          "behind_a_conv": _where_behind_a_conv}


def test_round_takes_halves_to_even():
    x = np.array([[0.5, 1.5, 2.5, -0.5, -1.5, 2.4999, -2.6, 0.0]], np.float32)
    got = check_vs_ort(single("Round", x.shape), {"x": x}, tol=0.0)[0]
    assert got.tolist() == [[0.0, 2.0, 2.0, -0.0, -2.0, 2.0, -3.0, 0.0]]


@pytest.mark.parametrize("case", list(WHERES), ids=list(WHERES))
def test_where_and_comparisons_on_activations(case):
    nodes, consts = WHERES[case]()
    inputs = {"x": (1, 5, 6, 7)}
    if case in ("comparisons", "mask_logic"):
        inputs["x2"] = (1, 1, 6, 7)
    consts = {"zero": np.float32(0.0), "tenth": np.float32(0.1), **consts}
    used = {i for n in nodes for i in n.input}
    check_vs_ort(make_model(nodes, inputs, ["y"], {k: v for k, v in consts.items() if k in used}))


@pytest.mark.parametrize("mode", ["constant", "reflect", "edge"])
def test_pad(mode):
    consts = {"p": np.array([0, 1, 2, 1, 0, 2, 1, 3], np.int64)}
    if mode == "constant":
        consts["v"] = np.float32(1.5)
    check_vs_ort(single("Pad", (1, 3, 5, 6), consts, list(consts), mode=mode))


@pytest.mark.parametrize("perm", [(0, 2, 3, 1), None, (1, 0, 3, 2)])
def test_transpose(perm):
    attrs = {} if perm is None else {"perm": list(perm)}
    check_vs_ort(single("Transpose", (2, 3, 4, 5), **attrs))


@pytest.mark.parametrize("op, consts, attrs", [
    ("Reshape", {"s": np.array([0, -1, 4], np.int64)}, {}),
    ("Flatten", {}, {"axis": 0}),
    ("Flatten", {}, {"axis": 2}),
    ("Flatten", {}, {"axis": -1}),
    ("Squeeze", {"a": np.array([0, -1], np.int64)}, {}),
    ("Unsqueeze", {"a": np.array([-1, 1], np.int64)}, {}),
], ids=["reshape", "flatten0", "flatten2", "flatten_neg1", "squeeze", "unsqueeze"])
def test_reshapes(op, consts, attrs):
    x_shape = (1, 3, 8, 1) if op == "Squeeze" else (2, 3, 8)
    check_vs_ort(single(op, x_shape, consts, list(consts), **attrs))


@pytest.mark.parametrize("x_shape, view_op, view_attrs, op, operand", [
    ((2, 2, 18, 15), "Flatten", {"axis": -2}, "Expand", np.array([3, 8, 270], np.int64)),
    ((1, 4, 3, 1), "Reshape", {}, "Add", np.linspace(-1, 1, 5, dtype=np.float32)),
], ids=["flatten_expand", "reshape_add_widens"])
def test_broadcast_wider_than_a_reshaped_conv(x_shape, view_op, view_attrs, op, operand):
    """An op on a reshaped conv output whose result is wider than the view (Expand, or a constant
    that widens a unit axis) stays after the reshape: run before it, on the conv's output, it
    would broadcast to another shape."""
    c = x_shape[1]
    view_inputs = ["c", "s"] if view_op == "Reshape" else ["c"]
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], kernel_shape=[1, 1]),
             helper.make_node(view_op, view_inputs, ["v"], **view_attrs),
             helper.make_node(op, ["v", "k"], ["y"])]
    consts = {"w": _he((2 * c, c, 1, 1)), "k": operand}
    if view_op == "Reshape":
        consts["s"] = np.array([2 * c, x_shape[2], 1], np.int64)
    check_vs_ort(make_model(nodes, {"x": x_shape}, ["y"], consts))


def test_reshaped_conv_output_that_is_a_graph_output_and_read_further():
    """A flattened conv output that the model returns and an activation also reads: the
    activation stays after the reshape (moved before it, the reshape the output comes from
    was dropped: a KeyError at build time)."""
    nodes = [_conv_node("x", "c", "w", pads=[1, 1, 1, 1]),
             helper.make_node("Flatten", ["c"], ["f"]), helper.make_node("Relu", ["f"], ["y"])]
    check_vs_ort(make_model(nodes, {"x": (1, 8, 5, 5)}, ["f", "y"], {"w": _he((8, 8, 3, 3))}))


@pytest.mark.parametrize("op, attrs", [
    ("DepthToSpace", {"blocksize": 2, "mode": "DCR"}),
    ("DepthToSpace", {"blocksize": 2, "mode": "CRD"}),
    ("DepthToSpace", {"blocksize": 3, "mode": "DCR"}),
    ("SpaceToDepth", {"blocksize": 2}),
])
def test_depth_space(op, attrs):
    x_shape = (1, 18, 3, 2) if attrs["blocksize"] == 3 else (2, 12, 4, 6)
    check_vs_ort(single(op, x_shape, **attrs))


def test_dropout_identity_passthrough():
    nodes = [helper.make_node("Dropout", ["x"], ["d"]), helper.make_node("Identity", ["d"], ["i"]),
             helper.make_node("Relu", ["i"], ["y"])]
    check_vs_ort(make_model(nodes, {"x": (2, 5)}, ["y"]))


# -- Broadcasting binary ops ----------------------------------------------------------------------

BINARY = {
    # id: (op, shape of x, shape of the other operand, is the other a constant, const first)
    "add_vector": ("Add", (2, 3, 4, 5), (5,), True, False),
    "sub_channel": ("Sub", (2, 3, 4, 5), (3, 1, 1), True, False),
    "sub_const_first": ("Sub", (2, 3, 4), (3, 4), True, True),
    "div_const_first": ("Div", (2, 3, 4), (1, 4), True, True),
    "mul_two_acts": ("Mul", (1, 3, 1, 5), (2, 1, 4, 1), False, False),
    "div_two_acts": ("Div", (2, 3, 4), (4,), False, False),
    "max_acts": ("Max", (2, 1, 4), (3, 1), False, False),
    "min_const": ("Min", (2, 3, 4), (1,), True, False),
}


@pytest.mark.parametrize("case", list(BINARY), ids=list(BINARY))
def test_binary_broadcast(case):
    op, x_shape, o_shape, const, first = BINARY[case]
    other = weights(o_shape, 3)
    if op == "Div":
        # no near-zero divisors
        other = np.where(np.abs(other) < 0.3, 0.3, other).astype(np.float32)
    ins = ["o", "x"] if first else ["x", "o"]
    node = helper.make_node(op, ins, ["y"])
    if const:
        model = make_model([node], {"x": x_shape}, ["y"], {"o": other})
        check_vs_ort(model)
    else:
        model = make_model([node], {"x": x_shape, "o": o_shape}, ["y"])
        check_vs_ort(model, {"x": rng_inputs(model)["x"], "o": other})


@pytest.mark.parametrize("exponent", [2.0, 0.5, 1.7])
def test_pow(exponent):
    model = single("Pow", (2, 3, 4), {"e": np.float32(exponent)}, ["e"])
    x = np.abs(rng_inputs(model)["x"]) + 0.1  # positive bases: real results for any exponent
    check_vs_ort(model, {"x": x})


@pytest.mark.parametrize("op", ["Sum", "Mean", "Max", "Min"])
def test_variadic(op):
    node = helper.make_node(op, ["a", "b", "k"], ["y"])
    check_vs_ort(make_model([node], {"a": (2, 3, 4), "b": (3, 1)}, ["y"], {"k": weights((4,))}))


def test_channel_shuffle_between_convs():
    """ShuffleNet's channel shuffle: a 5-D reshape and transpose between two blocked convs."""
    nodes = [_conv_node("x", "a", "w1", pads=[1, 1, 1, 1]),
             helper.make_node("Reshape", ["a", "s5"], ["r"]),
             helper.make_node("Transpose", ["r"], ["t"], perm=[0, 2, 1, 3, 4]),
             helper.make_node("Reshape", ["t", "s4"], ["b"]),
             _conv_node("b", "y", "w2", group=2)]
    check_vs_ort(make_model(nodes, {"x": (1, 8, 6, 7)}, ["y"], {
        "w1": _he((24, 8, 3, 3)), "s5": np.array([1, 2, 12, 6, 7], np.int64),
        "s4": np.array([1, 24, 6, 7], np.int64), "w2": _he((24, 12, 1, 1), 2)}))


@pytest.mark.parametrize("target", ["x86-avx2", "x86-avx512"])
def test_shufflenet_v2_unit(target):
    """ShuffleNetV2's unit on 116 channels (no whole vectors): a channel split into two slices,
    one through 1x1 / depthwise 3x3 / 1x1 convs, a concat, and the shuffle (reshape, transpose,
    reshape). The plain slices feed the 1x1 conv as they are (read as NCHW1c): the only layout
    transforms are the blocked conv outputs' way back to plain."""
    h = 58
    nodes = [helper.make_node("Split", ["x", "halves"], ["a", "b"], axis=1),
             _conv_node("b", "b1", "w1"), helper.make_node("Relu", ["b1"], ["b2"]),
             _conv_node("b2", "b3", "wd", group=h, pads=[1, 1, 1, 1]),
             _conv_node("b3", "b4", "w2"), helper.make_node("Relu", ["b4"], ["b5"]),
             helper.make_node("Concat", ["a", "b5"], ["c"], axis=1),
             helper.make_node("Reshape", ["c", "s5"], ["r"]),
             helper.make_node("Transpose", ["r"], ["t"], perm=[0, 2, 1, 3, 4]),
             helper.make_node("Reshape", ["t", "s4"], ["y"])]
    model = make_model(nodes, {"x": (1, 2 * h, 11, 13)}, ["y"], {
        "halves": np.array([h, h], np.int64), "w1": _he((h, h, 1, 1)), "wd": _he((h, 1, 3, 3), 2),
        "w2": _he((h, h, 1, 1), 3), "s5": np.array([1, 2, h, 11, 13], np.int64),
        "s4": np.array([1, 2 * h, 11, 13], np.int64)})
    transforms = [wl.params for wl in workloads(model, target) if wl.kind == "layout_transform"]
    assert transforms and all(t["dst"] == 0 for t in transforms), transforms
    check_vs_ort(model, target=target)


@pytest.mark.parametrize("target", ["x86-avx2", "x86-avx512"])
@pytest.mark.parametrize("channels, width, out_width", [(96, 16, 16), (128, 4, 4), (64, 8, 8),
                                                         (32, 4, 8), (48, 2, 2)])
def test_grouped_conv_reads_its_producers_blocks(target, channels, width, out_width):
    """RegNet's and ResNeXt's blocks: a 1x1 conv, then a 3x3 conv in groups of ``width`` input
    channels. Groups narrower than a vector run merged into whole-vector groups (block-diagonal
    weights), and the 1x1 conv writes the blocks the groups are read in: no layout transform
    runs between them."""
    groups = channels // width
    nodes = [_conv_node("x", "a", "w1"), helper.make_node("Relu", ["a"], ["r"]),
             _conv_node("r", "g", "wg", group=groups, pads=[1, 1, 1, 1], strides=[2, 2]),
             helper.make_node("Relu", ["g"], ["y"])]
    model = make_model(nodes, {"x": (1, 24, 9, 10)}, ["y"], {
        "w1": _he((channels, 24, 1, 1)), "wg": _he((groups * out_width, width, 3, 3), 2)})
    kinds = [wl.kind for wl in workloads(model, target)]
    if width * 4 >= (8 if target == "x86-avx2" else 16):  # merged at most 4 groups to a vector
        assert kinds.count("layout_transform") == 1, kinds  # the network output's
    check_vs_ort(model, target=target)


def test_transform_between_block_sizes():
    """Groups of 24 channels in an odd number (RegNetX-1.6GF's 408 = 17 x 24) cannot merge into
    whole vectors of 16: they run in blocks of 8, after a transform from the 1x1 conv's wider
    blocks whose vectors stay within the smaller block (each one contiguous on both sides)."""
    from tvmconv.templates.x86 import injective

    nodes = [_conv_node("x", "a", "w1"), helper.make_node("Relu", ["a"], ["r"]),
             _conv_node("r", "g", "wg", group=3, pads=[1, 1, 1, 1]),
             _conv_node("g", "y", "w2")]
    model = make_model(nodes, {"x": (1, 16, 9, 10)}, ["y"], {
        "w1": _he((72, 16, 1, 1)), "wg": _he((72, 24, 3, 3), 2), "w2": _he((32, 72, 1, 1), 3)})
    spec = resolve("x86-avx512")
    reblocks = [wl for wl in workloads(model, spec.name) if wl.kind == "layout_transform"
                and wl.params["src"] > 1 and wl.params["dst"] > 1]
    assert reblocks, [wl.kind for wl in workloads(model, spec.name)]
    for wl in reblocks:
        assert injective.default(wl, spec)["vector"] == min(wl.params["src"], wl.params["dst"])
    check_vs_ort(model)


@pytest.mark.parametrize("kind, params, merged", [
    ("slice", {"inputs": ((1, 116, 56, 56),), "out": (1, 58, 56, 56), "starts": (0, 58, 0, 0),
               "steps": (1, 1, 1, 1)},
     {"inputs": ((116 * 3136,),), "out": (58 * 3136,), "starts": (58 * 3136,), "steps": (1,)}),
    ("slice", {"inputs": ((1, 4, 9, 9, 16),), "out": (1, 4, 7, 7, 16), "starts": (0, 0, 1, 1),
               "steps": (1, 1, 1, 1)},
     {"inputs": ((4, 9, 144),), "out": (4, 7, 112), "starts": (0, 1, 16), "steps": (1, 1, 1)}),
    ("slice", {"inputs": ((1, 16),), "out": (1, 10), "starts": (0, 10), "steps": (1, -1)},
     {"inputs": ((16,),), "out": (10,), "starts": (10,), "steps": (-1,)}),
    ("slice", {"inputs": ((2, 8, 6),), "out": (2, 4, 6), "starts": (0, 0, 0),
               "steps": (1, 2, 1)}, {"inputs": ((2, 8, 6),), "out": (2, 4, 6), "starts": (0, 0, 0),
                                     "steps": (1, 2, 1)}),
    ("transpose", {"inputs": ((1, 2, 58, 7, 9),), "out": (1, 58, 2, 7, 9), "perm": (0, 2, 1, 3, 4)},
     {"inputs": ((2, 58, 63),), "out": (58, 2, 63), "perm": (1, 0, 2)}),
    ("transpose", {"inputs": ((2, 3, 4),), "out": (4, 2, 3), "perm": (2, 0, 1)},
     {"inputs": ((6, 4),), "out": (4, 6), "perm": (1, 0)}),
    ("concat", {"inputs": ((2, 3, 5, 5), (2, 4, 5, 5)), "out": (2, 7, 5, 5), "axis": 1},
     {"inputs": ((2, 3, 25), (2, 4, 25)), "out": (2, 7, 25), "axis": 1}),
    ("concat", {"inputs": ((2, 3, 4), (5, 3, 4)), "out": (7, 3, 4), "axis": 0},
     {"inputs": ((2, 12), (5, 12)), "out": (7, 12), "axis": 0}),
    ("concat", {"inputs": ((2, 3), (2, 4)), "out": (2, 7), "axis": 1},
     {"inputs": ((2, 3), (2, 4)), "out": (2, 7), "axis": 1}),
    ("elementwise", {"inputs": ((2, 3, 55, 55, 16), (2, 3, 55, 55, 16), ()),
                     "out": (2, 3, 55, 55, 16), "steps": ()},
     {"inputs": ((290400,), (290400,), (1,)), "out": (290400,), "steps": ()}),
    ("elementwise", {"inputs": ((1, 9, 56, 56, 16), (1, 9, 1, 1, 16)), "out": (1, 9, 56, 56, 16),
                     "steps": ()},  # a squeeze-excite gate: one value per channel
     {"inputs": ((9, 3136, 16), (9, 1, 16)), "out": (9, 3136, 16), "steps": ()}),
    ("elementwise", {"inputs": ((3, 5, 7), (5, 1)), "out": (3, 5, 7), "steps": ()},
     {"inputs": ((3, 5, 7), (1, 5, 1)), "out": (3, 5, 7), "steps": ()}),
])
def test_data_movement_collapses_to_fewest_axes(kind, params, merged):
    """Axes that stay adjacent and whole in every operand merge (each op computes the same bytes
    over them; the numerical tests above run the merged kernels)."""
    from tvmconv.layers.transform import collapsed
    from tvmconv.workload import Workload

    got = collapsed(Workload(kind, tuple(sorted(params.items()))))
    if merged["out"] == params["out"]:
        assert got is None
    else:
        assert got is not None and got.params == merged, got


@pytest.mark.parametrize("target", ["x86-avx2", "x86-avx512"])
@pytest.mark.parametrize("c, gate_first", [(24, False), (144, True)])
def test_squeeze_excite_gate(target, c, gate_first):
    """EfficientNet's squeeze-and-excite: global pool, two 1x1 convs, a sigmoid gate multiplied
    back onto the blocked activation, broadcast over the image; SiLU as x * sigmoid(x). The
    SiLUs fuse into the convs and the gate multiplies in the activation's channel blocks: the
    one layout transform is the network output's."""
    nodes = [_conv_node("x", "a", "w1", pads=[1, 1, 1, 1]),
             helper.make_node("Sigmoid", ["a"], ["as"]),
             helper.make_node("Mul", ["a", "as"], ["h"]),
             helper.make_node("GlobalAveragePool", ["h"], ["g"]),
             _conv_node("g", "r", "w2"), helper.make_node("Sigmoid", ["r"], ["rs"]),
             helper.make_node("Mul", ["rs", "r"], ["rr"]),
             _conv_node("rr", "e", "w3"), helper.make_node("Sigmoid", ["e"], ["gate"]),
             helper.make_node("Mul", ["gate", "h"] if gate_first else ["h", "gate"], ["y"])]
    model = make_model(nodes, {"x": (1, 5, 9, 11)}, ["y"], {
        "w1": _he((c, 5, 3, 3)), "w2": _he((c // 4, c, 1, 1), 2), "w3": _he((c, c // 4, 1, 1), 3)})
    kinds = [wl.kind for wl in workloads(model, target)]
    assert kinds.count("elementwise") == 1 and kinds.count("layout_transform") == 1, kinds
    check_vs_ort(model, {"x": rng_inputs(model)["x"] * 3}, target=target)


@pytest.mark.parametrize("inner", [["Sigmoid"], ["HardSigmoid"], ["Softplus", "Tanh"],
                                   ["Sigmoid", "Sigmoid"]])
def test_gated_activation_fuses_into_conv(inner):
    """x * f(x) built from ONNX ops (SiLU, x * hardsigmoid(x), Mish as x * tanh(softplus(x)))
    runs as the conv's epilogue, not as a separate kernel reading the conv's output twice."""
    nodes = [_conv_node("x", "c", "w", pads=[1, 1, 1, 1])]
    prev = "c"
    for k, op in enumerate(inner):
        nodes.append(helper.make_node(op, [prev], [f"f{k}"]))
        prev = f"f{k}"
    nodes.append(helper.make_node("Mul", [prev, "c"], ["y"]))
    model = make_model(nodes, {"x": (2, 6, 7, 9)}, ["y"], {"w": _he((20, 6, 3, 3))})
    kinds = [wl.kind for wl in workloads(model, "x86")]
    assert kinds.count("conv2d") == 1 and "elementwise" not in kinds, kinds
    check_vs_ort(model, {"x": rng_inputs(model)["x"] * 3})


# -- Exporter shape arithmetic --------------------------------------------------------------------

def test_exporter_flatten_chain():
    """torch's Flatten before a classifier: Shape -> Gather -> Unsqueeze -> Concat -> Reshape,
    all folded at compile time, feeding a Gemm."""
    nodes = [_conv_node("x", "c", "w"), helper.make_node("Relu", ["c"], ["r"]),
             helper.make_node("Shape", ["r"], ["shp"]),
             helper.make_node("Gather", ["shp", "zero"], ["n"], axis=0),
             helper.make_node("Unsqueeze", ["n", "ax0"], ["n1"]),
             helper.make_node("Concat", ["n1", "minus1"], ["new_shape"], axis=0),
             helper.make_node("Reshape", ["r", "new_shape"], ["f"]),
             helper.make_node("Gemm", ["f", "fc", "fb"], ["y"], transB=1)]
    consts = {"w": _he((6, 3, 3, 3)), "zero": np.array(0, np.int64),
              "ax0": np.array([0], np.int64), "minus1": np.array([-1], np.int64),
              "fc": _he((10, 6 * 4 * 4)), "fb": weights(10, 5)}
    check_vs_ort(make_model(nodes, {"x": (2, 3, 6, 6)}, ["y"], consts))


def test_constant_of_shape_and_constant_nodes():
    """Constant / ConstantOfShape nodes feeding activations fold into kernel operands."""
    fill = helper.make_tensor("fill", 1, [1], [0.25])
    nodes = [helper.make_node("Constant", [], ["shape"], value=helper.make_tensor(
                 "s", 7, [2], [3, 4])),
             helper.make_node("ConstantOfShape", ["shape"], ["k"], value=fill),
             helper.make_node("Add", ["x", "k"], ["y"])]
    check_vs_ort(make_model(nodes, {"x": (2, 3, 4)}, ["y"]))


def test_long_activation_chain_after_conv():
    """Eight activations fused behind a conv (and a residual add) compile quickly and match: each
    step reads the last one through a variable, not a copy of its whole expression."""
    acts = ["Sigmoid", "Tanh", "Elu", "Sigmoid", "HardSwish", "Tanh", "Elu", "Sigmoid"]
    nodes = [_conv_node("x", "c", "w", pads=[1, 1, 1, 1]),
             helper.make_node("Add", ["c", "x2"], ["a0"])]
    for k, op in enumerate(acts):
        nodes.append(helper.make_node(op, [f"a{k}"], [f"a{k + 1}" if k + 1 < len(acts) else "y"]))
    model = make_model(nodes, {"x": (1, 3, 9, 9), "x2": (1, 16, 9, 9)}, ["y"],
                       {"w": _he((16, 3, 3, 3))})
    check_vs_ort(model)


@pytest.mark.parametrize("first, second", [("Elu", "LeakyRelu"), ("Mish", "Mish"),
                                           ("Tanh", "Square")])
def test_activation_reading_a_fused_activation_twice(first, second):
    """An activation that reads its input several times (a select, x * f(x), x * x) after one
    that binds its own input to a variable: the copies would define that variable twice, which
    TIR refuses; and a Mish after a Mish, fused, compiled for over ten minutes."""
    last = (helper.make_node("Mul", ["a", "a"], ["y"]) if second == "Square" else
            helper.make_node(second, ["a"], ["y"]))
    nodes = [_conv_node("x", "c", "w", pads=[1, 1, 1, 1]), helper.make_node(first, ["c"], ["a"]),
             last]
    check_vs_ort(make_model(nodes, {"x": (1, 16, 9, 9)}, ["y"], {"w": _he((32, 16, 3, 3))},
                            opset=18))


def test_pool_window_a_stride_larger_than_input():
    with pytest.raises(tvmconv.ModelError, match="larger than the padded input"):
        tvmconv.compile(single("MaxPool", (1, 1, 4, 4), kernel_shape=[2, 5]))


ONE_D = {
    "conv": single("Conv", (1, 4, 17), {"w": weights((6, 4, 3))}, ["w"], pads=[1, 1]),
    "conv_strided_dilated_grouped": single("Conv", (2, 6, 29),
                                           {"w": weights((9, 2, 3)), "b": weights(9, 2)},
                                           ["w", "b"], strides=[2], dilations=[2], group=3,
                                           pads=[2, 1]),
    "conv_same": single("Conv", (1, 3, 20), {"w": weights((5, 3, 4))}, ["w"],
                        auto_pad="SAME_UPPER", strides=[3]),
    "conv_transpose": single("ConvTranspose", (1, 4, 9), {"w": weights((4, 3, 4))}, ["w"],
                             strides=[2], pads=[1, 1], output_padding=[1]),
    "max_pool": single("MaxPool", (1, 4, 17), kernel_shape=[3], strides=[2], ceil_mode=1),
    "avg_pool": single("AveragePool", (1, 4, 16), kernel_shape=[4], strides=[3], pads=[1, 2],
                       count_include_pad=1),
    "lp_pool": single("LpPool", (1, 3, 10), kernel_shape=[2], p=2),
    "global_avg_pool": single("GlobalAveragePool", (2, 5, 13)),
    "global_max_pool": single("GlobalMaxPool", (1, 5, 13)),
    "resize_linear": single("Resize", (2, 3, 11), {"roi": np.zeros(0, np.float32),
                                                   "scales": np.array([1, 1, 2.5], np.float32)},
                            ["roi", "scales"], mode="linear"),
    "resize_nearest_sizes": single("Resize", (1, 4, 17), {"sizes": np.array([1, 4, 9], np.int64)},
                                   ["", "", "sizes"], mode="nearest"),
    "upsample": single("Upsample", (1, 4, 7), {"scales": np.array([1, 1, 3], np.float32)},
                       ["scales"], opset=9),
}


@pytest.mark.parametrize("case", list(ONE_D))
def test_one_d(case):
    """1-D convs and pools ([N, C, L]: audio, sequences) run as 2-D ones of height 1."""
    check_vs_ort(ONE_D[case])


N_D_POOLS = {
    # PyTorch's LocalResponseNorm: [N, 1, C, H, W] pooled over C alone
    "avg_over_channels": single("AveragePool", (1, 1, 12, 7, 5), kernel_shape=[5, 1, 1],
                                pads=[2, 0, 0, 2, 0, 0], count_include_pad=1),
    "max_frames_one_by_one": single("MaxPool", (2, 3, 4, 9, 8), kernel_shape=[1, 3, 3],
                                    strides=[1, 2, 2], pads=[0, 1, 0, 0, 1, 1], ceil_mode=1),
    "lp_last_axis": single("LpPool", (1, 2, 3, 4, 6), kernel_shape=[1, 1, 2], strides=[1, 1, 2],
                           p=2),
    "avg_same": single("AveragePool", (1, 2, 5, 4, 7), kernel_shape=[1, 3, 2], strides=[1, 2, 1],
                       auto_pad="SAME_UPPER"),
    "global_avg": single("GlobalAveragePool", (2, 3, 4, 5, 6)),
    "global_max": single("GlobalMaxPool", (1, 4, 3, 2, 5)),
}


@pytest.mark.parametrize("case", list(N_D_POOLS))
def test_n_d_pool(case):
    """Pools over 3 or more spatial axes whose window moves along at most two run as 1-D or 2-D
    pools over a reshaped view."""
    check_vs_ort(N_D_POOLS[case])


@pytest.mark.parametrize("kernel", [[2, 2, 2], [3, 1, 3], [3, 3, 1]])
def test_n_d_pool_that_does_not_reduce_is_refused_by_name(kernel):
    with pytest.raises(tvmconv.UnsupportedError,
                       match=re.escape(f"MaxPool 'maxpool_node': window {kernel} over 3 spatial")):
        tvmconv.compile(single("MaxPool", (1, 2, 5, 6, 7), kernel_shape=kernel))


def _shape_if(x_shape):
    """y = If(dim 1 of x == 1) then Flatten(x, 2) else Identity(x), then a ReLU: a branch on a
    shape, as PyTorch exports LocalResponseNorm and squeezes of dimensions it could not size. (A
    condition on the input's values cannot reach an If: tvmconv refuses the comparisons and
    boolean casts of activations before it; onnx_backend binds such inputs.)"""
    then_g = helper.make_graph(
        [helper.make_node("Flatten", ["x"], ["t"], axis=2)], "then", [],
        [helper.make_tensor_value_info("t", onnx.TensorProto.FLOAT, [None] * 2)])
    else_g = helper.make_graph(
        [helper.make_node("Identity", ["x"], ["e"])], "else", [],
        [helper.make_tensor_value_info("e", onnx.TensorProto.FLOAT, x_shape)])
    nodes = [helper.make_node("Shape", ["x"], ["s"]),
             helper.make_node("Gather", ["s", "one"], ["d"], axis=0),
             helper.make_node("Equal", ["d", "one"], ["c"]),
             helper.make_node("If", ["c"], ["b"], name="the_if",
                              then_branch=then_g, else_branch=else_g),
             helper.make_node("Relu", ["b"], ["y"])]
    inputs = [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, x_shape)]
    y_shape = [x_shape[0] * x_shape[1], x_shape[2] * x_shape[3]] if x_shape[1] == 1 else x_shape
    graph = helper.make_graph(nodes, "shape_if", inputs,
                              [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, y_shape)],
                              [onnx.numpy_helper.from_array(np.array(1, np.int64), "one")])
    # Not make_model: ONNX's strict shape inference checks the branch not taken too.
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


@pytest.mark.parametrize("x_shape", [(2, 1, 5, 3), (2, 4, 5, 3)])
def test_if_on_a_shape_runs_the_taken_branch(x_shape):
    y = check_vs_ort(_shape_if(x_shape))[0]
    assert y.ndim == (2 if x_shape[1] == 1 else 4)


def test_local_response_norm_as_pytorch_exports_it():
    """PyTorch exports nn.LocalResponseNorm as a Pad and a 3-D AveragePool over the channels of
    [N, 1, C, H, W], behind an If on the rank: both run (N-D pools, Ifs on shapes)."""
    import io
    import warnings

    import torch
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 12, 3), torch.nn.ReLU(),
                              torch.nn.LocalResponseNorm(5, alpha=1e-2, beta=0.75, k=2.0)).eval()
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # the legacy exporter's notice
        torch.onnx.export(net, torch.zeros(1, 3, 9, 11), buf, dynamo=False, opset_version=17,
                          do_constant_folding=False, input_names=["x"])
    model = onnx.load_from_string(buf.getvalue())
    assert {"If", "AveragePool"} <= {n.op_type for n in model.graph.node}
    check_vs_ort(model)


def _one_d_cnn():
    """A small 1-D CNN: conv, batch norm, ReLU, max pool, conv, global pool, classifier."""
    nodes = [helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], pads=[2, 2], strides=[2]),
             helper.make_node("BatchNormalization", ["c1", "g", "bt", "m", "v"], ["n1"]),
             helper.make_node("Relu", ["n1"], ["r1"]),
             helper.make_node("MaxPool", ["r1"], ["p1"], kernel_shape=[3], strides=[2]),
             helper.make_node("Conv", ["p1", "w2"], ["c2"], pads=[1, 1]),
             helper.make_node("Relu", ["c2"], ["r2"]),
             helper.make_node("GlobalAveragePool", ["r2"], ["g2"]),
             helper.make_node("Flatten", ["g2"], ["f"]),
             helper.make_node("Gemm", ["f", "fc"], ["y"], transB=1)]
    consts = {"w1": _he((16, 2, 5)), "b1": weights(16, 2), "g": weights(16, 3) + 1,
              "bt": weights(16, 4), "m": weights(16, 5), "v": np.abs(weights(16, 6)) + 0.5,
              "w2": _he((24, 16, 3)), "fc": _he((7, 24))}
    return make_model(nodes, {"x": (1, 2, 101)}, ["y"], consts)


@pytest.mark.parametrize("mode", ["nearest", "linear"])
@pytest.mark.parametrize("shape", [(2, 3, 5, 11), (2, 3, 11)])
def test_resize_align_corners_fractional_scale(mode, shape):
    """align_corners over the output's own length, as onnxruntime and PyTorch compute it (the
    ONNX reference divides by length x scale instead: 27.5, not 27, for 11 x 2.5)."""
    scales = np.array([1, 1, *[2.5] * (len(shape) - 2)], np.float32)
    check_vs_ort(single("Resize", shape, {"roi": np.zeros(0, np.float32), "scales": scales},
                        ["roi", "scales"], mode=mode,
                        coordinate_transformation_mode="align_corners"))


def test_one_d_cnn():
    check_vs_ort(_one_d_cnn())


def test_one_d_layers_fuse_as_two_d_ones():
    """Batch norm and ReLU between 1-D layers fold and fuse into the conv before them, as in a 2-D
    network: no kernel of their own, no layout transform around the 3-D views
    (``passes.lift``)."""
    kinds = [wl.kind for wl in workloads(_one_d_cnn())]
    assert kinds[:4] == ["conv2d", "pool2d", "conv2d", "pool2d"], kinds


def _gated_causal_block(rank: int):
    """WaveNet's block: a causal (left) zero pad, two dilated convs gated tanh x sigmoid, a 1x1
    conv and the residual; 1-D, or 2-D as TensorFlow exports "same" convs with explicit pads."""
    if rank == 3:
        pads, shape, k, dil = [0, 0, 2, 0, 0, 0], (1, 16, 37), (2,), [2]
    else:
        pads, shape, k, dil = [0, 0, 1, 2, 0, 0, 1, 0], (1, 16, 9, 11), (3, 3), [1, 1]
    nodes = [helper.make_node("Pad", ["x", "p"], ["xp"]),
             helper.make_node("Conv", ["xp", "wf"], ["f"], dilations=dil),
             helper.make_node("Conv", ["xp", "wg"], ["g"], dilations=dil),
             helper.make_node("Tanh", ["f"], ["tf"]), helper.make_node("Sigmoid", ["g"], ["sg"]),
             helper.make_node("Mul", ["tf", "sg"], ["z"]),
             helper.make_node("Conv", ["z", "wr"], ["r"]),
             helper.make_node("Add", ["x", "r"], ["y"])]
    c = shape[1]
    return make_model(nodes, {"x": shape}, ["y"], {
        "p": np.array(pads, np.int64), "wf": _he((c, c, *k)), "wg": _he((c, c, *k), 2),
        "wr": _he((c, c, *[1] * len(k)), 3)})


@pytest.mark.parametrize("rank", [3, 4])
def test_zero_pads_fold_into_the_convs_reading_them(rank):
    """No pad kernel: the convs pad inside (``passes.fold.fold_pads``)."""
    model = _gated_causal_block(rank)
    check_vs_ort(model)
    kinds = [wl.kind for wl in workloads(model)]
    assert "pad" not in kinds and kinds.count("conv2d") == 3, kinds


def test_one_d_resnet_block_stays_blocked():
    """A 1-D residual block with a squeeze-excite gate and a channel concat: the add, the gate
    and the concat run on the 2-D form too, with no layout transform among the convs."""
    nodes = [helper.make_node("Conv", ["x", "w1"], ["c1"], pads=[1, 1]),
             helper.make_node("Relu", ["c1"], ["r1"]),
             helper.make_node("Conv", ["r1", "w2"], ["c2"], pads=[1, 1]),
             helper.make_node("Add", ["c2", "r1"], ["a"]),
             helper.make_node("Relu", ["a"], ["r2"]),
             helper.make_node("GlobalAveragePool", ["r2"], ["g"]),
             helper.make_node("Sigmoid", ["g"], ["s"]),
             helper.make_node("Mul", ["r2", "s"], ["se"]),
             helper.make_node("Conv", ["se", "w3"], ["c3"], pads=[2, 2], dilations=[2]),
             helper.make_node("Concat", ["se", "c3"], ["y"], axis=1)]
    consts = {"w1": _he((16, 3, 3)), "w2": _he((16, 16, 3), 2), "w3": _he((16, 16, 3), 3)}
    model = make_model(nodes, {"x": (2, 3, 50)}, ["y"], consts)
    check_vs_ort(model)
    kinds = [wl.kind for wl in workloads(model)]
    assert "layout_transform" not in kinds[:kinds.index("concat")], kinds


def test_three_d_is_refused_by_name():
    with pytest.raises(tvmconv.UnsupportedError, match="only 1-D .* and 2-D .* got rank 5"):
        tvmconv.compile(single("Conv", (1, 2, 5, 6, 7), {"w": weights((3, 2, 3, 3, 3))}, ["w"]))


def _group_norm(shape, groups, channels_of_scale):
    from onnx import TensorProto, numpy_helper

    node = helper.make_node("GroupNormalization", ["x", "s", "b"], ["y"], num_groups=groups,
                            epsilon=1e-3)
    graph = helper.make_graph(
        [node], "gn", [helper.make_tensor_value_info("x", TensorProto.FLOAT, shape)],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, shape)],  # no shape inference
        [numpy_helper.from_array(weights(channels_of_scale, 1) + 1, "s"),
         numpy_helper.from_array(weights(channels_of_scale, 2), "b")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21)])
    model.ir_version = 10
    return model


@pytest.mark.parametrize("shape", [(2, 12, 5, 7), (1, 12, 9)])
def test_group_norm(shape):
    """GroupNormalization (opset 21: a scale and shift per channel), 2-D and 1-D."""
    check_vs_ort(_group_norm(shape, 3, 12))


def test_group_norm_groups_must_divide_the_channels():
    with pytest.raises(tvmconv.ModelError, match="5 groups do not divide"):
        tvmconv.compile(_group_norm((1, 12, 4, 4), 5, 12))


NORMS_OF_CONSTANTS = {
    # id: (model, which of the input's axes are constant, shift's shape in the output)
    "instance_norm": (lambda: single("InstanceNormalization", (1, 24, 23, 66), {
        "s": weights(24, 1) + 1, "b": weights(24, 2)}, ["s", "b"]), (2, 3), (1, 24, 1, 1)),
    "group_norm": (lambda: _group_norm((2, 12, 31, 30), 3, 12), (1, 2, 3), (1, 12, 1, 1)),
    "layer_norm": (lambda: single("LayerNormalization", (1, 5, 3, 700), {
        "s": weights(700, 1) + 1, "b": weights(700, 2)}, ["s", "b"], opset=17, axis=-1),
                   (3,), (700,)),
}


@pytest.mark.parametrize("case", list(NORMS_OF_CONSTANTS))
def test_normalising_a_constant_gives_the_shift(case):
    """Values constant over the normalised axes (an upsampled 1x1 map) have mean exactly the
    value, so the output is the shift: a rounding error in the mean, divided by sqrt(epsilon),
    had come out as an offset of 1e-3 (onnxruntime's own is up to 2e-4; a fuzzed network)."""
    build, axes, bias_shape = NORMS_OF_CONSTANTS[case]
    model = build()
    shape = [d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim]
    level = np.random.default_rng(0).uniform(0.5, 1.0, [1 if a in axes else d
                                                        for a, d in enumerate(shape)])
    x = np.broadcast_to(1 / (1 + np.exp(-8 * level)), shape).astype(np.float32)  # ~0.99
    bias = onnx.numpy_helper.to_array(model.graph.initializer[-1]).reshape(bias_shape)
    assert_close(run_tvmconv(model, {"x": x})[0], np.broadcast_to(bias, shape), tol=1e-6)


@pytest.mark.parametrize("seed", range(10))
def test_fuzzed_network(seed):
    """A random small CNN from ``scripts/fuzz.py`` (odd shapes, groups, pads, pools, squeeze-
    excite, residuals, concats, shuffles, resizes, norms, reductions, slices, broadcast
    constants, channels-last blocks; batches of 1-3) against onnxruntime: such networks found
    nine bugs the fixed shapes above had missed."""
    import fuzz

    model, _, _ = fuzz.network(np.random.default_rng(seed), batch=True)
    check_vs_ort(model, seed=seed)
