"""Matrix products for the kernels: ``product(A, B, C, cols, small)`` writes ``A @ B``
into ``C`` (``matmul_small``, or ``matmul_columns`` for column tasks).

A whole product makes the BLAS call numba's ``np.dot(A, B, C)`` makes (gemm; gemv or
dot when a side is a single row or column; zeros when a dimension is empty), without
its compiled argument checks: every ``np.dot`` site compiled numba's shape checks and
their exception paths into each kernel, and the callers' shapes are right by
construction (offsets from ``fastbp._layout``). The calls go to the symbols
``fastbp_{s,d}{gemm,gemm_small,gemv,dot}`` (Fortran BLAS interface), which
``fastbp._blas`` binds to the library of the process's choice (scipy's BLAS, the one
``np.dot`` calls, by default; oneMKL on request) before any kernel is compiled or
loaded; gemms of at most ``_blas.SMALL_GEMM`` multiply-adds call ``gemm_small``.
"""

from llvmlite import ir
from numba import njit, prange, types
from numba.core import cgutils
from numba.extending import intrinsic

from .. import _blas
from .._config import HELPER_JIT_OPTIONS
from . import fpenv
from .literals import smaller
from .unlinked import unlinked

_blas.bind()

_CHAR = ir.IntType(8)
_INT = ir.IntType(32)  # the Fortran interface's integers (LP64)
_VOID_P = ir.IntType(8).as_pointer()


def _operand(t):
    return isinstance(t, types.Array) and t.ndim == 2 and t.layout in ("C", "F")


def _operands(context, builder, array_types, values):
    """numba's array structures of the intrinsic's array arguments."""
    return [context.make_array(t)(context, builder, v)
            for t, v in zip(array_types, values, strict=True)]


def _kind(dtype):
    return "s" if dtype == types.float32 else "d"


def _by_address(builder, value, ty):
    """A stack slot (in the function's entry block) holding ``value`` as ``ty``."""
    if isinstance(ty, ir.IntType) and value.type != ty:
        value = builder.trunc(value, ty)
    return cgutils.alloca_once_value(builder, value)


def _blas_call(context, builder, dtype, routine, args):
    """Call ``fastbp_<kind><routine>`` (``routine`` as ``fastbp._blas`` names them) with
    ``args``: ("char", v), ("int", v), ("one",), ("zero",) (the scalars, passed by
    address) or ("ptr", v) (data, as is). Returns the call's value (dot's result;
    nothing for the others)."""
    values, types_ = [], []
    for arg in args:
        tag = arg[0]
        if tag == "ptr":
            values.append(builder.bitcast(arg[1], _VOID_P))
        elif tag in ("one", "zero"):
            const = context.get_constant_generic(builder, dtype, 1.0 if tag == "one" else 0.0)
            values.append(builder.bitcast(cgutils.alloca_once_value(builder, const), _VOID_P))
        else:
            values.append(_by_address(builder, arg[1], _CHAR if tag == "char" else _INT))
        types_.append(values[-1].type)
    result = context.get_value_type(dtype) if routine == "dot" else ir.VoidType()
    fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(result, types_),
                                        f"fastbp_{_kind(dtype)}{routine}")
    return builder.call(fn, values)


def _char(c):
    return ("char", ir.Constant(_CHAR, ord(c)))


