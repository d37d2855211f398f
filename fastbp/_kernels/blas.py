"""Matrix products for the kernels: ``matmul(A, B, C)`` writes ``A @ B`` into ``C``.

The same BLAS calls as numba's ``np.dot(A, B, C)`` (gemm; gemv or dot when a side is a
single row or column; zeros when a dimension is empty), so the same numbers, without
its compiled argument checks: every ``np.dot`` site compiled numba's shape checks and
their exception paths into each kernel, and the callers' shapes are right by
construction (offsets from ``fastbp._layout``).
"""

from numba import types
from numba.core import cgutils
from numba.extending import intrinsic
from numba.np import linalg

linalg.ensure_blas()


def _operand(t):
    return isinstance(t, types.Array) and t.ndim == 2 and t.layout in ("C", "F")


@intrinsic
def matmul(typingctx, a, b, out):
    """``out[:, :] = a @ b`` for 2-D float arrays, each C- or F-contiguous (``out`` C)."""
    if not (_operand(a) and _operand(b) and _operand(out) and out.layout == "C"
            and a.dtype == b.dtype == out.dtype
            and a.dtype in (types.float32, types.float64)):
        return None
    sig = types.void(a, b, out)

    def codegen(context, builder, signature, args):
        aty, bty, outty = signature.args
        x = context.make_array(aty)(context, builder, args[0])
        y = context.make_array(bty)(context, builder, args[1])
        z = context.make_array(outty)(context, builder, args[2])
        x_shapes = cgutils.unpack_tuple(builder, x.shape)
        y_shapes = cgutils.unpack_tuple(builder, y.shape)
        m, k = x_shapes
        n = y_shapes[1]
        zero = context.get_constant(types.intp, 0)
        one = context.get_constant(types.intp, 1)
        empty = builder.or_(builder.icmp_signed("==", k, zero),
                            builder.or_(builder.icmp_signed("==", m, zero),
                                        builder.icmp_signed("==", n, zero)))
        left_vec = builder.icmp_signed("==", m, one)
        right_vec = builder.icmp_signed("==", n, one)
        with builder.if_else(empty, likely=False) as (if_empty, if_not):
            with if_empty:
                cgutils.memset(builder, z.data, builder.mul(z.itemsize, z.nitems), 0)
            with if_not:
                with builder.if_else(right_vec) as (r_vec, r_mat):
                    with r_vec:
                        with builder.if_else(left_vec) as (v_v, m_v):
                            with v_v:
                                linalg.call_xxdot(context, builder, False, aty.dtype, k,
                                                  x.data, y.data, z.data)
                            with m_v:
                                linalg.call_xxgemv(context, builder, aty.layout == "C",
                                                   aty, x_shapes, x.data, y.data, z.data)
                    with r_mat:
                        with builder.if_else(left_vec) as (v_m, m_m):
                            with v_m:
                                linalg.call_xxgemv(context, builder, bty.layout != "C",
                                                   bty, y_shapes, y.data, x.data, z.data)
                            with m_m:
                                linalg.call_xxgemm(context, builder, aty, x_shapes, x.data,
                                                   bty, y_shapes, y.data, outty,
                                                   cgutils.unpack_tuple(builder, z.shape),
                                                   z.data)
        return context.get_dummy_value()

    return sig, codegen
