"""Every compiled kernel against the plain-NumPy oracle in tests/naive.py.

Inputs are built the way the estimators build them (``Layout``, ``Workspace``,
``kernel_X``, ``kernel_rows``, ``readonly``, the ``hp``/``ihp`` slot vectors), in float32
and float64. The oracle computes in float64 from the very same (rounded) inputs.
"""

import json
import os
import subprocess
import sys
from types import SimpleNamespace

import numpy as np
import pytest
import scipy.sparse as sp

from fastbp._kernels import activations as A
from fastbp._kernels import losses as L
from fastbp._kernels import optimizers as O
from fastbp._kernels import train as T
from fastbp._kernels.activations import activate, derivative
from fastbp._kernels.backward import backward_batch, finalize_gradient
from fastbp._kernels.forward import forward_batch
from fastbp._kernels.losses import loss_and_delta
from fastbp._kernels.optimizers import adam_step, sgd_step
from fastbp._kernels.train import full_loss_grad, predict_rows, train_epoch
from fastbp._layout import Layout
from fastbp._workspace import Workspace, kernel_rows, kernel_X, readonly

try:  # tests/ is not a package: pytest puts it on sys.path (rootdir "prepend" mode)
    from . import naive
except ImportError:
    import naive

DTYPES = [np.float64, np.float32]
RTOL = {np.dtype(np.float64): 1e-12, np.dtype(np.float32): 1e-5}

ACT_NAMES = {
    A.IDENTITY: "identity",
    A.LOGISTIC: "logistic",
    A.TANH: "tanh",
    A.RELU: "relu",
    A.SOFTMAX: "softmax",
    A.EXP: "exp",
}
HIDDEN = [A.IDENTITY, A.LOGISTIC, A.TANH, A.RELU]
LOSS_NAMES = {
    L.SQUARED_ERROR: "squared_error",
    L.POISSON: "poisson",
    L.LOG_LOSS: "log_loss",
    L.BINARY_LOG_LOSS: "binary_log_loss",
}
LOSSES = list(LOSS_NAMES)


def assert_close(got, want, dtype, scale=None):
    """rtol of the dtype, plus an absolute floor of rtol * scale (default: the largest
    |want|, at least 1) for entries that are small because of cancellation."""
    got = np.asarray(got, dtype=np.float64)
    want = np.asarray(want, dtype=np.float64)
    assert got.shape == want.shape
    rtol = RTOL[np.dtype(dtype)]
    if scale is None:
        scale = max(1.0, float(np.abs(want).max())) if want.size else 1.0
    np.testing.assert_allclose(got, want, rtol=rtol, atol=rtol * scale)


def block(buf, ws, layer, n):
    """The ``n x units[layer]`` block of ``layer`` in a workspace buffer (Python side)."""
    units, act_off = ws.net[0], ws.net[3]
    a, m = int(act_off[layer]), int(units[layer])
    return buf[a : a + n * m].reshape(n, m)


def targets(loss_code, rng, n, k):
    if loss_code == L.SQUARED_ERROR:
        return rng.normal(size=(n, k))
    if loss_code == L.POISSON:
        return rng.poisson(1.5, size=(n, k)).astype(np.float64)
    if loss_code == L.LOG_LOSS:
        return np.eye(k)[rng.integers(0, k, n)]
    return rng.integers(0, 2, size=(n, k)).astype(np.float64)


