"""Loss values and the output-layer delta, one C callback per loss and dtype.

The kernels call a loss through its address (``call``; ``address`` compiles the callback
the first time it is asked for, or loads it from numba's cache), as they call the
activations and the optimizer rules: a fit compiles only the loss it uses.

Every loss is paired with an output activation (the table ``OUTPUT_ACTIVATION``) and
its ``loss_and_delta`` (``_batch``) writes the derivative of the loss with respect to the output
*pre-activation*. For the first four (canonical links) that is ``P - Y``; the others have
an identity output, so it is the derivative with respect to the output itself.

Per-sample losses, summed over the outputs (r = p - y):

- squared_error:   0.5 * sum_k r_k^2                     (identity output)
- poisson:         sum_k y_k log(y_k / p_k) - y_k + p_k (exp output, half deviance)
- log_loss:        -sum_k y_k log p_k                    (softmax output)
- binary_log_loss: -sum_k y_k log p_k + (1-y_k) log(1-p_k)  (logistic output)
- absolute_error:  sum_k |r_k|; delta sign(r_k) (0 at r_k = 0)
- huber:           sum_k 0.5 r_k^2 if |r_k| <= d else d (|r_k| - d / 2); delta r_k
                   clipped to [-d, d] (d = ``huber_delta``)
- hinge:           max(0, 1 + max_{j != c} p_j - p_c), c the true class (Crammer and
                   Singer's multiclass hinge); delta +1 on the arg max j, -1 on c when
                   the loss is positive (the first maximiser on ties)
- binary_hinge:    sum_k max(0, 1 - s_k p_k), s_k = 2 y_k - 1 in {-1, 1}; delta -s_k
                   when the term is positive (binary and multilabel hinge)

At the kinks (r = 0, |r| = d, a margin of exactly 1) the delta is one subgradient.

scikit-learn averages squared_error over the outputs while its gradient is that of the
sum (its issue 8349); here the reported value is the sum, the function the gradient
belongs to, so L-BFGS line searches see a consistent pair. For one output nothing changes.
"""

import math

from numba import carray, njit, types
from numba.core import cgutils
from numba.extending import intrinsic

from .._config import INLINED_JIT_OPTIONS, JIT_OPTIONS
from . import activations as A
from .callbacks import CallbackTable, call_for_results
from .literals import larger, smaller

SQUARED_ERROR = 0
POISSON = 1
LOG_LOSS = 2
BINARY_LOG_LOSS = 3
ABSOLUTE_ERROR = 4
HUBER = 5
HINGE = 6
BINARY_HINGE = 7

# The kernel's name of each code (the estimators' `loss` names, with the binary forms
# of log_loss and hinge told apart).
NAMES = {
    SQUARED_ERROR: "squared_error",
    POISSON: "poisson",
    LOG_LOSS: "log_loss",
    BINARY_LOG_LOSS: "binary_log_loss",
    ABSOLUTE_ERROR: "absolute_error",
    HUBER: "huber",
    HINGE: "hinge",
    BINARY_HINGE: "binary_hinge",
}

OUTPUT_ACTIVATION = {
    SQUARED_ERROR: A.IDENTITY,
    POISSON: A.EXP,
    LOG_LOSS: A.SOFTMAX,
    BINARY_LOG_LOSS: A.LOGISTIC,
    ABSOLUTE_ERROR: A.IDENTITY,
    HUBER: A.IDENTITY,
    HINGE: A.IDENTITY,
    BINARY_HINGE: A.IDENTITY,
}


# Each loss is its own small function, inlined (with the row loop around it) into that
# loss's C callback only: numba copies an inlined function's IR block by block, so one
# function with every loss's branch, inlined into each callback and pruned there, made
# a callback compile 1.1-1.7 times as long (CONTRIBUTING).
#
# An element-wise loss: ``(li, p, y, d, clip_eps, hd, huber_delta, zero, one, two) ->
# (li, d)`` adds output ``p``'s term (target ``y``) to the row's loss ``li`` (float64)
# and returns it with the delta (``d = p - y`` on entry, in P's dtype; ``hd`` is
# ``huber_delta`` in that dtype, ``zero``, ``one``, ``two`` its constants).


@njit(**INLINED_JIT_OPTIONS)
def _squared_error(li, p, y, d, clip_eps, hd, huber_delta, zero, one, two):
    return li + 0.5 * (y - p) * (y - p), d


@njit(**INLINED_JIT_OPTIONS)
def _poisson(li, p, y, d, clip_eps, hd, huber_delta, zero, one, two):
    li += p - y
    if y != 0:
        li += y * math.log(y / p)
    return li, d


@njit(**INLINED_JIT_OPTIONS)
def _log_loss(li, p, y, d, clip_eps, hd, huber_delta, zero, one, two):
    if y != 0:
        li -= y * math.log(smaller(larger(p, clip_eps), 1.0 - clip_eps))
    return li, d


