"""Threads, forked children, loky workers and reproducibility (issue 6, "Reliability").

The kernels are compiled with ``nogil=True``: two fits in two threads really run at the
same time, so they must not share scratch memory. Every wait has a timeout, so that a
deadlock fails the test instead of hanging CI.
"""

import concurrent.futures as cf
import multiprocessing
import subprocess
import sys
import textwrap
import warnings

import numba
import numpy as np
import pytest
import scipy.sparse as sp
from joblib import Parallel, delayed
from sklearn.exceptions import ConvergenceWarning
from threadpoolctl import threadpool_limits

from fastbp import MLPClassifier, MLPRegressor

TIMEOUT = 120  # seconds; a healthy run of any single wait here takes well under 10

BOTH = pytest.mark.parametrize("Est", [MLPClassifier, MLPRegressor], ids=["clf", "reg"])


pytestmark = pytest.mark.usefixtures("quiet_convergence")


def _data(Est, n=1500, n_features=20, seed=0, sparse=False):
    rng = np.random.RandomState(seed)
    X = rng.standard_normal((n, n_features))
    if Est is MLPClassifier:
        y = (X[:, 0] + X[:, 1] * X[:, 2] > 0).astype(int) + (X[:, 3] > 1)
    else:
        y = X[:, 0] * X[:, 1] + np.sin(X[:, 2])
    if sparse:
        X = sp.csr_matrix(np.where(np.abs(X) > 0.8, X, 0.0))
    return X, y


def _fit_params(Est, seed=0, solver="adam", sparse=False, dtype=np.float64, **params):
    """Weights of one fit, as one flat array (module level: picklable for workers)."""
    warnings.simplefilter("ignore", ConvergenceWarning)
    X, y = _data(Est, seed=seed, sparse=sparse)
    X = X.astype(dtype)
    params = {
        "hidden_layer_sizes": (32, 16),
        "max_iter": 6,
        "random_state": seed,
        "solver": solver,
        **params,
    }
    est = Est(**params).fit(X, y)
    return np.concatenate([a.ravel() for a in est.coefs_ + est.intercepts_])


CONFIGS = [
    pytest.param(MLPClassifier, dict(solver="adam"), id="clf-adam"),
    pytest.param(MLPRegressor, dict(solver="sgd"), id="reg-sgd"),
    pytest.param(MLPRegressor, dict(solver="lbfgs", max_iter=20), id="reg-lbfgs"),
    pytest.param(MLPClassifier, dict(solver="adam", sparse=True), id="clf-adam-sparse"),
    pytest.param(MLPRegressor, dict(solver="adam", dtype=np.float32), id="reg-adam-float32"),
    pytest.param(MLPClassifier, dict(solver="sgd", early_stopping=True), id="clf-sgd-es"),
]


# ---------------------------------------------------------------------------- threads
@pytest.mark.parametrize("Est, config", CONFIGS)
def test_two_threads_fitting_at_once_equal_the_fits_run_alone(Est, config):
    alone = [_fit_params(Est, seed=s, **config) for s in (0, 1)]
    with cf.ThreadPoolExecutor(max_workers=2) as pool:
        futures = [pool.submit(_fit_params, Est, seed=s, **config) for s in (0, 1)]
        together = [f.result(timeout=TIMEOUT) for f in futures]
    for a, b in zip(alone, together, strict=True):
        np.testing.assert_array_equal(b, a)


@BOTH
def test_concurrent_fit_and_predict_on_shared_and_distinct_estimators(Est):
    """Four threads predict with one shared fitted model (dense and sparse input) while
    two more fit distinct models; every result equals the serial one."""
    X, y = _data(Est)
    shared = Est(hidden_layer_sizes=(32, 16), max_iter=5, random_state=0).fit(X, y)
    method = shared.predict_proba if Est is MLPClassifier else shared.predict
    chunks = [X[i::4] for i in range(4)] + [sp.csr_matrix(X[i::5]) for i in range(2)]
    expected = [method(c) for c in chunks]
    fits_alone = [_fit_params(Est, seed=s) for s in (2, 3)]

    def predict_many(i):
        return [method(chunks[i]) for _ in range(15)]

    with cf.ThreadPoolExecutor(max_workers=8) as pool:
        fits = [pool.submit(_fit_params, Est, seed=s) for s in (2, 3)]
        preds = [pool.submit(predict_many, i) for i in range(len(chunks))]
        for i, f in enumerate(preds):
            for out in f.result(timeout=TIMEOUT):
                np.testing.assert_array_equal(out, expected[i])
        for f, alone in zip(fits, fits_alone, strict=True):
            np.testing.assert_array_equal(f.result(timeout=TIMEOUT), alone)


@BOTH
def test_predict_while_a_clone_is_refitted_in_another_thread(Est):
    """Refitting a *different* instance never disturbs a fitted one being used."""
    X, y = _data(Est)
    a = Est(hidden_layer_sizes=(16,), max_iter=5, random_state=0).fit(X, y)
    expected = a.predict(X)
    b = Est(hidden_layer_sizes=(16,), max_iter=5, random_state=1)
    with cf.ThreadPoolExecutor(max_workers=2) as pool:
        refit = pool.submit(lambda: [b.fit(X, y) for _ in range(3)])
        for _ in range(20):
            np.testing.assert_array_equal(a.predict(X), expected)
        refit.result(timeout=TIMEOUT)


