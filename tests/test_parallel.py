"""The parallel kernels (``fastbp._kernels.parallel``) against the NumPy oracle and
their serial twins, in float32 and float64, on 1 and 2 numba threads: the blocked and
the column-chunked epochs match the oracle and do not depend on the thread count, nor
do the column-task products and the chunked optimizer step; the whole-data passes
return exactly what the serial kernels return."""

# tests/ is not a package: pytest puts it on sys.path (rootdir "prepend" mode)
import numba
import numpy as np
import pytest
from test_kernels import (
    DTYPES,
    HUBER_DELTA,
    LOSSES,
    SOLVERS,
    _rule_by_code,
    assert_close,
    flat_of,
    from_python,
    make_hp,
    make_problem,
    operands,
    oracle_epoch,
)

from fastbp._kernels import losses as L
from fastbp._kernels import optimizers as O
from fastbp._kernels import parallel as P
from fastbp._kernels import penalties
from fastbp._kernels import train as T
from fastbp._kernels.activations import IDENTITY, RELU, TANH
from fastbp._kernels.blas import matmul_columns, matmul_part, product
from fastbp._kernels.forward import Net
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


def epoch_problem(dtype, loss_code, sparse, weighted, batch, hidden=TANH, n=150):
    pb = make_problem(dtype, loss_code, hidden, n=n, units=(6, 9, 7), sparse=sparse,
                      weighted=weighted, seed=180 + loss_code)
    order = pb.rng.permutation(pb.n).astype(np.int64)
    if weighted:  # the second minibatch weighs nothing: it must be skipped
        sw = np.array(pb.swk)
        sw[order[batch : 2 * batch]] = 0.0
        pb.swk, pb.sw64 = readonly(sw), sw.astype(np.float64)
    state = np.zeros((2, pb.layout.n_params), dtype=dtype)
    rng = np.random.default_rng(190 + loss_code)
    state[0] = 0.01 * rng.normal(size=pb.layout.n_params)
    state[1] = 1e-3 * rng.random(size=pb.layout.n_params)
    return pb, order, state


def run_blocked(pb, order, state, hp, ihp, batch, drop, threads):
    ws = Workspace(pb.layout, Net(*pb.ws.net).act_codes, block_rows(batch), pb.dtype,
                   dense=pb.Xsp is None, slots=P.MAX_BLOCKS)
    partials = np.full((P.MAX_BLOCKS - 1, pb.layout.n_params), np.nan, dtype=pb.dtype)
    sums = np.full((P.MAX_BLOCKS, 2), np.nan)
    return on_threads(threads, P.train_epoch_blocked, pb.params, np.empty_like(pb.params),
                      partials, state, hp, ihp, ws.net, pb.Xk, pb.Xsp, pb.Yk, pb.swk,
                      readonly(order), batch, ws.act, ws.delta, ws.xbuf, ws.dact, drop, sums)


def run_columns(pb, order, state, hp, ihp, batch, drop, threads):
    """The column-task epoch, its products in tasks of 4 columns (hidden layers of 9
    and 7 units: 3 and 2 tasks, the last narrower)."""
    ws = Workspace(pb.layout, Net(*pb.ws.net).act_codes, batch, pb.dtype, dense=pb.Xsp is None,
                   cols=4)
    return on_threads(threads, P.train_epoch_columns, pb.params, np.empty_like(pb.params),
                      state, hp, ihp, ws.net, pb.Xk, pb.Xsp, pb.Yk, pb.swk, readonly(order),
                      batch, ws.act, ws.delta, ws.xbuf, ws.dact, drop)


RUN = {"blocked": run_blocked, "columns": run_columns}


@pytest.mark.parametrize("engine", ["blocked", "columns"])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("sparse", [False, True], ids=["dense", "csr"])
@pytest.mark.parametrize("which", ["adam", "nesterov", "adamw", "adam+l1+clip", "sgd+l1",
                                   "adamw+clip", "sgd+dropout", "sgd+relu+dropout"])
