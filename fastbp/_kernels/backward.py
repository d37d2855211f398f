"""Backward pass of one batch: the delta recursion and the weight/bias gradients."""

import numpy as np
from numba import njit

from .._config import JIT_OPTIONS
from .forward import block_view, coef_view, icpt_view


@njit(**JIT_OPTIONS)
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


@njit(**JIT_OPTIONS)
def column_sums(D, out):
    n, m = D.shape
    for j in range(m):
        out[j] = 0.0
    for i in range(n):
        for j in range(m):
            out[j] += D[i, j]


@njit(**JIT_OPTIONS)
def multiply(D, F):
    """``D *= F`` elementwise (2-D, same shape)."""
    n, m = D.shape
    for i in range(n):
        for j in range(m):
            D[i, j] *= F[i, j]


@njit(**JIT_OPTIONS)
def backward_batch(params, grads, net, Xsp, rows, act, delta, xbuf, dact):
    """Back-propagate the output delta (already in the last block of ``delta``).

    ``dact`` holds each hidden layer's f'(z) (times its dropout mask) from the forward
    pass, so the delta recursion is ``D_l = (D_{l+1} W_l^T) * dact_l`` for every
    activation.

    Writes into ``grads`` (same layout as ``params``) the *raw* gradient sums of the
    batch: ``A_{l}^T D_{l+1}`` for the weights and ``sum_i D_{l+1}`` for the biases,
    before the L2 term and the division by the weight sum (see ``finalize_gradient``).
    ``delta`` blocks of the hidden layers are overwritten.
    """
    units = net[0]
    n_layers = units.shape[0]
    n = rows.shape[0]
    for layer in range(n_layers - 1, 0, -1):
        D = block_view(delta, net, layer, n)
        G = coef_view(grads, net, layer - 1)
        if layer - 1 == 0:
            if Xsp[0].shape[0] > 0:
                csr_rows_tdot(Xsp[0], Xsp[1], Xsp[2], rows, D, G)
            else:
                A0 = xbuf[: n * units[0]].reshape((n, units[0]))
                np.dot(A0.T, D, G)
        else:
            np.dot(block_view(act, net, layer - 1, n).T, D, G)
        column_sums(D, icpt_view(grads, net, layer - 1))
        if layer > 1:
            D_prev = block_view(delta, net, layer - 1, n)
            np.dot(D, coef_view(params, net, layer - 1).T, D_prev)
            multiply(D_prev, block_view(dact, net, layer - 1, n))


@njit(**JIT_OPTIONS)
def sum_of_squares(a, n):
    """``sum(a[:n] ** 2)`` in 8 partial sums.

    One running sum is a chain of dependent additions (about 4 cycles each; fastmath
    here does not allow reassociation): it was a tenth of a digits minibatch step.
    Independent sums overlap; their order is fixed, so the result still depends on
    nothing but ``a``.
    """
    s0 = s1 = s2 = s3 = s4 = s5 = s6 = s7 = 0.0
    n8 = n - n % 8
    for j in range(0, n8, 8):
        s0 += a[j] * a[j]
        s1 += a[j + 1] * a[j + 1]
        s2 += a[j + 2] * a[j + 2]
        s3 += a[j + 3] * a[j + 3]
        s4 += a[j + 4] * a[j + 4]
        s5 += a[j + 5] * a[j + 5]
        s6 += a[j + 6] * a[j + 6]
        s7 += a[j + 7] * a[j + 7]
    for j in range(n8, n):
        s0 += a[j] * a[j]
    return ((s0 + s1) + (s2 + s3)) + ((s4 + s5) + (s6 + s7))


@njit(**JIT_OPTIONS)
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