def _lower_matmul(context, builder, aty, bty, outty, x, y, z):
    """``z = x @ y`` as numba's ``np.dot`` calls BLAS (gemm, gemv or dot by shape, with
    its arguments; zeros for an empty product)."""
    x_shapes = cgutils.unpack_tuple(builder, x.shape)
    y_shapes = cgutils.unpack_tuple(builder, y.shape)
    m, k = x_shapes
    n = y_shapes[1]
    dtype = aty.dtype
    zero = context.get_constant(types.intp, 0)
    one = context.get_constant(types.intp, 1)
    empty = builder.or_(builder.icmp_signed("==", k, zero),
                        builder.or_(builder.icmp_signed("==", m, zero),
                                    builder.icmp_signed("==", n, zero)))
    left_vec = builder.icmp_signed("==", m, one)
    right_vec = builder.icmp_signed("==", n, one)

    def gemv(trans, mat_type, mat_shapes, mat, vec):  # out = mat @ vec, or mat.T @ vec
        rows, cols = mat_shapes if mat_type.layout == "F" else mat_shapes[::-1]
        _blas_call(context, builder, dtype, "gemv", [
            _char("t" if trans else "n"), ("int", rows), ("int", cols), ("one",),
            ("ptr", mat), ("int", rows), ("ptr", vec), ("int", one), ("zero",),
            ("ptr", z.data), ("int", one)])

    with builder.if_else(empty, likely=False) as (if_empty, if_not):
        with if_empty:
            cgutils.memset(builder, z.data, builder.mul(z.itemsize, z.nitems), 0)
        with if_not:
            with builder.if_else(right_vec) as (r_vec, r_mat):
                with r_vec:
                    with builder.if_else(left_vec) as (v_v, m_v):
                        with v_v:
                            builder.store(_blas_call(context, builder, dtype, "dot", [
                                ("int", k), ("ptr", x.data), ("int", one), ("ptr", y.data),
                                ("int", one)]), z.data)
                        with m_v:
                            gemv(aty.layout == "C", aty, x_shapes, x.data, y.data)
                with r_mat:
                    with builder.if_else(left_vec) as (v_m, m_m):
                        with v_m:
                            gemv(bty.layout != "C", bty, y_shapes, y.data, x.data)
                        with m_m:
                            _lower_gemm(context, builder, aty, bty, x, y, z, zero, n)


def _products(a, b, out):
    return (_operand(a) and _operand(b) and _operand(out) and out.layout == "C"
            and a.dtype == b.dtype == out.dtype
            and a.dtype in (types.float32, types.float64))


def _lower_gemm(context, builder, aty, bty, x, y, z, lo, hi):
    """One gemm call for ``z[:, lo:hi] = x @ y[:, lo:hi]`` (the whole product for 0, n),
    the columns read and written in place through BLAS's leading dimensions."""
    m, k = cgutils.unpack_tuple(builder, x.shape)
    n = cgutils.unpack_tuple(builder, y.shape)[1]
    # BLAS is column-major: the row-major out^T (n x m) = b^T a^T, as numba's np.dot
    if bty.layout == "C":  # b's columns lo..hi start at lo, rows n apart
        transb, ldb, offb = "n", n, lo
    else:  # F: column lo starts at lo * k, columns k apart
        transb, ldb, offb = "t", k, builder.mul(lo, k)
    transa, lda = ("n", k) if aty.layout == "C" else ("t", m)
    cols = builder.sub(hi, lo)
    args = [_char(transb), _char(transa), ("int", cols), ("int", m), ("int", k), ("one",),
            ("ptr", builder.gep(y.data, [offb])), ("int", ldb), ("ptr", x.data),
            ("int", lda), ("zero",), ("ptr", builder.gep(z.data, [lo])), ("int", n)]
    # products of at most SMALL_GEMM multiply-adds call gemm_small (fastbp._blas)
    size = builder.mul(builder.mul(cols, m), k)
    small = builder.icmp_signed("<=", size, ir.Constant(size.type, _blas.SMALL_GEMM))
    with builder.if_else(small) as (few, many):
        with few:
            _blas_call(context, builder, aty.dtype, "gemm_small", args)
        with many:
            _blas_call(context, builder, aty.dtype, "gemm", args)


@intrinsic
def matmul_part(typingctx, a, b, out, lo, hi):
    """``out[:, lo:hi] = a @ b[:, lo:hi]`` by one gemm call, the columns read and written
    in place through BLAS's leading dimensions (2-D float arrays, each C- or
    F-contiguous, ``out`` C; every size at least 1)."""
    if not (_products(a, b, out)
            and isinstance(lo, types.Integer) and isinstance(hi, types.Integer)):
        return None
    sig = types.void(a, b, out, types.intp, types.intp)

    def codegen(context, builder, signature, args):
        aty, bty, outty = signature.args[:3]
        x, y, z = _operands(context, builder, signature.args[:3], args[:3])
        _lower_gemm(context, builder, aty, bty, x, y, z, args[3], args[4])
        return context.get_dummy_value()

    return sig, codegen


