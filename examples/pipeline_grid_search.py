"""fastbp.MLPClassifier inside a scikit-learn Pipeline, tuned with GridSearchCV.

Scales the breast cancer data bundled with scikit-learn, then searches a small grid of
network sizes and L2 penalties with 3-fold cross-validation. Set FASTBP_EXAMPLE_QUICK=1
for a few-second run (smaller grid, fewer epochs).

    python examples/pipeline_grid_search.py
"""

import os
import warnings

from sklearn.datasets import load_breast_cancer
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import GridSearchCV, train_test_split
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from fastbp import MLPClassifier

QUICK = os.environ.get("FASTBP_EXAMPLE_QUICK") == "1"

X, y = load_breast_cancer(return_X_y=True)
X_train, X_test, y_train, y_test = train_test_split(X, y, stratify=y, random_state=0)

pipe = Pipeline(
    [
        ("scale", StandardScaler()),
        ("mlp", MLPClassifier(max_iter=20 if QUICK else 200, random_state=0)),
    ]
)
grid = {
    "mlp__hidden_layer_sizes": [(16,), (32,)] if QUICK else [(16,), (64,), (32, 16)],
    "mlp__alpha": [1e-4, 1e-2] if QUICK else [1e-4, 1e-3, 1e-2, 1e-1],
}
search = GridSearchCV(pipe, grid, cv=3)
with warnings.catch_warnings():
    warnings.simplefilter("ignore", ConvergenceWarning)  # short runs on purpose
    search.fit(X_train, y_train)

print(f"candidates tried: {len(search.cv_results_['params'])} (3-fold CV each)")
print(f"best params: {search.best_params_}")
print(f"best CV accuracy: {search.best_score_:.3f}")
print(f"test accuracy of the refitted best pipeline: {search.score(X_test, y_test):.3f}")
