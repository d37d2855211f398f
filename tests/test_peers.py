"""The speed peers do the same work as fastbp (fastbp._tools.peers)."""

import json
import os
import time

import numpy as np
import pytest
from sklearn.datasets import load_digits
from sklearn.preprocessing import LabelBinarizer

from fastbp import MLPClassifier, MLPRegressor
from fastbp._tools import peers

needs_jax = pytest.mark.skipif(bool(peers.unavailable("jax")), reason=str(peers.unavailable("jax")))
needs_onnx = pytest.mark.skipif(
    bool(peers.unavailable("onnxruntime")), reason=str(peers.unavailable("onnxruntime"))
)
# 300 rows in batches of 32: nine full batches and a partial one of 12 rows
ROWS, BATCH = 300, 32


def _digits(dtype, rows=ROWS):
    X, y = load_digits(return_X_y=True)
    return (X[:rows] / 16.0).astype(dtype), y[:rows]


def _problem(loss, dtype):
    """(estimator class, X, y as fit takes it, Y as the kernels see it)."""
    X, y = _digits(dtype)
    if loss == "squared_error":
        y = np.column_stack([X[:, 20] - X[:, 43], X[:, 30] * X[:, 35]])  # two outputs
        return MLPRegressor, X, y, y.astype(dtype)
    if loss == "binary_log_loss":
        y = y % 2
    return MLPClassifier, X, y, LabelBinarizer().fit_transform(y).astype(dtype)


def _one_epoch_from(cls, coefs, intercepts, X, y):
    """fastbp's weights after one adam epoch over the rows in order, from given weights."""
    est = cls(hidden_layer_sizes=(16, 8), solver="adam", max_iter=1, shuffle=False,
              batch_size=BATCH, random_state=0, warm_start=True, n_threads=1)
    est.fit(X, y)  # sets the network up; the epoch that counts starts from our weights
    est.coefs_ = [c.copy() for c in coefs]
    est.intercepts_ = [b.copy() for b in intercepts]
    est.fit(X, y)  # warm start: these weights, a fresh Adam state, one epoch
    return est.coefs_, est.intercepts_


@needs_jax
@pytest.mark.usefixtures("quiet_convergence")
@pytest.mark.parametrize(
    "loss, dtype, rtol",
    [
        ("log_loss", "float64", 1e-10),
        ("binary_log_loss", "float64", 1e-10),
        ("squared_error", "float64", 1e-10),
        # fastbp takes Adam's step size and moment updates in float64 scalars, JAX keeps
        # them in float32: a few float32 roundings apart (seen: 6e-7)
        ("log_loss", "float32", 1e-5),
    ],
)
def test_jax_epoch_trains_the_same_weights_as_fastbp(loss, dtype, rtol):
    cls, X, y, Y = _problem(loss, dtype)
    rng = np.random.RandomState(1)
    units = [X.shape[1], 16, 8, Y.shape[1]]
    shapes = zip(units, units[1:], strict=False)
    coefs = [rng.uniform(-0.3, 0.3, shape).astype(dtype) for shape in shapes]
    intercepts = [rng.uniform(-0.3, 0.3, b).astype(dtype) for b in units[1:]]
    expected = _one_epoch_from(cls, coefs, intercepts, X, y)
    # ten Adam steps of 1e-3 move the weights by ~1e-2: far beyond the tolerance
    assert np.max(np.abs(expected[0][0] - coefs[0])) > 1e-3

    with peers.JaxEpochs(coefs, intercepts, X, Y, BATCH, loss=loss, dtype=dtype) as jax:
        # threads=1 (the default): pinned to the last core this process may use
        assert jax.info["affinity"] == [max(os.sched_getaffinity(0))]
        jax.sample(1)  # the epoch after the untimed warm-up one, which is discarded
        got = jax.weights()
    for got_list, expected_list in zip(got, expected, strict=True):
        for a, b in zip(got_list, expected_list, strict=True):
            assert a.dtype == np.dtype(dtype)
            scale = np.max(np.abs(b))
            np.testing.assert_allclose(a, b, rtol=0, atol=rtol * scale)


@needs_jax
def test_jax_peer_pins_the_core_asked_for_at_one_thread_and_as_many_cores_as_threads():
    X, y = _digits("float64", 64)
    Y = LabelBinarizer().fit_transform(y)
    weights = ([np.full((64, 10), 0.01)], [np.zeros(10)])
    usable = sorted(os.sched_getaffinity(0))
    with peers.JaxEpochs(*weights, X, Y, 16, threads=1, core=usable[0]) as jax:
        assert jax.info["affinity"] == [usable[0]]
    with peers.JaxEpochs(*weights, X, Y, 16, threads=2) as jax:
        assert jax.info["affinity"] == usable[:2]


@needs_onnx
@pytest.mark.usefixtures("quiet_convergence")
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("classes", [10, 2])
def test_onnxruntime_peer_predicts_fastbps_probabilities(dtype, classes):
    X, y = _digits(dtype)
    est = MLPClassifier((16,), max_iter=5, random_state=0).fit(X, y % classes)
    run = peers.onnxruntime_peer(est, threads=1)
    proba = est.predict_proba(X)
    assert run(X).shape == proba.shape
    np.testing.assert_allclose(run(X), proba, rtol=0, atol=1e-5)

    seconds = peers.onnxruntime_predict_seconds(est, X, repeats=2, calls=5)
    assert set(seconds) == {"rows", "one_row"}
    assert 0 < seconds["one_row"] and 0 < seconds["rows"]


