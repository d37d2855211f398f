"""Export a trained fastbp model to ONNX and run it with onnxruntime.

``to_sklearn()`` gives the same network as a scikit-learn MLPClassifier, which skl2onnx
converts; onnxruntime then predicts without Python or fastbp. Needs skl2onnx and
onnxruntime. Writes ``mlp.onnx`` in the current directory (or the path given).

    python examples/onnx_export.py [out.onnx]
"""

import sys
import warnings

import numpy as np
import onnxruntime as ort
from skl2onnx import to_onnx
from skl2onnx.common.data_types import FloatTensorType
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split

from fastbp import MLPClassifier

out = sys.argv[1] if len(sys.argv) > 1 else "mlp.onnx"
X, y = load_digits(return_X_y=True)
X = (X / 16.0).astype(np.float32)
X_train, X_test, y_train, y_test = train_test_split(X, y, random_state=0)
with warnings.catch_warnings():
    warnings.simplefilter("ignore", ConvergenceWarning)
    clf = MLPClassifier((64,), max_iter=30, random_state=0).fit(X_train, y_train)

onx = to_onnx(clf.to_sklearn(), initial_types=[("X", FloatTensorType([None, X.shape[1]]))],
              options={"zipmap": False})
with open(out, "wb") as f:
    f.write(onx.SerializeToString())

session = ort.InferenceSession(out, providers=["CPUExecutionProvider"])
labels, proba = session.run(None, {"X": X_test})
print(f"saved {out}")
print(f"onnxruntime labels equal fastbp's: {np.array_equal(labels, clf.predict(X_test))}")
print(f"max |probability difference|: {np.abs(proba - clf.predict_proba(X_test)).max():.2e}")
print(f"test accuracy: {np.mean(labels == y_test):.3f}")
