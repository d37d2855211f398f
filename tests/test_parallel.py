"""The parallel kernels (``fastbp._kernels.parallel``) against the NumPy oracle and
their serial twins, in float32 and float64, on 1 and 2 numba threads: the blocked
epoch matches the oracle and does not depend on the thread count; the whole-data
passes return exactly what the serial kernels return."""

# tests/ is not a package: pytest puts it on sys.path (rootdir "prepend" mode)
import numba
import numpy as np
import pytest
from test_kernels import (
    DTYPES,
    HUBER_DELTA,
    LOSSES,
    SOLVERS,
    assert_close,
    flat_of,
    make_hp,
    make_problem,
    oracle_epoch,
)

from fastbp._kernels import parallel as P
from fastbp._kernels import train as T
from fastbp._kernels.activations import IDENTITY, RELU, TANH
from fastbp._kernels.losses import LOG_LOSS, SQUARED_ERROR
from fastbp._training import block_rows
from fastbp._workspace import Workspace, kernel_rows, no_dropout, readonly

THREADS = sorted({1, min(2, numba.config.NUMBA_NUM_THREADS)})


def on_threads(k, kernel, *args):
    previous = numba.get_num_threads()
    numba.set_num_threads(k)
    try:
        return kernel(*args)
    finally:
        numba.set_num_threads(previous)


def test_block_rows_bounds_every_block_of_every_batch():
    """The workspace of one block (``block_rows``) holds the largest block of any
    minibatch up to the batch size, and is no larger than needed."""
    for batch in range(1, 700):
        blocks = [
            P.block_start(m, P.n_blocks(m), b + 1) - P.block_start(m, P.n_blocks(m), b)
            for m in range(1, batch + 1) for b in range(P.n_blocks(m))
        ]
        assert max(blocks) == block_rows(batch)
        assert min(blocks) >= 1 and P.n_blocks(batch) <= P.MAX_BLOCKS


def blocked_problem(dtype, loss_code, sparse, weighted, batch, hidden=TANH, n=150):
    pb = make_problem(dtype, loss_code, hidden, n=n, units=(6, 9, 7), sparse=sparse,
                      weighted=weighted, seed=180 + loss_code)
    ws = Workspace(pb.layout, pb.ws.net.act_codes, block_rows(batch), dtype,
                   dense=not sparse, slots=P.MAX_BLOCKS)
    order = pb.rng.permutation(pb.n).astype(np.int64)
    if weighted:  # the second minibatch weighs nothing: it must be skipped
        sw = np.array(pb.swk)
        sw[order[batch : 2 * batch]] = 0.0
        pb.swk, pb.sw64 = readonly(sw), sw.astype(np.float64)
    state = np.zeros((2, pb.layout.n_params), dtype=dtype)
    rng = np.random.default_rng(190 + loss_code)
    state[0] = 0.01 * rng.normal(size=pb.layout.n_params)
    state[1] = 1e-3 * rng.random(size=pb.layout.n_params)
    return pb, ws, order, state


def run_blocked(pb, ws, order, state, hp, ihp, batch, drop, threads):
    partials = np.full((P.MAX_BLOCKS - 1, pb.layout.n_params), np.nan, dtype=pb.dtype)
    sums = np.full((P.MAX_BLOCKS, 2), np.nan)
    return on_threads(threads, P.train_epoch_blocked, pb.params, np.empty_like(pb.params),
                      partials, state, hp, ihp, ws.net, pb.Xk, pb.Xsp, pb.Yk, pb.swk,
                      readonly(order), batch, ws.act, ws.delta, ws.xbuf, ws.dact, drop, sums)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("sparse", [False, True], ids=["dense", "csr"])
@pytest.mark.parametrize("which", ["adam", "nesterov", "adamw", "adam+l1+clip", "sgd+dropout"])
def test_train_epoch_blocked_matches_the_oracle_on_any_thread_count(dtype, sparse, which):
    """Batches of 67 rows: two blocks (33 + 34), the last batch of 16 one block; the
    oracle's dropout masks are those of whole minibatches, so the blocks must draw
    theirs at their rows' places in the batch."""
    cfg = dict(SOLVERS[which])
    solver, nesterov, lr = cfg.pop("solver"), cfg.pop("nesterov"), cfg.pop("lr")
    dropout = cfg.pop("dropout", None)
    drop = no_dropout() if dropout is None else readonly(np.array(dropout))
    alpha, batch, t0 = 1e-3, 67, 3
    for loss_code in (SQUARED_ERROR, LOG_LOSS, LOSSES[-1]):
        weighted = loss_code == SQUARED_ERROR
        pb, ws, order, state = blocked_problem(dtype, loss_code, sparse, weighted, batch)
        w_coefs, w_icpts, w_state, w_t, w_total = oracle_epoch(
            pb, state, order, batch, alpha, solver, lr, nesterov, t0, dropout, cfg
        )
        start = pb.params.copy(), state.copy()
        results = []
        for k in THREADS:
            pb.params[...], state[...] = start
            hp, ihp = make_hp(dtype, solver, nesterov, lr, loss_code, alpha, t0, **cfg)
            total = run_blocked(pb, ws, order, state, hp, ihp, batch, drop, k)
            results.append((total, pb.params.copy(), state.copy(), ihp.copy()))
            assert_close(total, w_total, dtype)
            assert_close(pb.params, flat_of(w_coefs + w_icpts), dtype)
            assert_close(state[0], flat_of(w_state[0]), dtype)
            assert_close(state[1], flat_of(w_state[1]), dtype)
            assert ihp[T.IHP_T] == w_t == t0 + (2 if weighted else 3)
            assert ihp[T.IHP_FINITE] == 1
        for total, params, st, counters in results[1:]:  # bit for bit, any thread count
            assert total == results[0][0]
            np.testing.assert_array_equal(params, results[0][1])
            np.testing.assert_array_equal(st, results[0][2])
            np.testing.assert_array_equal(counters, results[0][3])


