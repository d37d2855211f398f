"""Past one process: Dask-distributed search and out-of-core training, memmap streaming,
and numba's on-disk cache (warm-up, workers, read-only installs)."""

import os
import subprocess
import sys
import textwrap
import tracemalloc

import joblib
import numpy as np
import pytest
from sklearn.datasets import load_digits
from sklearn.model_selection import GridSearchCV

from fastbp import MLPClassifier
from fastbp._kernels import train as T

KERNELS = ("train_epoch", "full_loss_grad", "predict_rows", "mean_loss")


pytestmark = pytest.mark.usefixtures("quiet_convergence")


def _digits():
    X, y = load_digits(return_X_y=True)
    return X / 16.0, y


def _worker_report():
    """On a worker: BLAS threads and what numba compiled (cache misses) in that process."""
    import threadpoolctl

    from fastbp._kernels import parallel, train

    blas = [i["num_threads"] for i in threadpoolctl.threadpool_info() if i["user_api"] == "blas"]
    kernels = [d for k in KERNELS for d in train.dispatchers(k)] + [parallel.train_epoch_blocked]
    misses = sum(sum(k.stats.cache_misses.values()) for k in kernels)
    return blas, misses


# ------------------------------------------------------------------------------- Dask
@pytest.mark.parametrize("processes, threads", [(2, 1), (1, 2)], ids=["2procs", "2threads"])
def test_grid_search_on_a_dask_cluster_matches_the_local_one(processes, threads):
    distributed = pytest.importorskip("distributed")
    X, y = _digits()
    X, y = X[:600], y[:600]
    # warm this process (and numba's on-disk cache) before the workers start; (256,)
    # trains blocked (batches of 200 x 19,000 parameters), as in the search below
    MLPClassifier((4,), max_iter=1, early_stopping=True).fit(X, y).predict(X)
    MLPClassifier((256,), max_iter=1).fit(X, y)
    search = GridSearchCV(
        MLPClassifier((256,), max_iter=15, random_state=0),
        {"alpha": [1e-4, 1e-1], "learning_rate_init": [1e-3, 1e-2]},
        cv=3,
        n_jobs=-1,
    )
    local = GridSearchCV(**{**search.get_params(deep=False), "n_jobs": 1}).fit(X, y)
    with (
        distributed.LocalCluster(
            n_workers=processes, threads_per_worker=threads, processes=True,
            dashboard_address=None,
        ) as cluster,
        distributed.Client(cluster) as client,
        joblib.parallel_backend("dask"),
    ):
        search.fit(X, y)
        reports = client.run(_worker_report)
    np.testing.assert_array_equal(
        search.cv_results_["mean_test_score"], local.cv_results_["mean_test_score"]
    )
    assert search.best_params_ == local.best_params_
    for blas, misses in reports.values():
        assert all(n <= threads for n in blas), reports  # no oversubscription
        assert misses == 0, reports  # the workers loaded the kernels, compiled nothing


def test_dask_ml_incremental_trains_block_by_block():
    da = pytest.importorskip("dask.array")
    wrappers = pytest.importorskip("dask_ml.wrappers")
    X, y = _digits()
    Xd = da.from_array(X, chunks=(400, 64))
    yd = da.from_array(y, chunks=400)
    assert Xd.numblocks[0] == 5
    inc = wrappers.Incremental(
        MLPClassifier((32,), random_state=0, learning_rate_init=0.01), shuffle_blocks=False
    )
    with joblib.parallel_backend("threading"):
        inc.fit(Xd, yd, classes=np.unique(y))
    # the same as partial_fit over the blocks in order, by hand
    ref = MLPClassifier((32,), random_state=0, learning_rate_init=0.01)
    for start in range(0, len(y), 400):
        ref.partial_fit(X[start : start + 400], y[start : start + 400], classes=np.unique(y))
    assert inc.estimator_.t_ == ref.t_ == len(y)
    np.testing.assert_allclose(inc.estimator_.coefs_[0], ref.coefs_[0], rtol=1e-12)
    assert inc.score(Xd, yd) > 0.5


# ----------------------------------------------------------------------------- memmap
def test_partial_fit_streams_a_memmap_without_copying_it(tmp_path):
    n, d, chunk = 40_000, 64, 2_000
    path = tmp_path / "X.f32"
    rng = np.random.default_rng(0)
    X = np.memmap(path, dtype=np.float32, mode="w+", shape=(n, d))
    for start in range(0, n, 10_000):
        X[start : start + 10_000] = rng.normal(size=(10_000, d))
    y = (np.asarray(X[:, 0]) > 0).astype(int)
    X.flush()
    X = np.memmap(path, dtype=np.float32, mode="r", shape=(n, d))
    est = MLPClassifier((16,), random_state=0, learning_rate_init=0.01)
    est.partial_fit(X[:chunk], y[:chunk], classes=[0, 1])  # compile outside the window
    tracemalloc.start()
    for start in range(chunk, n, chunk):
        est.partial_fit(X[start : start + chunk], y[start : start + chunk])
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert est.t_ == n
    assert est.coefs_[0].dtype == np.float32  # trained in the memmap's dtype
    # far below one copy of X (10 MB): chunk-sized buffers at most
    assert peak < 4 * chunk * d * 4, peak
    assert est.score(X[:5000], y[:5000]) > 0.9


