"""Subnormal numbers in the float32 kernels (``fastbp._kernels.fpenv``): flushed to zero
inside the float32 kernels, on every thread that runs them, and never outside them; the
float64 kernels keep IEEE gradual underflow."""

import os
import subprocess
import sys
import textwrap

import numba
import numpy as np
import pytest
from numba import njit, prange
from sklearn.datasets import load_digits

from fastbp import MLPClassifier, MLPRegressor
from fastbp._kernels import fpenv

pytestmark = pytest.mark.skipif(not fpenv.X86, reason="the flush is x86-64's MXCSR")

TINY32 = np.finfo(np.float32).tiny  # the smallest normal float32


@njit
def _halve_within(a, x):
    """``x / 2`` computed between ``enter(a)`` and ``leave``, and the register before,
    inside and after."""
    before = fpenv.mode()
    state = fpenv.enter(a)
    inside = fpenv.mode()
    y = x * np.float32(0.5)
    fpenv.leave(state)
    return y, before, inside, fpenv.mode()


@njit(parallel=True)
def _modes_of_tasks(n):
    """The register of the thread running each of ``n`` tasks."""
    out = np.empty(n, dtype=np.int64)
    for i in prange(n):
        out[i] = fpenv.mode()
    return out


def _flags(mode):
    """The two bits of the register the kernels set (the others hold sticky exception
    flags, which any computation may leave on any thread)."""
    return mode & fpenv.FTZ_DAZ


def test_enter_flushes_for_float32_only_and_leave_restores():
    x = np.float32(2 * TINY32) * np.float32(0.75)  # halved: a subnormal
    y, before, inside, after = _halve_within(np.zeros(1, np.float32), x)
    assert y == 0.0
    assert _flags(inside) == fpenv.FTZ_DAZ and _flags(after) == _flags(before) == 0
    y, before, inside, after = _halve_within(np.zeros(1, np.float64), x)
    assert y == x * np.float32(0.5) and 0 < y < TINY32
    assert _flags(inside) == _flags(after) == 0


@njit
def _nested(outer, inner):
    """The flush bits after entering ``outer``'s then ``inner``'s mode, after leaving the
    inner one, and after leaving both."""
    a = fpenv.enter(outer)
    b = fpenv.enter(inner)
    inside = fpenv.mode()
    fpenv.leave(b)
    between = fpenv.mode()
    fpenv.leave(a)
    return inside, between, fpenv.mode()


def test_leave_restores_the_callers_mode_not_a_default():
    """A kernel called where the bits are already set (a task inside a flushed entry
    kernel, a float64 helper inside a float32 kernel) leaves them set."""
    f32, f64 = np.zeros(1, np.float32), np.zeros(1, np.float64)
    assert [_flags(m) for m in _nested(f32, f32)] == [fpenv.FTZ_DAZ, fpenv.FTZ_DAZ, 0]
    assert [_flags(m) for m in _nested(f32, f64)] == [fpenv.FTZ_DAZ, fpenv.FTZ_DAZ, 0]
    assert [_flags(m) for m in _nested(f64, f32)] == [fpenv.FTZ_DAZ, 0, 0]


def _fitted(Est, dtype, **params):
    X, y = load_digits(return_X_y=True)
    X = (X / 16).astype(dtype)
    if Est is MLPRegressor:
        y = y / 9.0
    return Est(hidden_layer_sizes=(32,), batch_size=64, max_iter=3, random_state=0,
               **params).fit(X, y), X


@pytest.mark.parametrize("Est", [MLPClassifier, MLPRegressor])
def test_float32_prediction_reads_subnormal_inputs_as_zero_serial_and_parallel(Est):
    """DAZ: subnormal float32 inputs count as 0 in the products, in the serial and the
    parallel predict (the same bits). Without intercepts, and with output weights
    scaled up to 1e37, the outputs of such inputs would otherwise differ from those of
    zeros by about 0.1."""
    rows = 40_000  # enough for the parallel pass at 2 threads
    model, X = _fitted(Est, np.float32)
    for b in model.intercepts_:
        b[:] = 0.0  # (views into the network's parameters)
    model.coefs_[-1] *= np.float32(1e37) / np.abs(model.coefs_[-1]).max()
    tiny = np.full((rows, X.shape[1]), TINY32 / 2, dtype=np.float32)
    zero = np.zeros_like(tiny)
    outputs = []
    for n_threads in (1, 2):
        model.set_params(n_threads=n_threads)
        predict = model.predict_proba if Est is MLPClassifier else model.predict
        outputs += [predict(tiny), predict(zero)]
    assert all(np.array_equal(outputs[0], o) for o in outputs[1:])


