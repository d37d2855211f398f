"""Plain-Python glue between validated data and the kernels: array preparation and the
buffers allocated once per fit."""

import functools

import numpy as np
import scipy.sparse as sp

from ._config import CHUNK_ROWS
from ._kernels.forward import Net
from ._layout import bind_activations


def readonly(a):
    """A read-only view: every kernel argument that is only read is passed this way, so
    one compiled specialisation serves both writable arrays and read-only ones (joblib
    memmaps, arrays from ``np.broadcast_to``) instead of compiling twice."""
    v = a.view()
    v.flags.writeable = False
    return v


def native(a, dtype):
    """C-contiguous, native byte order, given dtype (a copy only when needed).

    A value beyond the range of ``dtype`` (float64 into a float32 network) becomes +-inf
    without a RuntimeWarning: every caller checks finiteness after the cast and raises
    an error that names the argument, which the warning would only have preceded.
    """
    if type(a) is np.ndarray and a.dtype == dtype and a.flags.c_contiguous:
        return a  # the common case, checked at a third of the general call's cost
    with np.errstate(over="ignore"):
        return np.ascontiguousarray(a, dtype=np.dtype(dtype).newbyteorder("="))


def kernel_X(X, dtype):
    """Split validated X into the kernels' ``(X_dense, (indptr, indices, data))``.

    Dense X comes with the CSR triple None, sparse X with an empty dense array. CSC
    input is converted to CSR once.
    """
    if type(X) is not np.ndarray and sp.issparse(X):
        X = X.tocsr()
        data = _in_range(X.data, native(X.data, dtype))
        Xsp = (
            readonly(native(X.indptr, np.int64)),
            readonly(native(X.indices, np.int64)),
            readonly(data),
        )
        Xd = readonly(np.empty((0, 0), dtype=dtype))
        return Xd, Xsp
    return readonly(_in_range(X, native(X, dtype))), no_sparse()


def _in_range(values, cast):
    """``cast``, after checking that narrowing ``values`` to its dtype made no infinity
    (infinities already in ``values`` are left for the callers' finiteness checks, which
    name them as such)."""
    if (
        cast.dtype.itemsize < values.dtype.itemsize
        and not np.isfinite(cast).all()
        and np.isfinite(values).all()
    ):
        raise ValueError(
            f"X has values beyond the range of {cast.dtype}, the network's dtype (set by "
            "X's on the first fit); scale X or train in float64."
        )
    return cast


def no_sparse():
    """The CSR triple of dense X, in any dtype: None, which the kernels type apart from
    a triple, so that a dense fit does not compile the sparse products."""
    return None


def chunk_rows(n):
    """Rows per chunk when a kernel walks ``n`` rows (L-BFGS' full passes, validation,
    predict): at most ``CHUNK_ROWS``, at least 1."""
    return max(1, min(n, CHUNK_ROWS))


def kernel_rows(n):
    """Row indices ``0 .. n-1``, read-only."""
    return _few_rows(n) if n <= 64 else readonly(np.arange(n, dtype=np.int64))


@functools.lru_cache(maxsize=8)
def _few_rows(n):
    # shared (read-only): a small predict asks for the same sizes again and again
    return readonly(np.arange(n, dtype=np.int64))


def no_dropout():
    """The dropout rates the kernels take when nothing is dropped: None, which they
    type apart from a rate vector, so that such a fit does not compile the masks."""
    return None


class Workspace:
    """Buffers for batches of up to ``rows`` rows: activations, deltas, gathered input
    rows and, for training, each hidden layer's f'(z) (``dact``; empty for inference;
    relu's layers without dropout leave their block unwritten, see
    ``_kernels.forward.relu_from_output``).

    With ``slots`` each buffer is 2-D, one such workspace per row: the blocks of a
    minibatch or the chunks in flight of the parallel kernels (``_kernels.parallel``).
    ``bind=False`` leaves the activations' addresses in ``net`` 0 until ``bind`` writes
    them (a cold fit binds them after its kernel compiled: ``_compile_ahead``); no
    kernel may take it before.
    """

    def __init__(self, layout, act_codes, rows, dtype, dense, train=True, slots=None,
                 cols=None, bind=True):
        self.rows = rows
        self.dtype = np.dtype(dtype)
        self.dense = dense
        self.train = train
        self.slots = slots
        self.net, size = layout.net(rows, act_codes, dtype, cols, bind=bind)
        self.bound = bind
        lead = () if slots is None else (slots,)
        self.act = np.empty((*lead, size), dtype=dtype)
        self.delta = np.empty((*lead, size), dtype=dtype)
        self.dact = np.empty((*lead, size if train else 0), dtype=dtype)
        self.xbuf = np.empty((*lead, rows * int(layout.units[0]) if dense else 0), dtype=dtype)

    def bind(self):
        """Write the activations' addresses into ``net`` if they are not there yet."""
        if not self.bound:
            bind_activations(self.net, self.dtype)
            self.bound = True

    def fits(self, layout, rows, dtype, dense, act_codes, slots=None, cols=None):
        """Whether these buffers serve ``layout`` (same layer sizes) for such batches."""
        net = Net(*self.net)
        return (
            self.train
            and self.slots == slots
            and net.cols == cols
            and np.array_equal(net.units, layout.units)
            and self.rows >= rows
            and self.dtype == dtype
            and self.dense == dense
            and np.array_equal(net.act_codes, act_codes)
        )
