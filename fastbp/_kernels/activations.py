"""Activation functions and their derivatives, side by side, one compiled function each.

An activation works in place on the product ``Z`` (rows x units): it adds the layer's
bias ``b`` (relu and softmax in their own pass over the block, the others in a pass
before theirs) and, when given a non-empty ``dZ`` of the same shape, writes f'(z) there
in the same pass as the activation. The forward pass
keeps f'(z) of every hidden layer for the backward pass, which then only multiplies: one
rule for every activation, including those whose derivative cannot be recovered from the
output (gelu is not monotone), and dropout folds into the same buffer. The one exception
is relu without dropout, whose f'(z) the backward pass reads from its output (the same
factors: ``forward.relu_from_output``); the forward pass then passes an empty ``dZ``.

Each (activation, dtype) is a C callback of its own (``numba.cfunc``), compiled (or
loaded from numba's cache) the first time a network asks for its address
(``address``); the kernels call it through that address (``call``), which the network
description carries (``forward.Net.act_fns``). A kernel that selected the
activation by its code compiled all ten into every entry kernel, and numba optimises
and emits a callee's code again in each caller it is linked into: a first fit compiled
them about four times over. Measured on a cold first digits fit (float64, CPU, load
0.5): 10.4 s with the code switch, 8.6 s with relu and softmax alone; the call through
a pointer costs one indirect call per layer per batch.

Fixed constants (documented in the estimators): leaky_relu slope 0.01 (PyTorch's default),
elu alpha 1.0. gelu is the exact form z * Phi(z), not the tanh approximation.

logistic, tanh, elu, softplus, softmax and exp use ``vmath`` (vectorisable, at most
3 ulp): their loops run flat over the whole C-contiguous block, so LLVM vectorises them
however few units a row has. gelu still calls libm (erf has no vmath counterpart).
"""

import math

import numpy as np
from numba import carray, njit, types
from numba.core import cgutils
from numba.extending import intrinsic

from .._config import JIT_OPTIONS
from . import vmath
from .callbacks import CallbackTable, call_at
from .literals import larger
from .vectorwidth import wide

IDENTITY = 0
LOGISTIC = 1
TANH = 2
RELU = 3
SOFTMAX = 4  # output layer only (multiclass); its derivative is folded into the loss
EXP = 5  # output layer only (poisson log-link); likewise
LEAKY_RELU = 6
ELU = 7
SOFTPLUS = 8
GELU = 9

LEAKY_RELU_SLOPE = 0.01
ELU_ALPHA = 1.0
_INV_SQRT2 = 1.0 / math.sqrt(2.0)
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)

HIDDEN_CODES = {
    "identity": IDENTITY,
    "logistic": LOGISTIC,
    "tanh": TANH,
    "relu": RELU,
    "leaky_relu": LEAKY_RELU,
    "elu": ELU,
    "softplus": SOFTPLUS,
    "gelu": GELU,
}
OUTPUT_NAMES = {
    IDENTITY: "identity",
    LOGISTIC: "logistic",
    SOFTMAX: "softmax",
    EXP: "exp",
}


# ---------------------------------------------------------------------------------------
# The activations: one function per code, over the block as C pointers (the C signature
# of ``_signature``: Z, rows, units, the bias, dZ, whether dZ is written). The smooth
# ones walk it as one flat vector after the bias pass, so LLVM vectorises them however
# few units a row has.


@njit(**dict(JIT_OPTIONS, inline="always"))
def _flat(zp, n, m, bp, dp, grad):
    """``Z`` plus the bias (added here, a pass of its own) and ``dZ`` (empty unless
    ``grad``) as flat arrays over the C buffers."""
    Z, b = carray(zp, (n, m)), carray(bp, m)
    for i in range(n):
        for j in range(m):
            Z[i, j] += b[j]
    return carray(zp, n * m), carray(dp, n * m if grad else 0)


def _identity(zp, n, m, bp, dp, grad):
    wide()
    z, d = _flat(zp, n, m, bp, dp, grad)
    one = z.dtype.type(1.0)
    for t in range(d.shape[0]):
        d[t] = one


