"""Fused in-place optimizer updates over the flat parameter vector.

Each update reads the gradient as ``grads[j] * gscale`` (``gscale`` < 1 when the global
gradient norm is clipped, else exactly 1) and keeps its state in the rows of ``state``
(2 x n_params). ``step`` selects the rule by integer code.
"""

import math

from numba import njit

from .._config import JIT_OPTIONS

SGD = 0
ADAM = 1
ADAMW = 2
RMSPROP = 3
ADAGRAD = 4

CODES = {"sgd": SGD, "adam": ADAM, "adamw": ADAMW, "rmsprop": RMSPROP, "adagrad": ADAGRAD}


@njit(**JIT_OPTIONS)
def sgd_step(params, grads, gscale, velocity, lr, momentum, nesterov):
    """SGD with (Nesterov) momentum: v <- mu v - lr g; w <- w + v (or + mu v - lr g)."""
    for j in range(params.shape[0]):
        g = grads[j] * gscale
        v = momentum * velocity[j] - lr * g
        velocity[j] = v
        if nesterov:
            params[j] += momentum * v - lr * g
        else:
            params[j] += v


@njit(**JIT_OPTIONS)
def adam_step(params, grads, gscale, m, v, t, lr_init, beta_1, beta_2, epsilon):
    """Adam step number ``t`` (1-based), bias correction folded into the step size
    (scikit-learn's form: ``w -= lr_t m / (sqrt(v) + eps)``)."""
    lr = lr_init * math.sqrt(1.0 - beta_2**t) / (1.0 - beta_1**t)
    for j in range(params.shape[0]):
        g = grads[j] * gscale
        mj = beta_1 * m[j] + (1.0 - beta_1) * g
        vj = beta_2 * v[j] + (1.0 - beta_2) * (g * g)
        m[j] = mj
        v[j] = vj
        params[j] += -lr * mj / (math.sqrt(vj) + epsilon)


@njit(**JIT_OPTIONS)
def decay_weights(params, n_coefs, lr, weight_decay):
    """AdamW's decoupled weight decay: ``w <- w (1 - lr * weight_decay)``, weights only
    (the first ``n_coefs`` entries; biases are not decayed, like the L2 and L1 terms)."""
    factor = 1.0 - lr * weight_decay
    for j in range(n_coefs):
        params[j] *= factor


@njit(**JIT_OPTIONS)
def rmsprop_step(params, grads, gscale, v, lr, rho, epsilon):
    """RMSprop: v <- rho v + (1 - rho) g^2; w <- w - lr g / (sqrt(v) + eps)."""
    for j in range(params.shape[0]):
        g = grads[j] * gscale
        vj = rho * v[j] + (1.0 - rho) * (g * g)
        v[j] = vj
        params[j] -= lr * g / (math.sqrt(vj) + epsilon)


@njit(**JIT_OPTIONS)
def adagrad_step(params, grads, gscale, acc, lr, epsilon):
    """Adagrad: G <- G + g^2; w <- w - lr g / (sqrt(G) + eps)."""
    for j in range(params.shape[0]):
        g = grads[j] * gscale
        a = acc[j] + g * g
        acc[j] = a
        params[j] -= lr * g / (math.sqrt(a) + epsilon)


@njit(**JIT_OPTIONS)
def step(code, params, grads, gscale, state, t, lr, momentum, nesterov, beta_1, beta_2,
         epsilon, rho, weight_decay, n_coefs):
    """One update of optimizer ``code``; ``t`` is the 1-based step number (Adam's bias
    correction)."""
    if code == SGD:
        sgd_step(params, grads, gscale, state[0], lr, momentum, nesterov)
    elif code == ADAM:
        adam_step(params, grads, gscale, state[0], state[1], t, lr, beta_1, beta_2, epsilon)
    elif code == ADAMW:
        decay_weights(params, n_coefs, lr, weight_decay)
        adam_step(params, grads, gscale, state[0], state[1], t, lr, beta_1, beta_2, epsilon)
    elif code == RMSPROP:
        rmsprop_step(params, grads, gscale, state[0], lr, rho, epsilon)
    else:  # ADAGRAD
        adagrad_step(params, grads, gscale, state[0], lr, epsilon)
