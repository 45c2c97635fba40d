"""Train a small PyTorch network on scikit-learn's bundled iris data and export it to ONNX.

    python docs/examples/convert_pytorch.py OUT_DIR

Writes OUT_DIR/model.pt (the original, as TorchScript), OUT_DIR/model.onnx (torch.onnx.export)
and OUT_DIR/samples.npz. Needs torch; the CPU build is enough (docs/onboard-a-model.md).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch
from sklearn.datasets import load_iris
from sklearn.model_selection import train_test_split


class IrisNet(torch.nn.Module):
    """Features [batch, 4] -> class probabilities [batch, 3]."""

    def __init__(self) -> None:
        super().__init__()
        self.layers = torch.nn.Sequential(torch.nn.Linear(4, 16), torch.nn.ReLU(), torch.nn.Linear(16, 3))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.layers(features), dim=-1)


def train(features: np.ndarray, labels: np.ndarray) -> IrisNet:
    torch.manual_seed(0)
    model = IrisNet()
    optimizer = torch.optim.Adam(model.parameters(), lr=0.05)
    x, y = torch.from_numpy(features), torch.from_numpy(labels)
    for _ in range(200):
        optimizer.zero_grad()
        loss = torch.nn.functional.nll_loss(torch.log(model(x) + 1e-9), y)
        loss.backward()
        optimizer.step()
    return model.eval()


def main(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    features, labels = load_iris(return_X_y=True)
    features = ((features - features.mean(axis=0)) / features.std(axis=0)).astype(np.float32)
    train_x, test_x, train_y, _ = train_test_split(features, labels, test_size=0.3, random_state=0)
    model = train(train_x, train_y.astype(np.int64))
    torch.jit.save(torch.jit.script(model), out / "model.pt")

    # torch.export-based exporter; the batch axis is dynamic. The names become the V2 API's input
    # and output names: list them in the order of forward()'s parameters.
    batch = torch.export.Dim("batch")
    torch.onnx.export(model, (torch.from_numpy(train_x[:2]),), out / "model.onnx", dynamo=True,
                      input_names=["input"], output_names=["probabilities"],
                      dynamic_shapes={"features": {0: batch}}, verbose=False)
    with torch.no_grad():
        expected = model(torch.from_numpy(test_x)).numpy()
    np.savez(out / "samples.npz", input=test_x, probabilities=expected)
    print(out / "model.onnx")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    main(Path(sys.argv[1]))
