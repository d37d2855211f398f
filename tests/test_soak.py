"""Soak and memory (issue 6, "Reliability").

- Many fit/predict cycles in one process: the resident set and numba's count of live
  runtime allocations stop growing after warm-up. A short form runs in the default
  suite; the long form is marked ``soak``.
- Peak memory of one epoch on a large float32 X, relative to the size of X: measured and
  reported, not gated (``soak``; FASTBP_PEAKMEM_MB sets the size, default 1024).

Soak tests run only when selected: ``python -m pytest -m soak tests/test_soak.py -s``.
Every measurement runs in a fresh subprocess, so that other tests' memory does not blur
it and numba's allocation statistics can be switched on (NUMBA_NRT_STATS=1).
"""

import json
import os
import subprocess
import sys
import textwrap

import pytest

SOAK_SCRIPT = textwrap.dedent(
    """
    import gc, io, json, os, pickle, sys, warnings
    import numpy as np, scipy.sparse as sp
    from numba.core.runtime import rtsys
    from fastbp import MLPClassifier, MLPRegressor

    warnings.simplefilter("ignore")
    warmup, iterations, every = (int(a) for a in sys.argv[1:4])
    page = os.sysconf("SC_PAGE_SIZE")

    def rss_mb():
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * page / 2**20

    def live_nrt():  # arrays allocated by compiled code + meminfos, not yet freed
        s = rtsys.get_allocation_stats()
        return (s.alloc - s.free) + (s.mi_alloc - s.mi_free)

    rng = np.random.RandomState(0)
    X = rng.standard_normal((400, 20))
    yc = (X[:, 0] + X[:, 1] > 0).astype(int) + (X[:, 2] > 1)
    yr = X[:, 0] * X[:, 1]
    Xs = sp.csr_matrix(np.where(np.abs(X) > 1, X, 0.0))
    X32 = X.astype(np.float32)

    def cycle(i):
        MLPClassifier(hidden_layer_sizes=(16,), max_iter=3, random_state=i).fit(
            X, yc).predict_proba(X)
        MLPRegressor(hidden_layer_sizes=(16, 8), max_iter=3, solver="sgd",
                     random_state=i).fit(Xs, yr).predict(Xs)
        MLPRegressor(hidden_layer_sizes=(8,), max_iter=5, solver="lbfgs",
                     random_state=i).fit(X32, yr).predict(X)
        MLPClassifier(hidden_layer_sizes=(8,), max_iter=4, early_stopping=True,
                      random_state=i).fit(X, yc).score(X, yc)
        est = MLPClassifier(hidden_layer_sizes=(8,), random_state=i)
        for _ in range(3):
            est.partial_fit(X, yc, classes=[0, 1, 2])
        pickle.loads(pickle.dumps(est)).predict(X)
        try:  # a failing fit must not leak either
            MLPRegressor(max_iter=2).fit(X, yr, sample_weight=np.ones(3))
        except ValueError:
            pass

    for i in range(warmup):
        cycle(i)
    gc.collect()
    series = [(0, rss_mb(), live_nrt())]
    for i in range(1, iterations + 1):
        cycle(i)
        if i % every == 0:
            gc.collect()
            series.append((i, rss_mb(), live_nrt()))
    assert rtsys.get_allocation_stats().mi_alloc > 0, "NRT statistics are not live"
    print("RESULT " + json.dumps(series))
    """
)


