"""Backward pass of one batch: the delta recursion and the weight/bias gradients."""

import numpy as np
from numba import njit

from .._config import HELPER_JIT_OPTIONS, INLINED_JIT_OPTIONS, JIT_OPTIONS
from .blas import product
from .forward import block_view, coef_view, flat_view, icpt_view, relu_from_output
from .unlinked import unlinked
from .vectorwidth import wide


@njit(**HELPER_JIT_OPTIONS)
def csr_rows_tdot(indptr, indices, data, rows, D, G):
    """``G = X[rows].T @ D`` for CSR X, without densifying X."""
    fan_in, m = G.shape
    for a in range(fan_in):
        for j in range(m):
            G[a, j] = 0.0
    for i in range(rows.shape[0]):
        r = rows[i]
        for p in range(indptr[r], indptr[r + 1]):
            v = data[p]
            a = indices[p]
            for j in range(m):
                G[a, j] += v * D[i, j]


@unlinked
@njit(**HELPER_JIT_OPTIONS)
def column_sums(D, out):
    n, m = D.shape
    for j in range(m):
        out[j] = 0.0
    for i in range(n):
        for j in range(m):
            out[j] += D[i, j]


@unlinked
@njit(**HELPER_JIT_OPTIONS)
def multiply(D, F, relu_output):
    """``D *= F`` elementwise (2-D, same shape), F holding f'(z); or, ``relu_output``,
    ``D *= relu'(z)`` read from relu's output ``F``: 1 where ``F > 0``, 0 where it is 0,
    NaN where it is NaN (what the activation writes as f'(z)). One function and one
    call site for both: as a function of its own, the relu case added 5-6% to a cold
    first digits fit's compile (CPU, paired on one core), against 4% so."""
    n, m = D.shape
    if relu_output:
        # D * 1 is D; relu's output is +0 or NaN where it is not positive, and D * 0
        # and D * NaN are what the written f'(z) gives there
        zero = F.dtype.type(0.0)
        for i in range(n):
            for j in range(m):
                a = F[i, j]
                if not a > zero:
                    D[i, j] *= a
    else:
        for i in range(n):
            for j in range(m):
                D[i, j] *= F[i, j]


@njit(**INLINED_JIT_OPTIONS)
def backward_batch(params, grads, net, Xsp, rows, act, delta, xbuf, dact, drop):
    """Back-propagate the output delta (already in the last block of ``delta``).

    ``dact`` holds each hidden layer's f'(z) (times its dropout mask) from the forward
    pass, so the delta recursion is ``D_l = (D_{l+1} W_l^T) * dact_l``; for relu without
    dropout the forward pass writes none and f'(z) is read from the layer's output
    (``forward.relu_from_output``): the forward pass writes one block fewer per layer.

    Writes into ``grads`` (same layout as ``params``) the *raw* gradient sums of the
    batch: ``A_{l}^T D_{l+1}`` for the weights and ``sum_i D_{l+1}`` for the biases,
    before the L2 term and the division by the weight sum (see ``finalize_gradient``).
    ``delta`` blocks of the hidden layers are overwritten.
    """
    units = net.units
    n_layers = units.shape[0]
    n = rows.shape[0]
    for layer in range(n_layers - 1, 0, -1):
        D = block_view(delta, net, layer, n)
        G = coef_view(grads, net, layer - 1)
        if layer - 1 == 0:
            if Xsp is None:  # dense X (see forward's module docstring)
                A0 = flat_view(xbuf, 0, (n, units[0]))
                product(A0.T, D, G, net.cols, net.small)
            else:
                csr_rows_tdot(Xsp[0], Xsp[1], Xsp[2], rows, D, G)
        else:
            product(block_view(act, net, layer - 1, n).T, D, G, net.cols, net.small)
        column_sums(D, icpt_view(grads, net, layer - 1))
        if layer > 1:
            D_prev = block_view(delta, net, layer - 1, n)
            product(D, coef_view(params, net, layer - 1).T, D_prev, net.cols, net.small)
            relu = relu_from_output(net, drop, layer - 1)
            multiply(D_prev, block_view(act if relu else dact, net, layer - 1, n), relu)


# The one kernel allowed to reassociate (see _config.FASTMATH): a sum of squares kept
# for the reported loss and for gradient clipping, accumulated in float64. Reassociated,
# LLVM sums it in SIMD lanes: measured 3.6 us instead of 16 us for 58,000 float32 weights
# on the AMD machine (8 hand-written partial sums stayed scalar); in 512-bit lanes
# (``vectorwidth``) 6.8-7.7 against 9.7-10.0 us in 256-bit ones on the Intel one. The
# lanes depend only on the compiled code, so the result is the same on every run on a
# given machine; between machines it may differ in the last bits, which no parity test
# can see.
_REASSOC_OPTIONS = dict(HELPER_JIT_OPTIONS, fastmath=JIT_OPTIONS["fastmath"] | {"reassoc"})


@unlinked
@njit(**_REASSOC_OPTIONS)
def sum_of_squares(a, n):
    """``sum(a[:n] ** 2)`` in float64 (float32 entries widened first)."""
    wide()
    s = 0.0
    for j in range(n):
        x = np.float64(a[j])
        s += x * x
    return s


@unlinked
@njit(**HELPER_JIT_OPTIONS)
def finalize_gradient(params, grads, n_coefs, alpha, l1, sw_sum, want_norm):
    """Add the penalty terms to the weight gradients and divide everything by ``sw_sum``.

    The penalty is ``(alpha / 2 * ||W||^2 + l1 * |W|_1) / sw_sum`` over the weights
    (biases excluded); the L1 term's gradient is ``l1 * sign(w)`` (0 at w = 0).

    Returns ``(sq, l1_norm, grad_sq)``: the squared L2 norm and the L1 norm of the
    weights (for the loss value) and, if ``want_norm``, the squared norm of the final
    gradient (for clipping; 0.0 otherwise).
    """
    sq = sum_of_squares(params, n_coefs)
    l1_norm = 0.0
    # The per-parameter arithmetic runs in the parameters' dtype (see optimizers); the
    # norms, which only enter the reported loss, accumulate in float64.
    cast = params.dtype.type
    a, total, zero = cast(alpha), cast(sw_sum), cast(0.0)
    # Separate loops per case keep each one plain and vectorisable.
    if l1 == 0.0:
        for j in range(n_coefs):
            grads[j] = (grads[j] + a * params[j]) / total
    else:
        lam, one = cast(l1), cast(1.0)
        for j in range(n_coefs):
            w = params[j]
            l1_norm += abs(w)
            s = one if w > zero else (-one if w < zero else zero)
            grads[j] = (grads[j] + a * w + lam * s) / total
    for j in range(n_coefs, params.shape[0]):
        grads[j] /= total
    grad_sq = sum_of_squares(grads, grads.shape[0]) if want_norm else 0.0
    return sq, l1_norm, grad_sq
