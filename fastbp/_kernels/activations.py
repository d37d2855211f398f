"""Activation functions and their derivatives, side by side, selected by integer code.

Each forward rule works in place on the pre-activation ``Z`` (rows x units). Each
derivative rule multiplies the back-propagated ``delta`` in place by f'(z), written as
a function of the activation's *output* A = f(z), which is what the forward pass keeps.
"""

import math

from numba import njit

from .._config import JIT_OPTIONS

IDENTITY = 0
LOGISTIC = 1
TANH = 2
RELU = 3
SOFTMAX = 4  # output layer only (multiclass); its derivative is folded into the loss
EXP = 5  # output layer only (poisson log-link); likewise

HIDDEN_CODES = {"identity": IDENTITY, "logistic": LOGISTIC, "tanh": TANH, "relu": RELU}
OUTPUT_NAMES = {
    IDENTITY: "identity",
    LOGISTIC: "logistic",
    SOFTMAX: "softmax",
    EXP: "exp",
}


@njit(**JIT_OPTIONS)
def activate(Z, code):
    """Apply activation ``code`` to the 2-D array ``Z`` in place."""
    n, m = Z.shape
    if code == IDENTITY:
        return
    if code == LOGISTIC:
        for i in range(n):
            for j in range(m):
                z = Z[i, j]
                # two branches keep exp() from overflowing on either side
                if z >= 0:
                    Z[i, j] = 1.0 / (1.0 + math.exp(-z))
                else:
                    e = math.exp(z)
                    Z[i, j] = e / (1.0 + e)
    elif code == TANH:
        for i in range(n):
            for j in range(m):
                Z[i, j] = math.tanh(Z[i, j])
    elif code == RELU:
        for i in range(n):
            for j in range(m):
                if Z[i, j] < 0:  # NaN fails the test and stays NaN
                    Z[i, j] = 0.0
    elif code == SOFTMAX:
        for i in range(n):
            zmax = Z[i, 0]
            for j in range(1, m):
                if Z[i, j] > zmax:
                    zmax = Z[i, j]
            total = 0.0
            for j in range(m):
                e = math.exp(Z[i, j] - zmax)
                Z[i, j] = e
                total += e
            for j in range(m):
                Z[i, j] /= total
    elif code == EXP:
        for i in range(n):
            for j in range(m):
                Z[i, j] = math.exp(Z[i, j])


@njit(**JIT_OPTIONS)
def derivative(A, delta, code):
    """Multiply ``delta`` in place by f'(z) of activation ``code``, given A = f(z)."""
    n, m = A.shape
    if code == IDENTITY:
        return
    if code == LOGISTIC:
        for i in range(n):
            for j in range(m):
                a = A[i, j]
                delta[i, j] *= a * (1.0 - a)
    elif code == TANH:
        for i in range(n):
            for j in range(m):
                a = A[i, j]
                delta[i, j] *= 1.0 - a * a
    elif code == RELU:
        for i in range(n):
            for j in range(m):
                if A[i, j] == 0:
                    delta[i, j] = 0.0