def _relu(zp, n, m, bp, dp, grad):
    """The bias added in the same pass (row by row, vectorised over the units): a
    separate bias pass before a flat loop cost 3% more of a 10,000-row float32 predict
    of digits' 64-unit model, one core."""
    wide()
    Z, b = carray(zp, (n, m)), carray(bp, m)
    D = carray(dp, (n if grad else 0, m))
    # Constants in Z's dtype: numba promotes float32 op float64 to float64 (see
    # optimizers), which would run a float32 network's activations in float64.
    zero, one = Z.dtype.type(0.0), Z.dtype.type(1.0)
    for i in range(n):
        for j in range(m):
            v = Z[i, j] + b[j]
            if v > zero:  # NaN fails both tests and propagates
                g = one
            elif v <= zero:
                v = zero
                g = zero
            else:
                g = v
            Z[i, j] = v
            if grad:
                D[i, j] = g


def _leaky_relu(zp, n, m, bp, dp, grad):
    z, d = _flat(zp, n, m, bp, dp, grad)
    zero, one = z.dtype.type(0.0), z.dtype.type(1.0)
    slope = z.dtype.type(LEAKY_RELU_SLOPE)
    for t in range(z.shape[0]):
        v = z[t]
        if v < zero:
            z[t] = slope * v
            g = slope
        else:
            g = one
        if grad:
            d[t] = g


def _logistic(zp, n, m, bp, dp, grad):
    wide()
    z, d = _flat(zp, n, m, bp, dp, grad)
    one = z.dtype.type(1.0)
    for t in range(z.shape[0]):
        a = vmath.logistic(z[t])
        z[t] = a
        if grad:
            d[t] = a * (one - a)


def _tanh(zp, n, m, bp, dp, grad):
    wide()
    z, d = _flat(zp, n, m, bp, dp, grad)
    one = z.dtype.type(1.0)
    for t in range(z.shape[0]):
        a = vmath.tanh(z[t])
        z[t] = a
        if grad:
            d[t] = one - a * a


def _elu(zp, n, m, bp, dp, grad):
    wide()
    z, d = _flat(zp, n, m, bp, dp, grad)
    zero, one = z.dtype.type(0.0), z.dtype.type(1.0)
    alpha = z.dtype.type(ELU_ALPHA)
    for t in range(z.shape[0]):
        v = z[t]
        # expm1 keeps the small-|z| values accurate; NaN takes the z >= 0 side
        z[t] = alpha * vmath.expm1(v) if v < zero else v
        if grad:
            d[t] = alpha * vmath.exp(v) if v < zero else one


def _softplus(zp, n, m, bp, dp, grad):
    wide()
    z, d = _flat(zp, n, m, bp, dp, grad)
    zero, one = z.dtype.type(0.0), z.dtype.type(1.0)
    for t in range(z.shape[0]):
        v = z[t]
        # log(1 + e^z) = max(z, 0) + log1p(e^-|z|): no overflow for large |z|
        e = vmath.exp(-abs(v))
        z[t] = larger(v, zero) + vmath.log1p(e)
        if grad:  # logistic(z), in its overflow-free form
            d[t] = (one if v >= zero else e) / (one + e)


def _gelu(zp, n, m, bp, dp, grad):
    z, d = _flat(zp, n, m, bp, dp, grad)
    cast = z.dtype.type
    half, one = cast(0.5), cast(1.0)
    inv_sqrt2, inv_sqrt_2pi = cast(_INV_SQRT2), cast(_INV_SQRT_2PI)
    for t in range(z.shape[0]):
        v = z[t]
        cdf = half * (one + math.erf(v * inv_sqrt2))  # libm: no vectorisable erf
        z[t] = v * cdf
        if grad:
            d[t] = cdf + v * inv_sqrt_2pi * math.exp(-half * v * v)


def _exp(zp, n, m, bp, dp, grad):
    """exp, an output activation: its derivative is part of the loss's delta."""
    wide()
    z = _flat(zp, n, m, bp, dp, 0)[0]
    for t in range(z.shape[0]):
        z[t] = vmath.exp(z[t])


