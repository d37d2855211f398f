"""Forward pass of one batch: matrix product + bias + activation, into preallocated blocks.

The network travels as the namedtuple ``net`` (``Net`` below: ``units``, ``coef_off``,
``icpt_off``, ``act_off``, ``act_codes``, ``act_fns``: the addresses of the activations,
see ``activations.call``, ``cols``, ``small``) whose fields ``fastbp._layout.Layout.net``
gives. X travels as a dense 2-D array plus a CSR triple ``(indptr, indices, data)``: for
sparse X the dense array is empty; for dense X the triple is None.

The optional parts arrive as None when unused (the CSR triple of dense X, the dropout
rates of a fit without dropout): numba types None apart and drops an ``is None`` branch
while compiling, so a fit compiles only the paths it takes (every first fit used to
compile the sparse products and the dropout masks, and optimise them again in each
caller).
"""

from collections import namedtuple

from numba import njit

from .._config import HELPER_JIT_OPTIONS
from . import activations, dropout
from .blas import product
from .literals import runtime

# The kernels' description of a network: per layer its units, the offsets of its
# weights and biases in the flat vector, of its block in the activation buffers, and
# its activation code and the address of that activation's compiled function for the
# network's dtype (numba passes a namedtuple of arrays like a tuple, by field). The
# addresses hold for this process only: a Net is rebuilt, never pickled.
#
# ``cols``: None, or the columns per task of the matrix products (``blas.product``) of a
# network trained by column chunks (``fastbp._threads.engine``). ``small``: the most
# multiply-adds of a product BLAS runs through its small-matrix kernels (0: it has
# none), which ``blas.product`` cuts larger products to fit (``fastbp._threads
# .small_products``); found once per process, never pickled either.
#
# The entry kernels (``train``, ``parallel``) take its fields as a plain tuple and name
# them first thing (``net = Net(*fields)``): numba's dispatcher types a plain tuple of
# arrays in C from its fingerprint, but a namedtuple through Python's ``typeof``, 0.7 us
# more per call (see CONTRIBUTING, "Inference").
Net = namedtuple("Net", ["units", "coef_off", "icpt_off", "act_off", "act_codes", "act_fns",
                         "cols", "small"])


@njit(**HELPER_JIT_OPTIONS)
def coef_view(flat, net, layer):
    """Weights from layer ``layer`` to ``layer + 1`` (fan_in x fan_out view of flat)."""
    units, coef_off = net.units, net.coef_off
    a = coef_off[layer]
    return flat[a : a + units[layer] * units[layer + 1]].reshape(
        (units[layer], units[layer + 1])
    )


@njit(**HELPER_JIT_OPTIONS)
def icpt_view(flat, net, layer):
    """Bias of layer ``layer + 1`` (view of flat)."""
    units, icpt_off = net.units, net.icpt_off
    a = icpt_off[layer]
    return flat[a : a + units[layer + 1]]


@njit(**HELPER_JIT_OPTIONS)
def block_view(buf, net, layer, n):
    """The ``n x units[layer]`` block of layer ``layer >= 1`` in a workspace buffer."""
    units, act_off = net.units, net.act_off
    a = act_off[layer]
    return buf[a : a + n * units[layer]].reshape((n, units[layer]))


@njit(**HELPER_JIT_OPTIONS)
def gather_rows(X, rows, xbuf):
    """Copy rows ``rows`` of dense ``X`` into the head of ``xbuf``; return that view."""
    n = rows.shape[0]
    m = X.shape[1]
    out = xbuf[: n * m].reshape((n, m))
    for i in range(n):
        r = rows[i]
        for j in range(m):
            out[i, j] = X[r, j]
    return out


@njit(**HELPER_JIT_OPTIONS)
def csr_rows_dot(indptr, indices, data, rows, W, out):
    """``out = X[rows] @ W`` for CSR X, without densifying X."""
    n, m = out.shape
    for i in range(n):
        for j in range(m):
            out[i, j] = 0.0
        r = rows[i]
        for p in range(indptr[r], indptr[r + 1]):
            v = data[p]
            wrow = indices[p]
            for j in range(m):
                out[i, j] += v * W[wrow, j]


@njit(**HELPER_JIT_OPTIONS)
def forward_batch(params, net, X, Xsp, rows, act, xbuf, dact, drop, key, row0):
    """Forward pass of the rows ``rows`` of X.

    Writes every layer's activation into its block of ``act``; for dense X the gathered
    input rows are left in ``xbuf`` (the backward pass reads them). Returns the output
    block (n x n_outputs view of ``act``).

    Training passes a non-empty ``dact`` (layout of ``act``): each hidden layer's f'(z)
    is written there, and hidden layer ``l`` is dropped out with probability
    ``drop[l]`` (masks from ``key``, see ``dropout.batch_key``; ``drop`` None means no
    dropout; ``row0``: the first row's index in the minibatch, see ``dropout.apply``).
    Inference passes an empty ``dact``: no derivatives, no dropout.
    """
    n = rows.shape[0]
    Z = block_view(act, net, runtime(1), n)
    if Xsp is None:
        A0 = gather_rows(X, rows, xbuf)
        product(A0, coef_view(params, net, runtime(0)), Z, net.cols, net.small)
    else:
        csr_rows_dot(Xsp[0], Xsp[1], Xsp[2], rows, coef_view(params, net, runtime(0)), Z)
    return forward_layers(params, net, n, act, dact, drop, key, row0)


@njit(**HELPER_JIT_OPTIONS)
def forward_layers(params, net, n, act, dact, drop, key, row0):
    """The rest of the forward pass of ``n`` rows whose first product ``X W_0`` is in
    the first block of ``act`` (see ``forward_batch``): returns the output block."""
    units, act_fns = net.units, net.act_fns
    n_layers = units.shape[0]
    train = dact.shape[0] > 0
    Z = block_view(act, net, runtime(1), n)
    for layer in range(1, n_layers):
        if layer > 1:
            Z = block_view(act, net, layer, n)
            product(block_view(act, net, layer - 1, n), coef_view(params, net, layer - 1), Z,
                    net.cols, net.small)
        b = icpt_view(params, net, layer - 1)  # added by the activation, in its pass
        if train and layer < n_layers - 1:
            dZ = block_view(dact, net, layer, n)
            activations.call(act_fns[layer], Z, b, dZ)
            if drop is not None:  # compiled only for fits with dropout
                if drop.shape[0] > layer and drop[layer] > 0.0:
                    dropout.apply(Z, dZ, drop[layer], key, layer, row0)
        else:
            activations.call(act_fns[layer], Z, b, dact[:0].reshape((0, 0)))
    return Z
