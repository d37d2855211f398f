"""Every compiled kernel against the plain-NumPy oracle in tests/naive.py.

Inputs are built the way the estimators build them (``Layout``, ``Workspace``,
``kernel_X``, ``kernel_rows``, ``readonly``, the ``hp``/``ihp`` slot vectors), in float32
and float64. The oracle computes in float64 from the very same (rounded) inputs.
"""

import json
import math
import os
import re
import subprocess
import sys
from types import SimpleNamespace

import llvmlite.binding as llvm
import numba
import numba.extending
import numpy as np
import pytest
import scipy.sparse as sp

from fastbp import _blas
from fastbp._config import JIT_OPTIONS
from fastbp._kernels import activations as A
from fastbp._kernels import backward, blas, dropout, forward, literals, penalties, vectorwidth
from fastbp._kernels import losses as L
from fastbp._kernels import optimizers as O
from fastbp._kernels import train as T
from fastbp._kernels.activations import activate
from fastbp._kernels.backward import backward_batch
from fastbp._kernels.callbacks import CFUNC_OPTIONS
from fastbp._kernels.forward import Net
from fastbp._kernels.optimizers import step
from fastbp._kernels.train import full_loss_grad, mean_loss, predict_rows, train_epoch
from fastbp._layout import Layout
from fastbp._workspace import Workspace, kernel_rows, kernel_X, no_dropout, readonly

try:  # tests/ is not a package: pytest puts it on sys.path (rootdir "prepend" mode)
    from . import naive
except ImportError:
    import naive



def from_python(kernel):
    """``kernel`` callable from Python: the kernels only compiled code calls have no
    CPython wrapper (``_config.HELPER_JIT_OPTIONS``), so tests go through a compiled
    trampoline, as the entry kernels do."""
    return numba.njit(lambda *args: kernel(*args))


sum_of_squares = from_python(penalties.sum_of_squares)
multiply = from_python(backward.multiply)
dropout_apply = from_python(dropout.apply)
batch_key = from_python(dropout.batch_key)
forward_batch = from_python(forward.forward_batch)
loss_and_delta = L.apply  # through the C callbacks, as the kernels call it
adagrad_step, adam_step, rmsprop_step, sgd_step = (
    from_python(rule) for rule in (O.adagrad_step, O.adam_step, O.rmsprop_step, O.sgd_step)
)

DTYPES = [np.float64, np.float32]
RTOL = {np.dtype(np.float64): 1e-12, np.dtype(np.float32): 1e-5}

ACT_NAMES = {
    A.IDENTITY: "identity",
    A.LOGISTIC: "logistic",
    A.TANH: "tanh",
    A.RELU: "relu",
    A.SOFTMAX: "softmax",
    A.EXP: "exp",
    A.LEAKY_RELU: "leaky_relu",
    A.ELU: "elu",
    A.SOFTPLUS: "softplus",
    A.GELU: "gelu",
}
HIDDEN = [code for code in ACT_NAMES if code not in (A.SOFTMAX, A.EXP)]
LOSS_NAMES = L.NAMES
LOSSES = list(LOSS_NAMES)
HUBER_DELTA = 0.7
NO_KEY = batch_key(0, 0)


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
    net = Net(*ws.net)
    units, act_off = net.units, net.act_off
    a, m = int(act_off[layer]), int(units[layer])
    return buf[a : a + n * m].reshape(n, m)


def targets(loss_code, rng, n, k):
    if loss_code in (L.SQUARED_ERROR, L.ABSOLUTE_ERROR, L.HUBER):
        return rng.normal(size=(n, k))
    if loss_code == L.POISSON:
        return rng.poisson(1.5, size=(n, k)).astype(np.float64)
    if loss_code in (L.LOG_LOSS, L.HINGE):
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
        assert Xsp is None  # the kernels compile no sparse path for it
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
    assert activate(got, code, np.empty((0, 0), dtype=dtype)) is None
    assert got.dtype == dtype
    want = naive.activation(ACT_NAMES[code], Z)
    assert np.all(np.isfinite(got))
    scale = None if code in (A.EXP, A.IDENTITY, A.LEAKY_RELU, A.SOFTPLUS, A.GELU) else 1.0
    assert_close(got, want, dtype, scale=scale)
    if code == A.SOFTMAX:
        assert_close(got.sum(axis=1), np.ones(Z.shape[0]), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("code", list(ACT_NAMES))
def test_activate_writes_the_derivative(dtype, code):
    rng = np.random.default_rng(10 + code)
    Z = activation_input(code, rng).astype(dtype)
    got = Z.copy()
    dZ = np.full(Z.shape, 7.0, dtype=dtype)
    activate(got, code, dZ)
    want = naive.activation(ACT_NAMES[code], Z)
    assert_close(got, want, dtype, scale=None)  # the same values as without dZ
    if code in (A.SOFTMAX, A.EXP):  # folded into the loss: never written
        assert np.all(dZ == 7.0)
        return
    assert_close(dZ, naive.derivative(ACT_NAMES[code], Z), dtype, scale=1.0)
    if code == A.RELU:  # relu'(0) = 0, scikit-learn's convention
        assert np.all(dZ[Z == 0] == 0)


@pytest.mark.parametrize("dtype", DTYPES)
def test_relu_derivative_from_the_output_is_what_relu_writes(dtype):
    # the backward pass reads relu's f'(z) from its output (no dropout): the same factor
    # as the activation writes, bit for bit, NaN (divergence stays visible) and zeros too
    rng = np.random.default_rng(5)
    Z = activation_input(A.RELU, rng).astype(dtype)
    Z[2] = [np.nan, -np.inf, np.inf, -0.0]
    out, dZ = Z.copy(), np.empty_like(Z)
    activate(out, A.RELU, dZ)
    D = rng.normal(size=Z.shape).astype(dtype)
    want = D * dZ
    got = D.copy()
    multiply(got, out, True)
    np.testing.assert_array_equal(got, want)
    assert np.array_equal(np.signbit(got), np.signbit(want))
    assert np.isnan(got[2, 0]) and got[2, 1] == 0 and got[2, 2] == D[2, 2]
    got = D.copy()
    multiply(got, dZ, False)  # f'(z) as written, for the other activations and dropout
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("code", list(ACT_NAMES))
@pytest.mark.parametrize("units", [1, 3, 10, 17, 64])
def test_activate_adds_the_bias_in_its_pass(dtype, code, units):
    """The activations add the layer's bias themselves (relu and softmax in the same
    pass): the same bits as adding it first, the reference's values, at every width
    (the loops vectorise differently) and with f'(z) written or not; NaN still shows."""
    rng = np.random.default_rng(units)
    Z = rng.normal(0.0, 3.0, size=(6, units)).astype(dtype)
    Z[1, 0] = np.nan
    b = rng.normal(0.0, 1.0, size=units).astype(dtype)
    want = naive.activation(ACT_NAMES[code], (Z + b).astype(np.float64))
    for d_rows in (0, 6):
        got, added = Z.copy(), (Z + b).astype(dtype)
        dZ, dZ_added = np.zeros((d_rows, units), dtype), np.zeros((d_rows, units), dtype)
        activate(got, code, dZ, b)
        activate(added, code, dZ_added)
        np.testing.assert_array_equal(got, added)
        np.testing.assert_array_equal(dZ, dZ_added)
        rows = np.arange(6) != 1
        assert_close(got[rows], want[rows], dtype, scale=1.0)
        assert np.isnan(got[1, 0])
        if code == A.SOFTMAX:
            assert np.isnan(got[1]).all()


# ---------------------------------------------------------------------------------- losses
def loss_inputs(code, rng, n, k):
    Y = targets(code, rng, n, k)
    if code in (L.SQUARED_ERROR, L.ABSOLUTE_ERROR, L.HUBER, L.HINGE, L.BINARY_HINGE):
        P = rng.normal(size=(n, k))
        if code == L.HUBER:
            P[0] = Y[0] + [0.3, -2.0, HUBER_DELTA]  # inside, outside, on the threshold
        elif code == L.BINARY_HINGE:
            P[0] = 2.0 * Y[0] - 1.0  # margins exactly 1: the kink, no loss
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
        P, readonly(Y), readonly(rows.astype(np.int64)), swk, code, eps, HUBER_DELTA, D
    )
    want_loss, want_sw, want_D = naive.loss_and_delta(
        LOSS_NAMES[code], P, Y[rows], sw[rows] if weighted else None, eps, HUBER_DELTA
    )
    assert isinstance(loss_sum, float) and isinstance(sw_sum, float)
    assert np.isfinite(loss_sum)
    assert_close(loss_sum, want_loss, dtype)
    assert sw_sum == pytest.approx(want_sw, rel=1e-15)
    assert_close(D, want_D, dtype)
    if weighted:
        assert np.all(D[rows == 2] == 0)  # zero weight: no gradient