@njit(**INLINED_JIT_OPTIONS)
def _binary_log_loss(li, p, y, d, clip_eps, hd, huber_delta, zero, one, two):
    pc = smaller(larger(p, clip_eps), 1.0 - clip_eps)
    if y != 0:
        li -= y * math.log(pc)
    if y != 1:
        li -= (1.0 - y) * math.log(1.0 - pc)
    return li, d


@njit(**INLINED_JIT_OPTIONS)
def _absolute_error(li, p, y, d, clip_eps, hd, huber_delta, zero, one, two):
    return li + abs(d), one if d > zero else (-one if d < zero else zero)


@njit(**INLINED_JIT_OPTIONS)
def _huber(li, p, y, d, clip_eps, hd, huber_delta, zero, one, two):
    if abs(d) <= hd:
        return li + 0.5 * d * d, d
    return li + huber_delta * (abs(d) - 0.5 * huber_delta), hd if d > zero else -hd


@njit(**INLINED_JIT_OPTIONS)
def _binary_hinge(li, p, y, d, clip_eps, hd, huber_delta, zero, one, two):
    s = two * y - one
    term = one - s * p
    if term > zero:
        return li + term, -s
    return li, zero


def _elementwise(term):
    """A row of an element-wise loss ``term``: ``row(P, Y, D, i, r, w, li, clip_eps, hd,
    huber_delta, zero, one, two) -> li`` over the outputs of batch row ``i`` (target row
    ``r``, sample weight ``w``), its deltas times ``w`` into ``D``."""

    @njit(**INLINED_JIT_OPTIONS)
    def row(P, Y, D, i, r, w, li, clip_eps, hd, huber_delta, zero, one, two):
        for j in range(P.shape[1]):
            p = P[i, j]
            y = Y[r, j]
            li, d = term(li, p, y, p - y, clip_eps, hd, huber_delta, zero, one, two)
            D[i, j] = d * w
        return li

    return row


@njit(**INLINED_JIT_OPTIONS)
def _hinge(P, Y, D, i, r, w, li, clip_eps, hd, huber_delta, zero, one, two):
    """A row of the multiclass hinge (``_elementwise``'s ``row``)."""
    k = P.shape[1]
    c = 0
    for j in range(1, k):
        if Y[r, j] > Y[r, c]:
            c = j
    jmax = 1 if c == 0 else 0
    for j in range(k):
        if j != c and P[i, j] > P[i, jmax]:
            jmax = j
    for j in range(k):
        D[i, j] = zero
    margin = 1.0 + P[i, jmax] - P[i, c]
    if margin > 0:
        li = margin
        D[i, jmax] = w
        D[i, c] = -w
    return li


def _batch(row):
    """``loss_and_delta`` of the loss whose rows ``row`` computes (``_elementwise``)."""

    @njit(**INLINED_JIT_OPTIONS)
    def loss_and_delta(P, Y, rows, sw, clip_eps, huber_delta, D):
        """Loss of the batch and the output delta.

        ``P`` (n, k): the batch's output activations; ``Y`` (n_samples, k): the targets
        of the whole data set, row ``rows[i]`` (int64) being batch row i; ``sw``: sample
        weights (empty: unit weights); ``clip_eps``: probabilities are clipped to
        [clip_eps, 1 - clip_eps] in the log losses; ``huber_delta``: the huber
        threshold. Writes into ``D`` (n, k) the gradient of the weighted loss sum with
        respect to the output pre-activation (``(P - Y) * sw`` for the canonical links).
        Returns ``(loss_sum, sw_sum)``, both accumulated in float64.
        """
        n = P.shape[0]
        weighted = sw.shape[0] > 0
        # delta in P's dtype (numba promotes float32 op float64); loss sums in float64
        cast = P.dtype.type
        zero, one, two = cast(0.0), cast(1.0), cast(2.0)
        hd = cast(huber_delta)
        loss_sum = 0.0
        sw_sum = 0.0
        # libm's log, not vmath.log: this loop sums in order in float64 and cannot
        # vectorise, and vmath.log inlined as scalar code measured slower (32 x 10
        # log_loss batch: 0.66 us against 0.38 us)
        for i in range(n):
            r = rows[i]
            w = sw[r] if weighted else one
            li = row(P, Y, D, i, r, w, 0.0, clip_eps, hd, huber_delta, zero, one, two)
            loss_sum += w * li
            sw_sum += w
        return loss_sum, sw_sum

    return loss_and_delta


# each loss's loss_and_delta, called from its own C callback only (``_callback``)
_SQUARED_ERROR = _batch(_elementwise(_squared_error))
_POISSON = _batch(_elementwise(_poisson))
_LOG_LOSS = _batch(_elementwise(_log_loss))
_BINARY_LOG_LOSS = _batch(_elementwise(_binary_log_loss))
_ABSOLUTE_ERROR = _batch(_elementwise(_absolute_error))
_HUBER = _batch(_elementwise(_huber))
_HINGE = _batch(_hinge)
_BINARY_HINGE = _batch(_elementwise(_binary_hinge))