# ----------------------------------------------------------- processes: fork and loky
def _fork_context():
    if "fork" not in multiprocessing.get_all_start_methods():
        pytest.skip("no fork on this platform")
    return multiprocessing.get_context("fork")


@BOTH
def test_fit_in_a_forked_child_after_the_parent_trained(Est):
    """The parent has loaded the compiled kernels and started BLAS threads; a child
    created by fork() must train and get the parent's exact result."""
    in_parent = [_fit_params(Est, seed=s) for s in (0, 1)]
    with _fork_context().Pool(2) as pool:
        in_children = pool.starmap_async(_fit_params, [(Est, 0), (Est, 1)]).get(TIMEOUT)
    for a, b in zip(in_parent, in_children, strict=True):
        np.testing.assert_array_equal(b, a)


@BOTH
def test_joblib_multiprocessing_backend_after_the_parent_trained(Est):
    _fork_context()
    in_parent = [_fit_params(Est, seed=s, solver="sgd") for s in (0, 1)]
    out = Parallel(n_jobs=2, backend="multiprocessing", timeout=TIMEOUT)(
        delayed(_fit_params)(Est, seed=s, solver="sgd") for s in (0, 1)
    )
    for a, b in zip(in_parent, out, strict=True):
        np.testing.assert_array_equal(b, a)


def test_loky_workers_equal_the_parent():
    """joblib's default backend: fresh worker processes (loading the compiled kernels
    from the on-disk cache), both estimators, dense and sparse."""
    jobs = [(MLPClassifier, 0, False), (MLPRegressor, 1, False), (MLPRegressor, 2, True)]
    in_parent = [_fit_params(Est, seed=s, sparse=sparse) for Est, s, sparse in jobs]
    out = Parallel(n_jobs=2, timeout=TIMEOUT)(
        delayed(_fit_params)(Est, seed=s, sparse=sparse) for Est, s, sparse in jobs
    )
    for a, b in zip(in_parent, out, strict=True):
        np.testing.assert_array_equal(b, a)


# ------------------------------------------------------------------- reproducibility
def _fit_with_threads(n_threads, Est, **config):
    with threadpool_limits(limits=n_threads):
        previous = numba.get_num_threads()
        numba.set_num_threads(min(n_threads, numba.config.NUMBA_NUM_THREADS))
        try:
            return _fit_params(Est, **config)
        finally:
            numba.set_num_threads(previous)




@pytest.mark.parametrize(
    "Est, config",
    [
        pytest.param(MLPClassifier, dict(solver="adam"), id="clf-adam"),
        pytest.param(MLPRegressor, dict(solver="sgd"), id="reg-sgd"),
        pytest.param(MLPClassifier, dict(solver="adam", sparse=True), id="clf-adam-sparse"),
        pytest.param(MLPRegressor, dict(solver="adam", dtype=np.float32), id="reg-float32"),
        # long reductions: bit-identical because fit holds BLAS at one thread for
        # networks this small, whatever the outer setting (fastbp._threads)
        pytest.param(MLPRegressor, dict(solver="lbfgs", max_iter=20), id="reg-lbfgs"),
        pytest.param(MLPClassifier, dict(solver="adam", batch_size=1500), id="clf-batch1500"),
    ],
)
def test_fixed_random_state_is_bit_identical_across_runs_and_thread_counts(Est, config):
    first = _fit_params(Est, **config)
    np.testing.assert_array_equal(_fit_params(Est, **config), first)
    one, two = (_fit_with_threads(n, Est, **config) for n in (1, 2))
    np.testing.assert_array_equal(one, two)


def test_thread_count_helpers_restore_global_state():
    before = numba.get_num_threads()
    _fit_with_threads(1, MLPRegressor, solver="sgd", max_iter=1)
    assert numba.get_num_threads() == before


def test_no_numba_thread_pool_is_ever_started():
    """The design that makes fork, loky and concurrent threads safe: every kernel is
    single-threaded numba code (only BLAS has threads, under fastbp._threads' policy),
    so numba never launches a threading layer (its OpenMP layer does not survive fork,
    its workqueue layer aborts on concurrent calls). A subprocess, to start clean."""
    code = textwrap.dedent(
        """
        import numpy as np, numba, warnings
        import fastbp
        warnings.simplefilter("ignore")
        X = np.random.default_rng(0).normal(size=(200, 5))
        y = np.arange(200) % 2
        fastbp.MLPClassifier((8,), max_iter=3, early_stopping=True).fit(X, y).predict(X)
        fastbp.MLPRegressor(hidden_layer_sizes=(8,), solver="lbfgs").fit(X, X[:, 0])
        try:
            layer = numba.threading_layer()
        except ValueError:
            layer = None
        print("LAYER", layer)
        """
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=TIMEOUT)
    assert proc.returncode == 0, proc.stderr
    assert "LAYER None" in proc.stdout, proc.stdout
