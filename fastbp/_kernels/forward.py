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

from numba import njit, types
from numba.core import cgutils
from numba.core.imputils import impl_ret_borrowed
from numba.extending import intrinsic
from numba.np.arrayobj import populate_array

from .._config import HELPER_JIT_OPTIONS, INLINED_JIT_OPTIONS
from . import activations, dropout
from .blas import product
from .literals import runtime
from .unlinked import unlinked

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


# Views of the flat buffers: LLVM code emitted in their callers (intrinsics), not numba
# functions. As numba functions (slice + reshape), the three layer views were among the
# costliest compiles of a cold first fit: each one a module of its own, a call with
# ``Net``'s six arrays (42 scalars) at each of their 20 call sites, and numba's reshape
# lowered inline in each. See CONTRIBUTING, "Rules we keep" (compile time).


def _load_field(context, builder, net_type, net, name, index):
    """``net.<name>[index]`` (a 1-D C integer array of ``Net``) as an intp, in LLVM."""
    i = net_type.fields.index(name)
    array_type = net_type.types[i]
    array = context.make_array(array_type)(context, builder, builder.extract_value(net, i))
    ptr = builder.gep(array.data, [index])
    return context.cast(builder, builder.load(ptr), array_type.dtype, types.intp)


def _view(context, builder, flat_type, flat, start, dims, view_type):
    """The C-contiguous ``dims`` view of the 1-D C array ``flat`` from element ``start``
    (``flat[start : start + prod(dims)].reshape(dims)``). Raises ValueError unless
    every dimension is >= 0, ``0 <= start <= len(flat)`` and the view ends within
    ``flat`` (products checked for overflow): where a slice would have clipped or
    wrapped around, and reshape then refused the size or not (the bias view had no
    reshape), this refuses."""
    src = context.make_array(flat_type)(context, builder, flat)
    intp = context.get_value_type(types.intp)
    zero = intp(0)
    length = builder.extract_value(src.shape, 0)
    bad = builder.or_(builder.icmp_signed("<", start, zero),
                      builder.icmp_signed(">", start, length))
    size = intp(1)
    for d in dims:
        bad = builder.or_(bad, builder.icmp_signed("<", d, zero))
        product = builder.smul_with_overflow(size, d)
        bad = builder.or_(bad, builder.extract_value(product, 1))
        size = builder.extract_value(product, 0)
    bad = builder.or_(bad, builder.icmp_signed(">", size, builder.sub(length, start)))
    with builder.if_then(bad, likely=False):
        context.call_conv.return_user_exc(builder, ValueError,
                                          ("a view runs past its flat buffer",))
    return _c_view(context, builder, src, builder.gep(src.data, [start]), dims, view_type)


def _c_view(context, builder, src, data, dims, view_type):
    """A C-contiguous ``dims`` view of ``view_type`` at ``data``, sharing the array
    ``src``'s memory (its meminfo, a borrowed reference)."""
    strides = [src.itemsize]
    for d in reversed(dims[1:]):
        strides.insert(0, builder.mul(strides[0], d))
    view = context.make_array(view_type)(context, builder)
    populate_array(view, data=data, shape=cgutils.pack_array(builder, dims),
                   strides=cgutils.pack_array(builder, strides),
                   itemsize=src.itemsize, meminfo=src.meminfo, parent=src.parent)
    return impl_ret_borrowed(context, builder, view_type, view._getvalue())


def _flat(t):
    return isinstance(t, types.Array) and t.ndim == 1 and t.layout == "C"


@intrinsic
def flat_view(typingctx, flat, start, shape):
    """``flat[start : start + prod(shape)].reshape(shape)`` (``shape`` a tuple of
    integers), see ``_view``."""
    if not (_flat(flat) and isinstance(start, types.Integer)
            and isinstance(shape, types.BaseTuple) and len(shape) > 0
            and all(isinstance(t, types.Integer) for t in shape)):
        return None
    view_type = flat.copy(ndim=len(shape), layout="C")

    def codegen(context, builder, signature, args):
        flat_type, start_type, shape_type = signature.args
        start_v = context.cast(builder, args[1], start_type, types.intp)
        dims = [context.cast(builder, builder.extract_value(args[2], i), t, types.intp)
                for i, t in enumerate(shape_type)]
        return _view(context, builder, flat_type, args[0], start_v, dims, view_type)

    return view_type(flat, start, shape), codegen


@intrinsic
def raveled(typingctx, a):
    """The C-contiguous array ``a`` as a 1-D view (``a.reshape(-1)``)."""
    if not (isinstance(a, types.Array) and a.layout == "C"):
        return None
    view_type = a.copy(ndim=1, layout="C")

    def codegen(context, builder, signature, args):
        src = context.make_array(signature.args[0])(context, builder, args[0])
        return _c_view(context, builder, src, src.data, [src.nitems], view_type)

    return view_type(a), codegen


