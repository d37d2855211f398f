"""Fused in-place optimizer updates over the flat parameter vector."""

import math

from numba import njit

from .._config import JIT_OPTIONS

SGD = 0
ADAM = 1

CODES = {"sgd": SGD, "adam": ADAM}


@njit(**JIT_OPTIONS)
def sgd_step(params, grads, velocity, lr, momentum, nesterov):
    """SGD with (Nesterov) momentum: v <- mu v - lr g; w <- w + v (or + mu v - lr g)."""
    for j in range(params.shape[0]):
        g = grads[j]
        v = momentum * velocity[j] - lr * g
        velocity[j] = v
        if nesterov:
            params[j] += momentum * v - lr * g
        else:
            params[j] += v


@njit(**JIT_OPTIONS)
def adam_step(params, grads, m, v, t, lr_init, beta_1, beta_2, epsilon):
    """Adam step number ``t`` (1-based), bias correction folded into the step size."""
    lr = lr_init * math.sqrt(1.0 - beta_2**t) / (1.0 - beta_1**t)
    for j in range(params.shape[0]):
        g = grads[j]
        mj = beta_1 * m[j] + (1.0 - beta_1) * g
        vj = beta_2 * v[j] + (1.0 - beta_2) * (g * g)
        m[j] = mj
        v[j] = vj
        params[j] += -lr * mj / (math.sqrt(vj) + epsilon)
