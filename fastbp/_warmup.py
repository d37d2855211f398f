"""Compile every kernel once, for both float dtypes, into numba's on-disk cache.

Run it once after installing (``python -m fastbp warmup``), or before starting workers
(Dask, joblib): every later process then loads the machine code from the cache instead
of compiling it again (about 10 s of CPU per dtype).
"""

import time
import warnings

import numpy as np


def warm_up(dtypes=(np.float64, np.float32)):
    """Fit and predict tiny models through every kernel entry point, in each dtype.

    Returns the seconds spent (compiling, or loading from the cache when warm).
    """
    from sklearn.exceptions import ConvergenceWarning

    from . import MLPClassifier, MLPRegressor

    start = time.perf_counter()
    rng = np.random.default_rng(0)
    X = rng.normal(size=(40, 3))
    y = np.arange(40) % 3
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        for dtype in dtypes:
            Xd = X.astype(dtype)
            # the epoch, the validation loss and predict; then L-BFGS' full objective
            MLPClassifier((4,), max_iter=2, early_stopping=True, random_state=0).fit(
                Xd, y
            ).predict(Xd)
            MLPRegressor(hidden_layer_sizes=(4,), solver="lbfgs", max_iter=2).fit(Xd, X[:, 0])
    return time.perf_counter() - start