def test_parallel_epochs_match_the_oracle_on_any_thread_count(engine, dtype, sparse, which):
    """Batches of 67 rows, the last of 16. Blocked: two blocks (33 + 34), the last batch
    one block; the oracle's dropout masks are those of whole minibatches, so the blocks
    must draw theirs at their rows' places in the batch. Columns: whole minibatches,
    products in column tasks (``run_columns``)."""
    cfg = dict(SOLVERS[which])
    solver, nesterov, lr = cfg.pop("solver"), cfg.pop("nesterov"), cfg.pop("lr")
    dropout = cfg.pop("dropout", None)
    hidden = cfg.pop("hidden", TANH)
    drop = no_dropout() if dropout is None else readonly(np.array(dropout))
    alpha, batch, t0 = 1e-3, 67, 3
    for loss_code in (SQUARED_ERROR, LOG_LOSS, LOSSES[-1]):
        weighted = loss_code == SQUARED_ERROR
        pb, order, state = epoch_problem(dtype, loss_code, sparse, weighted, batch, hidden)
        w_coefs, w_icpts, w_state, w_t, w_total = oracle_epoch(
            pb, state, order, batch, alpha, solver, lr, nesterov, t0, dropout, cfg
        )
        start = pb.params.copy(), state.copy()
        results = []
        for k in THREADS:
            pb.params[...], state[...] = start
            hp, ihp = make_hp(dtype, solver, nesterov, lr, loss_code, alpha, t0, **cfg)
            total = RUN[engine](pb, order, state, hp, ihp, batch, drop, k)
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


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(7, 5, 9), (1, 5, 9), (7, 1, 4), (7, 5, 1), (40, 33, 17)])
@pytest.mark.parametrize("layouts", ["CC", "FC", "CF"])
def test_matmul_columns_is_the_product_on_any_thread_count(dtype, shape, layouts):
    """``blas.matmul_columns`` (a gemm per ``cols`` output columns, each reading and
    writing its columns in place) is ``a @ b`` in every operand layout the kernels use
    (``A @ W``, ``A.T @ D``, ``D @ W.T``), for tasks that divide the columns or not, and
    bit for bit the same on 1 and 2 threads; ``product`` picks it for an integer
    ``cols`` and ``matmul`` for None; ``matmul_part`` writes its columns only."""
    m, k, n = shape
    a, b = operands(dtype, shape, layouts)
    exact = a.astype(np.float64) @ b.astype(np.float64)
    for cols in (1, 4, n, n + 3):
        got = []
        for k_threads in THREADS:
            out = np.full((m, n), np.nan, dtype=dtype)
            on_threads(k_threads, from_python(matmul_columns), a, b, out, cols)
            assert_close(out, exact, dtype, scale=1.0)
            got.append(out)
        for out in got[1:]:
            assert out.tobytes() == got[0].tobytes()
        out = np.full((m, n), np.nan, dtype=dtype)
        from_python(product)(a, b, out, cols, 0)
        assert out.tobytes() == got[0].tobytes()
    out = np.full((m, n), np.nan, dtype=dtype)
    from_python(product)(a, b, out, None, 0)
    assert_close(out, exact, dtype, scale=1.0)
    if n > 2:
        out = np.full((m, n), np.nan, dtype=dtype)
        from_python(matmul_part)(a, b, out, 1, n - 1)
        assert np.isnan(out[:, 0]).all() and np.isnan(out[:, -1]).all()
        assert_close(out[:, 1:-1], exact[:, 1:-1], dtype, scale=1.0)


def _compiled_ir(kernel, *args):
    """The LLVM code of ``kernel`` called on ``args``: the trampoline's, which holds the
    kernel's, or for a pass called unlinked (``_kernels.unlinked``) the pass's own."""
    trampoline = from_python(kernel)
    trampoline(*args)
    own = getattr(kernel, "__wrapped__", None)
    if own is None:
        return "\n".join(trampoline.inspect_llvm().values())
    # compiled afresh: a library loaded from numba's cache holds no LLVM code
    fresh = numba.njit(**dict(own.targetoptions, cache=False))(own.py_func)
    sig = tuple(numba.typeof(a) for a in args)
    fresh.compile(sig)
    return fresh.overloads[sig].library.get_llvm_str()


def test_an_integer_cols_compiles_the_parallel_product_and_step():
    """The column-task engine's choice is made while typing: with ``cols`` an integer,
    ``product`` and ``update`` compile the parallel helpers (a numba parallel region
    calls ``do_scheduling``); with None, neither. The oracle tests could not tell a
    serial product from a column-task one, which give the same values."""
    a, b = np.ones((3, 4)), np.ones((4, 5))
    out = np.empty((3, 5))
    n = 10
    hp, ihp = make_hp(np.float64, "adam", False, 0.01, SQUARED_ERROR, 0.0, 1)
    form = (1.0, n, 0.0, 1.0)
    for cols, parallel in ((2, True), (None, False)):
        ir = _compiled_ir(product, a, b, out, cols, 0)
        assert ("matmul_columns" in ir) == ("do_scheduling" in ir) == parallel
        ir = _compiled_ir(T.update, np.zeros(n), np.ones(n), form, np.zeros((2, n)), hp, ihp,
                          cols)
        assert ("optimizer_step_chunks" in ir) == ("do_scheduling" in ir) == parallel


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("code", sorted(O.CODES.values()))
def test_optimizer_step_chunks_is_one_step_on_any_thread_count(dtype, code):
    """``train.optimizer_step_chunks`` (a task per ``PARAM_CHUNK`` parameters, the
    weights-only terms counted from each chunk's start) updates weights and state
    exactly as one pass of the rule, on 1 and 2 threads: 3 chunks and a bit, the
    weights ending inside the second."""
    rng = np.random.default_rng(code)
    n = 3 * T.PARAM_CHUNK + 17
    vectors = [rng.standard_normal(n).astype(dtype) for _ in range(4)]
    vectors[3] = np.abs(vectors[3])  # squares: non-negative
    form = (0.5, T.PARAM_CHUNK + 123, 1e-3, 3.0)  # clipping factor, weights, L2, weight sum
    want = [v.copy() for v in vectors]
    _rule_by_code(code, *want[:2], form, *want[2:], 4, 1)
    hp, ihp = make_hp(dtype, "sgd", True, 0.01, SQUARED_ERROR, 0.0, 4, weight_decay=0.01)
    ihp[T.IHP_RULE] = O.address(code, dtype)
    for k in THREADS:
        params, grads, s0, s1 = (v.copy() for v in vectors)
        state = np.stack([s0, s1])
        on_threads(k, from_python(T.optimizer_step_chunks), params, grads, form, state, hp,
                   ihp)
        for got, w in zip((params, grads, state[0], state[1]), want, strict=True):
            assert got.tobytes() == w.tobytes()


