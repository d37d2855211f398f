"""The thread policy (fastbp._threads): BLAS at one thread under fit and predict, the
parallel kernels on the budget ``n_threads`` allows, every setting undone on exit."""

import numba
import numpy as np
import pytest

from fastbp import MLPClassifier, MLPRegressor, _network, _threads, _training
from fastbp._kernels import blas
from fastbp._kernels import parallel as P
from fastbp._layout import Layout

threadpoolctl = pytest.importorskip("threadpoolctl")
BOTH = pytest.mark.parametrize("Est", [MLPClassifier, MLPRegressor], ids=["clf", "reg"])
POOL = numba.config.NUMBA_NUM_THREADS

pytestmark = pytest.mark.usefixtures("quiet_convergence")


def _blas_threads():
    return [i["num_threads"] for i in threadpoolctl.threadpool_info() if i["user_api"] == "blas"]


@pytest.fixture
def two_blas_threads():
    """At least 2 BLAS threads outside fit (skip where BLAS cannot have them)."""
    with threadpoolctl.threadpool_limits(2, user_api="blas"):
        if not _blas_threads() or min(_blas_threads()) < 2:
            pytest.skip("BLAS runs single-threaded here")
        yield


@pytest.fixture
def seen(monkeypatch):
    """(kernel, BLAS threads, numba threads) of each compiled epoch and predict; the
    parallel ones also assert numba's chunk size of 1 (one iteration per task)."""
    record = []
    kernels = [(_training._train, "train_epoch"), (_training._par, "train_epoch_blocked"),
               (_training._par, "train_epoch_columns"),
               (_network, "predict_rows"), (_network, "predict_rows_parallel")]
    for module, name in kernels:
        real = getattr(module, name)

        def spy(*args, _real=real, _name=name):
            record.append((_name, min(_blas_threads()), numba.get_num_threads()))
            if _name.endswith(("blocked", "columns", "parallel")):
                assert numba.get_parallel_chunksize() == 1
            return _real(*args)

        monkeypatch.setattr(module, name, spy)
    return record


def _data(Est, n=1200, d=64):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(n, d))
    y = np.arange(n) % 3 if Est is MLPClassifier else X[:, 0]
    return X, y


@BOTH
def test_small_networks_run_serial_kernels_on_one_blas_thread(Est, two_blas_threads, seen):
    X, y = _data(Est)
    Est(hidden_layer_sizes=(8,), max_iter=2, batch_size=32).fit(X, y).predict(X)
    assert {name for name, _, _ in seen} == {"train_epoch", "predict_rows"}
    assert {blas for _, blas, _ in seen} == {1}
    assert min(_blas_threads()) >= 2  # restored


@BOTH
def test_large_networks_run_the_parallel_kernels_on_the_budget(Est, two_blas_threads, seen):
    X, y = _data(Est)
    est = Est(hidden_layer_sizes=(256,), max_iter=1, batch_size=200).fit(X, y)
    chunksize = numba.get_parallel_chunksize()
    est.predict(np.repeat(X, 4, axis=0))
    assert numba.get_parallel_chunksize() == chunksize  # restored
    want = min(2, POOL)
    assert [(n, b, k) for n, b, k in seen] == [
        ("train_epoch_blocked", 1, want),
        ("predict_rows_parallel" if want > 1 else "predict_rows", 1, want),
    ]
    assert min(_blas_threads()) >= 2


@BOTH
def test_n_threads_is_obeyed_but_never_beyond_an_outer_limit(Est, two_blas_threads, seen):
    X, y = _data(Est)

    def last_epoch():
        return [k for name, _, k in seen if name == "train_epoch_blocked"][-1]

    Est(hidden_layer_sizes=(256,), max_iter=1, n_threads=1).fit(X, y)
    assert last_epoch() == 1
    Est(hidden_layer_sizes=(256,), max_iter=1, n_threads=-1).fit(X, y)
    assert last_epoch() == min(2, POOL)
    with threadpoolctl.threadpool_limits(1, user_api="blas"):  # e.g. a Dask worker's share
        Est(hidden_layer_sizes=(256,), max_iter=1).fit(X, y)
        assert last_epoch() == 1
        assert min(_blas_threads()) == 1
    assert min(_blas_threads()) >= 2


def test_the_budget_follows_the_environment():
    assert _threads.budget(5) == min(5, POOL)  # an explicit count: numba's pool bounds it
    with threadpoolctl.threadpool_limits(64, user_api="blas"):
        assert _threads.budget(None) == min(POOL, _threads.usable_cores())
    with threadpoolctl.threadpool_limits(1, user_api="blas"):
        assert _threads.budget(None) == _threads.budget(-1) == 1


