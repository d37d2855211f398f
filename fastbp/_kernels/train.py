"""The compiled training loops: one epoch of minibatch steps, the full-batch loss and
gradient for L-BFGS, and the forward pass for prediction.

Buffers (allocated once per fit by the caller, see ``fastbp._workspace``):

- ``act``, ``delta``: flat, one ``batch_rows x units`` block per non-input layer.
- ``xbuf``: flat, ``batch_rows x n_features``, the gathered dense input rows.
- ``grads``: flat, the parameter layout.
"""

from numba import njit

from .._config import JIT_OPTIONS
from . import optimizers as opt
from .backward import backward_batch, finalize_gradient
from .forward import block_view, forward_batch
from .losses import loss_and_delta

# Slots of the float64 hyperparameter vector ``hp``.
HP_LR, HP_MOMENTUM, HP_BETA_1, HP_BETA_2, HP_EPSILON, HP_ALPHA, HP_CLIP_EPS = range(7)
N_HP = 7
# Slots of the int64 vector ``ihp``; HP_T is written (Adam's step count).
IHP_SOLVER, IHP_NESTEROV, IHP_LOSS, IHP_T = range(4)
N_IHP = 4


@njit(**JIT_OPTIONS)
def batch_loss_grad(params, grads, net, X, Xsp, Y, sw, rows, loss_code, clip_eps,
                    act, delta, xbuf):
    """Forward, loss and backward for the rows ``rows``: raw gradient sums in ``grads``.

    Returns ``(loss_sum, sw_sum)`` (see ``losses.loss_and_delta``).
    """
    n = rows.shape[0]
    n_layers = net[0].shape[0]
    P = forward_batch(params, net, X, Xsp, rows, act, xbuf)
    D = block_view(delta, net, n_layers - 1, n)
    loss_sum, sw_sum = loss_and_delta(P, Y, rows, sw, loss_code, clip_eps, D)
    backward_batch(params, grads, net, Xsp, rows, act, delta, xbuf)
    return loss_sum, sw_sum


@njit(**JIT_OPTIONS)
def train_epoch(params, grads, state, hp, ihp, net, X, Xsp, Y, sw, order, batch_size,
                act, delta, xbuf):
    """One pass over the rows in ``order``, one optimizer step per minibatch.

    ``state`` is (2, n_params): the velocity (sgd) or the first and second moments
    (adam). ``ihp[IHP_T]`` counts Adam steps and is advanced in place.

    A minibatch whose sample weights sum to zero carries no information: it is skipped
    (scikit-learn divides by the zero sum and turns the weights into NaN).

    Returns the sum over minibatches of ``batch_loss * batch_rows`` (scikit-learn's
    accumulated loss), where batch_loss includes the L2 term.
    """
    n = order.shape[0]
    n_coefs = net[2][0]
    alpha = hp[HP_ALPHA]
    total = 0.0
    for start in range(0, n, batch_size):
        stop = min(start + batch_size, n)
        rows = order[start:stop]
        loss_sum, sw_sum = batch_loss_grad(
            params, grads, net, X, Xsp, Y, sw, rows, ihp[IHP_LOSS], hp[HP_CLIP_EPS],
            act, delta, xbuf,
        )
        if sw_sum == 0.0:
            continue
        sq = finalize_gradient(params, grads, n_coefs, alpha, sw_sum)
        total += (loss_sum / sw_sum + 0.5 * alpha * sq / sw_sum) * (stop - start)
        if ihp[IHP_SOLVER] == opt.ADAM:
            ihp[IHP_T] += 1
            opt.adam_step(params, grads, state[0], state[1], ihp[IHP_T], hp[HP_LR],
                          hp[HP_BETA_1], hp[HP_BETA_2], hp[HP_EPSILON])
        else:
            opt.sgd_step(params, grads, state[0], hp[HP_LR], hp[HP_MOMENTUM],
                         ihp[IHP_NESTEROV] != 0)
    return total


@njit(**JIT_OPTIONS)
def full_loss_grad(params, grads, scratch, net, X, Xsp, Y, sw, order, chunk, loss_code,
                   clip_eps, alpha, act, delta, xbuf):
    """Loss and gradient of the whole objective over the rows ``order`` (L-BFGS).

    Walks the data in chunks of ``chunk`` rows so the workspace stays small; ``scratch``
    (parameter layout) receives each chunk's sums. Writes the gradient into ``grads``
    and returns the loss. Returns NaN if the sample weights sum to zero.
    """
    n = order.shape[0]
    n_coefs = net[2][0]
    loss_sum = 0.0
    sw_sum = 0.0
    if n <= chunk:
        loss_sum, sw_sum = batch_loss_grad(params, grads, net, X, Xsp, Y, sw, order,
                                           loss_code, clip_eps, act, delta, xbuf)
    else:
        grads[:] = 0.0
        for start in range(0, n, chunk):
            rows = order[start:min(start + chunk, n)]
            ls, ss = batch_loss_grad(params, scratch, net, X, Xsp, Y, sw, rows,
                                     loss_code, clip_eps, act, delta, xbuf)
            loss_sum += ls
            sw_sum += ss
            grads += scratch
    if sw_sum == 0.0:
        return float("nan")
    sq = finalize_gradient(params, grads, n_coefs, alpha, sw_sum)
    return loss_sum / sw_sum + 0.5 * alpha * sq / sw_sum


@njit(**JIT_OPTIONS)
def predict_rows(params, net, X, Xsp, order, chunk, act, xbuf, out):
    """Output activations for the rows ``order`` of X, written into ``out``."""
    n = order.shape[0]
    for start in range(0, n, chunk):
        stop = min(start + chunk, n)
        P = forward_batch(params, net, X, Xsp, order[start:stop], act, xbuf)
        out[start:stop] = P