@pytest.mark.parametrize("engine", ["blocked", "columns"])
def test_parallel_epochs_flag_outputs_that_overflow(engine):
    """One full-batch step of size 1e150 (two blocks, or tasks of 4 columns): finite
    weights near 1e150, and three identity layers multiply them to about 1e450 = inf at
    the output."""
    dtype = np.float64
    pb, order, _ = epoch_problem(dtype, SQUARED_ERROR, False, False, 150, IDENTITY)
    hp, ihp = make_hp(dtype, "sgd", False, 1e150, SQUARED_ERROR, 0.0, 0)
    state = np.zeros((2, pb.layout.n_params))
    RUN[engine](pb, order, state, hp, ihp, 150, no_dropout(), THREADS[-1])
    assert np.isfinite(pb.params).all() and ihp[T.IHP_FINITE] == 0


def whole_data_workspaces(pb, chunk, train):
    dense = pb.Xsp is None
    serial = Workspace(pb.layout, Net(*pb.ws.net).act_codes, chunk, pb.dtype, dense, train=train)
    slots = Workspace(pb.layout, Net(*pb.ws.net).act_codes, chunk, pb.dtype, dense, train=train,
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
    finish = penalties.address(penalties.FINISH, dtype)
    for order in (kernel_rows(pb.n), readonly(pb.rng.permutation(pb.n).astype(np.int64))):
        serial, slots = whole_data_workspaces(pb, chunk, train=True)
        want_g = np.empty(n_params, dtype)
        want = T.full_loss_grad(pb.params, want_g, np.empty(n_params, dtype), serial.net,
                                *args, order, chunk, L.address(LOG_LOSS, dtype), finish,
                                pb.clip_eps, HUBER_DELTA, 1e-3, 2e-3, serial.act,
                                serial.delta, serial.xbuf, serial.dact, no_dropout())
        for k in THREADS:
            got_g = np.full(n_params, np.nan, dtype)
            got = on_threads(k, P.full_loss_grad_parallel, pb.params, got_g,
                             np.empty((P.SLOTS, n_params), dtype), slots.net, *args, order,
                             chunk, L.address(LOG_LOSS, dtype), finish, pb.clip_eps,
                             HUBER_DELTA, 1e-3, 2e-3, slots.act, slots.delta, slots.xbuf,
                             slots.dact, no_dropout(), np.empty((P.SLOTS, 2)))
            assert got == want
            np.testing.assert_array_equal(got_g, want_g)

        serial, slots = whole_data_workspaces(pb, chunk, train=False)
        common = (*args, order, chunk, L.address(LOG_LOSS, dtype), pb.clip_eps, HUBER_DELTA)
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
                              pb.Xsp, order, chunk, slots.act, slots.xbuf, no_dropout(), out,
                              np.zeros(P.SLOTS, np.bool_))
            np.testing.assert_array_equal(out, want_out)


@pytest.mark.parametrize("row", [0, 30, 59], ids=["first-chunk", "middle", "last-chunk"])
def test_predict_reports_non_finite_dense_input(row):
    """Each chunk checks its own rows (serial and parallel, any thread count)."""
    pb = make_problem(np.float64, LOG_LOSS, RELU, n=60, seed=8)
    serial, slots = whole_data_workspaces(pb, 7, train=False)
    X = np.array(pb.Xk)
    X[row, 2] = np.inf if row == 30 else np.nan
    out = np.empty((pb.n, 3))
    args = (readonly(X), pb.Xsp, kernel_rows(pb.n), 7)
    assert not T.predict_rows(pb.params, serial.net, *args, serial.act, serial.xbuf,
                              no_dropout(), out)
    for k in THREADS:
        assert not on_threads(k, P.predict_rows_parallel, pb.params, slots.net, *args,
                              slots.act, slots.xbuf, no_dropout(), out,
                              np.ones(P.SLOTS, np.bool_))
