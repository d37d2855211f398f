"""The multi-threaded kernels: numba ``prange`` regions over a fixed decomposition.

Every decomposition here depends on the data and the network only, never on the thread
count, and every sum over its pieces runs in a fixed order after the region; so results
are bit-identical for any number of threads (``fastbp._threads`` says how many run).
BLAS runs single-threaded inside the regions (its own threads would oversubscribe).

- Training (``train_epoch_blocked``): each minibatch is cut into ``n_blocks(rows)``
  blocks of consecutive rows; each block runs forward, loss and backward on its own
  workspace into its own gradient partial; the partials are summed in block order by
  parameter chunks, which then take the optimizer step (element-wise) in the same
  region. The blocked epoch is not bit-identical to the unblocked one of ``train``
  (other sums), so which of the two a network uses depends only on its shape and batch
  size (``fastbp._threads.blocked``).
- Wide networks (``train_epoch_columns``): the serial epoch on whole minibatches, each
  matrix product cut into tasks of ``COLUMNS`` output columns (``blas.matmul_columns``:
  no sum is split, so no partials) and the optimizer step into parameter chunks.
  Row blocks cost a wide network's products their efficiency: the four 128-row blocks
  of a 512-row batch took 13% longer in its 1024 x 1024 layer's products than the whole
  batch, at one thread as at two (``fastbp._threads.engine`` says which networks).
- Whole data sets (``predict_rows_parallel``, ``mean_loss_parallel``,
  ``full_loss_grad_parallel``) are cut into the same chunks as their serial
  counterparts in ``train``, taken by ``SLOTS`` workspaces in waves; the chunk sums
  are added in chunk order, so each returns exactly what its serial twin returns, and
  the caller may pick either.

A region's iterations are tasks: with numba's TBB layer an idle thread takes the next
one, so a thread descheduled by another process delays its own task only.
"""

import math

from numba import njit, prange

from .._config import INLINED_JIT_OPTIONS, JIT_OPTIONS
from . import dropout, fpenv
from .forward import Net
from .literals import runtime, smaller
from .train import (
    HP_CLIP_EPS,
    HP_HUBER_DELTA,
    IHP_FINITE,
    IHP_LOSS,
    IHP_SEED,
    IHP_T,
    PARAM_CHUNK,
    batch_loss,
    batch_loss_grad,
    chunk_loss,
    finishes_gradient,
    is_range,
    objective,
    optimizer_step_slice,
    outputs_finite,
    predict_chunk,
    step_form,
    train_epoch,
)

PARALLEL_OPTIONS = dict(JIT_OPTIONS, parallel=True)

# A minibatch of ``rows`` rows is cut into blocks: one below 2 * MIN_BLOCK_ROWS rows,
# else 2, doubled (up to MAX_BLOCKS) while every block keeps BLOCK_ROWS rows. Each block
# costs its own small products and a gradient partial (a pass over the parameters):
# measured on a 100-256-128-10 net in float32, one thread, a batch of 200 took 1.08x the
# unblocked step in 2 blocks (1.33x in 4 before the partial sums were vectorised); a
# power of two keeps 2 and 4 cores evenly loaded. Two blocks of 16 rows ran 1.44-1.60x
# faster on two threads than on one, an epoch of them not at all, while 32 and 64 rows
# ran 1.9x (quiet machine): blocks keep 32 rows at least.
MIN_BLOCK_ROWS = 32
BLOCK_ROWS = 100
MAX_BLOCKS = 8
# Columns per task of the products of a network trained by column tasks
# (``train_epoch_columns``). Measured on the wide workload (256-1024-1024-10, batch 512,
# float32, medians of 3 epochs x 3 alternating runs, load 0.9-1.4): 4.38 s at one thread
# and 2.39 s at two with 256 columns, 4.31 s and 2.30 s with 512 (each task packs the
# whole left operand again), 4.23 s in one task per product. 256: a 1024-unit layer's
# products keep four tasks, for an idle thread to take when another is descheduled and
# for four cores.
COLUMNS = 256
# Workspaces of the whole-data-set kernels (chunks taken per wave).
SLOTS = 8


@njit(**JIT_OPTIONS)
def n_blocks(rows):
    """Blocks of a minibatch of ``rows`` rows (see MIN_BLOCK_ROWS)."""
    if rows < 2 * MIN_BLOCK_ROWS:
        return 1
    blocks = 2
    while blocks < MAX_BLOCKS and rows >= 2 * blocks * BLOCK_ROWS:
        blocks *= 2
    return blocks


