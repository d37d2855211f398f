"""The BLAS thread policy: what fit and predict run with, and that it is undone."""


import numpy as np
import pytest

from fastbp import MLPClassifier, MLPRegressor
from fastbp._kernels import train as T

threadpoolctl = pytest.importorskip("threadpoolctl")
BOTH = pytest.mark.parametrize("Est", [MLPClassifier, MLPRegressor], ids=["clf", "reg"])


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
    """The BLAS thread counts each compiled epoch and predict ran with."""
    record = []
    for name in ("train_epoch", "predict_rows"):
        real = getattr(T, name)

        def spy(*args, _real=real, _name=name):
            record.append((_name, min(_blas_threads())))
            return _real(*args)

        monkeypatch.setattr(T, name, spy)
    return record


def _data(Est, n=300, d=64):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(n, d))
    y = np.arange(n) % 3 if Est is MLPClassifier else X[:, 0]
    return X, y


@BOTH
def test_small_networks_train_and_predict_on_one_thread(Est, two_blas_threads, seen):
    X, y = _data(Est)
    Est(hidden_layer_sizes=(64,), max_iter=2, batch_size=32).fit(X, y).predict(X)
    assert {threads for _, threads in seen} == {1}
    assert min(_blas_threads()) >= 2  # restored


@BOTH
def test_wide_networks_keep_the_environment_setting(Est, two_blas_threads, seen):
    X, y = _data(Est)
    Est(hidden_layer_sizes=(1024,), max_iter=1, batch_size=300).fit(X, y)
    assert [threads for name, threads in seen if name == "train_epoch"] == [2]


@BOTH
def test_n_threads_is_obeyed_but_never_raises_an_outer_limit(Est, two_blas_threads, seen):
    X, y = _data(Est)
    def last_epoch():
        return [threads for name, threads in seen if name == "train_epoch"][-1]

    Est(hidden_layer_sizes=(8,), max_iter=1, n_threads=2).fit(X, y)
    assert last_epoch() == 2
    Est(hidden_layer_sizes=(1024,), max_iter=1, n_threads=1).fit(X, y)
    assert last_epoch() == 1
    with threadpoolctl.threadpool_limits(1, user_api="blas"):  # e.g. a Dask worker's share
        Est(hidden_layer_sizes=(8,), max_iter=1, n_threads=-1).fit(X, y)
        assert last_epoch() == 1
        assert min(_blas_threads()) == 1
    assert min(_blas_threads()) >= 2


@BOTH
def test_the_setting_is_restored_when_fit_fails(Est, two_blas_threads, monkeypatch):
    X, y = _data(Est)

    def boom(*args):
        assert min(_blas_threads()) == 1  # inside the limited block
        raise RuntimeError("boom")

    monkeypatch.setattr(T, "train_epoch", boom)
    with pytest.raises(RuntimeError, match="boom"):
        Est(hidden_layer_sizes=(8,), max_iter=1).fit(X, y)
    assert min(_blas_threads()) >= 2


@BOTH
def test_results_do_not_depend_on_n_threads_for_minibatches(Est, two_blas_threads):
    X, y = _data(Est)
    fits = [
        Est(hidden_layer_sizes=(64, 32), max_iter=3, batch_size=64, random_state=0,
            n_threads=k).fit(X, y)
        for k in (1, 2)
    ]
    np.testing.assert_array_equal(fits[0]._network.params, fits[1]._network.params)


@BOTH
def test_n_threads_is_validated(Est):
    X, y = _data(Est)
    for bad in (0, -2, 1.5):
        with pytest.raises(ValueError, match="n_threads"):
            Est(n_threads=bad, max_iter=1).fit(X, y)
