"""Train the bundled demo model: a small CNN on scikit-learn's 8x8 digits (shipped, no download).

Writes tvmconv/data/digits_cnn.onnx (batch 1, BatchNormalization kept in the graph so the
compiler's own folding is exercised) and tvmconv/data/digits_test.npz (x float32 [N,1,8,8] in
[0, 1], y int64 [N]) holding the fixed test split, then reports the accuracy of the exported file
as onnxruntime computes it, one image at a time.

    python scripts/train_digits.py [--out DIR]
"""

from __future__ import annotations

import argparse
import warnings
from pathlib import Path

import numpy as np
import torch
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from torch import nn

SEED = 0
EPOCHS = 15
MIN_ACCURACY = 0.95


def load_split() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    digits = load_digits()
    x = (digits.images / 16.0).astype(np.float32)[:, None]  # pixels are 0..16
    y = digits.target.astype(np.int64)
    return train_test_split(x, y, test_size=0.25, random_state=0, stratify=y)


def make_net() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(),
        nn.Conv2d(16, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(),
        nn.MaxPool2d(2), nn.Flatten(), nn.Linear(512, 64), nn.ReLU(), nn.Linear(64, 10))


def train(x: np.ndarray, y: np.ndarray) -> nn.Module:
    torch.manual_seed(SEED)
    net = make_net()
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    for _ in range(EPOCHS):
        net.train()
        for idx in torch.randperm(len(xt)).split(32):
            opt.zero_grad()
            nn.functional.cross_entropy(net(xt[idx]), yt[idx]).backward()
            opt.step()
    return net.eval()


def export(net: nn.Module, path: Path) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # the legacy-exporter notice
        torch.onnx.export(net, torch.zeros(1, 1, 8, 8), path, dynamo=False, opset_version=17,
                          training=torch.onnx.TrainingMode.EVAL, do_constant_folding=False,
                          input_names=["input"], output_names=["logits"])


def onnx_accuracy(path: Path, x: np.ndarray, y: np.ndarray) -> float:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    preds = [sess.run(None, {"input": img[None]})[0].argmax() for img in x]
    return float(np.mean(np.array(preds) == y))


def main(argv: list[str] | None = None) -> None:
    default_out = Path(__file__).resolve().parents[1] / "tvmconv" / "data"
    parser = argparse.ArgumentParser(description="Train and export the digits demo CNN.")
    parser.add_argument("--out", type=Path, default=default_out,
                        help=f"output folder (default: {default_out})")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    x_train, x_test, y_train, y_test = load_split()
    net = train(x_train, y_train)
    args.out.mkdir(parents=True, exist_ok=True)
    model, data = args.out / "digits_cnn.onnx", args.out / "digits_test.npz"
    export(net, model)
    np.savez_compressed(data, x=x_test, y=y_test)
    acc = onnx_accuracy(model, x_test, y_test)
    print(f"{model} ({model.stat().st_size / 1024:.0f} KiB), {data} ({len(y_test)} images)")
    print(f"onnxruntime test accuracy: {acc:.4f}")
    if acc < MIN_ACCURACY:
        raise SystemExit(f"accuracy {acc:.4f} is below {MIN_ACCURACY}")


if __name__ == "__main__":
    main()