@pytest.mark.parametrize("Est", [MLPClassifier, MLPRegressor])
@pytest.mark.parametrize("n_threads", [1, 2])
def test_a_float32_fit_leaves_no_subnormal_and_every_thread_as_it_was(Est, n_threads):
    """A float32 fit long enough for Adam's moments to decay through the subnormal
    range holds none at its end (each one would have cost an assist per use), and the
    register of the calling thread and of numba's worker threads is as before."""
    tasks = 64 * numba.get_num_threads()
    before = set(_flags(_modes_of_tasks(tasks)))
    main_before = _flags(_halve_within(np.zeros(1), np.float32(1))[1])
    X, y = load_digits(return_X_y=True)
    X = np.repeat((X / 16).astype(np.float32), 4, axis=0)  # parallel steps at batch 512
    y = np.repeat(y / 9.0 if Est is MLPRegressor else y, 4)
    model = Est(hidden_layer_sizes=(128,), batch_size=512, max_iter=60, tol=0,
                n_iter_no_change=1000, random_state=0, n_threads=n_threads,
                learning_rate_init=0.01).fit(X, y)
    state = model._trainer.optimizer.state
    for values in (model._network.params, state):
        nonzero = np.abs(values[values != 0])
        assert nonzero.size and nonzero.min() >= TINY32
    assert set(_flags(_modes_of_tasks(tasks))) == before
    assert _flags(_halve_within(np.zeros(1), np.float32(1))[1]) == main_before


# numba's TBB layer gives each task the calling thread's register, which hides a task
# that leaves its thread flushed; the workqueue layer's threads keep theirs. Every
# parallel kernel (blocked and column-task epochs, L-BFGS, validation, predict) and
# every serial one, then the register of the main thread and of every worker thread.
_EVERY_KERNEL = """
import warnings; warnings.simplefilter("ignore")
import sys
import numpy as np
from sklearn.datasets import load_digits
from fastbp import MLPClassifier
from fastbp._kernels import fpenv
import fastbp._threads
sys.path.insert(0, sys.argv[1])
from test_fpenv import _halve_within, _modes_of_tasks

assert fastbp._threads.layer() == "workqueue"
X, y = load_digits(return_X_y=True)
X, y = np.repeat((X / 16).astype(np.float32), 8, axis=0), np.repeat(y, 8)
flags = set()
for n_threads in (1, 2):
    # the validation set: 0.3 of 14,376 rows x 9,610 parameters, a parallel pass
    for params in (dict(hidden_layer_sizes=(128,), batch_size=512, early_stopping=True,
                        validation_fraction=0.3),
                   dict(hidden_layer_sizes=(512, 512), batch_size=512),
                   dict(hidden_layer_sizes=(128,), solver="lbfgs")):
        model = MLPClassifier(**params, max_iter=2, random_state=0, n_threads=n_threads)
        model.fit(X, y).predict_proba(X)
        main = _halve_within(np.zeros(1), np.float32(1))[1]
        flags |= set(_modes_of_tasks(64) & fpenv.FTZ_DAZ) | {main & fpenv.FTZ_DAZ}
print(sorted(int(f) for f in flags))
"""


def test_no_thread_keeps_the_flush_under_a_layer_that_keeps_registers():
    if numba.config.NUMBA_NUM_THREADS < 2:
        pytest.skip("needs two numba threads")
    env = dict(os.environ, NUMBA_THREADING_LAYER="workqueue")
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(_EVERY_KERNEL),
                           os.path.dirname(__file__)],
                          env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split()[-1] == "[0]", proc.stdout