# -------------------------------------------------------------------------- matrix product
@numba.njit
def _numba_dot(a, b, out):
    np.dot(a, b, out)


def operands(dtype, shape, layouts):
    """Random ``(a, b)`` of ``shape`` (m, k, n), each C or F as ``layouts`` says."""
    m, k, n = shape
    rng = np.random.default_rng(m * 100 + k * 10 + n)
    a = rng.standard_normal((m, k)).astype(dtype)
    b = rng.standard_normal((k, n)).astype(dtype)
    if layouts[0] == "F":
        a = np.ascontiguousarray(a.T).T
    if layouts[1] == "F":
        b = np.ascontiguousarray(b.T).T
    return a, b


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(7, 5, 3), (1, 5, 3), (7, 5, 1), (1, 5, 1), (0, 5, 3),
                                   (7, 0, 3), (7, 5, 0), (40, 33, 17),
                                   (130, 120, 140)])  # above _blas.SMALL_GEMM
@pytest.mark.parametrize("layouts", ["CC", "FC", "CF"])
def test_matmul_is_numbas_dot(dtype, shape, layouts):
    """``blas.matmul_small`` uncut (``small`` 0) makes numba's BLAS calls for
    ``np.dot(a, b, out)`` (gemm, gemv or dot by shape; zeros for an empty product), so
    the products are those of before, bit for bit, in every operand layout the kernels
    use (``A.T @ D``, ``D @ W.T``): with scipy's BLAS, numba's; with another
    (``FASTBP_BLAS``), the product within the dtype's tolerance."""
    m, k, n = shape
    a, b = operands(dtype, shape, layouts)
    got = np.full((m, n), np.nan, dtype=dtype)
    want = np.full((m, n), np.nan, dtype=dtype)
    from_python(blas.matmul_small)(a, b, got, 0)
    _numba_dot(a, b, want)
    if _blas.bind().name == "scipy":
        assert got.tobytes() == want.tobytes()
    assert_close(got, a.astype(np.float64) @ b.astype(np.float64), dtype, scale=1.0)


SMALL = 10**6  # OpenBLAS's small-kernel limit (fastbp._threads.SMALL_PRODUCT)
small_width = from_python(blas.small_width)


@pytest.mark.parametrize("m, k, n, tn, small, width", [
    (32, 256, 128, False, 0, 128),  # no small kernels: one call
    (32, 100, 256, False, SMALL, 256),  # fits whole
    (32, 256, 128, False, SMALL, 64),  # 1.05 M: two calls of 524 k
    (200, 256, 128, False, SMALL, 16),  # 19 columns fit: multiples of 16
    (200, 100, 256, False, SMALL, 48),  # 50 fit: 6 calls of 43, rounded up
    (256, 64, 64, False, SMALL, 32),  # predict's chunk of a digits net
    (32, 128, 256, True, SMALL, 32),  # transposed B: at most 1200 outputs a call
    (200, 128, 256, True, SMALL, 256),  # ... fewer than 16 columns: one call
    (32, 10, 64, True, SMALL, 64),  # ... an inner dimension under 32: one call
    (1, 4096, 4096, False, SMALL, 4096),  # a matrix-vector product stays one
    (4096, 4096, 1, False, SMALL, 1),
    (7, 0, 5, True, SMALL, 5),  # empty inner dimension: one call's zeros
])
def test_small_width_cuts_only_what_the_small_kernels_take(m, k, n, tn, small, width):
    """``blas.small_width``: the widths above, and over a grid of shapes every cut
    product's calls fit OpenBLAS's small-matrix rule, in the fewest calls of a multiple
    of 16 columns."""
    assert small_width(m, k, n, tn, small) == width