# ---------------------------------------------------------------------------------------
# The losses as C callbacks, one per (code, dtype), compiled or loaded from the cache on
# first use: (P, n, k, Y, rows of Y, rows, sw, entries of sw, clip_eps, huber_delta, D,
# out); P, D (n x k) and Y (rows of Y x k) C-contiguous of the network's dtype, rows int64,
# sw the dtype's (0 entries: unit weights); ``out`` receives (loss_sum, sw_sum).


def _callback(code):
    """The C callback body of loss ``code``: a constant, so that numba prunes the other
    losses' branches before it inlines the one left (a closure's cell, not a dispatcher:
    numba's cache keys a closure on its cells, and a dispatcher pickles with a
    per-process id)."""

    def loss(pp, n, k, yp, ny, rp, swp, nsw, clip_eps, huber_delta, dp, outp):
        out = carray(outp, 2)
        P, Y, D = carray(pp, (n, k)), carray(yp, (ny, k)), carray(dp, (n, k))
        rows, sw, eps, hd = carray(rp, n), carray(swp, nsw), clip_eps, huber_delta
        if code == SQUARED_ERROR:
            out[0], out[1] = _SQUARED_ERROR(P, Y, rows, sw, eps, hd, D)
        elif code == POISSON:
            out[0], out[1] = _POISSON(P, Y, rows, sw, eps, hd, D)
        elif code == LOG_LOSS:
            out[0], out[1] = _LOG_LOSS(P, Y, rows, sw, eps, hd, D)
        elif code == BINARY_LOG_LOSS:
            out[0], out[1] = _BINARY_LOG_LOSS(P, Y, rows, sw, eps, hd, D)
        elif code == ABSOLUTE_ERROR:
            out[0], out[1] = _ABSOLUTE_ERROR(P, Y, rows, sw, eps, hd, D)
        elif code == HUBER:
            out[0], out[1] = _HUBER(P, Y, rows, sw, eps, hd, D)
        elif code == HINGE:
            out[0], out[1] = _HINGE(P, Y, rows, sw, eps, hd, D)
        else:
            out[0], out[1] = _BINARY_HINGE(P, Y, rows, sw, eps, hd, D)

    return loss


def _signature(dtype):
    ptr, f8, i8 = types.CPointer(dtype), types.float64, types.intp
    return types.void(ptr, i8, i8, ptr, i8, types.CPointer(types.int64), ptr, i8, f8, f8,
                      ptr, types.CPointer(f8))


_TABLE = CallbackTable({code: _callback(code) for code in NAMES}, _signature)
address, cached, loaded, warm = _TABLE.address, _TABLE.cached, _TABLE.loaded, _TABLE.warm


@intrinsic
def call(typingctx, fn, P, Y, rows, sw, clip_eps, huber_delta, D):
    """``loss_and_delta`` of the loss at address ``fn`` (``address``): its arguments
    after the code, and its ``(loss_sum, sw_sum)``."""
    arrays = (P, Y, sw, D)
    if not (isinstance(fn, types.Integer)
            and all(isinstance(a, types.Array) and a.layout == "C" and a.dtype == P.dtype
                    for a in arrays)
            and (P.ndim, Y.ndim, sw.ndim, D.ndim) == (2, 2, 1, 2)
            and isinstance(rows, types.Array) and rows.ndim == 1 and rows.layout == "C"
            and rows.dtype == types.int64):
        return None
    f8 = types.float64
    sig = types.UniTuple(f8, 2)(fn, P, Y, rows, sw, clip_eps, huber_delta, D)

    def codegen(context, builder, signature, args):
        address, p, y, r, w, eps, hd, d = args
        tys = signature.args
        pary, yary, rary, wary, dary = (context.make_array(ty)(context, builder, v) for ty, v
                                        in ((tys[1], p), (tys[2], y), (tys[3], r),
                                            (tys[4], w), (tys[7], d)))
        n, k = cgutils.unpack_tuple(builder, pary.shape, 2)
        ny = builder.extract_value(yary.shape, 0)
        nsw = builder.extract_value(wary.shape, 0)
        c_signature = _signature(P.dtype)
        ptr, i8 = c_signature.args[0], types.intp
        sums = call_for_results(
            context, builder, c_signature, address,
            [pary.data, n, k, yary.data, ny, rary.data, wary.data, nsw,
             context.cast(builder, eps, tys[5], f8), context.cast(builder, hd, tys[6], f8),
             dary.data],
            [ptr, i8, i8, ptr, i8, c_signature.args[5], ptr, i8, f8, f8, ptr], 2)
        return context.make_tuple(builder, signature.return_type, sums)

    return sig, codegen


@njit(**JIT_OPTIONS)
def _apply(fn, P, Y, rows, sw, clip_eps, huber_delta, D):
    return call(fn, P, Y, rows, sw, clip_eps, huber_delta, D)


def apply(P, Y, rows, sw, code, clip_eps, huber_delta, D):
    """``loss_and_delta`` of loss ``code`` through its C callback, as the kernels call
    it: from Python (tests)."""
    return _apply(address(code, P.dtype), P, Y, rows, sw, clip_eps, huber_delta, D)