def _layer_view(name, start, units, rows):
    """The intrinsic ``name(flat, net, layer)`` (or ``name(flat, net, layer, n)`` with
    ``rows``): the view of ``flat`` from ``net.<start>[layer]``, shaped ``n`` (with
    ``rows``) then ``net.units[layer + o]`` for each o in ``units``."""

    def typer(flat, net, ints):
        if not (_flat(flat) and isinstance(net, types.BaseNamedTuple)
                and all(f in net.fields and _flat(net.types[net.fields.index(f)])
                        and isinstance(net.types[net.fields.index(f)].dtype, types.Integer)
                        for f in ("units", start))
                and all(isinstance(t, types.Integer) for t in ints)):
            return None
        view_type = flat.copy(ndim=len(ints) - 1 + len(units), layout="C")

        def codegen(context, builder, signature, args):
            flat_v, net_v, *values = args
            values = [context.cast(builder, v, t, types.intp)
                      for v, t in zip(values, signature.args[2:], strict=True)]
            layer_v = values[0]
            dims = values[1:] + [
                _load_field(context, builder, net, net_v, "units",
                            builder.add(layer_v, context.get_constant(types.intp, o)))
                for o in units]
            first = _load_field(context, builder, net, net_v, start, layer_v)
            return _view(context, builder, flat, flat_v, first, dims, view_type)

        return view_type(flat, net, *ints), codegen

    if rows:
        def view(typingctx, flat, net, layer, n):
            return typer(flat, net, (layer, n))
    else:
        def view(typingctx, flat, net, layer):
            return typer(flat, net, (layer,))
    view.__name__ = view.__qualname__ = name
    return intrinsic(view)


# coef_view(flat, net, layer): the weights from layer ``layer`` to ``layer + 1``, a
# fan_in x fan_out view of the flat parameters; icpt_view(flat, net, layer): the bias of
# layer ``layer + 1``; block_view(buf, net, layer, n): the ``n x units[layer]`` block of
# layer ``layer >= 1`` in a workspace buffer.
coef_view = _layer_view("coef_view", "coef_off", (0, 1), rows=False)
icpt_view = _layer_view("icpt_view", "icpt_off", (1,), rows=False)
block_view = _layer_view("block_view", "act_off", (0,), rows=True)


@njit(**INLINED_JIT_OPTIONS)
def gather_rows(X, rows, xbuf):
    """Copy rows ``rows`` of dense ``X`` into the head of ``xbuf``; return that view."""
    n = rows.shape[0]
    m = X.shape[1]
    out = flat_view(xbuf, 0, (n, m))
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


@unlinked
@njit(**HELPER_JIT_OPTIONS)
def forward_batch(params, net, X, Xsp, rows, act, xbuf, dact, drop, key, row0):
    """Forward pass of the rows ``rows`` of X.

    Writes every layer's activation into its block of ``act``; for dense X the gathered
    input rows are left in ``xbuf`` (the backward pass reads them). Returns the output
    block (n x n_outputs view of ``act``).

    Training passes a non-empty ``dact`` (layout of ``act``): each hidden layer's f'(z)
    is written there (but relu's without dropout: ``relu_from_output``), and hidden
    layer ``l`` is dropped out with probability ``drop[l]`` (masks from ``key``, see
    ``dropout.batch_key``; ``drop`` None means no dropout; ``row0``: the first row's
    index in the minibatch, see ``dropout.apply``).
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


@unlinked
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
        if train and layer < n_layers - 1 and not relu_from_output(net, drop, layer):
            dZ = block_view(dact, net, layer, n)
            activations.call(act_fns[layer], Z, b, dZ)
            if drop is not None:  # compiled only for fits with dropout
                if drop.shape[0] > layer and drop[layer] > 0.0:
                    dropout.apply(Z, dZ, drop[layer], key, layer, row0)
        else:
            activations.call(act_fns[layer], Z, b, flat_view(dact, 0, (0, 0)))
    return Z


@njit(**INLINED_JIT_OPTIONS)
def relu_from_output(net, drop, layer):
    """Whether hidden layer ``layer``'s f'(z) is read from its output in the backward
    pass (``backward.multiply``) instead of written by the forward pass: relu
    without dropout, whose f'(z) is 1 where the output is positive, 0 where it is 0 and
    NaN where it is NaN, as the activation writes it."""
    if net.act_codes[layer] != activations.RELU:
        return False
    if drop is not None:  # compiled only for fits with dropout
        if drop.shape[0] > layer and drop[layer] > 0.0:
            return False
    return True
