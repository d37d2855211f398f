"""Backward pass of one batch: the delta recursion and the weight/bias gradients."""

import numpy as np
from numba import njit

from .._config import JIT_OPTIONS
from .activations import derivative
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
def backward_batch(params, grads, net, Xsp, rows, act, delta, xbuf):
    """Back-propagate the output delta (already in the last block of ``delta``).

    Writes into ``grads`` (same layout as ``params``) the *raw* gradient sums of the
    batch: ``A_{l}^T D_{l+1}`` for the weights and ``sum_i D_{l+1}`` for the biases,
    before the L2 term and the division by the weight sum (see ``finalize_gradient``).
    ``delta`` blocks of the hidden layers are overwritten.
    """
    units, act_codes = net[0], net[4]
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
            derivative(block_view(act, net, layer - 1, n), D_prev, act_codes[layer - 1])


@njit(**JIT_OPTIONS)
def finalize_gradient(params, grads, n_coefs, alpha, sw_sum):
    """Add the L2 term to the weight gradients and divide everything by ``sw_sum``.

    Returns the squared norm of the weights (biases excluded), for the loss value.
    """
    sq = 0.0
    for j in range(n_coefs):
        w = params[j]
        sq += w * w
        grads[j] = (grads[j] + alpha * w) / sw_sum
    for j in range(n_coefs, params.shape[0]):
        grads[j] /= sw_sum
    return sq