def make_problem(dtype, loss_code, hidden=A.TANH, n=23, units=(5, 4, 3), n_out=3,
                 sparse=False, weighted=False, ws_rows=None, seed=0):
    """A 2-hidden-layer network and a data set, as the estimators hand them to kernels."""
    rng = np.random.default_rng(seed)
    layer_units = [*units, n_out]
    layout = Layout(layer_units)
    params = np.empty(layout.n_params, dtype=dtype)
    coefs, intercepts = layout.views(params)
    for W, b in zip(coefs, intercepts, strict=True):
        bound = np.sqrt(6.0 / (W.shape[0] + W.shape[1]))
        W[...] = rng.uniform(-bound, bound, W.shape)
        b[...] = rng.uniform(-bound, bound, b.shape)

    Xd = rng.normal(size=(n, units[0]))
    Xd[rng.random(Xd.shape) < 0.4] = 0.0
    Xd[1] = 0.0  # an empty CSR row
    Xd = Xd.astype(dtype)
    X = sp.csr_matrix(Xd) if sparse else Xd
    Y = targets(loss_code, rng, n, n_out).astype(dtype)
    sw = rng.uniform(0.5, 2.0, n).astype(dtype)
    sw[2] = 0.0

    codes = [0] + [hidden] * (len(layer_units) - 2) + [L.OUTPUT_ACTIVATION[loss_code]]
    ws = Workspace(layout, codes, ws_rows or n, dtype, dense=not sparse)
    Xk, Xsp = kernel_X(X, dtype)
    if sparse:
        assert Xk.size == 0 and Xsp[0].shape[0] == n + 1
    else:
        assert Xsp[0].shape[0] == 0
    return SimpleNamespace(
        dtype=dtype, layout=layout, params=params, ws=ws, Xk=Xk, Xsp=Xsp,
        Yk=readonly(Y), swk=readonly(sw if weighted else np.empty(0, dtype=dtype)),
        X64=Xd.astype(np.float64), Y64=Y.astype(np.float64),
        sw64=sw.astype(np.float64) if weighted else None,
        hidden=ACT_NAMES[hidden], loss=LOSS_NAMES[loss_code], loss_code=loss_code,
        clip_eps=float(np.finfo(dtype).eps), rng=rng, n=n,
    )


def naive_params(pb):
    coefs, intercepts = pb.layout.views(pb.params)
    return [c.astype(np.float64) for c in coefs], [b.astype(np.float64) for b in intercepts]


def naive_sw(pb, rows):
    return None if pb.sw64 is None else pb.sw64[rows]


def test_output_activation_table_matches_oracle():
    for code, name in LOSS_NAMES.items():
        assert ACT_NAMES[L.OUTPUT_ACTIVATION[code]] == naive.OUTPUT_ACTIVATION[name]


