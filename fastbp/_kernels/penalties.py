"""The penalty terms of a minibatch's step: the weights' norms for the reported loss,
and, where the optimizer's rule cannot fold them in, the finished gradient. One C
callback per (code, dtype), called by address, as the losses and the rules are.

- ``IN_STEP``: the squared L2 norm of the weights only. The rule adds the L2 term and
  divides by the weight sum as it steps (``form = (1, n_coefs, alpha, sw_sum)``, see
  ``optimizers``), which saves a pass over the parameters.
- ``FINISH``: the gradient finished here (``finalize_gradient``: the L1 and L2 terms,
  the division by the weight sum), the two norms, and with ``max_norm`` > 0 the factor
  that clips the finished gradient's global norm to it (``form = (gscale, n_coefs, 0,
  1)``). Clipping needs the whole final gradient's norm before the step, and the L1
  term has no place in the rule's form; L-BFGS's objective needs the gradient itself.

``train.finish_code`` picks one for a fit's settings. As callbacks, neither is compiled with the
epoch kernels: a first fit compiles ``IN_STEP`` alone, in the callbacks' process while
the kernel compiles (``fastbp._compile_ahead``), and ``FINISH`` waits for the first fit
that clips, has an L1 penalty or runs L-BFGS. Compiled into the epochs, the finishing
pass cost every first fit 0.22-0.27 s of CPU per dtype on the Intel machine (CONTRIBUTING).
"""

import math

import numpy as np
from numba import carray, njit, types
from numba.extending import intrinsic

from .._config import HELPER_JIT_OPTIONS, JIT_OPTIONS
from .callbacks import CallbackTable, call_for_results
from .vectorwidth import wide

IN_STEP = 0
FINISH = 1
CODES = {"in_step": IN_STEP, "finish": FINISH}
# the callback's results, in the order of ``call``'s tuple
N_OUT = 5  # (gscale, form's alpha, form's total, sq, l1_norm)


# The one kernel allowed to reassociate (see _config.FASTMATH): a sum of squares kept
# for the reported loss and for gradient clipping, accumulated in float64. Reassociated,
# LLVM sums it in SIMD lanes: measured 3.6 us instead of 16 us for 58,000 float32 weights
# on the AMD machine (8 hand-written partial sums stayed scalar); in 512-bit lanes
# (``vectorwidth``) 6.8-7.7 against 9.7-10.0 us in 256-bit ones on the Intel one. The
# lanes depend only on the compiled code, so the result is the same on every run on a
# given machine; between machines it may differ in the last bits, which no parity test
# can see.
_REASSOC_OPTIONS = dict(HELPER_JIT_OPTIONS, fastmath=JIT_OPTIONS["fastmath"] | {"reassoc"})


@njit(**_REASSOC_OPTIONS)
def sum_of_squares(a, n):
    """``sum(a[:n] ** 2)`` in float64 (float32 entries widened first)."""
    wide()
    s = 0.0
    for j in range(n):
        x = np.float64(a[j])
        s += x * x
    return s


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


# ---------------------------------------------------------------------------------------
# The callbacks: (params, grads, n, n_coefs, alpha, l1, sw_sum, max_norm, out); params and
# grads pointers to n entries of the network's dtype, ``out`` to N_OUT float64.


def _callback(code):
    """The C callback body of ``code`` (a constant: numba compiles only its branch)."""

    def finish(pp, gp, n, n_coefs, alpha, l1, sw_sum, max_norm, outp):
        params, out = carray(pp, n), carray(outp, N_OUT)
        if code == IN_STEP:
            out[0], out[1], out[2] = 1.0, alpha, sw_sum
            out[3], out[4] = sum_of_squares(params, n_coefs), 0.0
        else:
            sq, l1_norm, grad_sq = finalize_gradient(params, carray(gp, n), n_coefs, alpha,
                                                     l1, sw_sum, max_norm > 0.0)
            gscale = 1.0
            if max_norm > 0.0 and grad_sq > max_norm * max_norm:
                gscale = max_norm / math.sqrt(grad_sq)
            out[0], out[1], out[2], out[3], out[4] = gscale, 0.0, 1.0, sq, l1_norm

    return finish


def _signature(dtype):
    ptr, f8, i8 = types.CPointer(dtype), types.float64, types.int64
    return types.void(ptr, ptr, types.intp, i8, f8, f8, f8, f8, types.CPointer(f8))


_TABLE = CallbackTable({c: _callback(c) for c in CODES.values()}, _signature)
address, cached, loaded, warm = _TABLE.address, _TABLE.cached, _TABLE.loaded, _TABLE.warm


@intrinsic
def call(typingctx, fn, params, grads, n_coefs, alpha, l1, sw_sum, max_norm):
    """Run the finishing pass at address ``fn`` (``address``) over ``params`` and
    ``grads`` (1-D, C-contiguous, one dtype): ``(gscale, alpha, total, sq, l1_norm)``,
    the entries of the step's ``form`` but its ``n_coefs``, then the weights' squared
    L2 and L1 norms (the module docstring)."""
    if not (isinstance(fn, types.Integer)
            and all(isinstance(a, types.Array) and a.ndim == 1 and a.layout == "C"
                    and a.dtype == params.dtype for a in (params, grads))):
        return None
    f8 = types.float64
    sig = types.UniTuple(f8, N_OUT)(fn, params, grads, n_coefs, alpha, l1, sw_sum, max_norm)

    def codegen(context, builder, signature, args):
        address, p, g = args[:3]
        pary, gary = (context.make_array(ty)(context, builder, v)
                      for ty, v in zip(signature.args[1:3], (p, g), strict=True))
        n = builder.extract_value(pary.shape, 0)
        c_signature = _signature(params.dtype)
        ptr = c_signature.args[0]
        values = call_for_results(context, builder, c_signature, address,
                                  [pary.data, gary.data, n, *args[3:]],
                                  [ptr, ptr, types.intp, *signature.args[3:]], N_OUT)
        return context.make_tuple(builder, signature.return_type, values)

    return sig, codegen


@njit(**JIT_OPTIONS)
def _apply(fn, params, grads, n_coefs, alpha, l1, sw_sum, max_norm):
    return call(fn, params, grads, n_coefs, alpha, l1, sw_sum, max_norm)


def apply(code, params, grads, n_coefs, alpha, l1, sw_sum, max_norm):
    """The finishing pass ``code`` through its C callback, as the kernels call it: from
    Python (tests)."""
    return _apply(address(code, params.dtype), params, grads, n_coefs, alpha, l1, sw_sum,
                  max_norm)
