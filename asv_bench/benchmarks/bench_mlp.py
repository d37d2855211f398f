"""Fit and predict benchmarks of fastbp.MLPClassifier next to scikit-learn's.

Every setup warms fastbp's JIT with a tiny fit (and predict) in the benchmark's dtype, so
time_* and peakmem_* measure the work, not the compilation; the cold start (import, then
first fit: compile or on-disk cache load) is timeraw_import_and_first_fit's alone.

Absolute times depend on the machine and its load: compare them only between runs on one
machine. track_speedup_vs_sklearn is a ratio measured side by side in one process.
"""

import statistics
import time
import warnings

from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning
from sklearn.neural_network import MLPClassifier as SklearnMLP

import fastbp

# Fixed epochs on purpose: never stop early, never warn about it.
warnings.simplefilter("ignore", ConvergenceWarning)

EPOCHS = 5
PARAMS = dict(
    hidden_layer_sizes=(64,),
    solver="adam",
    batch_size=32,
    random_state=0,
    max_iter=EPOCHS,
    tol=0.0,
    n_iter_no_change=EPOCHS + 1,
)
IMPLS = {"fastbp": fastbp.MLPClassifier, "sklearn": SklearnMLP}


def _digits(dtype="float64"):
    X, y = load_digits(return_X_y=True)
    return (X / 16.0).astype(dtype), y


def _warm_jit(dtype):
    """One tiny fit and predict: compiles fastbp's kernels for dtype (or loads them)."""
    X, y = _digits(dtype)
    est = fastbp.MLPClassifier(hidden_layer_sizes=(4,), max_iter=1, batch_size=32)
    est.fit(X[:64], y[:64]).predict(X[:2])


class Fit:
    """Fit on digits (1797 x 64, 10 classes), hidden (64,), adam, batch 32, 5 epochs."""

    params = (list(IMPLS), ["float32", "float64"])
    param_names = ["impl", "dtype"]

    def setup(self, impl, dtype):
        _warm_jit(dtype)
        self.X, self.y = _digits(dtype)
        self.cls = IMPLS[impl]

    def time_fit(self, impl, dtype):
        self.cls(**PARAMS).fit(self.X, self.y)

    def peakmem_fit(self, impl, dtype):
        # asv reports the process's peak RSS: at this size mostly the imported libraries
        # (numba, scipy, scikit-learn), so it flags regressions rather than ranks impls.
        self.cls(**PARAMS).fit(self.X, self.y)


class Predict:
    """Predict with a network fitted on digits: one row (latency), all 1797 rows."""

    params = (list(IMPLS), ["one row", "all digits"])
    param_names = ["impl", "rows"]

    def setup(self, impl, rows):
        _warm_jit("float64")
        X, y = _digits()
        self.est = IMPLS[impl](**PARAMS).fit(X, y)
        self.X = X[:1] if rows == "one row" else X
        self.est.predict(self.X)

    def time_predict(self, impl, rows):
        self.est.predict(self.X)


def track_speedup_vs_sklearn(dtype):
    """sklearn's median fit time over fastbp's (higher is better for fastbp), measured
    side by side in this process: both warmed once, then 5 interleaved fits each."""
    _warm_jit(dtype)
    X, y = _digits(dtype)
    times = {name: [] for name in IMPLS}
    for cls in IMPLS.values():
        cls(**PARAMS).fit(X, y)  # untimed first fit of each
    for _ in range(5):
        for name, cls in IMPLS.items():
            start = time.perf_counter()
            cls(**PARAMS).fit(X, y)
            times[name].append(time.perf_counter() - start)
    return statistics.median(times["sklearn"]) / statistics.median(times["fastbp"])


track_speedup_vs_sklearn.params = ["float32", "float64"]
track_speedup_vs_sklearn.param_names = ["dtype"]
track_speedup_vs_sklearn.unit = "ratio"


def timeraw_import_and_first_fit(impl):
    """Cold start in a fresh process: import the estimator, then its first fit (for fastbp
    the kernels are compiled, or loaded from the on-disk cache when present). The data are
    made with numpy alone in the untimed setup, so the import of scikit-learn is timed."""
    setup = (
        "import warnings\n"
        "warnings.simplefilter('ignore')\n"
        "import numpy as np\n"
        "rng = np.random.default_rng(0)\n"
        "X = rng.random((256, 64))\n"
        "y = rng.integers(0, 10, 256)\n"
    )
    imports = {
        "fastbp": "from fastbp import MLPClassifier",
        "sklearn": "from sklearn.neural_network import MLPClassifier",
    }
    code = (
        f"{imports[impl]}\n"
        "MLPClassifier(hidden_layer_sizes=(64,), batch_size=32, max_iter=1).fit(X, y)\n"
    )
    return code, setup


timeraw_import_and_first_fit.params = list(IMPLS)
timeraw_import_and_first_fit.param_names = ["impl"]
timeraw_import_and_first_fit.timeout = 300  # a compile from scratch takes a while