@njit(**dict(HELPER_JIT_OPTIONS, parallel=True))
def matmul_columns(a, b, out, cols):
    """``out[:, :] = a @ b`` as one gemm per ``cols`` columns of ``out`` (the last may
    be narrower), a task each: a decomposition fixed by the shapes, never by the thread
    count, and no sum is split (each entry is one gemm's dot product over all of ``a``'s
    columns). ``a`` and ``out`` have at least one row."""
    n = out.shape[1]
    for c in prange((n + cols - 1) // cols):
        fp = fpenv.enter(out)  # each task's thread (see fpenv)
        lo = c * cols
        matmul_part(a, b, out, lo, smaller(lo + cols, n))
        fpenv.leave(fp)


# OpenBLAS's small-matrix gemm (its SkylakeX kernels, which Zen4 runs too) multiplies
# without packing, at most ``small`` multiply-adds a call (``Net.small``, from
# ``fastbp._threads.small_products``); with BLAS's A transposed and its B not (in
# column-major terms; our ``b`` F-ordered and ``a`` C: ``D @ W.T``), only while the
# call's output has at most TN_OUTPUT entries and its inner dimension at least TN_INNER.
# Chunks are multiples of SMALL_COLS columns.
TN_OUTPUT = 1200
TN_INNER = 32
SMALL_COLS = 16


def _small_width(builder, m, k, n, tn, small):
    """``small_width``'s value as LLVM integer code (``tn`` an i1)."""
    intp = m.type

    def const(value):
        return ir.Constant(intp, value)

    def at_least_one(value):  # a divisor: 1 where the result is not used anyway
        return builder.select(builder.icmp_signed(">", value, const(0)), value, const(1))

    def ceil_div(a, b):
        return builder.sdiv(builder.add(a, builder.sub(b, const(1))), b)

    def le(a, b):
        return builder.icmp_signed("<=", a, b)

    mk = builder.mul(m, k)
    fits = le(builder.mul(mk, n), small)
    widest = builder.sdiv(small, at_least_one(mk))
    tn_widest = builder.sdiv(const(TN_OUTPUT), at_least_one(m))
    widest = builder.select(builder.and_(tn, builder.icmp_signed("<", tn_widest, widest)),
                            tn_widest, widest)
    fits = builder.and_(fits, builder.or_(builder.not_(tn),
                                          le(builder.mul(m, n), const(TN_OUTPUT))))
    widest = builder.sub(widest, builder.srem(widest, const(SMALL_COLS)))
    calls = ceil_div(n, at_least_one(widest))
    width = ceil_div(n, at_least_one(calls))
    width = builder.add(width, builder.srem(builder.sub(const(SMALL_COLS), builder.srem(
        width, const(SMALL_COLS))), const(SMALL_COLS)))
    whole = fits
    for cond in (le(small, const(0)), le(m, const(1)), le(n, const(1)),
                 builder.icmp_signed("==", k, const(0)), le(widest, const(0)),
                 le(calls, const(1)),
                 builder.and_(tn, builder.icmp_signed("<", k, const(TN_INNER)))):
        whole = builder.or_(whole, cond)
    return builder.select(whole, n, width)


@intrinsic
def small_width(typingctx, m, k, n, tn, small):
    """Columns per gemm call of ``out (m x n) = a (m x k) @ b (k x n)``: ``n`` (one
    call) when the whole product runs through BLAS's small-matrix kernels already, when
    no chunk of SMALL_COLS columns or more would (or ``small`` is 0: none), or for a
    matrix-vector product; else the fewest calls that do, each a multiple of
    SMALL_COLS wide but the last. ``tn``: ``b`` F-ordered and ``a`` C (BLAS's
    transposed-A call).

    LLVM integer code (``matmul_small`` emits the same), not a numba function:
    compiled as one, with its callers, it cost a cold first digits fit 0.5 s more (CPU,
    2 fresh processes each: 5.96-6.12 against 5.37-5.57 s).

    Measured, float32, one core, OpenBLAS 0.3.30 SkylakeX (us per product, one call
    against chunks): (32 x 256) @ (256 x 128) 29.4 against 18.0, its weight gradient
    25.4 against 19.1, (32 x 128) @ (128 x 256)^T 29.7 against 22.1; at 200 rows
    (200 x 100) @ (100 x 256) 105.6 against 90.5 and (200 x 256) @ (256 x 128) 134.9
    against 114.9. Chunks too large for the small kernels were 2-8% slower than one
    call."""
    if not (all(isinstance(t, types.Integer) for t in (m, k, n, small))
            and isinstance(tn, types.Boolean)):
        return None
    sig = types.intp(types.intp, types.intp, types.intp, types.boolean, types.intp)

    def codegen(context, builder, signature, args):
        return _small_width(builder, *args)

    return sig, codegen


@intrinsic
def matmul_small(typingctx, a, b, out, small):
    """``out[:, :] = a @ b``: one call as numba's ``np.dot`` makes it (gemm, gemv or dot
    by shape; ``small`` 0 always takes it), or one gemm per ``small_width`` columns
    for BLAS's small-matrix kernels (``small``, ``Net.small``), each entry still one dot
    product over all of ``a``'s columns. LLVM code throughout: with the loop as numba
    code around the width and gemm intrinsics, a cold first digits fit compiled for
    5.62-5.99 s of CPU (median 5.81), against 5.48-6.70 (5.54) now and 5.37-5.80
    (5.66) before the cut (5 interleaved fresh processes each, load under 1)."""
    if not (_products(a, b, out) and isinstance(small, types.Integer)):
        return None
    sig = types.void(a, b, out, types.intp)

    def codegen(context, builder, signature, args):
        aty, bty, outty = signature.args[:3]
        x, y, z = _operands(context, builder, signature.args[:3], args[:3])
        if bty.layout == "F" and aty.layout == "F":  # no caller multiplies F @ F: not cut
            _lower_matmul(context, builder, aty, bty, outty, x, y, z)
            return context.get_dummy_value()
        m, k = cgutils.unpack_tuple(builder, x.shape)
        n = cgutils.unpack_tuple(builder, y.shape)[1]
        tn = ir.Constant(ir.IntType(1), int(bty.layout == "F" and aty.layout == "C"))
        width = _small_width(builder, m, k, n, tn, args[3])
        with builder.if_else(builder.icmp_signed(">=", width, n)) as (whole, cut):
            with whole:
                _lower_matmul(context, builder, aty, bty, outty, x, y, z)
            with cut:
                zero = context.get_constant(types.intp, 0)
                with cgutils.for_range_slice(builder, zero, n, width) as (lo, _):
                    end = builder.add(lo, width)
                    hi = builder.select(builder.icmp_signed("<", end, n), end, n)
                    _lower_gemm(context, builder, aty, bty, x, y, z, lo, hi)
        return context.get_dummy_value()

    return sig, codegen


@unlinked
@njit(**HELPER_JIT_OPTIONS)
def product(a, b, out, cols, small):
    """``out[:, :] = a @ b`` in compiled code: ``matmul_small`` (``small``: the
    network's ``Net.small``), or ``matmul_columns`` when ``cols`` (its ``Net.cols``) is
    an integer rather than None; numba drops the other branch while typing (``cols`` is
    an argument), so a network without column tasks compiles no parallel product.

    Called unlinked (``unlinked``): one compiled product per signature, which every
    kernel calls instead of holding a copy."""
    if cols is None:
        matmul_small(a, b, out, small)
    else:
        matmul_columns(a, b, out, cols)