def test_gemm_time_is_positive_and_grows_with_the_batch_count():
    units = [64, 64, 32, 10]

    def seconds(n_rows):
        return peers.gemm_seconds_per_epoch(
            units, n_rows, BATCH, np.float64, repeats=5, clock=time.process_time
        )

    few, many = seconds(4 * BATCH), seconds(64 * BATCH + 5)  # 4 and 65 batches
    assert few > 0
    assert 4 < many / few < 65 * 4


def test_gemm_epoch_runs_the_products_of_every_batch_and_layer(monkeypatch):
    shapes = []
    real_dot = np.dot

    def spy(a, b, out):
        shapes.append((a.shape, b.shape))
        return real_dot(a, b, out=out)

    epoch = peers.GemmEpoch([5, 4, 3], n_rows=10, batch_size=4)  # batches of 4, 4, 2
    monkeypatch.setattr(np, "dot", spy)
    epoch()
    per_batch = lambda b: [  # noqa: E731
        ((b, 5), (5, 4)), ((5, b), (b, 4)),  # layer 0: forward, weight gradient
        ((b, 4), (4, 3)), ((b, 3), (3, 4)), ((4, b), (b, 3)),  # layer 1: and the delta
    ]
    assert shapes == per_batch(4) + per_batch(4) + per_batch(2)


def test_a_missing_peer_gives_none_and_a_reason(monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name in ("optax", "skl2onnx") else real(name))
    assert "optax" in peers.unavailable("jax") and "pip install" in peers.unavailable("jax")
    assert "skl2onnx" in peers.unavailable("onnxruntime")
    X, y = _digits("float64", 40)
    assert peers.jax_epoch_seconds([np.ones((64, 1))], [np.ones(1)], X, y, 8) is None
    assert peers.onnxruntime_peer(object()) is None
    assert peers.onnxruntime_predict_seconds(object(), X) is None


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: peers.unavailable("torch"), "peer='torch'"),
        (lambda: peers.JaxEpochs([], [], np.ones((4, 2)), np.ones(4), 2, loss="hinge"),
         "loss='hinge'"),
        (lambda: peers.JaxEpochs([], [], np.ones((4, 2)), np.ones(4), 0), "batch_size=0"),
        (lambda: peers.JaxEpochs([], [], np.ones((4, 2)), np.ones(4), 2, orders=[0, 1]),
         "orders has 2"),
        (lambda: peers.GemmEpoch([5], 10, 4), "layer_units=[5]"),
        (lambda: peers.gemm_seconds_per_epoch([5, 2], 10, 4, threads=0), "threads=0"),
    ],
)
def test_bad_arguments_are_named(call, message):
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("]", r"\]")):
        call()


@needs_jax
@needs_onnx
def test_command_line_compares_in_turns(tmp_path, capsys):
    out = tmp_path / "peers.json"
    argv = ["--workload", "mc-b200", "--rows", "500", "--epochs", "1", "--repeats", "2",
            "--workload", "predict", "--calls", "3", "--json", str(out)]
    assert peers.main(argv) == 0
    text = capsys.readouterr().out
    assert "jax time / fastbp time" in text and "own-shape GEMM fraction" in text
    assert "onnxruntime time / fastbp time, 1 row" in text
    fit, predict = json.loads(out.read_text())
    assert fit["rows"] == 500 and fit["jax"]["affinity"] == [max(os.sched_getaffinity(0))]
    assert set(fit["medians"]) == {"fastbp", "gemm", "jax"}
    assert set(predict["medians"]) == {
        f"{name} {size}" for name in ("fastbp", "onnxruntime")
        for size in (f"{peers.PREDICT_ROWS} rows", "1 row")
    }


def test_the_child_side_loads_without_fastbp_or_numba():
    """The JAX child loads peers.py by path: its module-level imports must stay standard
    library and numpy (the parent-side helpers import fastbp._tools.common lazily)."""
    import subprocess
    import sys

    script = (
        "import importlib.util, sys\n"
        f"spec = importlib.util.spec_from_file_location('child', {peers.__file__!r})\n"
        "spec.loader.exec_module(importlib.util.module_from_spec(spec))\n"
        "print(sorted(m for m in ('numba', 'fastbp', 'sklearn', 'jax') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         check=True, cwd=os.path.dirname(peers.__file__))
    assert out.stdout.strip() == "[]"


@needs_jax
@pytest.mark.usefixtures("quiet_convergence")
def test_jax_start_compiles_cold_then_loads_the_same_programs_warm(tmp_path):
    X, y = _digits("float64")
    est = MLPClassifier((16,), max_iter=1, batch_size=BATCH, random_state=0).fit(X, y)
    arguments = peers.jax_arguments(est, X, y, BATCH, 1)
    cache = tmp_path / "jax-cache"
    cache.mkdir()
    cold = peers.jax_start_seconds(arguments, ["float64", "float32"], cache)
    written = sorted(path.name for path in cache.iterdir())
    assert written  # every program went to the persistent cache
    warm = peers.jax_start_seconds(arguments, ["float64", "float32"], cache)
    assert sorted(path.name for path in cache.iterdir()) == written  # all found there
    for run in (cold, warm):
        assert 0 < run["import"] < run["first_fit"] < run["wall"]
        assert [t["dtype"] for t in run["trained"]] == ["float64", "float32"]
    # the epoch ran: the weights moved; and the cached programs compute what the fresh ones did
    start = float(np.sum(est.coefs_[0]))
    assert abs(cold["trained"][0]["sum"] - start) > 1e-6
    assert warm["trained"] == cold["trained"]
    f64, f32 = (t["sum"] for t in cold["trained"])
    assert f32 != f64 and f32 == pytest.approx(f64, rel=1e-4)
