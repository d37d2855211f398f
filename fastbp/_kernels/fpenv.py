"""Subnormal numbers flushed to zero inside the float32 kernels (x86-64).

A float32 network's small numbers reach the subnormal range (below 1.2e-38) as training
converges: softmax probabilities of the wrong classes, their deltas and the gradients
built from them, Adam's squared gradients. An Intel core computes with a subnormal
operand or result through a microcode assist of a hundred cycles or more, in the matrix
products as in our own loops. Measured (digits, hidden (64,), batch 32, one core of a
shared 2-core Xeon with AVX-512; per epoch of a 200-epoch fit, scikit-learn's default
``max_iter``; five alternating processes, medians of 3 fits each): float32 3.9-5.2 ms
without the flush (1.6-2.7 ms over the first 20 epochs), 1.0-1.8 ms with it; float64
2.4-3.1 ms, the same code either way.

The float32 kernels therefore set the SSE control register's flush-to-zero and
denormals-are-zero bits (``FTZ_DAZ``) for their own duration, in the calling thread and
in every parallel task (each thread has its own register), and restore the caller's
value before they return: Python code, the user's callbacks and other libraries never
run with them (the kernels raise no exception between the two calls: numpy's error
model, and shapes right by construction). Every thread that computes for a kernel sets
them: fastbp's own tasks do, and BLAS runs on the calling thread, one thread per call,
under every fit and predict (``fastbp._threads``); a BLAS thread of its own would not
have them. numba's TBB layer happens to give each task the caller's register, which
hides a task that forgets to restore its thread's; its workqueue layer does not, which
is where the tests look. XLA, behind JAX, computes on the CPU with the same two bits
set, and PyTorch offers them (``torch.set_flush_denormal``). A float32 value under
1.2e-38 is then 0 in the kernels, whose float32 tolerance against scikit-learn is far
looser; the float64 kernels never touch the register (``_config.FLUSH_SUBNORMALS``), so
float64 results keep IEEE gradual underflow and stay exactly scikit-learn's.

On other architectures (arm64 among them) the two calls compile to nothing and nothing
is flushed.
"""

import platform

import numpy as np
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic
from numba.np.numpy_support import from_dtype

from .._config import FLUSH_SUBNORMALS

FTZ_DAZ = 0x8040  # MXCSR bits 15 (flush to zero) and 6 (denormals are zero)
X86 = platform.machine().lower() in ("x86_64", "amd64", "i386", "i686", "x86")
# numba's types of the dtypes whose kernels flush
_FLUSHED = tuple(from_dtype(np.dtype(d)) for d in FLUSH_SUBNORMALS)


def _csr_op(builder, name, slot):
    """Call LLVM's ``llvm.x86.sse.{ld,st}mxcsr`` on the 32-bit stack slot ``slot``."""
    i8p = ir.IntType(8).as_pointer()
    fn = cgutils.get_or_insert_function(
        builder.module, ir.FunctionType(ir.VoidType(), [i8p]), f"llvm.x86.sse.{name}")
    builder.call(fn, [builder.bitcast(slot, i8p)])


@intrinsic
def enter(typingctx, a):
    """Flush subnormals from here on in this thread if ``a``'s dtype is one of
    ``FLUSH_SUBNORMALS``; returns what ``leave`` needs to restore the caller's mode
    (the register's previous value, or -1: nothing was changed)."""
    if not isinstance(a, types.Array):
        return None
    flush = X86 and a.dtype in _FLUSHED
    i32, i64 = ir.IntType(32), ir.IntType(64)

    def codegen(context, builder, signature, args):
        if not flush:
            return ir.Constant(i64, -1)
        slot = cgutils.alloca_once(builder, i32)
        _csr_op(builder, "stmxcsr", slot)
        old = builder.load(slot)
        builder.store(builder.or_(old, ir.Constant(i32, FTZ_DAZ)), slot)
        _csr_op(builder, "ldmxcsr", slot)
        return builder.zext(old, i64)

    return types.int64(a), codegen


@intrinsic
def leave(typingctx, state):
    """Restore the mode that ``enter`` returned ``state`` for (nothing if -1)."""
    if not isinstance(state, types.Integer):
        return None
    i32 = ir.IntType(32)

    def codegen(context, builder, signature, args):
        if X86:
            (value,) = args
            slot = cgutils.alloca_once(builder, i32)
            with builder.if_then(builder.icmp_signed(">=", value,
                                                     ir.Constant(value.type, 0))):
                builder.store(builder.trunc(value, i32), slot)
                _csr_op(builder, "ldmxcsr", slot)
        return context.get_dummy_value()

    return types.void(state), codegen


@intrinsic
def mode(typingctx):
    """This thread's SSE control register (0 off x86): for the tests."""
    i32 = ir.IntType(32)

    def codegen(context, builder, signature, args):
        if not X86:
            return ir.Constant(ir.IntType(64), 0)
        slot = cgutils.alloca_once(builder, i32)
        _csr_op(builder, "stmxcsr", slot)
        return builder.zext(builder.load(slot), ir.IntType(64))

    return types.int64(), codegen