def test_loky_workers_get_their_share():
    """joblib starts each of its n_jobs loky workers with the cores / n_jobs threads
    (OMP_NUM_THREADS and the like): the default budget there is that share."""
    from joblib import Parallel, delayed

    cores = _threads.usable_cores()
    budgets = Parallel(n_jobs=2)(delayed(_threads.budget)(None) for _ in range(2))
    assert budgets == [max(1, min(POOL, cores // 2))] * 2


@BOTH
def test_settings_are_restored_when_fit_fails(Est, two_blas_threads, monkeypatch):
    X, y = _data(Est)
    numba_before = numba.get_num_threads()

    def boom(*args):
        assert min(_blas_threads()) == 1  # inside the limited block
        raise RuntimeError("boom")

    monkeypatch.setattr(_training._par, "train_epoch_blocked", boom)
    with pytest.raises(RuntimeError, match="boom"):
        Est(hidden_layer_sizes=(256,), max_iter=1, n_threads=1).fit(X, y)
    assert min(_blas_threads()) >= 2
    assert numba.get_num_threads() == numba_before


@BOTH
def test_blocking_depends_on_the_shape_not_the_threads(Est):
    """The rule behind bit-identical results: whether minibatches are cut into blocks,
    and how, follows from the batch and the network alone."""
    n_params = 64 * 256 + 256 + 256 * 3 + 3
    assert _threads.blocked(200, n_params, P.MIN_BLOCK_ROWS)
    assert not _threads.blocked(63, n_params, P.MIN_BLOCK_ROWS)  # one block only
    assert not _threads.blocked(200, 1000, P.MIN_BLOCK_ROWS)  # a step too small to pay
    X, y = _data(Est)
    fits = [Est(hidden_layer_sizes=(256,), max_iter=2, batch_size=100, random_state=0,
                dropout=0.1, n_threads=k).fit(X, y) for k in (1, 2)]
    np.testing.assert_array_equal(fits[0]._network.params, fits[1]._network.params)


def test_the_engine_depends_on_the_shape_not_the_threads():
    """Serial, row blocks or column tasks: the choice follows from the batch and the
    layer sizes alone (measured boundaries: ``_threads.COLUMN_TASK``)."""
    def engine(batch, units, dense=True):
        layout = Layout(units)
        return _threads.engine(batch, layout.units, layout.n_params, P.MIN_BLOCK_ROWS,
                               P.COLUMNS, dense)

    assert engine(512, [256, 1024, 1024, 10]) == "columns"  # the wide workload
    assert engine(512, [256, 1024, 1024, 10], dense=False) == "blocked"  # sparse X
    assert engine(128, [256, 1024, 1024, 10]) == "columns"
    assert engine(64, [256, 1024, 1024, 10]) == "blocked"  # tasks too small
    assert engine(128, [100, 1024, 1024, 10]) == "blocked"  # a narrow input: small tasks
    assert engine(512, [256, 1024, 256, 10]) == "blocked"  # a layer of a single task
    assert engine(256, [256, 2048, 10]) == "blocked"  # one hidden layer
    assert engine(200, [100, 256, 128, 10]) == "blocked"
    assert engine(32, [100, 256, 128, 10]) == "serial"
    assert engine(512, [1024, 10]) == "blocked"  # no hidden layer


def test_forward_passes_go_parallel_later_than_lbfgs_gradient_passes():
    """A forward pass (predict, the validation loss) runs parallel from
    ``PARALLEL_PASS`` multiply-adds, L-BFGS's loss and gradient from
    ``PARALLEL_GRADIENT_PASS``; a single chunk or a single thread never does."""
    n_params = Layout([64, 64, 10]).n_params  # the digits network: 4,810
    assert n_params == 4810
    assert not _threads.whole_data(1797, 256, n_params, 2)  # all of digits: 8.6M
    assert _threads.whole_data(1797, 256, n_params, 2, gradient=True)
    assert _threads.whole_data(8000, 256, n_params, 2)  # 38M
    assert not _threads.whole_data(8000, 256, n_params, 1)
    assert not _threads.whole_data(256, 256, 10**6, 2, gradient=True)  # one chunk


@BOTH
def test_column_tasks_run_on_the_budget_with_the_same_results(Est, two_blas_threads, seen,
                                                              monkeypatch):
    """A network trained by column tasks (made small here: 16 columns per task) runs
    its epoch on the thread budget, BLAS on one, and ends bit for bit where it ends on
    one thread, dropout included."""
    monkeypatch.setattr(P, "COLUMNS", 16)
    monkeypatch.setattr(_threads, "COLUMN_TASK", 1)
    X, y = _data(Est)
    layout = Layout([64, 64, 48, 1])
    assert _threads.engine(200, layout.units, layout.n_params, P.MIN_BLOCK_ROWS,
                           16) == "columns"
    fits = [Est(hidden_layer_sizes=(64, 48), max_iter=2, batch_size=200, random_state=0,
                dropout=0.1, n_threads=k).fit(X, y) for k in (1, 2)]
    np.testing.assert_array_equal(fits[0]._network.params, fits[1]._network.params)
    epochs = [(name, blas, k) for name, blas, k in seen if name.startswith("train_epoch")]
    assert epochs == [("train_epoch_columns", 1, 1)] * 2 + [
        ("train_epoch_columns", 1, min(2, POOL))] * 2
    assert min(_blas_threads()) >= 2


def test_small_kernels_are_those_of_openblas_skylakex_cores():
    """``small_kernel_limit``: OpenBLAS's small-matrix limit when every BLAS loaded is
    an OpenBLAS 0.3.18 or later on a core with those kernels, else 0 (no chunks)."""
    def lib(api="openblas", arch="SkylakeX", version="0.3.30"):
        return {"internal_api": api, "architecture": arch, "version": version}

    limit = _threads.small_kernel_limit
    assert limit([lib()]) == limit([lib(version="0.3.31.188.0"), lib(arch="Cooperlake")]) \
        == limit([lib(arch="SapphireRapids")]) == _threads.SMALL_PRODUCT
    for libs in ([], [lib(arch="Haswell")], [lib(arch="Zen")], [lib(api="mkl")],
                 [lib(version="0.3.17")], [lib(version="0.3.dev")], [lib(version=None)],
                 [lib(), lib(api="blis", arch=None)]):
        assert limit(libs) == 0
    assert _threads.small_products() in (0, _threads.SMALL_PRODUCT)


def test_the_small_kernel_limit_is_that_of_scipys_blas():
    """numba calls scipy's BLAS: where scipy bundles its own, only that one counts
    (another BLAS loaded, numpy's or MKL, does not turn the cut off); else all do."""
    import os

    import scipy

    root = os.path.dirname(os.path.realpath(scipy.__file__))
    scipys = {"internal_api": "openblas", "architecture": "SkylakeX", "version": "0.3.30",
              "filepath": os.path.join(root + ".libs", "libscipy_openblas-x.so")}
    other = {"internal_api": "mkl", "architecture": None, "version": "2025.0",
             "filepath": os.path.join(os.path.dirname(root), "libmkl_rt.so.2")}
    assert _threads.numbas_blas([other, scipys]) == [scipys]
    assert _threads.small_kernel_limit(_threads.numbas_blas([other, scipys])) \
        == _threads.SMALL_PRODUCT
    assert _threads.numbas_blas([other]) == [other]
    assert _threads.small_kernel_limit(_threads.numbas_blas([other])) == 0


@BOTH
def test_small_kernel_chunks_change_no_result_beyond_rounding(Est, monkeypatch):
    """A fit whose products are cut for BLAS's small kernels (the limit made small
    here, so that the 100-row blocks' products of the 64- and 48-unit layers go in
    16-column chunks) ends where the uncut fit does, to rounding, and bit for bit the
    same on 1 and 2 threads."""
    X, y = _data(Est)
    small = 100 * 64 * 20
    layout = Layout([64, 64, 48, 1])
    assert _threads.engine(200, layout.units, layout.n_params, P.MIN_BLOCK_ROWS,
                           P.COLUMNS) == "blocked"
    width = numba.njit(lambda *args: blas.small_width(*args))
    assert width(100, 64, 64, False, small) == width(100, 64, 48, False, small) == 16

    def fit(limit, threads):
        monkeypatch.setattr(_threads, "_small", limit)
        est = Est(hidden_layer_sizes=(64, 48), max_iter=2, batch_size=200, random_state=0,
                  n_threads=threads)
        return est.fit(X, y)._network.params

    cut = fit(small, 1)
    np.testing.assert_array_equal(cut, fit(small, 2))
    np.testing.assert_allclose(cut, fit(0, 1), rtol=1e-10, atol=1e-12)


def test_the_blas_limit_is_lifted_by_its_last_user_only(two_blas_threads):
    """Overlapping fits and predicts (threads of one process) share the BLAS limit:
    the first user sets it, the last one out restores what it found."""
    inner = _threads.one_blas_thread()
    with _threads.one_blas_thread():
        inner.__enter__()
        assert max(_blas_threads()) == 1
    assert max(_blas_threads()) == 1  # the first user left; the second still runs
    inner.__exit__(None, None, None)
    assert min(_blas_threads()) >= 2


@BOTH
def test_n_threads_is_validated(Est):
    X, y = _data(Est)
    for bad in (0, -2, 1.5):
        with pytest.raises(ValueError, match="n_threads"):
            Est(n_threads=bad, max_iter=1).fit(X, y)
