"""Fused in-place optimizer updates over the flat parameter vector.

Each update reads the gradient as ``grads[j] * gscale`` (``gscale`` < 1 when the global
gradient norm is clipped, else exactly 1) and keeps its state in the rows of ``state``
(2 x n_params). ``step`` selects the rule by integer code.

The scalar hyperparameters arrive as float64; each rule first combines them in float64
(``1 - beta_1``, Adam's bias-corrected step size) and rounds the results once to the
parameters' dtype (``params.dtype.type``), so that the loop over the parameters runs in
that dtype: numba promotes ``float32 * float64`` to float64, and without the rounding a
float32 network's update ran in float64 (half the SIMD lanes, plus conversions). In
float64 the rounding is the identity. The rounded values get new names: numba gives a
variable one type, and a float64 argument reassigned a float32 would stay float64.
(scikit-learn on float32 coefs keeps its state in float32 too; only its Adam divides in
float64, its step size being a NumPy float64 scalar.)
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
    cast = params.dtype.type
    gs, step_size, mu = cast(gscale), cast(lr), cast(momentum)
    for j in range(params.shape[0]):
        g = grads[j] * gs
        v = mu * velocity[j] - step_size * g
        velocity[j] = v
        if nesterov:
            params[j] += mu * v - step_size * g
        else:
            params[j] += v


@njit(**JIT_OPTIONS)
def adam_step(params, grads, gscale, m, v, t, lr_init, beta_1, beta_2, epsilon):
    """Adam step number ``t`` (1-based), bias correction folded into the step size
    (scikit-learn's form: ``w -= lr_t m / (sqrt(v) + eps)``)."""
    cast = params.dtype.type
    step_size = cast(lr_init * math.sqrt(1.0 - beta_2**t) / (1.0 - beta_1**t))
    gs, eps = cast(gscale), cast(epsilon)
    b1, c1, b2, c2 = cast(beta_1), cast(1.0 - beta_1), cast(beta_2), cast(1.0 - beta_2)
    for j in range(params.shape[0]):
        g = grads[j] * gs
        mj = b1 * m[j] + c1 * g
        vj = b2 * v[j] + c2 * (g * g)
        m[j] = mj
        v[j] = vj
        params[j] += -step_size * mj / (math.sqrt(vj) + eps)


@njit(**JIT_OPTIONS)
def decay_weights(params, n_coefs, lr, weight_decay):
    """AdamW's decoupled weight decay: ``w <- w (1 - lr * weight_decay)``, weights only
    (the first ``n_coefs`` entries; biases are not decayed, like the L2 and L1 terms)."""
    factor = params.dtype.type(1.0 - lr * weight_decay)
    for j in range(n_coefs):
        params[j] *= factor


@njit(**JIT_OPTIONS)
def rmsprop_step(params, grads, gscale, v, lr, rho, epsilon):
    """RMSprop: v <- rho v + (1 - rho) g^2; w <- w - lr g / (sqrt(v) + eps)."""
    cast = params.dtype.type
    gs, step_size, eps = cast(gscale), cast(lr), cast(epsilon)
    r, c = cast(rho), cast(1.0 - rho)
    for j in range(params.shape[0]):
        g = grads[j] * gs
        vj = r * v[j] + c * (g * g)
        v[j] = vj
        params[j] -= step_size * g / (math.sqrt(vj) + eps)


@njit(**JIT_OPTIONS)
def adagrad_step(params, grads, gscale, acc, lr, epsilon):
    """Adagrad: G <- G + g^2; w <- w - lr g / (sqrt(G) + eps)."""
    cast = params.dtype.type
    gs, step_size, eps = cast(gscale), cast(lr), cast(epsilon)
    for j in range(params.shape[0]):
        g = grads[j] * gs
        a = acc[j] + g * g
        acc[j] = a
        params[j] -= step_size * g / (math.sqrt(a) + eps)


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
