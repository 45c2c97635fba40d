"""Train a LightGBM classifier on scikit-learn's bundled breast-cancer data and convert it to ONNX.

    python docs/examples/convert_lightgbm.py OUT_DIR

Writes OUT_DIR/model.joblib (the original), OUT_DIR/model.onnx and OUT_DIR/samples.npz. XGBoost
works the same way with onnxmltools.convert_xgboost.
"""

from __future__ import annotations

import sys
from pathlib import Path

import joblib
import numpy as np
from lightgbm import LGBMClassifier
from onnxmltools import convert_lightgbm
from onnxmltools.convert.common.data_types import FloatTensorType
from sklearn.datasets import load_breast_cancer
from sklearn.model_selection import train_test_split


def main(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    features, labels = load_breast_cancer(return_X_y=True)
    features = features.astype(np.float32)
    train_x, test_x, train_y, _ = train_test_split(features, labels, test_size=0.3, random_state=0)
    model = LGBMClassifier(n_estimators=50, num_leaves=15, random_state=0, verbose=-1).fit(train_x, train_y)
    joblib.dump(model, out / "model.joblib")

    n_features = features.shape[1]
    # zipmap=False: `probabilities` is a plain [batch, classes] tensor, as the V2 API needs.
    onnx_model = convert_lightgbm(model, initial_types=[("input", FloatTensorType([None, n_features]))],
                                  target_opset=15, zipmap=False)
    # onnxmltools declares `label` as shape [1]; it has one value per row, like the batch axis.
    label = next(o for o in onnx_model.graph.output if o.name == "label")
    label.type.tensor_type.shape.dim[0].dim_param = "batch"
    (out / "model.onnx").write_bytes(onnx_model.SerializeToString())
    np.savez(out / "samples.npz", input=test_x, label=model.predict(test_x), probabilities=model.predict_proba(test_x))
    print(out / "model.onnx")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    main(Path(sys.argv[1]))
