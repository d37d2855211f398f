"""Activation functions and their derivatives, side by side, selected by integer code.

``activate`` works in place on the pre-activation ``Z`` (rows x units) and, when given a
non-empty ``dZ`` of the same shape, writes f'(z) there in the same pass. The forward pass
keeps f'(z) of every hidden layer for the backward pass, which then only multiplies: one
rule for every activation, including those whose derivative cannot be recovered from the
output (gelu is not monotone), and dropout folds into the same buffer.

Fixed constants (documented in the estimators): leaky_relu slope 0.01 (PyTorch's default),
elu alpha 1.0. gelu is the exact form z * Phi(z), not the tanh approximation.

logistic, tanh, elu, softplus, softmax and exp use ``vmath`` (vectorisable, at most
3 ulp): their loops run flat over the whole C-contiguous block, so LLVM vectorises them
however few units a row has. gelu still calls libm (erf has no vmath counterpart).
"""

import math

from numba import njit

from .._config import JIT_OPTIONS
from . import vmath

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


@njit(**JIT_OPTIONS)
def activate(Z, code, dZ):
    """Apply activation ``code`` to the 2-D array ``Z`` in place.

    If ``dZ`` is non-empty (same shape as ``Z``) it receives f'(z). Output-only codes
    (softmax, exp) never write ``dZ``: their derivative is part of the loss's delta.
    ``Z`` and ``dZ`` are C-contiguous (workspace blocks and row ranges of them are): the
    smooth activations walk them as flat vectors, and a strided view does not compile.
    """
    if code == SOFTMAX or code == EXP:
        _output_only(Z, code)
    elif code == IDENTITY or code == RELU or code == LEAKY_RELU:
        _piecewise_linear(Z, code, dZ)
    else:
        _smooth(Z, code, dZ)


@njit(**JIT_OPTIONS)
def _piecewise_linear(Z, code, dZ):
    """identity, relu, leaky_relu in place; f'(z) into a non-empty ``dZ``."""
    n, m = Z.shape
    grad = dZ.shape[0] > 0
    # Constants in Z's dtype: numba promotes float32 op float64 to float64 (see
    # optimizers), which would run a float32 network's activations in float64.
    cast = Z.dtype.type
    zero, one = cast(0.0), cast(1.0)
    if code == IDENTITY:
        if grad:
            dZ[:, :] = one
    elif code == RELU:
        for i in range(n):
            for j in range(m):
                z = Z[i, j]
                if z > zero:  # NaN fails both tests and propagates
                    d = one
                elif z <= zero:
                    Z[i, j] = zero
                    d = zero
                else:
                    d = z
                if grad:
                    dZ[i, j] = d
    else:  # LEAKY_RELU
        slope = cast(LEAKY_RELU_SLOPE)
        for i in range(n):
            for j in range(m):
                z = Z[i, j]
                if z < zero:
                    Z[i, j] = slope * z
                    d = slope
                else:
                    d = one
                if grad:
                    dZ[i, j] = d


@njit(**JIT_OPTIONS)
def _smooth(Z, code, dZ):
    """logistic, tanh, elu, softplus, gelu in place; f'(z) into a non-empty ``dZ``."""
    if code != GELU:
        _exp_based(Z, code, dZ)
        return
    n, m = Z.shape
    grad = dZ.shape[0] > 0
    cast = Z.dtype.type  # constants in Z's dtype (see _piecewise_linear)
    half, one = cast(0.5), cast(1.0)
    inv_sqrt2, inv_sqrt_2pi = cast(_INV_SQRT2), cast(_INV_SQRT_2PI)
    for i in range(n):
        for j in range(m):
            z = Z[i, j]
            cdf = half * (one + math.erf(z * inv_sqrt2))  # libm: no vectorisable erf
            Z[i, j] = z * cdf
            if grad:
                dZ[i, j] = cdf + z * inv_sqrt_2pi * math.exp(-half * z * z)


@njit(**JIT_OPTIONS)
def _exp_based(Z, code, dZ):
    """logistic, tanh, elu or softplus in place; f'(z) into a non-empty ``dZ``.

    One flat loop over the C-contiguous block, with vmath's functions: LLVM vectorises
    it across rows, where a short row (10 units) would leave a per-row loop scalar."""
    z = Z.reshape(Z.size)
    d = dZ.reshape(dZ.size)
    grad = d.shape[0] > 0
    cast = Z.dtype.type
    zero, one = cast(0.0), cast(1.0)
    # a loop per function: one body each for LLVM to vectorise
    if code == LOGISTIC:
        for t in range(z.shape[0]):
            a = vmath.logistic(z[t])
            z[t] = a
            if grad:
                d[t] = a * (one - a)
    elif code == TANH:
        for t in range(z.shape[0]):
            a = vmath.tanh(z[t])
            z[t] = a
            if grad:
                d[t] = one - a * a
    elif code == ELU:
        alpha = cast(ELU_ALPHA)
        for t in range(z.shape[0]):
            v = z[t]
            # expm1 keeps the small-|z| values accurate; NaN takes the z >= 0 side
            z[t] = alpha * vmath.expm1(v) if v < zero else v
            if grad:
                d[t] = alpha * vmath.exp(v) if v < zero else one
    else:  # SOFTPLUS
        for t in range(z.shape[0]):
            v = z[t]
            # log(1 + e^z) = max(z, 0) + log1p(e^-|z|): no overflow for large |z|
            e = vmath.exp(-abs(v))
            z[t] = max(v, zero) + vmath.log1p(e)
            if grad:  # logistic(z), in its overflow-free form
                d[t] = (one if v >= zero else e) / (one + e)


@njit(**JIT_OPTIONS)
def _output_only(Z, code):
    """softmax (row-wise) or exp in place; their derivative is part of the loss's delta.

    ``Z`` is C-contiguous (a block of the workspace): exp runs as one flat loop over the
    whole block, which LLVM vectorises; the row maxima and sums stay in row order."""
    n, m = Z.shape
    z = Z.reshape(Z.size)
    if code == SOFTMAX:
        for i in range(n):
            zmax = Z[i, 0]
            for j in range(1, m):
                if Z[i, j] > zmax:
                    zmax = Z[i, j]
            for j in range(m):
                Z[i, j] -= zmax
    for t in range(z.shape[0]):
        z[t] = vmath.exp(z[t])
    if code == SOFTMAX:
        for i in range(n):
            total = Z[i, 0]
            for j in range(1, m):
                total += Z[i, j]
            for j in range(m):
                Z[i, j] /= total
