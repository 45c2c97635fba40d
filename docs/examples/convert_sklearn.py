"""Train a scikit-learn model on the iris data that ships with scikit-learn and convert it to ONNX.

    python docs/examples/convert_sklearn.py OUT_DIR

Writes OUT_DIR/model.joblib (the original), OUT_DIR/model.onnx and OUT_DIR/samples.npz (held-out
inputs with the original's outputs), ready for `ai-app check-model` and `ai-app publish-model`.
"""

from __future__ import annotations

import sys
from pathlib import Path

import joblib
import numpy as np
from skl2onnx import convert_sklearn
from skl2onnx.common.data_types import FloatTensorType
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler


def main(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    features, labels = load_iris(return_X_y=True)
    features = features.astype(np.float32)  # ONNX models here take float32
    train_x, test_x, train_y, _ = train_test_split(features, labels, test_size=0.3, random_state=0)
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)).fit(train_x, train_y)
    joblib.dump(model, out / "model.joblib")

    # One float input named `input` with a dynamic batch axis; plain tensors out (no ZipMap), so
    # the V2 API returns `label` and `probabilities` as tensors.
    onnx_model = convert_sklearn(model, initial_types=[("input", FloatTensorType([None, 4]))],
                                 target_opset={"": 17, "ai.onnx.ml": 3}, options={"zipmap": False})
    (out / "model.onnx").write_bytes(onnx_model.SerializeToString())
    np.savez(out / "samples.npz", input=test_x, label=model.predict(test_x), probabilities=model.predict_proba(test_x))
    print(out / "model.onnx")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    main(Path(sys.argv[1]))
