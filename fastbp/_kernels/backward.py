"""Backward pass of one batch: the delta recursion and the weight/bias gradients."""

from numba import njit

from .._config import HELPER_JIT_OPTIONS, INLINED_JIT_OPTIONS
from .blas import product
from .forward import block_view, coef_view, flat_view, icpt_view, relu_from_output
from .unlinked import unlinked


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
    before the L2 term and the division by the weight sum (see ``penalties``).
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