# ---------------------------------------------------------------------- numba's cache
def _run(code, env, cwd=None):
    proc = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        # no first-run compile helper beside these processes (test_compile_ahead's)
        env={**os.environ, "FASTBP_COMPILE_HELPER": "0", **env}, capture_output=True,
        text=True, timeout=600, cwd=cwd,
    )
    assert proc.returncode == 0, proc.stderr
    return proc


CHECK_NO_COMPILE = f"""
    import warnings
    import numpy as np
    import fastbp
    from fastbp._kernels import train as T
    warnings.simplefilter("ignore")
    X = np.random.default_rng(0).normal(size=(60, 4))
    y = np.arange(60) % 2
    for dtype in (np.float64, np.float32):
        fastbp.MLPClassifier((5,), max_iter=2, activation="gelu", solver="adamw").fit(
            X.astype(dtype), y, X_val=X, y_val=y).predict(X)
        fastbp.MLPRegressor(hidden_layer_sizes=(3,), solver="lbfgs", max_iter=3).fit(
            X.astype(dtype), X[:, 0])
    for name in {KERNELS!r}:
        stats = [d.stats for d in T.dispatchers(name)]
        print(name, sum(sum(s.cache_hits.values()) for s in stats),
              sum(sum(s.cache_misses.values()) for s in stats))
"""


def test_warm_up_fills_the_cache_for_every_later_process(tmp_path):
    env = {"NUMBA_CACHE_DIR": str(tmp_path / "cache")}
    _run("import fastbp; fastbp.warm_up()", env)
    out = _run(CHECK_NO_COMPILE, env).stdout.split()
    stats = {out[i]: (int(out[i + 1]), int(out[i + 2])) for i in range(0, len(out), 3)}
    assert set(stats) == set(KERNELS)
    for name, (hits, misses) in stats.items():
        assert (hits, misses) == (2, 0), (name, hits, misses)  # both dtypes loaded


def test_read_only_install_falls_back_to_compiling(tmp_path):
    """A read-only package directory with no writable cache directory: import works,
    with a warning, and training works (compiling in-process)."""
    if sys.platform != "linux" or os.geteuid() != 0:
        pytest.skip("needs root on Linux to mount a read-only file system")
    ro = tmp_path / "ro"
    home = tmp_path / "home"
    ro.mkdir()
    home.mkdir()
    mounted = []
    try:
        for path in (ro, home):
            proc = subprocess.run(["mount", "-t", "tmpfs", "tmpfs", str(path)],
                                  capture_output=True)
            if proc.returncode != 0:
                pytest.skip("cannot mount a tmpfs here")
            mounted.append(path)
        src = os.path.dirname(os.path.dirname(os.path.abspath(T.__file__)))
        subprocess.run(["cp", "-r", src, str(ro)], check=True)
        subprocess.run(["find", str(ro), "-name", "__pycache__", "-prune", "-exec", "rm",
                        "-rf", "{}", "+"], check=True)
        for path in (ro, home):
            subprocess.run(["mount", "-o", "remount,ro", str(path)], check=True)
        env = {"PYTHONPATH": str(ro), "HOME": str(home), "XDG_CACHE_HOME": str(home)}
        code = f"RO = {str(ro)!r}\n" + textwrap.dedent("""
            import warnings
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                import fastbp
            assert fastbp.__file__.startswith(RO), fastbp.__file__
            assert any("NUMBA_CACHE_DIR" in str(w.message) for w in caught)
            assert fastbp._config.JIT_OPTIONS["cache"] is False
            import numpy as np
            X = np.random.default_rng(0).normal(size=(30, 3))
            print(fastbp.MLPRegressor(hidden_layer_sizes=(3,), max_iter=2).fit(X, X[:, 0])
                  .predict(X).shape)
        """)
        clean = {k: v for k, v in os.environ.items() if k != "NUMBA_CACHE_DIR"}
        proc = subprocess.run(
            [sys.executable, "-c", textwrap.dedent(code)], env={**clean, **env},
            capture_output=True, text=True, timeout=600, cwd=str(tmp_path),  # not the repo
        )
        assert proc.returncode == 0, proc.stderr
        assert "(30,)" in proc.stdout
    finally:
        for path in reversed(mounted):
            subprocess.run(["umount", str(path)], capture_output=True)
