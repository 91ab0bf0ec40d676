"""Whole networks against onnxruntime: the reference zoo, the bundled digits classifier, and the
compile -> export -> load round trip through one artefact file."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import numpy as np
import onnx
import pytest
from conftest import assert_close, ort_session, run_ort

import tvmconv

ZOO = ["resnet18", "mobilenet_v2", "squeezenet", "vgg", "lenet5", "inception", "efficientnet",
       "mobilenet_v3", "shufflenet_v2", "resnext", "regnet", "m5", "convnext", "cyclegan", "unet",
       "deeplab"]


def _data(name: str) -> Path:
    return Path(str(resources.files("tvmconv") / "data" / name))


def _seeded_input(name: str, seed: int = 123) -> np.ndarray:
    """Another seed than the one zoo.py exported and checked the model with."""
    import zoo

    return np.random.default_rng(seed).standard_normal(zoo.input_shape(name)).astype(np.float32)


@pytest.mark.parametrize("target", ["x86-avx2", "x86-avx512"])
def test_book_fits_the_templates(zoo_model, target):
    """The shipped schedule book's record for each reference layer fits the templates as they are
    now. compile passes over a book record that does not (quietly: a user can do nothing about
    it), so that layer would lose its tuned config in every model that has it."""
    from tvmconv import templates
    from tvmconv.build import tuned_records
    from tvmconv.measure import workloads
    from tvmconv.target import resolve

    spec = resolve(target)
    book = tuned_records(spec.key, [])
    found = {wl.key: wl for name in ZOO for wl, _ in workloads(zoo_model(name), spec)}
    assert found.keys() & book.keys()
    stale = [key for key, wl in found.items()
             if key in book and templates.from_record(book[key][0], wl, spec) is None]
    assert not stale, stale


@pytest.mark.parametrize("name", ZOO)
def test_zoo_model(zoo_model, name):
    path = zoo_model(name)
    x = _seeded_input(name)
    ref = run_ort(onnx.load(str(path)), {"input": x})[0]
    m = tvmconv.compile(path, target="x86").model()
    assert [i.name for i in m.inputs] == ["input"] and [o.name for o in m.outputs] == ["output"]
    assert_close(m(x), ref)


@pytest.mark.parametrize("name", ["mobilenet_v2", "squeezenet", "inception", "efficientnet",
                                  "shufflenet_v2", "resnext", "convnext", "cyclegan", "deeplab"])
def test_zoo_model_as_avx2_code(zoo_model, name):
    """The 8-lane plan (other channel blocks, other padded blocks, AVX2's 16 registers) runs on
    any x86 host, so an AVX-512 machine checks it too."""
    from tvmconv.target import resolve

    if resolve("x86").key == "x86-avx2":
        pytest.skip("the host is AVX2: test_zoo_model compiles this plan already")
    path = zoo_model(name)
    x = _seeded_input(name)
    ref = run_ort(onnx.load(str(path)), {"input": x})[0]
    assert_close(tvmconv.compile(path, target="x86-avx2").model()(x), ref)


def test_digits_accuracy_matches_onnxruntime():
    """The bundled classifier: tvmconv's predictions are onnxruntime's, so is its accuracy."""
    model = onnx.load(str(_data("digits_cnn.onnx")))
    data = np.load(_data("digits_test.npz"))
    xs, ys = data["x"].astype(np.float32), data["y"]
    m = tvmconv.compile(model, target="x86").model()
    name = m.inputs[0].name
    batch = m.inputs[0].shape[0]
    assert batch == 1, "the bundled model is compiled for one image at a time"
    got = np.concatenate([m(x[None]) for x in xs])
    sess = ort_session(model)
    ref = np.concatenate([sess.run(None, {name: x[None]})[0] for x in xs])
    assert_close(got, ref)
    pred, ref_pred = got.argmax(1), ref.argmax(1)
    assert np.array_equal(pred, ref_pred), f"{int((pred != ref_pred).sum())} predictions differ"
    acc = float((pred == ys).mean())
    assert acc == float((ref_pred == ys).mean())
    assert acc > 0.9, f"accuracy {acc:.2%}: the bundled model should classify digits"


def test_export_load_round_trip(zoo_model, tmp_path):
    """An artefact written to disk and loaded back is the same network, with its metadata."""
    path = zoo_model("lenet5")
    x = _seeded_input("lenet5")
    compiled = tvmconv.compile(str(path), target="x86")
    before = compiled.model()(x)
    out = compiled.export(tmp_path / "sub" / "lenet5.so")
    assert out.is_file()
    loaded = tvmconv.load(out)
    assert loaded.inputs == compiled.inputs and loaded.outputs == compiled.outputs
    assert loaded.inputs[0].shape == (1, 1, 32, 32) and loaded.outputs[0].shape == (1, 10)
    assert loaded.meta["target_key"] == compiled.target.key
    after = loaded(x)
    assert np.array_equal(before, after)
    assert_close(after, run_ort(onnx.load(str(path)), {"input": x})[0])


def _dynamo_cases() -> tuple[dict, type]:
    """Small PyTorch networks whose layers PyTorch's dynamo exporter writes otherwise than the
    legacy one the zoo uses: index gathers (as_strided, GatherND) and masks (Where)."""
    import torch
    from torch import nn
    from torch.nn import functional as F

    class Net(nn.Module):
        def __init__(self, head):
            super().__init__()
            self.conv, self.head = nn.Conv2d(4, 8, 3, padding=1), head

        def forward(self, x):
            return self.head(self.conv(x))

    return {  # name: (head after a conv, input shape)
        # ConvNeXt's: pooled from channels-last memory (as_strided: a Gather at arange(8))
        "pooled_features": (lambda y: F.adaptive_avg_pool2d(
            F.layer_norm(y.permute(0, 2, 3, 1), (8,)).permute(0, 3, 1, 2), 1).flatten(1),
            (1, 4, 9, 7)),
        "adaptive_pool_uneven": (lambda y: F.adaptive_avg_pool2d(y, (5, 3)), (1, 4, 13, 11)),
        "nearest_exact": (lambda y: F.interpolate(y, scale_factor=1.5, mode="nearest-exact"),
                          (1, 4, 6, 8)),
        "masks": (lambda y: torch.where(y > 0, y, 0.1 * y) + F.softplus(y), (1, 4, 5, 7)),
    }, Net


@pytest.mark.parametrize("case", ["pooled_features", "adaptive_pool_uneven", "nearest_exact",
                                  "masks"])
def test_pytorch_dynamo_exports(case, tmp_path):
    """torch.onnx.export's default since PyTorch 2.9 (it needs onnxscript)."""
    import torch

    cases, Net = _dynamo_cases()
    head, shape = cases[case]
    path = tmp_path / f"{case}.onnx"
    torch.onnx.export(Net(head).eval(), (torch.randn(shape),), str(path), dynamo=True,
                      verbose=False)
    x = np.random.default_rng(5).standard_normal(shape).astype(np.float32)
    got = tvmconv.compile(str(path), "x86").model()(x)
    ref = run_ort(onnx.load(str(path)), {"x": x})[0]
    assert_close(got, ref, 1e-4, what=case)