def _run(script, *args, timeout, extra_env=None):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path), **(extra_env or {})}
    proc = subprocess.run(
        [sys.executable, "-c", script, *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
    )
    assert proc.returncode == 0, f"returncode {proc.returncode}\n{proc.stderr[-3000:]}"
    line = [s for s in proc.stdout.splitlines() if s.startswith("RESULT ")][-1]
    return json.loads(line[len("RESULT ") :])


def _soak(warmup, iterations, every, timeout):
    series = _run(
        SOAK_SCRIPT, warmup, iterations, every, timeout=timeout, extra_env={"NUMBA_NRT_STATS": "1"}
    )
    print("\nsoak (iteration, RSS MB, live numba allocations):")
    for row in series:
        print(f"  {row[0]:5d}  {row[1]:8.1f}  {row[2]:6d}")
    return series


@pytest.fixture(autouse=True)
def _soak_only_when_selected(request):
    if request.node.get_closest_marker("soak") and "soak" not in request.config.option.markexpr:
        pytest.skip("soak test: run with -m soak")


def test_repeated_fit_predict_does_not_grow_memory_short():
    series = _soak(warmup=5, iterations=30, every=10, timeout=600)
    (_, rss0, nrt0), (_, rss1, nrt1) = series[0], series[-1]
    assert rss1 - rss0 < 16, f"RSS grew by {rss1 - rss0:.1f} MB over 30 cycles"
    assert nrt1 - nrt0 <= 0, f"{nrt1 - nrt0} numba allocations never freed"


@pytest.mark.soak
def test_repeated_fit_predict_does_not_grow_memory_long():
    series = _soak(warmup=20, iterations=1000, every=100, timeout=3600)
    rss = [r[1] for r in series]
    nrt = [r[2] for r in series]
    assert rss[-1] - rss[0] < 16, f"RSS grew by {rss[-1] - rss[0]:.1f} MB"
    # no steady climb in the second half either (a slow leak hides under the tolerance)
    half = len(rss) // 2
    assert rss[-1] - rss[half] < 4, f"RSS still climbing: {rss}"
    assert nrt[-1] - nrt[0] <= 0, f"{nrt[-1] - nrt[0]} numba allocations never freed"


PEAK_SCRIPT = textwrap.dedent(
    """
    import json, resource, sys, time, warnings
    import numpy as np
    from fastbp import MLPRegressor

    warnings.simplefilter("ignore")
    n_rows, n_features = int(sys.argv[1]), int(sys.argv[2])

    def maxrss_mb():  # Linux: kilobytes
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    params = dict(hidden_layer_sizes=(32,), max_iter=1, batch_size=200, random_state=0)
    MLPRegressor(**params).fit(np.ones((400, n_features), np.float32), np.ones(400))
    baseline = maxrss_mb()
    X = np.random.default_rng(0).standard_normal((n_rows, n_features), dtype=np.float32)
    y = X[:, 0] - 0.5 * X[:, 1]
    with_data = maxrss_mb()
    t = time.perf_counter()
    est = MLPRegressor(**params).fit(X, y)
    fit_seconds = time.perf_counter() - t
    after_fit = maxrss_mb()
    t = time.perf_counter()
    est.predict(X)
    predict_seconds = time.perf_counter() - t
    after_predict = maxrss_mb()
    print("RESULT " + json.dumps(dict(
        input_mb=X.nbytes / 2**20, baseline_mb=baseline, with_data_mb=with_data,
        after_fit_mb=after_fit, after_predict_mb=after_predict,
        fit_seconds=fit_seconds, predict_seconds=predict_seconds)))
    """
)


@pytest.mark.soak
def test_peak_memory_of_one_epoch_on_large_float32_X(record_property):
    """Reported, not gated: peak resident memory relative to the input's size."""
    n_features = 256
    size_mb = int(os.environ.get("FASTBP_PEAKMEM_MB", "1024"))
    n_rows = size_mb * 2**20 // (4 * n_features)
    r = _run(PEAK_SCRIPT, n_rows, n_features, timeout=3600)
    fit_extra = r["after_fit_mb"] - r["with_data_mb"]
    predict_extra = r["after_predict_mb"] - r["after_fit_mb"]
    ratio = (r["after_fit_mb"] - r["baseline_mb"]) / r["input_mb"]
    report = (
        f"\npeak memory, X {n_rows} x {n_features} float32 = {r['input_mb']:.0f} MB, "
        f"hidden (32,), 1 epoch, batch 200:\n"
        f"  baseline (imports + compiled kernels) {r['baseline_mb']:.0f} MB\n"
        f"  with X and y in memory              {r['with_data_mb']:.0f} MB\n"
        f"  peak after fit                       {r['after_fit_mb']:.0f} MB "
        f"(+{fit_extra:.0f} MB during fit, {r['fit_seconds']:.1f} s)\n"
        f"  peak after predict                   {r['after_predict_mb']:.0f} MB "
        f"(+{predict_extra:.0f} MB, {r['predict_seconds']:.1f} s)\n"
        f"  (peak - baseline) / input            {ratio:.3f}"
    )
    print(report)
    for key, value in r.items():
        record_property(key, value)
    record_property("peak_minus_baseline_over_input", ratio)


BLAS_SCRIPT = textwrap.dedent(
    """
    import json, sys, time, warnings
    import numpy as np
    from threadpoolctl import threadpool_limits
    from fastbp import MLPRegressor

    warnings.simplefilter("ignore")
    X = np.random.default_rng(0).standard_normal((int(sys.argv[1]), 256), dtype=np.float32)
    y = X[:, 0] - 0.5 * X[:, 1]
    params = dict(hidden_layer_sizes=(32,), max_iter=1, batch_size=200, random_state=0)
    MLPRegressor(**params).fit(X[:1000], y[:1000])
    times = {}
    for label, limit in (("default", None), ("1", 1), ("default-again", None)):
        with threadpool_limits(limits=limit):
            t = time.perf_counter()
            MLPRegressor(**params).fit(X, y)
            times[label] = time.perf_counter() - t
    print("RESULT " + json.dumps(times))
    """
)


@pytest.mark.soak
def test_report_epoch_time_with_default_and_single_blas_threads(record_property):
    """Reported, not gated. Each minibatch product is small (200 x 256 @ 256 x 32):
    when another process keeps a core busy, multithreaded OpenBLAS waits on it for every
    product, and an epoch can take many times longer than with one BLAS thread."""
    r = _run(BLAS_SCRIPT, 131072, timeout=1800)
    print(
        f"\none epoch, 131072 x 256 float32, hidden (32,), batch 200: "
        f"default BLAS threads {r['default']:.2f} s / {r['default-again']:.2f} s, "
        f"1 BLAS thread {r['1']:.2f} s"
    )
    for key, value in r.items():
        record_property(f"epoch_seconds_blas_{key}", value)
