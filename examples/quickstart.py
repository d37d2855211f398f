"""Quickstart: fastbp.MLPClassifier is used exactly like scikit-learn's MLPClassifier.

Fits on the iris data bundled with scikit-learn, then predicts, scores and reports class
probabilities. Set FASTBP_EXAMPLE_QUICK=1 for a few-second run (fewer epochs).

    python examples/quickstart.py
"""

import os
import warnings

from sklearn.datasets import load_iris
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler

from fastbp import MLPClassifier

QUICK = os.environ.get("FASTBP_EXAMPLE_QUICK") == "1"

X, y = load_iris(return_X_y=True)
X_train, X_test, y_train, y_test = train_test_split(X, y, stratify=y, random_state=0)
scaler = StandardScaler().fit(X_train)
X_train, X_test = scaler.transform(X_train), scaler.transform(X_test)

clf = MLPClassifier(
    hidden_layer_sizes=(16,),
    batch_size=16,
    learning_rate_init=0.01,
    max_iter=20 if QUICK else 300,
    random_state=0,
)
with warnings.catch_warnings():
    warnings.simplefilter("ignore", ConvergenceWarning)  # the quick run stops early
    clf.fit(X_train, y_train)

print(f"epochs run: {clf.n_iter_}, final training loss: {clf.loss_:.4f}")
print(f"classes: {clf.classes_}")
print(f"predictions (first 10 test rows): {clf.predict(X_test[:10])}")
print(f"true labels (first 10 test rows): {y_test[:10]}")
print(f"test accuracy: {clf.score(X_test, y_test):.3f}")
print("class probabilities (first 3 test rows):")
print(clf.predict_proba(X_test[:3]).round(3))