@njit(**JIT_OPTIONS)
def block_start(rows, blocks, b):
    """First row of block ``b`` of ``blocks`` (consecutive, sizes differ by at most 1)."""
    return b * rows // blocks


# The regions' bodies (``_blocks_loss_grad``, ``_sum_and_step``, ...) are inlined into
# one parallel kernel per entry point: numba runs the whole LLVM pipeline again for each
# compiled function over everything it calls, so every level of the call tree costs
# its callees' compile again (measured: a first blocked fit compiled for 25 s of CPU with
# the regions as functions of their own). The optimizer step is a call to its rule's C
# callback (``optimizers.call``).

@njit(**INLINED_JIT_OPTIONS)
def _blocks_loss_grad(params, grads, partials, net, X, Xsp, Y, sw, rows, loss_fn,
                      clip_eps, huber_delta, act, delta, xbuf, dact, drop, key, sums):
    """Forward, loss and backward of the blocks of ``rows``: block 0's raw gradient
    sums in ``grads``, block b's in ``partials[b - 1]``, its ``(loss_sum, sw_sum)`` in
    ``sums[b]``. Returns the number of blocks."""
    m = rows.shape[0]
    nb = n_blocks(m)
    for b in prange(nb):
        fp = fpenv.enter(params)  # each task's thread (see fpenv)
        lo, hi = block_start(m, nb, b), block_start(m, nb, b + 1)
        g = grads if b == 0 else partials[b - 1]
        ls, ss = batch_loss_grad(params, g, net, X, Xsp, Y, sw, rows[lo:hi], loss_fn,
                                  clip_eps, huber_delta, act[b], delta[b], xbuf[b], dact[b],
                                  drop, key, lo)
        sums[b, 0] = ls
        sums[b, 1] = ss
        fpenv.leave(fp)
    return nb


@njit(**INLINED_JIT_OPTIONS)
def _add_into(g, p):
    """``g += p`` (1-D slices of the same length: a loop LLVM vectorises, where indices
    offset by a chunk's start did not: 10x, measured)."""
    for j in range(g.shape[0]):
        g[j] += p[j]


