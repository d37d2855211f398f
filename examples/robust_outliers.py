"""A few extreme training rows: StandardScaler, fastbp's SoftClipScaler, and the target.

Real tables have data-entry errors and a handful of huge values. This script takes the
diabetes data bundled with scikit-learn in its original units (``scaled=False``), puts a
quarter aside as a clean test set, and fits fastbp.MLPRegressor (default network) on
three versions of the training set: clean; with outliers in X (in 15 rows, 5%, one value
replaced by the missing-value code 99999); with outliers in y (two targets recorded 10x
too large). Each model scales X with StandardScaler, RobustScaler or SoftClipScaler and,
as users do by hand, the target with sklearn.compose.TransformedTargetRegressor. It
prints the test RMSE of each, next to that of a constant prediction (the training
median).

What to look for: an unscaled target leaves the default network far from converged
(worse than the constant). RobustScaler's median and IQR ignore the codes, but it passes
them on as inputs in the thousands; SoftClipScaler computes the same statistics and
keeps every input inside (-3, 3). Outliers in y are not a matter of scaling X:
``loss="huber"`` is what bounds their pull.

    python examples/robust_outliers.py [--quick]

``--quick`` (or FASTBP_EXAMPLE_QUICK=1) trains for 50 epochs instead of 200.
"""

import os
import sys
import warnings

import numpy as np
from sklearn.base import clone
from sklearn.compose import TransformedTargetRegressor
from sklearn.datasets import load_diabetes
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import root_mean_squared_error
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import RobustScaler, StandardScaler

from fastbp import MLPRegressor, SoftClipScaler

QUICK = "--quick" in sys.argv[1:] or os.environ.get("FASTBP_EXAMPLE_QUICK") == "1"
EPOCHS = 50 if QUICK else 200

diabetes = load_diabetes(scaled=False)
X_train, X_test, y_train, y_test = train_test_split(
    diabetes.data, diabetes.target, test_size=0.25, random_state=0
)
rng = np.random.default_rng(0)
X_bad, y_bad = X_train.copy(), y_train.copy()
# 15 rows (5%) with one value replaced by a missing-value code: a common export error
rows = rng.choice(len(X_bad), 15, replace=False)
X_bad[rows, rng.integers(0, X_bad.shape[1], 15)] = 99999
y_bad[rng.choice(len(y_bad), 2, replace=False)] *= 10  # two targets 10x too large
training_sets = {
    "clean": (X_train, y_train),
    "X outliers": (X_bad, y_train),
    "y outliers": (X_train, y_bad),
}


def model(x_scaler, y_scaler, loss):
    mlp = make_pipeline(clone(x_scaler), MLPRegressor(loss=loss, max_iter=EPOCHS, random_state=0))
    if y_scaler is None:
        return mlp
    return TransformedTargetRegressor(mlp, transformer=y_scaler)  # clones the scaler


models = [
    (StandardScaler(), None, "squared_error"),
    (StandardScaler(), StandardScaler(), "squared_error"),
    (RobustScaler(), StandardScaler(), "squared_error"),
    (SoftClipScaler(), StandardScaler(), "squared_error"),
    (StandardScaler(), StandardScaler(), "huber"),
    (SoftClipScaler(), StandardScaler(), "huber"),
]

constant = np.full(len(y_test), np.median(y_train))
print(f"diabetes: {len(X_train)} training rows (15 corrupted in X or 2 in y), "
      f"{len(X_test)} clean test rows; MLPRegressor(), {EPOCHS} epochs")
print(f"test RMSE of the training median: {root_mean_squared_error(y_test, constant):.1f}\n")
header = "".join(f"{name:>12s}" for name in training_sets)
print(f"{'X scaler':16s}{'y scaler':16s}{'loss':15s}{header}")
for x_scaler, y_scaler, loss in models:
    scores = []
    for X_fit, y_fit in training_sets.values():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)  # fixed epochs, on purpose
            fitted = model(x_scaler, y_scaler, loss).fit(X_fit, y_fit)
        scores.append(root_mean_squared_error(y_test, fitted.predict(X_test)))
    y_name = type(y_scaler).__name__ if y_scaler is not None else "none"
    print(f"{type(x_scaler).__name__:16s}{y_name:16s}{loss:15s}"
          + "".join(f"{s:12.1f}" for s in scores))
print("\n(test RMSE on the same clean test rows; lower is better)")
