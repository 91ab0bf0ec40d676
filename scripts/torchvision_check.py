"""torchvision's CNNs, unseen by the zoo and the tuning logs, through tvmconv: each exported to
ONNX (random weights, random BatchNorm statistics), checked against onnxruntime, then timed
interleaved against it (and OpenVINO when installed), untuned.

    python scripts/torchvision_check.py [models...] [--size HxW] [--target x86] [--rounds 5]
                                        [--dynamo]

Needs torchvision, which this repository does not depend on; in a separate venv:
``python -m venv --system-site-packages V && V/bin/pip install torch torchvision``. Models are
cached in torchvision/ under the zoo's cache folder ($TVMCONV_CACHE, default
~/.cache/tvmconv/models). Run it alone on an otherwise idle machine.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT.parent))

import zoo  # noqa: E402

import tvmconv  # noqa: E402
from tvmconv.bench import interleaved, peers  # noqa: E402
from tvmconv.target import resolve  # noqa: E402

SEGMENTATION = ("deeplabv3_mobilenet_v3_large", "deeplabv3_resnet50", "fcn_resnet50",
                "lraspp_mobilenet_v3_large")
DEFAULT_MODELS = ["resnet34", "googlenet", "inception_v3", "densenet121", "mnasnet1_0",
                  "efficientnet_b0", "efficientnet_v2_s", "mobilenet_v3_large", "regnet_y_400mf",
                  "regnet_x_1_6gf", "resnext50_32x4d", "wide_resnet50_2", "convnext_tiny",
                  "shufflenet_v2_x1_0", "squeezenet1_1", *SEGMENTATION]


def build(name: str):
    import torch
    import torchvision.models as tv
    import torchvision.models.segmentation as seg

    torch.manual_seed(0)
    if name in SEGMENTATION:
        extra = {} if name.startswith("lraspp") else {"aux_loss": False}
        model = getattr(seg, name)(weights=None, weights_backbone=None, num_classes=7, **extra)
    elif name in ("googlenet", "inception_v3"):
        model = getattr(tv, name)(weights=None, aux_logits=False, init_weights=True)
    else:
        model = getattr(tv, name)(weights=None)
    for m in model.modules():  # trained-looking statistics, so BatchNorm folding is exercised
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.3, 0.3)

    class Logits(torch.nn.Module):  # segmentation models return a dict
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, x):
            y = self.inner(x)
            return y["out"] if isinstance(y, dict) else y

    return Logits(model).eval()


def model_path(name: str, size: tuple[int, int], dynamo: bool = False) -> Path:
    """The model exported once into the cache: by the legacy exporter at opset 17, or by the
    dynamo exporter (``torch.onnx.export``'s default since PyTorch 2.9), which writes adaptive
    pools and channels-last reads as index gathers."""
    tag = "-dynamo" if dynamo else ""
    path = zoo.default_cache_dir() / "torchvision" / f"{name}-{size[0]}x{size[1]}{tag}.onnx"
    if not path.is_file():
        import torch

        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        options = {"dynamo": True} if dynamo else {"dynamo": False, "opset_version": 17}
        torch.onnx.export(build(name), torch.randn(1, 3, *size), str(tmp), input_names=["x"],
                          output_names=["y"], **options)
        tmp.replace(path)
    return path


def check(name: str, size: tuple[int, int], target, rounds: int, dynamo: bool) -> str:
    import onnxruntime as ort

    path = str(model_path(name, size, dynamo))
    x = np.random.default_rng(0).standard_normal((1, 3, *size)).astype(np.float32)
    ref = ort.InferenceSession(path, providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    t0 = time.perf_counter()
    model = tvmconv.compile(path, target=target).model()
    compile_s = time.perf_counter() - t0
    got = model.run({"x": x})[0]
    err = tvmconv.relative_error(got, ref)
    runners = {"tvmconv": lambda f: model.run(f),
               **peers(path, int(os.environ["TVM_NUM_THREADS"]), target)}
    times = interleaved(runners, {"x": x}, rounds, 5)
    ms = {k: float(np.median(v)) * 1e3 for k, v in times.items()}
    best = min(v for k, v in ms.items() if k != "tvmconv")
    return (f"| {name} | {size[0]}x{size[1]} | {err:.1e} | {ms['tvmconv']:.3f} | "
            f"{ms.get('onnxruntime', float('nan')):.3f} | {ms.get('openvino', float('nan')):.3f} "
            f"| {best / ms['tvmconv']:.2f}x | {compile_s:.1f} |")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("models", nargs="*", default=DEFAULT_MODELS)
    p.add_argument("--size", default="224x224", help="image size HxW (inception_v3: 299x299 "
                   "unless given)")
    p.add_argument("--target", default="x86")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--dynamo", action="store_true", help="export with PyTorch's dynamo exporter "
                   "(needs onnxscript)")
    args = p.parse_args()
    target = resolve(args.target)
    print("| model | size | rel. err. | tvmconv ms | onnxruntime ms | openvino ms | "
          "/ best peer | compile s |\n|---|---|---|---|---|---|---|---|", flush=True)
    for name in args.models:
        size = tuple(int(v) for v in args.size.lower().split("x"))
        if name == "inception_v3" and args.size == "224x224":
            size = (299, 299)
        try:
            print(check(name, size, target, args.rounds, args.dynamo), flush=True)
        except Exception as e:  # one model's failure is a row of the report, not the end of it
            print(f"| {name} | {size[0]}x{size[1]} | {type(e).__name__}: "
                  f"{str(e).splitlines()[0][:200]} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