@njit(**INLINED_JIT_OPTIONS)
def _sum_and_step(params, grads, partials, n_partials, state, form, hp, ihp):
    """``grads += partials[0] + ... + partials[n_partials - 1]`` (in that order), then
    the optimizer update, chunk by chunk of the parameters."""
    n = params.shape[0]
    for c in prange((n + PARAM_CHUNK - 1) // PARAM_CHUNK):
        fp = fpenv.enter(params)
        lo = c * PARAM_CHUNK
        hi = smaller(lo + PARAM_CHUNK, n)
        for b in range(n_partials):
            _add_into(grads[lo:hi], partials[b, lo:hi])
        optimizer_step_slice(params, grads, form, state, hp, ihp, lo, hi)
        fpenv.leave(fp)


@njit(**PARALLEL_OPTIONS)
def train_epoch_blocked(params, grads, partials, state, hp, ihp, fields, X, Xsp, Y, sw,
                        order, batch_size, act, delta, xbuf, dact, drop, sums):
    """``train.train_epoch`` with every minibatch cut into blocks (module docstring).

    ``act``, ``delta``, ``dact`` and ``xbuf`` hold one workspace per block (the rows of
    2-D arrays; ``fields`` is the layout of one); ``partials`` is (MAX_BLOCKS - 1,
    n_params) and ``sums`` (MAX_BLOCKS, 2) float64. Same arguments otherwise, same
    return value.
    """
    fp = fpenv.enter(params)
    net = Net(*fields)
    n = order.shape[0]
    n_coefs = net.icpt_off[0]
    # Without clipping or L1 the partials are summed in the step's own pass; with them
    # the gradient must be whole before step_form's finishing pass finishes it.
    sum_first = finishes_gradient(hp)
    total = 0.0
    last = order[:0]
    for start in range(0, n, batch_size):
        stop = smaller(start + batch_size, n)
        rows = order[start:stop]
        key = dropout.batch_key(ihp[IHP_SEED], ihp[IHP_T] + 1)
        nb = _blocks_loss_grad(params, grads, partials, net, X, Xsp, Y, sw, rows,
                               ihp[IHP_LOSS], hp[HP_CLIP_EPS], hp[HP_HUBER_DELTA], act,
                               delta, xbuf, dact, drop, key, sums)
        loss_sum = 0.0
        sw_sum = 0.0
        for b in range(nb):
            loss_sum += sums[b, 0]
            sw_sum += sums[b, 1]
        if sw_sum == 0.0:
            continue
        if sum_first:  # (serial: a rare path, and one region less to compile)
            for b in range(nb - 1):
                _add_into(grads, partials[b])
        form, sq, l1_norm = step_form(params, grads, hp, ihp, n_coefs, sw_sum)
        total += batch_loss(loss_sum, sw_sum, hp, sq, l1_norm) * (stop - start)
        last = rows
        ihp[IHP_T] += 1
        _sum_and_step(params, grads, partials, 0 if sum_first else nb - 1, state, form,
                      hp, ihp)
    ihp[IHP_FINITE] = _blocks_finite(params, net, X, Xsp, last, act, xbuf, drop)
    fpenv.leave(fp)
    return total


@njit(**JIT_OPTIONS)
def train_epoch_columns(params, grads, state, hp, ihp, fields, X, Xsp, Y, sw, order,
                        batch_size, act, delta, xbuf, dact, drop):
    """``train.train_epoch`` for a network whose ``Net.cols`` is an integer: its
    products run in column tasks and its optimizer step in parameter chunks (module
    docstring). An entry kernel of its own, so that the compile notice and the warm-up
    name it."""
    return train_epoch(params, grads, state, hp, ihp, fields, X, Xsp, Y, sw, order,
                       batch_size, act, delta, xbuf, dact, drop)


@njit(**INLINED_JIT_OPTIONS)
def _blocks_finite(params, net, X, Xsp, rows, act, xbuf, drop):
    """``train.outputs_finite`` of ``rows``, block by block (a block's workspace)."""
    m = rows.shape[0]
    nb = n_blocks(m)
    finite = 1
    for b in range(nb):
        lo, hi = block_start(m, nb, b), block_start(m, nb, b + 1)
        finite &= outputs_finite(params, net, X, Xsp, rows[lo:hi], act[0], xbuf[0], drop)
    return finite


@njit(**INLINED_JIT_OPTIONS)
def _wave_loss_grad(params, scratch, net, X, Xsp, Y, sw, order, chunk, first, count,
                    loss_fn, clip_eps, huber_delta, act, delta, xbuf, dact, no_drop,
                    sums):
    """Chunks ``first .. first + count - 1`` of ``order``, chunk ``first + s`` into
    slot s: raw gradient sums in ``scratch[s]``, ``(loss_sum, sw_sum)`` in ``sums[s]``."""
    n = order.shape[0]
    key = dropout.batch_key(runtime(0), runtime(0))
    for s in prange(count):
        fp = fpenv.enter(params)
        start = (first + s) * chunk
        ls, ss = batch_loss_grad(params, scratch[s], net, X, Xsp, Y, sw,
                                  order[start:smaller(start + chunk, n)], loss_fn, clip_eps,
                                  huber_delta, act[s], delta[s], xbuf[s], dact[s], no_drop,
                                  key, runtime(0))
        sums[s, 0] = ls
        sums[s, 1] = ss
        fpenv.leave(fp)


@njit(**PARALLEL_OPTIONS)
def full_loss_grad_parallel(params, grads, scratch, fields, X, Xsp, Y, sw, order, chunk,
                            loss_fn, finish_fn, clip_eps, huber_delta, alpha, l1, act,
                            delta, xbuf, dact, no_drop, sums):
    """``train.full_loss_grad`` of more than one chunk, ``SLOTS`` chunks at a time
    (``scratch``, ``act``, ``delta``, ``xbuf``, ``dact``: one row per slot; ``sums``
    (SLOTS, 2) float64). Returns exactly what ``full_loss_grad`` returns."""
    fp = fpenv.enter(params)
    net = Net(*fields)
    n_chunks = (order.shape[0] + chunk - 1) // chunk
    loss_sum = 0.0
    sw_sum = 0.0
    # explicit loops: an array expression in a parallel kernel becomes a region of its
    # own (measured: with ``grads += scratch[s]`` this pass ran 6x slower than serial)
    for j in range(grads.shape[0]):
        grads[j] = 0.0
    for first in range(0, n_chunks, SLOTS):
        count = smaller(SLOTS, n_chunks - first)
        _wave_loss_grad(params, scratch, net, X, Xsp, Y, sw, order, chunk, first, count,
                        loss_fn, clip_eps, huber_delta, act, delta, xbuf, dact, no_drop,
                        sums)
        for s in range(count):  # chunk order, as full_loss_grad adds them
            loss_sum += sums[s, 0]
            sw_sum += sums[s, 1]
            _add_into(grads, scratch[s])
    loss = objective(params, grads, net.icpt_off[0], alpha, l1, loss_sum, sw_sum,
                     finish_fn)
    fpenv.leave(fp)
    return loss


@njit(**INLINED_JIT_OPTIONS)
def _chunk_losses(params, net, X, Xsp, Y, sw, order, chunk, loss_fn, clip_eps,
                  huber_delta, act, delta, xbuf, no_drop, sums, out):
    """``(loss_sum, sw_sum)`` of every chunk of ``order`` into ``sums[chunk]`` (and its
    outputs into its rows of ``out``, see ``mean_loss``); chunk c runs in workspace
    ``c % SLOTS``, after chunk ``c - SLOTS`` (one task per slot)."""
    n = order.shape[0]
    n_chunks = sums.shape[0]
    for s in prange(smaller(SLOTS, n_chunks)):
        fp = fpenv.enter(params)
        for c in range(s, n_chunks, SLOTS):
            start = c * chunk
            ls, ss = chunk_loss(params, net, X, Xsp, Y, sw, order[start:smaller(start + chunk, n)],
                                loss_fn, clip_eps, huber_delta, act[s], delta[s], xbuf[s],
                                no_drop, out, start)
            sums[c, 0] = ls
            sums[c, 1] = ss
        fpenv.leave(fp)


@njit(**PARALLEL_OPTIONS)
def mean_loss_parallel(params, fields, X, Xsp, Y, sw, order, chunk, loss_fn, clip_eps,
                       huber_delta, act, delta, xbuf, no_drop, sums, out):
    """``train.mean_loss`` with the chunks spread over ``SLOTS`` workspaces (rows of
    ``act``, ``delta``, ``xbuf``); ``sums`` is (number of chunks, 2) float64. The chunk
    sums are added in chunk order: exactly ``mean_loss``'s value (and outputs)."""
    net = Net(*fields)
    _chunk_losses(params, net, X, Xsp, Y, sw, order, chunk, loss_fn, clip_eps,
                  huber_delta, act, delta, xbuf, no_drop, sums, out)
    loss_sum = 0.0  # (sums of float64: no float32 arithmetic outside the tasks)
    sw_sum = 0.0
    for c in range(sums.shape[0]):
        loss_sum += sums[c, 0]
        sw_sum += sums[c, 1]
    if sw_sum == 0.0:
        return math.nan
    return loss_sum / sw_sum


@njit(**PARALLEL_OPTIONS)
def predict_rows_parallel(params, fields, X, Xsp, order, chunk, act, xbuf, no_drop, out,
                          finite):
    """``train.predict_rows`` with the chunks spread over ``SLOTS`` workspaces (rows of
    ``act`` and ``xbuf``): the same outputs, the same return value. ``finite`` is a
    boolean buffer of ``SLOTS`` flags, one per slot (no race, no early exit), given
    rather than allocated here: ``np.ones`` compiled numba's allocation functions into
    the kernel. A cold first predict of 1,797 float64 rows on two threads, which ran
    parallel under the former threshold (``_threads.PARALLEL_PASS``), took 2.4 s instead
    of 3.0 s (medians of 7 alternating fresh processes, load 1.2-1.5)."""
    net = Net(*fields)
    n = order.shape[0]
    direct = X.size > 0 and n > 0 and is_range(order)
    n_chunks = (n + chunk - 1) // chunk
    slots = smaller(SLOTS, n_chunks)
    for s in range(slots):
        finite[s] = True
    for s in prange(slots):
        fp = fpenv.enter(params)
        for c in range(s, n_chunks, SLOTS):
            start = c * chunk
            if finite[s]:
                finite[s] = predict_chunk(params, net, X, Xsp, order, start,
                                          smaller(start + chunk, n), direct, act[s], xbuf[s],
                                          no_drop, out)
        fpenv.leave(fp)
    for s in range(slots):
        if not finite[s]:
            return False
    return True