def _softmax(zp, n, m, bp, dp, grad):
    """Row-wise softmax, an output activation (its derivative is part of the loss's
    delta): exp runs as one flat loop over the block, which LLVM vectorises; the row
    maxima and sums stay in row order. The bias is added, without a store, in the
    maxima's pass and again in the shift's (z + b) - max: storing z + b in the first
    pass made a 10,000-row float32 predict_proba slower than a bias pass of its own."""
    wide()
    Z, b = carray(zp, (n, m)), carray(bp, m)
    z = carray(zp, n * m)
    for i in range(n):
        zmax = Z[i, 0] + b[0]
        for j in range(1, m):
            v = Z[i, j] + b[j]
            if v > zmax:
                zmax = v
        for j in range(m):
            Z[i, j] = (Z[i, j] + b[j]) - zmax
    for t in range(z.shape[0]):
        z[t] = vmath.exp(z[t])
    for i in range(n):
        total = Z[i, 0]
        for j in range(1, m):
            total += Z[i, j]
        for j in range(m):
            Z[i, j] /= total


FUNCTIONS = {
    IDENTITY: _identity, LOGISTIC: _logistic, TANH: _tanh, RELU: _relu,
    SOFTMAX: _softmax, EXP: _exp, LEAKY_RELU: _leaky_relu, ELU: _elu,
    SOFTPLUS: _softplus, GELU: _gelu,
}


def _signature(dtype):
    ptr = types.CPointer(dtype)
    return types.void(ptr, types.intp, types.intp, ptr, ptr, types.intp)


_TABLE = CallbackTable(FUNCTIONS, _signature)
address, cached, loaded, warm = _TABLE.address, _TABLE.cached, _TABLE.loaded, _TABLE.warm


@intrinsic
def call(typingctx, fn, Z, b, dZ):
    """Apply the activation at address ``fn`` (``address``) to the C-contiguous 2-D
    block ``Z`` plus the bias ``b`` (one value per column) in place, writing f'(z) into
    ``dZ`` if it has rows (same shape). Output-only codes (softmax, exp) never write
    ``dZ``."""
    if not (isinstance(fn, types.Integer) and isinstance(Z, types.Array)
            and isinstance(b, types.Array) and isinstance(dZ, types.Array)
            and Z.ndim == 2 and b.ndim == 1 and dZ.ndim == 2
            and Z.layout == "C" and b.layout == "C" and dZ.layout == "C"
            and Z.dtype == b.dtype == dZ.dtype):
        return None
    sig = types.void(fn, Z, b, dZ)

    def codegen(context, builder, signature, args):
        address, z, bias, dz = args
        zary = context.make_array(signature.args[1])(context, builder, z)
        bary = context.make_array(signature.args[2])(context, builder, bias)
        dary = context.make_array(signature.args[3])(context, builder, dz)
        intp = context.get_value_type(types.intp)
        rows, units = cgutils.unpack_tuple(builder, zary.shape, 2)
        d_rows = builder.extract_value(dary.shape, 0)
        grad = builder.zext(builder.icmp_signed(">", d_rows, intp(0)), intp)
        c_signature = _signature(Z.dtype)
        ptr = c_signature.args[0]
        call_at(context, builder, c_signature, address,
                [zary.data, rows, units, bary.data, dary.data, grad],
                [ptr, types.intp, types.intp, ptr, ptr, types.intp])
        return context.get_dummy_value()

    return sig, codegen


@njit(**JIT_OPTIONS)
def _apply(Z, fn, b, dZ):
    call(fn, Z, b, dZ)


def activate(Z, code, dZ, b=None):
    """Activation ``code`` on the C-contiguous 2-D array ``Z`` plus the bias ``b``
    (default zeros) in place, f'(z) into a non-empty ``dZ``: what the kernels do, from
    Python (tests, the reference checks)."""
    b = np.zeros(Z.shape[1], dtype=Z.dtype) if b is None else b
    _apply(Z, address(code, Z.dtype), b, dZ)