# ----------------------------------------------------------------------------- activations
def activation_input(code, rng):
    Z = rng.normal(0.0, 3.0, size=(7, 4))
    if code == A.EXP:
        Z[0] = [30.0, -30.0, 0.0, 5.0]
    else:  # far on both sides: the logistic must not overflow, softmax must shift
        Z[0] = [1000.0, -1000.0, 0.0, 30.0]
    Z[1] = [0.0, -0.0, 1e-3, -1e-3]
    return Z


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("code", list(ACT_NAMES))
def test_activate(dtype, code):
    Z = activation_input(code, np.random.default_rng(code)).astype(dtype)
    got = Z.copy()
    assert activate(got, code) is None
    assert got.dtype == dtype
    want = naive.activation(ACT_NAMES[code], Z)
    assert np.all(np.isfinite(got))
    assert_close(got, want, dtype, scale=1.0 if code != A.EXP else None)
    if code == A.SOFTMAX:
        assert_close(got.sum(axis=1), np.ones(Z.shape[0]), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("code", list(ACT_NAMES))
def test_derivative(dtype, code):
    rng = np.random.default_rng(10 + code)
    Z = activation_input(code, rng)
    Aout = naive.activation(ACT_NAMES[code], Z).astype(dtype)
    delta = rng.normal(size=Z.shape).astype(dtype)
    got = delta.copy()
    assert derivative(Aout, got, code) is None
    want = delta.astype(np.float64) * naive.derivative_from_output(ACT_NAMES[code], Aout)
    assert_close(got, want, dtype)
    if code == A.RELU:
        assert np.all(got[Aout == 0] == 0)
    if code in (A.IDENTITY, A.SOFTMAX, A.EXP):  # folded into the loss: untouched
        assert np.array_equal(got, delta)


# ---------------------------------------------------------------------------------- losses
def loss_inputs(code, rng, n, k):
    Y = targets(code, rng, n, k)
    if code == L.SQUARED_ERROR:
        P = rng.normal(size=(n, k))
    elif code == L.POISSON:
        P = np.exp(rng.normal(size=(n, k)))
    elif code == L.LOG_LOSS:
        P = naive.activation("softmax", 2.0 * rng.normal(size=(n, k)))
        P[0], Y[0] = [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]  # log(0) -> clipped
        P[1], Y[1] = [1.0, 0.0, 0.0], [1.0, 0.0, 0.0]  # log(1) -> clipped
    else:
        P = naive.activation("logistic", 2.0 * rng.normal(size=(n, k)))
        P[0], Y[0] = [1.0, 0.0, 0.5], [0.0, 1.0, 1.0]  # clipped on both sides
        P[1], Y[1] = [0.0, 1.0, 0.3], [0.0, 1.0, 0.25]  # fractional target
    return P, Y


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("code", LOSSES)
@pytest.mark.parametrize("weighted", [False, True])
def test_loss_and_delta(dtype, code, weighted):
    rng = np.random.default_rng(20 + code)
    n_samples, k = 14, 3
    P_all, Y = loss_inputs(code, rng, n_samples, k)
    rows = rng.permutation(n_samples)[:10]
    rows = np.concatenate([[0, 1, 2], rows[~np.isin(rows, [0, 1, 2])]])
    rng.shuffle(rows)
    P = P_all[rows].astype(dtype)  # batch row i is data row rows[i]
    Y = Y.astype(dtype)
    sw = rng.uniform(0.5, 2.0, n_samples).astype(dtype)
    sw[2] = 0.0
    eps = float(np.finfo(dtype).eps)

    D = np.full(P.shape, np.nan, dtype=dtype)
    swk = readonly(sw) if weighted else readonly(np.empty(0, dtype=dtype))
    loss_sum, sw_sum = loss_and_delta(
        P, readonly(Y), readonly(rows.astype(np.int64)), swk, code, eps, D
    )
    want_loss, want_sw, want_D = naive.loss_and_delta(
        LOSS_NAMES[code], P, Y[rows], sw[rows] if weighted else None, eps
    )
    assert isinstance(loss_sum, float) and isinstance(sw_sum, float)
    assert np.isfinite(loss_sum)
    assert_close(loss_sum, want_loss, dtype)
    assert sw_sum == pytest.approx(want_sw, rel=1e-15)
    assert_close(D, want_D, dtype)
    if weighted:
        assert np.all(D[rows == 2] == 0)  # zero weight: no gradient


# --------------------------------------------------------------------------------- forward
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("sparse", [False, True], ids=["dense", "csr"])
@pytest.mark.parametrize("hidden", HIDDEN)
def test_forward_batch(dtype, sparse, hidden):
    for loss_code in LOSSES:
        pb = make_problem(dtype, loss_code, hidden, n=20, sparse=sparse, ws_rows=16,
                          seed=30 + loss_code)
        rows = pb.rng.permutation(pb.n)[:11].astype(np.int64)  # shuffled, < workspace
        ws = pb.ws
        P = forward_batch(pb.params, ws.net, pb.Xk, pb.Xsp, readonly(rows), ws.act, ws.xbuf)
        coefs, intercepts = naive_params(pb)
        acts = naive.forward(pb.X64[rows], coefs, intercepts, pb.hidden,
                             naive.OUTPUT_ACTIVATION[pb.loss])
        assert P.shape == (11, 3) and P.dtype == dtype
        assert np.shares_memory(P, ws.act)
        assert_close(P, acts[-1], dtype)
        for layer in (1, 2, 3):
            assert_close(block(ws.act, ws, layer, len(rows)), acts[layer], dtype)
        if not sparse:  # gathered input rows, read by the backward pass
            assert np.array_equal(ws.xbuf[: 11 * 5].reshape(11, 5), pb.X64[rows])


# -------------------------------------------------------------------------------- backward
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("sparse", [False, True], ids=["dense", "csr"])
@pytest.mark.parametrize("hidden", HIDDEN)
@pytest.mark.parametrize("weighted", [False, True])
def test_backward_batch_and_finalize(dtype, sparse, hidden, weighted):
    alpha = 0.1
    for loss_code in LOSSES:
        pb = make_problem(dtype, loss_code, hidden, n=20, sparse=sparse, weighted=weighted,
                          ws_rows=16, seed=40 + loss_code)
        rows = pb.rng.permutation(pb.n)[:13].astype(np.int64)
        if weighted and 2 not in rows:
            rows[0] = 2  # include the zero-weight row
        ws, n = pb.ws, len(rows)
        rows_k = readonly(rows)
        P = forward_batch(pb.params, ws.net, pb.Xk, pb.Xsp, rows_k, ws.act, ws.xbuf)
        D = block(ws.delta, ws, 3, n)
        loss_sum, sw_sum = loss_and_delta(P, pb.Yk, rows_k, pb.swk, loss_code,
                                          pb.clip_eps, D)
        grads = np.full(pb.layout.n_params, np.nan, dtype=dtype)
        backward_batch(pb.params, grads, ws.net, pb.Xsp, rows_k, ws.act, ws.delta, ws.xbuf)

        coefs, intercepts = naive_params(pb)
        acts = naive.forward(pb.X64[rows], coefs, intercepts, pb.hidden,
                             naive.OUTPUT_ACTIVATION[pb.loss])
        want_loss, want_sw, D0 = naive.loss_and_delta(
            pb.loss, acts[-1], pb.Y64[rows], naive_sw(pb, rows), pb.clip_eps
        )
        assert_close(loss_sum, want_loss, dtype)
        assert sw_sum == pytest.approx(want_sw, rel=1e-12)
        gW, gb = naive.backprop(coefs, acts, D0, pb.hidden)
        got_W, got_b = pb.layout.views(grads)
        for g, w in zip(got_W + got_b, gW + gb, strict=True):
            assert_close(g, w, dtype)

        sq = finalize_gradient(pb.params, grads, pb.layout.n_coefs, alpha, sw_sum)
        assert_close(sq, naive.squared_norm(coefs), dtype)
        value, fW, fb = naive.objective(coefs, intercepts, pb.X64[rows], pb.Y64[rows],
                                        pb.hidden, pb.loss, alpha, naive_sw(pb, rows),
                                        pb.clip_eps)
        got_W, got_b = pb.layout.views(grads)
        for g, w in zip(got_W + got_b, fW + fb, strict=True):
            assert_close(g, w, dtype)
        assert_close((loss_sum + 0.5 * alpha * sq) / sw_sum, value, dtype)


# ------------------------------------------------------------------- full objective (lbfgs)
def run_full_loss_grad(pb, chunk, order, alpha):
    ws = Workspace(pb.layout, pb.ws.net[4], chunk, pb.dtype, dense=pb.Xsp[0].shape[0] == 0)
    grads = np.full(pb.layout.n_params, np.nan, dtype=pb.dtype)
    scratch = np.full(pb.layout.n_params, np.nan, dtype=pb.dtype)
    value = full_loss_grad(pb.params, grads, scratch, ws.net, pb.Xk, pb.Xsp, pb.Yk, pb.swk,
                           order, chunk, pb.loss_code, pb.clip_eps, alpha, ws.act,
                           ws.delta, ws.xbuf)
    return value, grads


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("sparse", [False, True], ids=["dense", "csr"])
@pytest.mark.parametrize("loss_code", LOSSES)
@pytest.mark.parametrize("weighted", [False, True])
def test_full_loss_grad(dtype, sparse, loss_code, weighted):
    alpha = 1e-2
    pb = make_problem(dtype, loss_code, A.TANH, n=23, sparse=sparse, weighted=weighted,
                      seed=50 + loss_code)
    order = kernel_rows(pb.n)
    coefs, intercepts = naive_params(pb)
    value, fW, fb = naive.objective(coefs, intercepts, pb.X64, pb.Y64, pb.hidden, pb.loss,
                                    alpha, pb.sw64, pb.clip_eps)
    want = np.concatenate([w.ravel() for w in fW] + list(fb))

    one_value, one_grads = run_full_loss_grad(pb, pb.n, order, alpha)  # one chunk
    assert isinstance(one_value, float)
    assert_close(one_value, value, dtype)
    assert_close(one_grads, want, dtype)
    for chunk in (5, 7, 22):  # several chunks, the last one partial
        v, g = run_full_loss_grad(pb, chunk, order, alpha)
        assert_close(v, one_value, dtype)
        assert_close(g, one_grads, dtype)
    # a shuffled order gives the same objective
    perm = readonly(pb.rng.permutation(pb.n).astype(np.int64))
    v, g = run_full_loss_grad(pb, 6, perm, alpha)
    assert_close(v, value, dtype)
    assert_close(g, want, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_full_loss_grad_zero_weights_is_nan(dtype):
    pb = make_problem(dtype, L.SQUARED_ERROR, n=10, weighted=True)
    pb.swk = readonly(np.zeros(pb.n, dtype=dtype))
    for chunk in (4, 10):
        value, _ = run_full_loss_grad(pb, chunk, kernel_rows(pb.n), 0.0)
        assert np.isnan(value)


# ------------------------------------------------------------------------------ optimizers
def split(layout, flat):
    coefs, intercepts = layout.views(flat)
    return [a.astype(np.float64) for a in coefs + intercepts]


def flat_of(arrays):
    return np.concatenate([np.ravel(a) for a in arrays])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("nesterov", [False, True])
def test_sgd_step(dtype, nesterov):
    rng = np.random.default_rng(60)
    layout = Layout([5, 4, 3, 2])
    params, grads, velocity = (rng.normal(size=layout.n_params).astype(dtype)
                               for _ in range(3))
    lr, momentum = 0.05, 0.9
    want_p, want_v = naive.sgd_step(split(layout, params), split(layout, grads),
                                    split(layout, velocity), lr, momentum, nesterov)
    g_before = grads.copy()
    sgd_step(params, grads, velocity, lr, momentum, nesterov)
    assert_close(params, flat_of(want_p), dtype)
    assert_close(velocity, flat_of(want_v), dtype)
    assert np.array_equal(grads, g_before)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("t", [1, 7])
def test_adam_step(dtype, t):
    rng = np.random.default_rng(61 + t)
    layout = Layout([5, 4, 3, 2])
    n = layout.n_params
    params, grads = (rng.normal(size=n).astype(dtype) for _ in range(2))
    m = (0.1 * rng.normal(size=n)).astype(dtype) if t > 1 else np.zeros(n, dtype)
    v = (0.1 * rng.random(size=n)).astype(dtype) if t > 1 else np.zeros(n, dtype)
    lr, b1, b2, eps = 1e-3, 0.9, 0.999, 1e-8
    want_p, want_m, want_v = naive.adam_step(
        split(layout, params), split(layout, grads), split(layout, m), split(layout, v),
        t, lr, b1, b2, eps,
    )
    adam_step(params, grads, m, v, t, lr, b1, b2, eps)
    assert_close(params, flat_of(want_p), dtype)
    assert_close(m, flat_of(want_m), dtype)
    assert_close(v, flat_of(want_v), dtype)


# --------------------------------------------------------------------------------- predict
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("sparse", [False, True], ids=["dense", "csr"])
@pytest.mark.parametrize("loss_code", LOSSES)
def test_predict_rows(dtype, sparse, loss_code):
    pb = make_problem(dtype, loss_code, A.RELU, n=23, sparse=sparse, seed=70 + loss_code)
    coefs, intercepts = naive_params(pb)
    for order in (np.arange(pb.n), pb.rng.permutation(pb.n)):
        for chunk in (4, 23):
            ws = Workspace(pb.layout, pb.ws.net[4], chunk, dtype, dense=not sparse)
            out = np.full((pb.n, 3), np.nan, dtype=dtype)
            predict_rows(pb.params, ws.net, pb.Xk, pb.Xsp, readonly(order.astype(np.int64)),
                         chunk, ws.act, ws.xbuf, out)
            want = naive.forward(pb.X64[order], coefs, intercepts, pb.hidden,
                                 naive.OUTPUT_ACTIVATION[pb.loss])[-1]
            assert_close(out, want, dtype)


# ------------------------------------------------------------------------------ one epoch
SOLVERS = {
    "sgd": dict(solver="sgd", nesterov=False, lr=0.05),
    "nesterov": dict(solver="sgd", nesterov=True, lr=0.05),
    "adam": dict(solver="adam", nesterov=False, lr=1e-2),
}


def make_hp(dtype, solver, nesterov, lr, loss_code, alpha, t):
    """The hyperparameter vectors, slot by slot, as ``_fit_stochastic`` builds them."""
    hp = np.zeros(T.N_HP)
    hp[T.HP_LR] = lr
    hp[T.HP_MOMENTUM] = 0.9
    hp[T.HP_BETA_1] = 0.9
    hp[T.HP_BETA_2] = 0.999
    hp[T.HP_EPSILON] = 1e-8
    hp[T.HP_ALPHA] = alpha
    hp[T.HP_CLIP_EPS] = np.finfo(dtype).eps
    ihp = np.zeros(T.N_IHP, dtype=np.int64)
    ihp[T.IHP_SOLVER] = O.CODES[solver]
    ihp[T.IHP_NESTEROV] = int(nesterov)
    ihp[T.IHP_LOSS] = loss_code
    ihp[T.IHP_T] = t
    return hp, ihp


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("sparse", [False, True], ids=["dense", "csr"])
@pytest.mark.parametrize("which", list(SOLVERS))
@pytest.mark.parametrize("weighted", [False, True])
def test_train_epoch(dtype, sparse, which, weighted):
    cfg = SOLVERS[which]
    alpha, batch_size, t0 = 1e-3, 5, 3
    for loss_code in LOSSES:
        pb = make_problem(dtype, loss_code, A.TANH, n=23, sparse=sparse, weighted=weighted,
                          ws_rows=batch_size, seed=80 + loss_code)
        order = pb.rng.permutation(pb.n).astype(np.int64)
        if weighted:  # the second minibatch weighs nothing: it must be skipped
            sw = np.array(pb.swk)
            sw[order[batch_size : 2 * batch_size]] = 0.0
            pb.swk, pb.sw64 = readonly(sw), sw.astype(np.float64)
        rng = np.random.default_rng(90 + loss_code)
        state = np.zeros((2, pb.layout.n_params), dtype=dtype)
        state[0] = 0.01 * rng.normal(size=pb.layout.n_params)
        if cfg["solver"] == "adam":
            state[1] = 1e-3 * rng.random(size=pb.layout.n_params)
        hp, ihp = make_hp(dtype, cfg["solver"], cfg["nesterov"], cfg["lr"], loss_code,
                          alpha, t0)

        coefs, intercepts = naive_params(pb)
        n_layers = len(coefs)
        want_state = (split(pb.layout, state[0]), split(pb.layout, state[1]))
        w_coefs, w_icpts, w_state, w_t, w_total = naive.train_epoch(
            coefs, intercepts, want_state, pb.X64, pb.Y64, pb.sw64, order, batch_size,
            pb.hidden, pb.loss, alpha, cfg["solver"], cfg["lr"], momentum=0.9,
            nesterov=cfg["nesterov"], beta_1=0.9, beta_2=0.999, epsilon=1e-8,
            t=t0, clip_eps=pb.clip_eps,
        )

        grads = np.empty_like(pb.params)
        ws = pb.ws
        total = train_epoch(pb.params, grads, state, hp, ihp, ws.net, pb.Xk, pb.Xsp,
                            pb.Yk, pb.swk, readonly(order), batch_size, ws.act, ws.delta,
                            ws.xbuf)
        assert isinstance(total, float)
        assert_close(total, w_total, dtype)
        assert_close(pb.params, flat_of(w_coefs + w_icpts), dtype)
        assert_close(state[0], flat_of(w_state[0]), dtype)
        if cfg["solver"] == "adam":
            assert_close(state[1], flat_of(w_state[1]), dtype)
            n_steps = 4 if weighted else 5  # ceil(23 / 5) minibatches, one skipped
            assert ihp[T.IHP_T] == w_t == t0 + n_steps
        else:
            assert ihp[T.IHP_T] == t0
        assert len(w_coefs) == n_layers


# -------------------------------------------------------------------- no steady-state alloc
ALLOC_SCRIPT = r"""
import json

import numba
import numpy as np
import scipy.sparse as sp
from numba.core.runtime import rtsys

from fastbp._kernels import losses as L
from fastbp._kernels import optimizers as O
from fastbp._kernels import train as T
from fastbp._layout import Layout
from fastbp._workspace import Workspace, kernel_X, readonly


def stats():
    s = rtsys.get_allocation_stats()
    return np.array([s.alloc, s.free, s.mi_alloc, s.mi_free], dtype=np.int64)


@numba.njit
def noop(params, grads, state, hp, ihp, net, X, Xsp, Y, sw, order, batch_size, act,
         delta, xbuf):
    return 0.0


@numba.njit
def allocates(params, grads, state, hp, ihp, net, X, Xsp, Y, sw, order, batch_size, act,
              delta, xbuf):
    return np.empty(3).size


rng = np.random.default_rng(0)
out = {}
for dtype in (np.float64, np.float32):
    for sparse in (False, True):
        for solver in ("sgd", "adam"):
            n, batch = 40, 7
            layout = Layout([5, 6, 4, 3])
            params = rng.uniform(-0.5, 0.5, layout.n_params).astype(dtype)
            Xd = rng.normal(size=(n, 5)).astype(dtype)
            Xd[rng.random(Xd.shape) < 0.4] = 0
            Xk, Xsp = kernel_X(sp.csr_matrix(Xd) if sparse else Xd, dtype)
            Y = readonly(np.eye(3, dtype=dtype)[rng.integers(0, 3, n)])
            sw = readonly(rng.uniform(0.5, 2, n).astype(dtype))
            ws = Workspace(layout, [0, 2, 2, 4], batch, dtype, dense=not sparse)
            hp = np.zeros(T.N_HP)
            hp[[T.HP_LR, T.HP_MOMENTUM, T.HP_BETA_1, T.HP_BETA_2, T.HP_EPSILON,
                T.HP_ALPHA, T.HP_CLIP_EPS]] = [1e-3, 0.9, 0.9, 0.999, 1e-8, 1e-4,
                                                np.finfo(dtype).eps]
            ihp = np.zeros(T.N_IHP, dtype=np.int64)
            ihp[T.IHP_SOLVER] = O.CODES[solver]
            ihp[T.IHP_NESTEROV] = 1
            ihp[T.IHP_LOSS] = L.LOG_LOSS
            state = np.zeros((2, layout.n_params), dtype=dtype)
            args = (params, np.empty_like(params), state, hp, ihp, ws.net, Xk, Xsp, Y, sw,
                    readonly(rng.permutation(n).astype(np.int64)), batch, ws.act, ws.delta,
                    ws.xbuf)
            noop(*args)
            noop(*args)
            a = stats()
            noop(*args)
            b = stats()
            allocates(*args)
            allocates(*args)
            e = stats()
            allocates(*args)
            f = stats()
            T.train_epoch(*args)
            T.train_epoch(*args)
            c = stats()
            T.train_epoch(*args)
            d = stats()
            key = f"{np.dtype(dtype).name}-{'csr' if sparse else 'dense'}-{solver}"
            out[key] = {"noop": (b - a).tolist(), "epoch": (d - c).tolist(),
                        "allocates": (f - e).tolist(),
                        "finite": bool(np.isfinite(params).all())}
print("RESULT " + json.dumps(out))
"""


def test_train_epoch_does_not_allocate_in_steady_state():
    env = {**os.environ, "NUMBA_NRT_STATS": "1"}
    proc = subprocess.run([sys.executable, "-c", ALLOC_SCRIPT], env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    line = [s for s in proc.stdout.splitlines() if s.startswith("RESULT ")][-1]
    results = json.loads(line[len("RESULT "):])
    assert len(results) == 8
    counters = ["alloc", "free", "mi_alloc", "mi_free"]
    for key, r in results.items():
        assert r["finite"], key
        # the stats are live: boxing the arguments of the no-op costs meminfos
        assert r["noop"][2] > 0, (key, r)
        # and a call that allocates one array shows above the boxing overhead
        assert r["allocates"][0] > r["noop"][0], (key, r)
        for name, per_call, epoch in zip(counters, r["noop"], r["epoch"], strict=True):
            assert epoch <= per_call, f"{key}: {name} grew by {epoch} > {per_call} ({r})"