@pytest.mark.parametrize("limit", [10**5, SMALL])
def test_small_width_fits_every_chunk(limit):
    for m in (2, 7, 32, 33, 100, 200, 256, 512):
        for k in (1, 16, 31, 32, 100, 256, 1024):
            for n in (2, 10, 17, 64, 100, 128, 256, 1000):
                for tn in (False, True):
                    def fits(w, m=m, k=k, tn=tn):
                        return m * k * w <= limit and (
                            not tn or (m * w <= blas.TN_OUTPUT and k >= blas.TN_INNER))

                    width = small_width(m, k, n, tn, limit)
                    if width == n:  # fits whole, or no chunk of 16 or more does
                        assert fits(n) or not any(fits(w) for w in range(16, n, 16))
                        continue
                    assert 16 <= width < n and width % 16 == 0 and fits(width)
                    widest = max(w for w in range(16, n, 16) if fits(w))
                    assert -(-n // width) == -(-n // widest)  # the fewest calls


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("layouts", ["CC", "FC", "CF", "FF"])
def test_product_in_small_chunks_is_the_product(dtype, layouts):
    """``blas.product`` without column tasks is ``a @ b`` in every operand layout,
    whether it cuts the product for the small kernels (a limit of 20 columns' worth: 4
    calls of 16, the last 2) or not (no limit, a limit the whole fits, and F @ F,
    which no caller multiplies); every column written."""
    m, k, n = 40, 33, 50
    a, b = operands(dtype, (m, k, n), layouts)
    exact = a.astype(np.float64) @ b.astype(np.float64)
    for small in (0, m * k * 20, SMALL):
        out = np.full((m, n), np.nan, dtype=dtype)
        from_python(blas.product)(a, b, out, None, small)
        assert_close(out, exact, dtype, scale=1.0)
    assert small_width(m, k, n, layouts == "CF", m * k * 20) == 16


# --------------------------------------------------------------------------------- forward
def forward_train(pb, rows_k, drop=None, key=NO_KEY):
    ws = pb.ws
    drop = no_dropout() if drop is None else readonly(np.asarray(drop, dtype=np.float64))
    return forward_batch(pb.params, Net(*ws.net), pb.Xk, pb.Xsp, rows_k, ws.act, ws.xbuf, ws.dact,
                         drop, key, 0)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("sparse", [False, True], ids=["dense", "csr"])
@pytest.mark.parametrize("hidden", HIDDEN)
def test_forward_batch(dtype, sparse, hidden):
    for loss_code in LOSSES:
        pb = make_problem(dtype, loss_code, hidden, n=20, sparse=sparse, ws_rows=16,
                          seed=30 + loss_code)
        rows = pb.rng.permutation(pb.n)[:11].astype(np.int64)  # shuffled, < workspace
        ws = pb.ws
        coefs, intercepts = naive_params(pb)
        acts, zs = naive.forward(pb.X64[rows], coefs, intercepts, pb.hidden,
                                 naive.OUTPUT_ACTIVATION[pb.loss], return_preactivations=True)
        # inference: an empty dact
        P = forward_batch(pb.params, Net(*ws.net), pb.Xk, pb.Xsp, readonly(rows), ws.act, ws.xbuf,
                          ws.dact[:0], no_dropout(), NO_KEY, 0)
        assert P.shape == (11, 3) and P.dtype == dtype
        assert np.shares_memory(P, ws.act)
        assert_close(P, acts[-1], dtype)
        # training: the same activations, and f'(z) of the hidden layers in dact
        ws.dact[:] = np.nan
        P = forward_train(pb, readonly(rows))
        for layer in (1, 2, 3):
            assert_close(block(ws.act, ws, layer, len(rows)), acts[layer], dtype)
        for layer in (1, 2):
            if hidden == A.RELU:  # read from the output by the backward pass instead
                assert np.isnan(block(ws.dact, ws, layer, len(rows))).all()
                continue
            assert_close(block(ws.dact, ws, layer, len(rows)),
                         naive.derivative(pb.hidden, zs[layer - 1]), dtype)
        if not sparse:  # gathered input rows, read by the backward pass
            assert np.array_equal(ws.xbuf[: 11 * 5].reshape(11, 5), pb.X64[rows])


@pytest.mark.parametrize("dtype", DTYPES)
def test_forward_batch_dropout(dtype):
    pb = make_problem(dtype, L.LOG_LOSS, A.RELU, n=200, units=(5, 40, 30), ws_rows=200,
                      seed=35)
    rows = kernel_rows(pb.n)
    drop, seed, t = [0.0, 0.25, 0.5, 0.0], 12345, 9
    forward_train(pb, rows, drop, batch_key(seed, t))
    coefs, intercepts = naive_params(pb)
    masks = [None, naive.dropout_mask(seed, t, 1, pb.n, 40, 0.25),
             naive.dropout_mask(seed, t, 2, pb.n, 30, 0.5), None]
    acts, zs = naive.forward(pb.X64, coefs, intercepts, pb.hidden, "softmax",
                             return_preactivations=True, masks=masks)
    ws = pb.ws
    for layer in (1, 2, 3):
        assert_close(block(ws.act, ws, layer, pb.n), acts[layer], dtype)
    for layer in (1, 2):
        assert_close(block(ws.dact, ws, layer, pb.n),
                     naive.derivative("relu", zs[layer - 1]) * masks[layer], dtype)
        # the dropped fraction is close to the rate, kept units are scaled up
        dropped = float((masks[layer] == 0).mean())
        assert abs(dropped - drop[layer]) < 0.05, (layer, dropped)
    # another step draws another mask; the same step the same one
    assert not np.array_equal(naive.dropout_mask(seed, t + 1, 1, pb.n, 40, 0.25), masks[1])
    before = block(ws.act, ws, 2, pb.n).copy()
    forward_train(pb, rows, drop, batch_key(seed, t))
    assert np.array_equal(block(ws.act, ws, 2, pb.n), before)


# -------------------------------------------------------------------------------- backward
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("sparse", [False, True], ids=["dense", "csr"])
@pytest.mark.parametrize("hidden", HIDDEN)
@pytest.mark.parametrize("weighted", [False, True])
def test_backward_batch_and_finalize(dtype, sparse, hidden, weighted):
    alpha, l1 = 0.1, 0.03
    for loss_code in LOSSES:
        pb = make_problem(dtype, loss_code, hidden, n=20, sparse=sparse, weighted=weighted,
                          ws_rows=16, seed=40 + loss_code)
        rows = pb.rng.permutation(pb.n)[:13].astype(np.int64)
        if weighted and 2 not in rows:
            rows[0] = 2  # include the zero-weight row
        ws, n = pb.ws, len(rows)
        rows_k = readonly(rows)
        P = forward_train(pb, rows_k)
        D = block(ws.delta, ws, 3, n)
        loss_sum, sw_sum = loss_and_delta(P, pb.Yk, rows_k, pb.swk, loss_code,
                                          pb.clip_eps, HUBER_DELTA, D)
        grads = np.full(pb.layout.n_params, np.nan, dtype=dtype)
        backward_batch(pb.params, grads, Net(*ws.net), pb.Xsp, rows_k, ws.act, ws.delta, ws.xbuf,
                       ws.dact, no_dropout())

        coefs, intercepts = naive_params(pb)
        acts, zs = naive.forward(pb.X64[rows], coefs, intercepts, pb.hidden,
                                 naive.OUTPUT_ACTIVATION[pb.loss], return_preactivations=True)
        want_loss, want_sw, D0 = naive.loss_and_delta(
            pb.loss, acts[-1], pb.Y64[rows], naive_sw(pb, rows), pb.clip_eps, HUBER_DELTA
        )
        assert_close(loss_sum, want_loss, dtype)
        assert sw_sum == pytest.approx(want_sw, rel=1e-12)
        gW, gb = naive.backprop(coefs, acts, zs, D0, pb.hidden)
        got_W, got_b = pb.layout.views(grads)
        for g, w in zip(got_W + got_b, gW + gb, strict=True):
            assert_close(g, w, dtype)

        # the finishing passes through their C callbacks, as the epochs and L-BFGS call
        # them: the gradient finished (no L1, L1), then clipped below and above its norm
        n_coefs = pb.layout.n_coefs
        for penalty_l1, max_norm in ((0.0, 0.0), (l1, 0.0), (l1, 1e-3), (0.0, 1e6)):
            g = grads.copy()
            gscale, form_alpha, total, sq, l1n = penalties.apply(
                penalties.FINISH, pb.params, g, n_coefs, alpha, penalty_l1, sw_sum, max_norm)
            assert (form_alpha, total) == (0.0, 1.0)  # the step reads it as it is
            assert_close(sq, naive.squared_norm(coefs), dtype)
            value, fW, fb = naive.objective(coefs, intercepts, pb.X64[rows], pb.Y64[rows],
                                            pb.hidden, pb.loss, alpha, naive_sw(pb, rows),
                                            pb.clip_eps, penalty_l1, HUBER_DELTA)
            got_W, got_b = pb.layout.views(g)
            for a, w in zip(got_W + got_b, fW + fb, strict=True):
                assert_close(a, w, dtype)
            got_value = (loss_sum + 0.5 * alpha * sq + penalty_l1 * l1n) / sw_sum
            assert_close(got_value, value, dtype)
            if penalty_l1:
                assert_close(l1n, naive.l1_norm(coefs), dtype)
            else:
                assert l1n == 0.0
            norm = math.sqrt(sum(float((w**2).sum()) for w in fW + fb))
            if max_norm == 1e-3:
                assert norm > max_norm  # the premise: this one clips
            if 0.0 < max_norm < norm:
                assert_close(gscale, max_norm / norm, dtype)
            else:
                assert gscale == 1.0
        # the plain pass leaves the gradient to the rule: the weights' squared norm only
        g = grads.copy()
        form_and_norms = penalties.apply(penalties.IN_STEP, pb.params, g, n_coefs, alpha,
                                         l1, sw_sum, 0.0)
        assert g.tobytes() == grads.tobytes()
        assert form_and_norms[:3] == (1.0, alpha, sw_sum) and form_and_norms[4] == 0.0
        assert_close(form_and_norms[3], naive.squared_norm(coefs), dtype)


# ------------------------------------------------------------------- full objective (lbfgs)
def run_full_loss_grad(pb, chunk, order, alpha, l1=0.0):
    ws = Workspace(pb.layout, Net(*pb.ws.net).act_codes, chunk, pb.dtype, dense=pb.Xsp is None)
    grads = np.full(pb.layout.n_params, np.nan, dtype=pb.dtype)
    scratch = np.full(pb.layout.n_params, np.nan, dtype=pb.dtype)
    value = full_loss_grad(pb.params, grads, scratch, ws.net, pb.Xk, pb.Xsp, pb.Yk, pb.swk,
                           order, chunk, L.address(pb.loss_code, pb.dtype),
                           penalties.address(penalties.FINISH, pb.dtype), pb.clip_eps,
                           HUBER_DELTA, alpha, l1,
                           ws.act, ws.delta, ws.xbuf, ws.dact, no_dropout())
    return value, grads


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("sparse", [False, True], ids=["dense", "csr"])
@pytest.mark.parametrize("loss_code", LOSSES)
@pytest.mark.parametrize("weighted", [False, True])
def test_full_loss_grad(dtype, sparse, loss_code, weighted):
    alpha, l1 = 1e-2, 3e-3
    pb = make_problem(dtype, loss_code, A.TANH, n=23, sparse=sparse, weighted=weighted,
                      seed=50 + loss_code)
    order = kernel_rows(pb.n)
    coefs, intercepts = naive_params(pb)
    value, fW, fb = naive.objective(coefs, intercepts, pb.X64, pb.Y64, pb.hidden, pb.loss,
                                    alpha, pb.sw64, pb.clip_eps, l1, HUBER_DELTA)
    want = np.concatenate([w.ravel() for w in fW] + list(fb))

    one_value, one_grads = run_full_loss_grad(pb, pb.n, order, alpha, l1)  # one chunk
    assert isinstance(one_value, float)
    assert_close(one_value, value, dtype)
    assert_close(one_grads, want, dtype)
    for chunk in (5, 7, 22):  # several chunks, the last one partial
        v, g = run_full_loss_grad(pb, chunk, order, alpha, l1)
        assert_close(v, one_value, dtype)
        assert_close(g, one_grads, dtype)
    # a shuffled order gives the same objective
    perm = readonly(pb.rng.permutation(pb.n).astype(np.int64))
    v, g = run_full_loss_grad(pb, 6, perm, alpha, l1)
    assert_close(v, value, dtype)
    assert_close(g, want, dtype)
    # the validation loss: the data term alone, forward only
    ws = Workspace(pb.layout, Net(*pb.ws.net).act_codes, 6, dtype, dense=not sparse, train=False)
    got = mean_loss(pb.params, ws.net, pb.Xk, pb.Xsp, pb.Yk, pb.swk, perm, 6,
                    L.address(pb.loss_code, dtype),
                    pb.clip_eps, HUBER_DELTA, ws.act, ws.delta, ws.xbuf, no_dropout(),
                    np.empty((0, pb.Yk.shape[1]), dtype))
    data_only, _, _ = naive.objective(coefs, intercepts, pb.X64, pb.Y64, pb.hidden, pb.loss,
                                      0.0, pb.sw64, pb.clip_eps, 0.0, HUBER_DELTA)
    assert_close(got, data_only, dtype)


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
@pytest.mark.parametrize("gscale", [1.0, 0.3])
def test_sgd_step(dtype, nesterov, gscale):
    rng = np.random.default_rng(60)
    layout = Layout([5, 4, 3, 2])
    params, grads, velocity = (rng.normal(size=layout.n_params).astype(dtype)
                               for _ in range(3))
    lr, momentum = 0.05, 0.9
    want_p, want_v = naive.sgd_step(split(layout, params), split(layout, grads * gscale),
                                    split(layout, velocity), lr, momentum, nesterov)
    g_before = grads.copy()
    sgd_step(params, grads, (gscale, 0, 0.0, 1.0), velocity, lr, momentum, nesterov)
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
    adam_step(params, grads, (1.0, 0, 0.0, 1.0), m, v, t, lr, b1, b2, eps)
    assert_close(params, flat_of(want_p), dtype)
    assert_close(m, flat_of(want_m), dtype)
    assert_close(v, flat_of(want_v), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_rmsprop_and_adagrad_steps(dtype):
    rng = np.random.default_rng(62)
    layout = Layout([5, 4, 3, 2])
    n = layout.n_params
    params, grads = (rng.normal(size=n).astype(dtype) for _ in range(2))
    acc = rng.random(size=n).astype(dtype)
    lr, rho, eps, gscale = 1e-2, 0.9, 1e-8, 0.5
    for kernel in ("rmsprop", "adagrad"):
        p, a = params.copy(), acc.copy()
        args = (split(layout, p), split(layout, grads * gscale), split(layout, a), lr)
        if kernel == "rmsprop":
            want_p, want_a = naive.rmsprop_step(*args, rho, eps)
            rmsprop_step(p, grads, (gscale, 0, 0.0, 1.0), a, lr, rho, eps)
        else:
            want_p, want_a = naive.adagrad_step(*args, eps)
            adagrad_step(p, grads, (gscale, 0, 0.0, 1.0), a, lr, eps)
        assert_close(p, flat_of(want_p), dtype)
        assert_close(a, flat_of(want_a), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("solver", list(O.CODES))
@pytest.mark.parametrize("fused", [False, True], ids=["final", "raw"])
def test_step_dispatches_every_optimizer(dtype, solver, fused):
    """``step`` runs the rule its code names (adamw: decayed weights, biases kept), on
    a finished gradient or on raw sums that it finishes itself (``form``: the L2 term
    on the weights only, the division by the weight sum, the clipping factor)."""
    rng = np.random.default_rng(63)
    layout = Layout([5, 4, 3, 2])
    n = layout.n_params
    params, grads = (rng.normal(size=n).astype(dtype) for _ in range(2))
    state = (0.1 * rng.random(size=(2, n))).astype(dtype)
    lr, mom, b1, b2, eps, rho, wd, t = 1e-2, 0.9, 0.9, 0.999, 1e-8, 0.9, 0.1, 4
    P, G = split(layout, params), split(layout, grads)
    form = (1.0, layout.n_coefs, 0.0, 1.0)
    if fused:
        form = (0.7, layout.n_coefs, 0.05, 6.0)
        G = [(g + 0.05 * w) / 6.0 * 0.7 for g, w in zip(G[:3], P[:3], strict=True)]
        G += [g / 6.0 * 0.7 for g in split(layout, grads)[3:]]
    S0, S1 = split(layout, state[0]), split(layout, state[1])
    if solver == "sgd":
        want_p, want_0 = naive.sgd_step(P, G, S0, lr, mom, True)
        want_1 = S1
    elif solver == "adam":
        want_p, want_0, want_1 = naive.adam_step(P, G, S0, S1, t, lr, b1, b2, eps)
    elif solver == "adamw":
        want_p, want_0, want_1 = naive.adamw_step(P, G, S0, S1, t, lr, b1, b2, eps, wd, 3)
    elif solver == "rmsprop":
        want_p, want_0 = naive.rmsprop_step(P, G, S0, lr, rho, eps)
        want_1 = S1
    else:
        want_p, want_0 = naive.adagrad_step(P, G, S0, lr, eps)
        want_1 = S1
    whole = params.copy(), state.copy()
    step(O.CODES[solver], params, grads, form, state[0], state[1], t, lr, mom, True, b1, b2,
         eps, rho, wd)
    assert_close(params, flat_of(want_p), dtype)
    # the parallel kernels step slices of the vectors, the weights-only terms counted
    # from each slice's start: bit for bit the same update
    w, s = whole
    for lo, hi in [(0, 7), (7, layout.n_coefs + 1), (layout.n_coefs + 1, n)]:
        step(O.CODES[solver], w[lo:hi], grads[lo:hi], (form[0], form[1] - lo, *form[2:]),
             s[0, lo:hi], s[1, lo:hi], t, lr, mom, True, b1, b2, eps, rho, wd)
    np.testing.assert_array_equal(w, params)
    np.testing.assert_array_equal(s, state)
    assert_close(state[0], flat_of(want_0), dtype)
    assert_close(state[1], flat_of(want_1), dtype)


def uncached_njit(function):
    """``function`` compiled anew (uncached: the cache keeps no IR or asm), with the
    kernels' flags and a CPython wrapper."""
    return numba.njit(**dict(JIT_OPTIONS, cache=False))(function)


def uncached_cfunc(signature, function):
    """``function`` compiled anew as a C callback of ``signature``, as the callback
    tables compile it (uncached)."""
    return numba.cfunc(signature, **dict(CFUNC_OPTIONS, cache=False))(function)


def float32_ir(kernel, *args):
    """LLVM IR of a fresh (uncached: the cache keeps no IR) float32 compilation."""
    fresh = uncached_njit(kernel.py_func)
    fresh(*args)
    (ir,) = fresh.overloads.values()
    return ir.library.get_llvm_str()


def test_float32_kernels_compute_in_float32():
    """A float32 network's per-element work (optimizer rules, activations, dropout)
    never widens a float32 to float64: numba promotes ``float32 op float64-scalar`` to
    float64, so one unrounded hyperparameter or literal would run the loop in float64
    (``fpext float ... to double`` in the IR) at half the SIMD width."""
    v = np.linspace(0.5, 1.5, 40, dtype=np.float32)
    Z = v.reshape(8, 5)
    key = batch_key(1, 2)
    form = (0.5, 10, 1e-4, 3.0)  # raw sums: L2 term, weight sum, clipping factor
    cases = {
        "sgd": (O.sgd_step, (v, v.copy(), form, v.copy(), 0.1, 0.9, True)),
        "adamw": (O.adam_step, (v, v.copy(), form, v.copy(), v.copy(), 3, 1e-3, 0.9, 0.999,
                                1e-8, 0.99)),
        "rmsprop": (O.rmsprop_step, (v, v.copy(), form, v.copy(), 0.1, 0.9, 1e-8)),
        "adagrad": (O.adagrad_step, (v, v.copy(), form, v.copy(), 0.1, 1e-8)),
        "dropout": (dropout.apply, (Z.copy(), Z.copy(), 0.3, key, 1, 0)),
    }
    irs = {name: float32_ir(kernel, *args) for name, (kernel, args) in cases.items()}
    # each activation is a C callback of its own; gelu calls libm's erf (no SIMD form)
    for code, function in A.FUNCTIONS.items():
        ir = uncached_cfunc(A._signature(numba.float32), function).inspect_llvm()
        if code == A.GELU:
            assert "fpext float" not in ir, "gelu: float32 widened to float64"
        else:
            irs[ACT_NAMES[code]] = ir
    for name, ir in irs.items():
        assert "<16 x float>" in ir or "<8 x float>" in ir, f"{name}: not vectorised"
        assert "fpext float" not in ir, f"{name}: float32 widened to float64"


# Kernels that ask LLVM for 512-bit vectors (``vectorwidth.wide``; CONTRIBUTING, "Vector
# width", has the measurements): each compiled as its source reads, and with that request
# a no-op (LLVM's default width for the CPU).
_RULES = {"sgd": O.sgd_step, "adam": O.adam_step, "adamw": O.adam_step,
          "rmsprop": O.rmsprop_step, "adagrad": O.adagrad_step}
# the activations that measured no faster at 512 bits, and gelu, whose loop calls libm
_DEFAULT_WIDTH_ACTIVATIONS = (A.LEAKY_RELU, A.GELU)


@numba.extending.intrinsic
def _default_width(typingctx):
    def codegen(context, builder, signature, args):
        return context.get_dummy_value()

    return numba.types.none(), codegen


def _at_default_width(function):
    """A copy of the Python function ``function`` whose ``wide()`` does nothing."""
    namespace = dict(function.__globals__, wide=_default_width)
    return type(function)(function.__code__, namespace, function.__name__,
                          function.__defaults__, function.__closure__)


def _compiles_for_avx512():
    """Whether numba compiles for this CPU (no ``NUMBA_CPU_NAME``/``FEATURES``, with
    optimisation) and the CPU has AVX-512."""
    config = numba.config
    if config.CPU_NAME or config.CPU_FEATURES or int(config.OPT) == 0:
        return False
    try:
        return bool(llvm.get_host_cpu_features().get("avx512f", False))
    except RuntimeError:  # a host llvmlite cannot describe
        return False


# floating-point arithmetic on 512-bit registers (a 256-bit loop may still compare its
# 64-bit indices in them)
_WIDE_FLOAT_OP = re.compile(
    r"\bv(?:add|sub|mul|div|sqrt|max|min|fn?m(?:add|sub)\d*)p[sd]\b[^\n]*%zmm")


def _assert_width(library, narrow_library, name, wide=True):
    """With ``wide``, the build asked for 512-bit vectors (and, compiled for an
    AVX-512 CPU, has them) while the build with ``wide()`` a no-op did not ask; without,
    neither asked."""
    assert (vectorwidth.ATTRIBUTE in library.get_llvm_str()) == wide, name
    assert vectorwidth.ATTRIBUTE not in narrow_library.get_llvm_str(), name
    if wide and _compiles_for_avx512():
        assert _WIDE_FLOAT_OP.search(library.get_asm_str()), f"{name}: no 512-bit vectors"


def _rule_args(name, n, dtype, seed):
    """Arguments of rule ``name`` over ``n`` parameters (float32 or float64 vectors,
    the first 2/3 weights), raw-sum form with the L2 term."""
    rng = np.random.default_rng(seed)
    vectors = [rng.standard_normal(n).astype(dtype) for _ in range(2)]
    state = [np.abs(rng.standard_normal(n)).astype(dtype) for _ in range(2)]
    form = (0.7, 2 * n // 3, 1e-3, 32.0)
    adam = (*vectors, form, *state, 5, 1e-3, 0.9, 0.999, 1e-8)
    return {
        "sgd": (*vectors, form, state[0], 0.1, 0.9, True),
        "adam": adam,
        "adamw": (*adam, 0.99),  # the decay: its own specialisation
        "rmsprop": (*vectors, form, state[0], 0.01, 0.9, 1e-8),
        "adagrad": (*vectors, form, state[0], 0.01, 1e-8),
    }[name]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", list(_RULES))
def test_rules_run_512_bit_vectors_with_the_same_numbers(dtype, name):
    """Every optimizer rule asks LLVM for 512-bit vectors, and the wider loop updates
    the weights and the state bit for bit as the default width's: each lane does the
    scalar code's operations in the same order. Every length to 200 (the vector loops
    of either width with their tails and epilogues) and two of 4,000 and more. The rule
    as the kernels run it, its C callback, has the wide loop too."""
    rule = _RULES[name].py_func
    wide, narrow = uncached_njit(rule), uncached_njit(_at_default_width(rule))
    for n in [*range(1, 200), 4099, 4133]:
        a, b = _rule_args(name, n, dtype, n), _rule_args(name, n, dtype, n)
        wide(*a)
        narrow(*b)
        for x, y in zip(a, b, strict=True):
            if isinstance(x, np.ndarray):
                np.testing.assert_array_equal(x, y)
    (wide_code,), (narrow_code,) = wide.overloads.values(), narrow.overloads.values()
    _assert_width(wide_code.library, narrow_code.library, name)
    code = O.CODES[name]
    callback = uncached_cfunc(O._signature(numba.from_dtype(dtype)), O._RULES[code])
    if _compiles_for_avx512():  # numba keeps no public asm of a cfunc: its library
        assert _WIDE_FLOAT_OP.search(callback._library.get_asm_str()), f"{name}: callback"


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("code", list(ACT_NAMES))
def test_activations_run_512_bit_vectors_with_the_same_numbers(dtype, code):
    """The activations ask for 512-bit vectors too (the bias pass, f'(z) and the
    vectorisable exp, log, tanh and logistic), but leaky relu and gelu, and write the
    same bits as at the default width, in Z and in dZ: blocks of 7 rows of 1 to 40, 64,
    100 and 129 units (flat loops of 7 to 903 entries).

    But softplus: LLVM's scalar code for the loop's tail and its vector code round one
    step of it differently (about one input in nine gets 1 ulp more or less in the
    tail, at either width), and the tail's length changes with the width: at most
    1 ulp apart there."""
    signature = A._signature(numba.from_dtype(dtype))
    function = A.FUNCTIONS[code]
    wide = uncached_cfunc(signature, function)
    narrow = uncached_cfunc(signature, _at_default_width(function))
    rng = np.random.default_rng(code)
    for units in [*range(1, 41), 64, 100, 129]:
        Z = (rng.standard_normal((7, units)) * 3).astype(dtype)
        Z[0, 0] = np.nan
        b = rng.standard_normal(units).astype(dtype)
        grad = code not in (A.SOFTMAX, A.EXP)  # output activations write no dZ
        out = []
        for callback in (wide, narrow):
            z, d = Z.copy(), np.zeros_like(Z)
            callback.ctypes(z.ctypes.data_as(callback.ctypes.argtypes[0]), 7, units,
                            b.ctypes.data_as(callback.ctypes.argtypes[0]),
                            d.ctypes.data_as(callback.ctypes.argtypes[0]), int(grad))
            out.append((z, d))
        for wide_out, narrow_out in zip(out[0], out[1], strict=True):
            if code == A.SOFTPLUS:
                np.testing.assert_array_max_ulp(wide_out, narrow_out, maxulp=1)
            else:
                np.testing.assert_array_equal(wide_out, narrow_out)
    # numba keeps no public asm of a cfunc: its library
    _assert_width(wide._library, narrow._library, ACT_NAMES[code],
                  wide=code not in _DEFAULT_WIDTH_ACTIVATIONS)


@pytest.mark.parametrize("dtype", DTYPES)
def test_sum_of_squares_asks_for_512_bit_vectors(dtype):
    """The squared norm (reassociated: LLVM sums it in SIMD lanes) asks for 512-bit
    vectors, and has them in the finishing passes' callbacks, where it is linked in.
    More lanes sum in another order, so its last bits may differ from the default
    width's; the same on every call (``test_sum_of_squares``)."""
    fresh = numba.njit(**dict(penalties._REASSOC_OPTIONS, cache=False,
                              no_cpython_wrapper=False))
    function = penalties.sum_of_squares.py_func
    wide, narrow = fresh(function), fresh(_at_default_width(function))
    a = np.random.default_rng(5).standard_normal(1000).astype(dtype)
    assert wide(a, 1000) == pytest.approx(narrow(a, 1000), rel=1e-12)
    (wide_code,), (narrow_code,) = wide.overloads.values(), narrow.overloads.values()
    _assert_width(wide_code.library, narrow_code.library, "sum_of_squares")
    if not _compiles_for_avx512():
        return
    for code in penalties.CODES.values():  # numba keeps no public asm of a cfunc
        callback = uncached_cfunc(penalties._signature(numba.from_dtype(dtype)),
                                  penalties._callback(code))
        assert _WIDE_FLOAT_OP.search(callback._library.get_asm_str()), code


@pytest.mark.parametrize("dtype", DTYPES)
def test_sum_of_squares(dtype):
    """The squared norm of a prefix, every length (whole SIMD blocks and tails),
    accumulated in float64 even for float32 entries, the same on every call."""
    rng = np.random.default_rng(3)
    a = rng.standard_normal(77).astype(dtype)
    for n in range(78):
        assert_close(sum_of_squares(a, n), math.fsum(a[:n].astype(np.float64) ** 2), dtype)
    assert sum_of_squares(a, 0) == 0.0
    # float32 sums would lose the ones next to 1e8 (its float32 spacing is 8)
    big = np.ones(1001, dtype=dtype)
    big[0] = 1e4
    assert sum_of_squares(big, big.shape[0]) == 1e8 + 1000
    long = rng.standard_normal(10_000).astype(dtype)
    assert sum_of_squares(long, 10_000) == sum_of_squares(long, 10_000)


@numba.njit
def _rule_by_address(fn, params, grads, form, s0, s1, t, nesterov):
    O.call(fn, params, grads, s0, s1, form, t, 0.01, 0.9, nesterov, 0.9, 0.999, 1e-8,
           0.9, 0.01)


@numba.njit
def _rule_by_code(code, params, grads, form, s0, s1, t, nesterov):
    step(code, params, grads, form, s0, s1, t, 0.01, 0.9, nesterov != 0, 0.9, 0.999, 1e-8,
         0.9, 0.01)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("code", sorted(O.CODES.values()))
def test_rule_callback_is_the_rule(dtype, code):
    """``optimizers.call`` at a rule's address updates the weights and both state
    vectors exactly as ``step`` with that rule's code, slices included (the parallel
    kernels step 4096-entry chunks)."""
    rng = np.random.default_rng(code)
    n = 77
    vectors = [rng.standard_normal(n).astype(dtype) for _ in range(4)]
    by_code = [v.copy() for v in vectors]
    form = (0.5, 50, 1e-3, 3.0)  # clipping factor, weights, L2 term, weight sum
    for nesterov in (0, 1):
        for lo, hi in ((0, n), (16, 45)):
            p, g, s0, s1 = (v[lo:hi] for v in vectors)
            _rule_by_address(O.address(code, dtype), p, g, form, s0, s1, 4, nesterov)
            p, g, s0, s1 = (v[lo:hi] for v in by_code)
            _rule_by_code(code, p, g, form, s0, s1, 4, nesterov)
            for got, want in zip(vectors, by_code, strict=True):
                assert got.tobytes() == want.tobytes()
    assert not np.array_equal(vectors[0], rng.standard_normal(n))  # the weights moved
    assert (code, np.dtype(dtype).name) in O.loaded()


# --------------------------------------------------------------------------------- predict
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("sparse", [False, True], ids=["dense", "csr"])
@pytest.mark.parametrize("loss_code", LOSSES)
def test_predict_rows(dtype, sparse, loss_code):
    pb = make_problem(dtype, loss_code, A.RELU, n=23, sparse=sparse, seed=70 + loss_code)
    coefs, intercepts = naive_params(pb)
    # consecutive rows (multiplied in place in dense X), from 0 or not, and any others
    orders = (np.arange(pb.n), np.arange(5, 19), np.array([7]), pb.rng.permutation(pb.n))
    for order in orders:
        for chunk in (4, 23):
            ws = Workspace(pb.layout, Net(*pb.ws.net).act_codes, chunk, dtype, dense=not sparse,
                           train=False)
            out = np.full((order.shape[0], 3), np.nan, dtype=dtype)
            finite = predict_rows(pb.params, ws.net, pb.Xk, pb.Xsp,
                                  readonly(order.astype(np.int64)), chunk, ws.act, ws.xbuf,
                                  no_dropout(), out)
            want = naive.forward(pb.X64[order], coefs, intercepts, pb.hidden,
                                 naive.OUTPUT_ACTIVATION[pb.loss])[-1]
            assert finite
            assert_close(out, want, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_predict_rows_reports_non_finite_dense_input(dtype, bad):
    """predict's fast path relies on this report instead of checking X in Python: any
    asked-for row, in any chunk, counts; rows not asked for do not."""
    pb = make_problem(dtype, LOSSES[0], A.RELU, n=23, seed=71)
    ws = Workspace(pb.layout, Net(*pb.ws.net).act_codes, 4, dtype, dense=True, train=False)
    out = np.empty((pb.n, 3), dtype=dtype)
    for r, j in [(0, 0), (22, pb.X64.shape[1] - 1), (13, 1)]:
        X = pb.Xk.copy()
        X[r, j] = bad
        X = readonly(X)
        every = readonly(np.arange(pb.n, dtype=np.int64))
        assert not predict_rows(pb.params, ws.net, X, pb.Xsp, every, 4, ws.act, ws.xbuf,
                                no_dropout(), out)
        others = readonly(np.delete(np.arange(pb.n), r).astype(np.int64))
        assert predict_rows(pb.params, ws.net, X, pb.Xsp, others, 4, ws.act, ws.xbuf,
                            no_dropout(), out[: pb.n - 1])


def test_entry_kernels_take_the_network_as_a_plain_tuple():
    """numba types a namedtuple argument through Python's typeof, 0.7 us a call (8% of
    a one-row predict), a plain tuple of arrays in C: the estimators hand the entry
    kernels Net's fields (``Layout.net``), which the kernels name inside."""
    import fastbp

    X = np.random.default_rng(75).normal(size=(40, 3))
    y = np.arange(40) % 2
    est = fastbp.MLPClassifier((4,), max_iter=1).fit(X, y)
    est.predict(X[:1])
    for kernel, position in ((T.train_epoch, 5), (T.predict_rows, 1)):
        assert kernel.signatures  # the premise: this process ran the kernel
        for sig in kernel.signatures:  # also those other tests compiled (sparse X, ...)
            fields = sig[position]
            assert isinstance(fields, numba.types.BaseTuple), sig  # the description
            assert not isinstance(fields, numba.types.BaseNamedTuple), sig


all_finite_rows = T.all_finite_rows  # inlined where the kernels call it; has its wrapper


@pytest.mark.parametrize("dtype", DTYPES)
def test_all_finite_rows_finds_any_non_finite_value(dtype):
    rng = np.random.default_rng(74)
    A0 = rng.standard_normal((23, 17)).astype(dtype)
    assert all_finite_rows(A0)
    assert all_finite_rows(A0[5:6]) and all_finite_rows(A0[:0])
    for bad in (np.nan, np.inf, -np.inf):
        for r, j in [(0, 0), (22, 16), (11, 9), (3, 15)]:
            A1 = A0.copy()
            A1[r, j] = bad
            assert not all_finite_rows(A1)
            assert not all_finite_rows(A1[r : r + 1])
            assert all_finite_rows(np.delete(A1, r, axis=0))


# ------------------------------------------------------------------------------ one epoch
SOLVERS = {
    "sgd": dict(solver="sgd", nesterov=False, lr=0.05),
    "nesterov": dict(solver="sgd", nesterov=True, lr=0.05),
    "adam": dict(solver="adam", nesterov=False, lr=1e-2),
    "adamw": dict(solver="adamw", nesterov=False, lr=1e-2, weight_decay=0.1),
    "rmsprop": dict(solver="rmsprop", nesterov=False, lr=1e-2),
    "adagrad": dict(solver="adagrad", nesterov=False, lr=5e-2),
    # the regularisers of the toolbox, on top of adam
    "adam+l1+clip": dict(solver="adam", nesterov=False, lr=1e-2, l1=0.02, max_grad_norm=0.05),
    # each alone finishes the gradient before the step too; AdamW's decay then still
    # reads which entries are weights
    "sgd+l1": dict(solver="sgd", nesterov=False, lr=0.05, l1=0.02),
    "adamw+clip": dict(solver="adamw", nesterov=False, lr=1e-2, weight_decay=0.1,
                       max_grad_norm=0.05),
    "sgd+dropout": dict(solver="sgd", nesterov=True, lr=0.05, dropout=(0.0, 0.3, 0.2, 0.0)),
    # relu reads f'(z) back from its output where a layer has no dropout (the second
    # hidden layer here), and keeps the written one where it has (the first)
    "adam+relu": dict(solver="adam", nesterov=False, lr=1e-2, hidden=A.RELU),
    "sgd+relu+dropout": dict(solver="sgd", nesterov=True, lr=0.05, hidden=A.RELU,
                             dropout=(0.0, 0.3, 0.0, 0.0)),
}
SEED = 987654321


def make_hp(dtype, solver, nesterov, lr, loss_code, alpha, t, l1=0.0, max_grad_norm=None,
            weight_decay=0.0, rho=0.9):
    """The hyperparameter vectors, slot by slot, as ``_fit_stochastic`` builds them."""
    hp = np.zeros(T.N_HP)
    hp[T.HP_LR] = lr
    hp[T.HP_MOMENTUM] = 0.9
    hp[T.HP_BETA_1] = 0.9
    hp[T.HP_BETA_2] = 0.999
    hp[T.HP_EPSILON] = 1e-8
    hp[T.HP_ALPHA] = alpha
    hp[T.HP_CLIP_EPS] = np.finfo(dtype).eps
    hp[T.HP_L1] = l1
    hp[T.HP_MAX_GRAD_NORM] = max_grad_norm or 0.0
    hp[T.HP_WEIGHT_DECAY] = weight_decay
    hp[T.HP_RHO] = rho
    hp[T.HP_HUBER_DELTA] = HUBER_DELTA
    ihp = np.zeros(T.N_IHP, dtype=np.int64)
    ihp[T.IHP_SOLVER] = O.CODES[solver]
    ihp[T.IHP_NESTEROV] = int(nesterov)
    ihp[T.IHP_LOSS] = L.address(loss_code, dtype)
    ihp[T.IHP_T] = t
    ihp[T.IHP_SEED] = SEED
    ihp[T.IHP_RULE] = O.address(O.CODES[solver], dtype)
    ihp[T.IHP_FINISH] = penalties.address(T.finish_code(hp), dtype)
    return hp, ihp


def oracle_epoch(pb, state, order, batch_size, alpha, solver, lr, nesterov, t0, dropout,
                 cfg):
    """``naive.train_epoch`` from problem ``pb``'s weights and the optimizer ``state``:
    ``(coefs, intercepts, state, t, total)`` after the epoch."""
    coefs, intercepts = naive_params(pb)
    want_state = (split(pb.layout, state[0]), split(pb.layout, state[1]))
    return naive.train_epoch(
        coefs, intercepts, want_state, pb.X64, pb.Y64, pb.sw64, order, batch_size,
        pb.hidden, pb.loss, alpha, solver, lr, momentum=0.9, nesterov=nesterov,
        beta_1=0.9, beta_2=0.999, epsilon=1e-8, t=t0, clip_eps=pb.clip_eps,
        huber_delta=HUBER_DELTA, dropout=dropout, seed=SEED, **cfg,
    )


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("sparse", [False, True], ids=["dense", "csr"])
@pytest.mark.parametrize("which", list(SOLVERS))
@pytest.mark.parametrize("weighted", [False, True])
def test_train_epoch(dtype, sparse, which, weighted):
    cfg = dict(SOLVERS[which])
    solver, nesterov, lr = cfg.pop("solver"), cfg.pop("nesterov"), cfg.pop("lr")
    dropout = cfg.pop("dropout", None)
    hidden = cfg.pop("hidden", A.TANH)
    alpha, batch_size, t0 = 1e-3, 5, 3
    for loss_code in LOSSES:
        pb = make_problem(dtype, loss_code, hidden, n=23, sparse=sparse, weighted=weighted,
                          ws_rows=batch_size, seed=80 + loss_code)
        order = pb.rng.permutation(pb.n).astype(np.int64)
        if weighted:  # the second minibatch weighs nothing: it must be skipped
            sw = np.array(pb.swk)
            sw[order[batch_size : 2 * batch_size]] = 0.0
            pb.swk, pb.sw64 = readonly(sw), sw.astype(np.float64)
        rng = np.random.default_rng(90 + loss_code)
        state = np.zeros((2, pb.layout.n_params), dtype=dtype)
        state[0] = 0.01 * rng.normal(size=pb.layout.n_params)
        if solver in ("adam", "adamw", "rmsprop", "adagrad"):  # squares: non-negative
            state[0 if solver in ("rmsprop", "adagrad") else 1] = (
                1e-3 * rng.random(size=pb.layout.n_params)
            )
        hp, ihp = make_hp(dtype, solver, nesterov, lr, loss_code, alpha, t0, **cfg)

        n_layers = len(naive_params(pb)[0])
        w_coefs, w_icpts, w_state, w_t, w_total = oracle_epoch(
            pb, state, order, batch_size, alpha, solver, lr, nesterov, t0, dropout, cfg
        )

        grads = np.empty_like(pb.params)
        ws = pb.ws
        drop = no_dropout() if dropout is None else readonly(np.array(dropout))
        total = train_epoch(pb.params, grads, state, hp, ihp, ws.net, pb.Xk, pb.Xsp,
                            pb.Yk, pb.swk, readonly(order), batch_size, ws.act, ws.delta,
                            ws.xbuf, ws.dact, drop)
        assert isinstance(total, float)
        assert_close(total, w_total, dtype)
        assert_close(pb.params, flat_of(w_coefs + w_icpts), dtype)
        assert_close(state[0], flat_of(w_state[0]), dtype)
        assert_close(state[1], flat_of(w_state[1]), dtype)
        n_steps = 4 if weighted else 5  # ceil(23 / 5) minibatches, one skipped
        assert ihp[T.IHP_T] == w_t == t0 + n_steps
        assert ihp[T.IHP_FINITE] == 1
        assert len(w_coefs) == n_layers


def test_train_epoch_flags_outputs_that_overflow_after_the_last_step():
    """Finite weights so large that the outputs overflow: the epoch says so."""
    dtype = np.float64
    pb = make_problem(dtype, L.SQUARED_ERROR, A.IDENTITY, n=23, seed=86)
    # one full-batch step of size 1e150: finite weights near 1e150, and three identity
    # layers multiply them to about 1e450 = inf at the output
    hp, ihp = make_hp(dtype, "sgd", False, 1e150, L.SQUARED_ERROR, 0.0, 0)
    state = np.zeros((2, pb.layout.n_params))
    ws = pb.ws
    train_epoch(pb.params, np.empty_like(pb.params), state, hp, ihp, ws.net, pb.Xk,
                pb.Xsp, pb.Yk, pb.swk, kernel_rows(pb.n), pb.n, ws.act, ws.delta, ws.xbuf,
                ws.dact, no_dropout())
    assert np.isfinite(pb.params).all()
    assert ihp[T.IHP_FINITE] == 0


def test_max_grad_norm_bounds_the_step():
    """With plain SGD (no momentum) each step moves the parameters by lr * g, so the
    clipped step is at most lr * max_grad_norm long, and exactly that when clipping."""
    dtype = np.float64
    pb = make_problem(dtype, L.SQUARED_ERROR, A.TANH, n=23, seed=85)
    pb.Yk = readonly(50.0 * np.array(pb.Yk))  # large residuals: large gradients
    lr, max_norm = 0.1, 0.25
    hp, ihp = make_hp(dtype, "sgd", False, lr, L.SQUARED_ERROR, 0.0, 0,
                      max_grad_norm=max_norm)
    hp[T.HP_MOMENTUM] = 0.0
    ws = pb.ws
    for _ in range(3):
        before = pb.params.copy()
        state = np.zeros((2, pb.layout.n_params))
        train_epoch(pb.params, np.empty_like(pb.params), state, hp, ihp, ws.net, pb.Xk,
                    pb.Xsp, pb.Yk, pb.swk, kernel_rows(pb.n), pb.n, ws.act, ws.delta,
                    ws.xbuf, ws.dact, no_dropout())
        moved = np.linalg.norm(pb.params - before)
        assert moved == pytest.approx(lr * max_norm, rel=1e-12)


# -------------------------------------------------------------------- no steady-state alloc
ALLOC_SCRIPT = r"""
import json

import numba
import numpy as np
import scipy.sparse as sp
from numba.core.runtime import rtsys

from fastbp._kernels import losses as L
from fastbp._kernels import optimizers as O
from fastbp._kernels import penalties
from fastbp._kernels import train as T
from fastbp._layout import Layout
from fastbp._workspace import Workspace, kernel_X, readonly


def stats():
    s = rtsys.get_allocation_stats()
    return np.array([s.alloc, s.free, s.mi_alloc, s.mi_free], dtype=np.int64)


@numba.njit
def noop(params, grads, state, hp, ihp, net, X, Xsp, Y, sw, order, batch_size, act,
         delta, xbuf, dact, drop):
    return 0.0


@numba.njit
def allocates(params, grads, state, hp, ihp, net, X, Xsp, Y, sw, order, batch_size, act,
              delta, xbuf, dact, drop):
    return np.empty(3).size


rng = np.random.default_rng(0)
out = {}
for dtype in (np.float64, np.float32):
    for sparse, toolbox in ((False, True), (True, True), (False, False)):
        for solver in O.CODES:
            n, batch = 40, 7
            layout = Layout([5, 6, 4, 3])
            params = rng.uniform(-0.5, 0.5, layout.n_params).astype(dtype)
            Xd = rng.normal(size=(n, 5)).astype(dtype)
            Xd[rng.random(Xd.shape) < 0.4] = 0
            Xk, Xsp = kernel_X(sp.csr_matrix(Xd) if sparse else Xd, dtype)
            Y = readonly(np.eye(3, dtype=dtype)[rng.integers(0, 3, n)])
            sw = readonly(rng.uniform(0.5, 2, n).astype(dtype))
            ws = Workspace(layout, [0, 9, 7, 4], batch, dtype, dense=not sparse)
            hp = np.zeros(T.N_HP)
            # every toolbox feature on: l1, clipping, weight decay, dropout (below); or
            # off: the step then finishes the gradient itself (the other path)
            hp[[T.HP_LR, T.HP_MOMENTUM, T.HP_BETA_1, T.HP_BETA_2, T.HP_EPSILON,
                T.HP_ALPHA, T.HP_CLIP_EPS, T.HP_L1, T.HP_MAX_GRAD_NORM, T.HP_WEIGHT_DECAY,
                T.HP_RHO, T.HP_HUBER_DELTA]] = [1e-3, 0.9, 0.9, 0.999, 1e-8, 1e-4,
                                                 np.finfo(dtype).eps, 1e-4 * toolbox,
                                                 0.5 * toolbox, 0.01, 0.9, 1.0]
            ihp = np.zeros(T.N_IHP, dtype=np.int64)
            ihp[T.IHP_SOLVER] = O.CODES[solver]
            ihp[T.IHP_NESTEROV] = 1
            ihp[T.IHP_LOSS] = L.address(L.LOG_LOSS, dtype)
            ihp[T.IHP_SEED] = 42
            ihp[T.IHP_RULE] = O.address(O.CODES[solver], dtype)
            ihp[T.IHP_FINISH] = penalties.address(T.finish_code(hp), dtype)
            state = np.zeros((2, layout.n_params), dtype=dtype)
            args = (params, np.empty_like(params), state, hp, ihp, ws.net, Xk, Xsp, Y, sw,
                    readonly(rng.permutation(n).astype(np.int64)), batch, ws.act, ws.delta,
                    ws.xbuf, ws.dact, readonly(np.array([0.0, 0.2, 0.1, 0.0])))
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
            key = (f"{np.dtype(dtype).name}-{'csr' if sparse else 'dense'}-{solver}"
                   f"{'' if toolbox else '-plain'}")
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
    assert len(results) == 6 * len(O.CODES)
    counters = ["alloc", "free", "mi_alloc", "mi_free"]
    for key, r in results.items():
        assert r["finite"], key
        # the stats are live: boxing the arguments of the no-op costs meminfos
        assert r["noop"][2] > 0, (key, r)
        # and a call that allocates one array shows above the boxing overhead
        assert r["allocates"][0] > r["noop"][0], (key, r)
        for name, per_call, epoch in zip(counters, r["noop"], r["epoch"], strict=True):
            assert epoch <= per_call, f"{key}: {name} grew by {epoch} > {per_call} ({r})"


# ------------------------------------------------------------------ views, min and max
# LLVM code in their callers (intrinsics), standing for numba's slice + reshape and its
# min and max (see CONTRIBUTING, "Rules we keep").


@numba.njit
def _layer_views(params, act, fields, layer, n):
    net = Net(*fields)
    return (forward.coef_view(params, net, layer), forward.icpt_view(params, net, layer),
            forward.block_view(act, net, layer + 1, n))


@numba.njit
def _flat_views(buf, start, A):
    return (forward.flat_view(buf, start, (2, 3)), forward.flat_view(buf, 0, (0, 0)),
            forward.flat_view(buf, start, (buf.shape[0] - start,)), forward.raveled(A))


@pytest.mark.parametrize("dtype", DTYPES)
def test_views_are_the_slices_they_stand_for(dtype):
    """Each layer's weights, bias and workspace block are views into the flat buffers at
    the layout's offsets, with the shapes numba's slice + reshape gave."""
    layout, rows = Layout([5, 4, 3, 2]), 6
    fields, size = layout.net(rows, [0, A.RELU, A.RELU, A.IDENTITY], dtype)
    net = Net(*fields)
    params = np.arange(layout.n_params, dtype=dtype)
    act = np.arange(size, dtype=dtype)
    for layer in range(3):
        fan_in, fan_out = int(layout.units[layer]), int(layout.units[layer + 1])
        c, i, a = (int(off[k]) for off, k in ((net.coef_off, layer), (net.icpt_off, layer),
                                              (net.act_off, layer + 1)))
        W, b, Z = _layer_views(params, act, fields, layer, rows)
        want = (params[c:c + fan_in * fan_out].reshape(fan_in, fan_out),
                params[i:i + fan_out], act[a:a + rows * fan_out].reshape(rows, fan_out))
        for got, ref in zip((W, b, Z), want, strict=True):
            assert got.dtype == ref.dtype and got.shape == ref.shape
            assert got.flags.c_contiguous and np.array_equal(got, ref)
            assert got.ctypes.data == ref.ctypes.data  # the same memory, not a copy
    W[0, 0] = -1.0
    assert params[int(net.coef_off[2])] == -1.0
    A2 = np.arange(12, dtype=dtype).reshape(3, 4)
    two, empty, rest, flat = _flat_views(act, 5, A2)
    assert np.array_equal(two, act[5:11].reshape(2, 3)) and two.ctypes.data == act[5:].ctypes.data
    assert empty.shape == (0, 0) and np.array_equal(rest, act[5:])
    assert np.array_equal(flat, A2.reshape(-1)) and flat.ctypes.data == A2.ctypes.data


@numba.njit
def _icpt(params, fields, layer):
    return forward.icpt_view(params, Net(*fields), layer)


@numba.njit
def _flat(buf, start, n):
    return forward.flat_view(buf, start, (n,))


@numba.njit
def _flat2(buf, start, n, m):
    return forward.flat_view(buf, start, (n, m)).shape[0]


def test_a_view_past_its_buffer_raises():
    """A view must lie within its buffer, with no negative dimension and no overflowing
    size: ValueError otherwise, where a slice would clip or wrap around (the old bias
    view returned a clipped bias)."""
    layout = Layout([5, 4, 3, 2])
    fields, _ = layout.net(1, [0, A.RELU, A.RELU, A.IDENTITY], np.float64)
    params = np.zeros(layout.n_params)
    n = layout.n_params
    assert _icpt(params, fields, 2).shape == (2,)  # the last bias ends the vector
    assert _flat(params, 3, n - 3).shape == (n - 3,)
    assert _flat2(params, n, 0, 3) == 0  # empty, at the very end
    with pytest.raises(ValueError, match="past its flat buffer"):
        _icpt(params[:-1], fields, 2)
    for start, size in ((3, n - 2), (-1, 2), (n + 1, 0)):
        with pytest.raises(ValueError, match="past its flat buffer"):
            _flat(params, start, size)
    for dims in ((-2, -3), (-1, 2), (2**32, 2**32), (2**62, 4)):
        with pytest.raises(ValueError, match="past its flat buffer"):
            _flat2(params, 0, *dims)


@numba.njit
def _min_max(a, b):
    return (literals.smaller(a, b), literals.larger(a, b), min(a, b), max(a, b))


@pytest.mark.parametrize("a, b", [(1, 2), (2, 1), (3, 3), (1.5, np.nan), (np.nan, 1.5),
                                  (np.float32(0.1), 0.2), (0.2, np.float32(0.1)),
                                  (-0.0, 0.0), (0.0, -0.0), (np.float32(1.0), 3)])
def test_smaller_and_larger_are_numbas_min_and_max(a, b):
    """The same value, bit for bit, as numba's (and Python's) min and max of two numbers,
    NaN and signed zeros included, in the arguments' unified type."""
    lo, hi, want_lo, want_hi = _min_max(a, b)
    for got, want, ref in ((lo, want_lo, min(a, b)), (hi, want_hi, max(a, b))):
        assert type(got) is type(want)
        assert np.array(got).tobytes() == np.array(want).tobytes()
        assert np.array(got).tobytes() == np.array(type(got)(ref)).tobytes()