def test_train_epoch_blocked_flags_outputs_that_overflow():
    """One full-batch step of size 1e150 (two blocks): finite weights near 1e150, and
    three identity layers multiply them to about 1e450 = inf at the output."""
    dtype = np.float64
    pb, ws, order, _ = blocked_problem(dtype, SQUARED_ERROR, False, False, 150, IDENTITY)
    hp, ihp = make_hp(dtype, "sgd", False, 1e150, SQUARED_ERROR, 0.0, 0)
    state = np.zeros((2, pb.layout.n_params))
    run_blocked(pb, ws, order, state, hp, ihp, 150, no_dropout(), THREADS[-1])
    assert np.isfinite(pb.params).all() and ihp[T.IHP_FINITE] == 0


def whole_data_workspaces(pb, chunk, train):
    dense = pb.Xsp is None
    serial = Workspace(pb.layout, pb.ws.net.act_codes, chunk, pb.dtype, dense, train=train)
    slots = Workspace(pb.layout, pb.ws.net.act_codes, chunk, pb.dtype, dense, train=train,
                      slots=P.SLOTS)
    return serial, slots


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("sparse", [False, True], ids=["dense", "csr"])
def test_whole_data_passes_equal_their_serial_twins(dtype, sparse):
    """L-BFGS' objective, the validation loss and predict, over 23 chunks of 7 rows
    (three waves of slots, the last chunk partial), shuffled and consecutive rows."""
    pb = make_problem(dtype, LOG_LOSS, RELU, n=157, sparse=sparse, weighted=True, seed=7)
    chunk, n_params = 7, pb.layout.n_params
    args = (pb.Xk, pb.Xsp, pb.Yk, pb.swk)
    for order in (kernel_rows(pb.n), readonly(pb.rng.permutation(pb.n).astype(np.int64))):
        serial, slots = whole_data_workspaces(pb, chunk, train=True)
        want_g = np.empty(n_params, dtype)
        want = T.full_loss_grad(pb.params, want_g, np.empty(n_params, dtype), serial.net,
                                *args, order, chunk, LOG_LOSS, pb.clip_eps, HUBER_DELTA, 1e-3,
                                2e-3, serial.act, serial.delta, serial.xbuf, serial.dact,
                                no_dropout())
        for k in THREADS:
            got_g = np.full(n_params, np.nan, dtype)
            got = on_threads(k, P.full_loss_grad_parallel, pb.params, got_g,
                             np.empty((P.SLOTS, n_params), dtype), slots.net, *args, order,
                             chunk, LOG_LOSS, pb.clip_eps, HUBER_DELTA, 1e-3, 2e-3, slots.act,
                             slots.delta, slots.xbuf, slots.dact, no_dropout(),
                             np.empty((P.SLOTS, 2)))
            assert got == want
            np.testing.assert_array_equal(got_g, want_g)

        serial, slots = whole_data_workspaces(pb, chunk, train=False)
        common = (*args, order, chunk, LOG_LOSS, pb.clip_eps, HUBER_DELTA)
        no_out = np.empty((0, 3), dtype)
        want = T.mean_loss(pb.params, serial.net, *common, serial.act, serial.delta,
                           serial.xbuf, no_dropout(), no_out)
        want_out = np.empty((pb.n, 3), dtype)
        assert T.predict_rows(pb.params, serial.net, pb.Xk, pb.Xsp, order, chunk, serial.act,
                              serial.xbuf, no_dropout(), want_out)
        # the validation pass that also writes the outputs: predict's, the same loss
        out = np.full((pb.n, 3), np.nan, dtype)
        assert T.mean_loss(pb.params, serial.net, *common, serial.act, serial.delta,
                           serial.xbuf, no_dropout(), out) == want
        np.testing.assert_array_equal(out, want_out)
        sums = np.empty((-(-pb.n // chunk), 2))
        for k in THREADS:
            for out in (no_out, np.full((pb.n, 3), np.nan, dtype)):
                got = on_threads(k, P.mean_loss_parallel, pb.params, slots.net, *common,
                                 slots.act, slots.delta, slots.xbuf, no_dropout(), sums, out)
                assert got == want
                if out.size:
                    np.testing.assert_array_equal(out, want_out)

        for k in THREADS:
            out = np.full((pb.n, 3), np.nan, dtype)
            assert on_threads(k, P.predict_rows_parallel, pb.params, slots.net, pb.Xk,
                              pb.Xsp, order, chunk, slots.act, slots.xbuf, no_dropout(), out)
            np.testing.assert_array_equal(out, want_out)


def test_parallel_predict_reports_non_finite_dense_input():
    pb = make_problem(np.float64, LOG_LOSS, RELU, n=60, seed=8)
    _, slots = whole_data_workspaces(pb, 7, train=False)
    X = np.array(pb.Xk)
    X[59, 2] = np.nan  # in the last chunk
    out = np.empty((pb.n, 3))
    assert not P.predict_rows_parallel(pb.params, slots.net, readonly(X), pb.Xsp,
                                       kernel_rows(pb.n), 7, slots.act, slots.xbuf,
                                       no_dropout(), out)
