"""GridSearchCV of fastbp.MLPClassifier on a Dask cluster.

Starts a local Dask cluster of 2 worker processes (on a real cluster, connect a Client to
its scheduler instead), warms numba's on-disk cache first so that no worker compiles,
and runs the search with joblib's "dask" backend. Needs dask[distributed]. Set
FASTBP_EXAMPLE_QUICK=1 for a few-second run.

    python examples/dask_grid_search.py
"""

import os
import time
import warnings

import joblib
from distributed import Client, LocalCluster
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import GridSearchCV

import fastbp

QUICK = os.environ.get("FASTBP_EXAMPLE_QUICK") == "1"

if __name__ == "__main__":  # worker processes import this file: start nothing there
    warnings.simplefilter("ignore", ConvergenceWarning)
    print(f"warm-up (compile or load the kernels): {fastbp.warm_up():.1f} s")
    X, y = load_digits(return_X_y=True)
    X = X / 16.0
    grid = {
        "hidden_layer_sizes": [(32,), (64,)],
        "alpha": [1e-4, 1e-2] if QUICK else [1e-5, 1e-4, 1e-3, 1e-2],
        "activation": ["relu", "gelu"],
    }
    search = GridSearchCV(
        fastbp.MLPClassifier(max_iter=10 if QUICK else 100, random_state=0),
        grid, cv=3, n_jobs=-1,
    )
    # one thread per worker: each worker's BLAS uses its own core, no oversubscription
    with LocalCluster(n_workers=2, threads_per_worker=1, dashboard_address=None) as cluster:
        with Client(cluster), joblib.parallel_backend("dask"):
            start = time.perf_counter()
            search.fit(X, y)
    print(f"{len(search.cv_results_['params'])} candidates x 3 folds on 2 workers: "
          f"{time.perf_counter() - start:.1f} s")
    print(f"best params: {search.best_params_}")
    print(f"best CV accuracy: {search.best_score_:.3f}")
