"""A slow, obvious NumPy reference for the compiled kernels of fastbp (a "naive" oracle).

Everything here is written from the mathematical definitions with whole-array NumPy
operations and lists of matrices: no numba, no flat parameter vector, no fastbp import.
All arithmetic is done in float64 whatever dtype comes in, so that the result is the
best available answer to compare a float32 or float64 kernel against.

Names rather than integer codes select activations, losses and solvers:

- activations: "identity", "logistic", "tanh", "relu", "softmax", "exp"
- losses: "squared_error", "poisson", "log_loss", "binary_log_loss"
- solvers: "sgd", "adam"
"""

import numpy as np

# Every loss is paired with its canonical output activation (inverse link).
OUTPUT_ACTIVATION = {
    "squared_error": "identity",
    "poisson": "exp",
    "log_loss": "softmax",
    "binary_log_loss": "logistic",
}


def _f64(a):
    return np.array(a, dtype=np.float64)


# ----------------------------------------------------------------------------- activations
def activation(name, z):
    """f(z), elementwise (row-wise for softmax), as a new float64 array."""
    z = _f64(z)
    if name == "identity":
        return z
    if name == "logistic":
        with np.errstate(over="ignore"):  # exp(-z) = inf for z << 0 gives exactly 0
            return 1.0 / (1.0 + np.exp(-z))
    if name == "tanh":
        return np.tanh(z)
    if name == "relu":
        return np.maximum(z, 0.0)
    if name == "softmax":
        e = np.exp(z - z.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)
    if name == "exp":
        return np.exp(z)
    raise ValueError(name)


def derivative_from_output(name, a):
    """f'(z) written as a function of the output a = f(z).

    softmax and exp only ever appear as output activations paired with their canonical
    loss; there the derivative is folded into the loss (the output delta P - Y already is
    the gradient with respect to the pre-activation), so the factor applied is 1.
    """
    a = _f64(a)
    if name in ("identity", "softmax", "exp"):
        return np.ones_like(a)
    if name == "logistic":
        return a * (1.0 - a)
    if name == "tanh":
        return 1.0 - a**2
    if name == "relu":
        return (a > 0).astype(np.float64)
    raise ValueError(name)


# ---------------------------------------------------------------------------------- losses
def per_sample_loss(name, P, Y, clip_eps):
    """Loss of each row, summed over the outputs (scikit-learn's definitions)."""
    P, Y = _f64(P), _f64(Y)
    if name == "squared_error":
        return 0.5 * ((Y - P) ** 2).sum(axis=1)
    if name == "poisson":
        # half Poisson deviance: y log(y / p) - y + p, with 0 log 0 = 0
        y_safe = np.where(Y != 0, Y, 1.0)
        ylog = np.where(Y != 0, Y * np.log(y_safe / P), 0.0)
        return (ylog - Y + P).sum(axis=1)
    Pc = np.clip(P, clip_eps, 1.0 - clip_eps)
    if name == "log_loss":
        return -(Y * np.log(Pc)).sum(axis=1)
    if name == "binary_log_loss":
        return -(Y * np.log(Pc) + (1.0 - Y) * np.log(1.0 - Pc)).sum(axis=1)
    raise ValueError(name)


def loss_and_delta(name, P, Y, sw=None, clip_eps=0.0):
    """Weighted loss sum, weight sum and output delta of one batch.

    ``P`` are the output activations, ``Y`` the targets of the same rows, ``sw`` their
    sample weights (None: unit weights). Returns ``(loss_sum, sw_sum, D)`` with
    ``D = (P - Y) * sw[:, None]``, the gradient of the weighted loss sum with respect to
    the output pre-activation (canonical link).
    """
    P, Y = _f64(P), _f64(Y)
    w = np.ones(P.shape[0]) if sw is None else _f64(sw)
    loss = per_sample_loss(name, P, Y, clip_eps)
    D = (P - Y) * w[:, None]
    return float((w * loss).sum()), float(w.sum()), D


# --------------------------------------------------------------------------------- network
def forward(X, coefs, intercepts, hidden, output, return_preactivations=False):
    """Activations ``[X, A_1, ..., A_L]`` of the network (``A_L`` the output).

    With ``return_preactivations`` also returns ``[Z_1, ..., Z_L]``.
    """
    if hasattr(X, "toarray"):
        X = X.toarray()
    acts = [_f64(X)]
    zs = []
    n_layers = len(coefs)
    for i, (W, b) in enumerate(zip(coefs, intercepts, strict=True)):
        z = acts[-1] @ _f64(W) + _f64(b)
        zs.append(z)
        acts.append(activation(output if i == n_layers - 1 else hidden, z))
    if return_preactivations:
        return acts, zs
    return acts


def backprop(coefs, acts, D_out, hidden):
    """Raw gradient sums of one batch: ``A_l^T D_{l+1}`` and ``sum_rows D_{l+1}``.

    ``acts`` from ``forward``; ``D_out`` the output delta. Returns ``(gW, gb)`` lists.
    """
    n_layers = len(coefs)
    gW = [None] * n_layers
    gb = [None] * n_layers
    D = _f64(D_out)
    for i in range(n_layers - 1, -1, -1):
        gW[i] = acts[i].T @ D
        gb[i] = D.sum(axis=0)
        if i > 0:
            D = (D @ _f64(coefs[i]).T) * derivative_from_output(hidden, acts[i])
    return gW, gb


def squared_norm(coefs):
    """Sum of the squared weights (biases excluded)."""
    return float(sum((_f64(W) ** 2).sum() for W in coefs))


def finalize(coefs, gW, gb, alpha, sw_sum):
    """Add the L2 term to the raw weight gradients and divide everything by sw_sum."""
    gW = [(g + alpha * _f64(W)) / sw_sum for g, W in zip(gW, coefs, strict=True)]
    gb = [g / sw_sum for g in gb]
    return gW, gb


def objective(coefs, intercepts, X, Y, hidden, loss, alpha, sw=None, clip_eps=0.0):
    """Full-batch objective and its gradient by back-propagation.

    value = sum_i sw_i loss_i / sum(sw) + 0.5 * alpha * ||W||^2 / sum(sw).
    Returns ``(value, gW, gb)``.
    """
    acts = forward(X, coefs, intercepts, hidden, OUTPUT_ACTIVATION[loss])
    loss_sum, sw_sum, D = loss_and_delta(loss, acts[-1], Y, sw, clip_eps)
    gW, gb = backprop(coefs, acts, D, hidden)
    gW, gb = finalize(coefs, gW, gb, alpha, sw_sum)
    value = loss_sum / sw_sum + 0.5 * alpha * squared_norm(coefs) / sw_sum
    return value, gW, gb


# ------------------------------------------------------------------------------ optimizers
def sgd_step(params, grads, velocities, lr, momentum, nesterov):
    """SGD with momentum on lists of arrays; returns ``(new_params, new_velocities)``.

    v <- momentum v - lr g;  w <- w + v  (Nesterov: w <- w + momentum v - lr g).
    """
    new_params, new_velocities = [], []
    for w, g, v in zip(params, grads, velocities, strict=True):
        w, g, v = _f64(w), _f64(g), _f64(v)
        v = momentum * v - lr * g
        if nesterov:
            w = w + momentum * v - lr * g
        else:
            w = w + v
        new_params.append(w)
        new_velocities.append(v)
    return new_params, new_velocities


def adam_step(params, grads, ms, vs, t, lr, beta_1, beta_2, epsilon):
    """Adam step number ``t`` (1-based) on lists of arrays.

    Returns ``(new_params, new_ms, new_vs)``; the bias correction is folded into the step
    size: lr_t = lr sqrt(1 - beta_2^t) / (1 - beta_1^t); w <- w - lr_t m / (sqrt(v) + eps).
    """
    lr_t = lr * np.sqrt(1.0 - beta_2**t) / (1.0 - beta_1**t)
    new_params, new_ms, new_vs = [], [], []
    for w, g, m, v in zip(params, grads, ms, vs, strict=True):
        w, g, m, v = _f64(w), _f64(g), _f64(m), _f64(v)
        m = beta_1 * m + (1.0 - beta_1) * g
        v = beta_2 * v + (1.0 - beta_2) * g**2
        w = w - lr_t * m / (np.sqrt(v) + epsilon)
        new_params.append(w)
        new_ms.append(m)
        new_vs.append(v)
    return new_params, new_ms, new_vs


def train_epoch(coefs, intercepts, state, X, Y, sw, order, batch_size, hidden, loss,
                alpha, solver, lr, momentum=0.9, nesterov=True, beta_1=0.9, beta_2=0.999,
                epsilon=1e-8, t=0, clip_eps=0.0):
    """One pass of minibatch steps over the rows ``order``.

    ``state`` is ``(first, second)``, two lists of arrays shaped like
    ``coefs + intercepts``: the velocities (sgd; second unused) or Adam's moments.
    A minibatch whose weights sum to zero is skipped.

    Returns ``(coefs, intercepts, state, t, total)`` where ``total`` sums
    ``batch_objective * batch_rows`` over the minibatches.
    """
    if hasattr(X, "toarray"):
        X = X.toarray()
    X, Y = _f64(X), _f64(Y)
    n_layers = len(coefs)
    coefs = [_f64(W) for W in coefs]
    intercepts = [_f64(b) for b in intercepts]
    first = [_f64(s) for s in state[0]]
    second = [_f64(s) for s in state[1]]
    total = 0.0
    for start in range(0, len(order), batch_size):
        rows = np.asarray(order[start : start + batch_size])
        w = None if sw is None else _f64(sw)[rows]
        if w is not None and w.sum() == 0:
            continue
        value, gW, gb = objective(coefs, intercepts, X[rows], Y[rows], hidden, loss,
                                  alpha, w, clip_eps)
        total += value * len(rows)
        params, grads = coefs + intercepts, gW + gb
        if solver == "adam":
            t += 1
            params, first, second = adam_step(params, grads, first, second, t, lr,
                                              beta_1, beta_2, epsilon)
        else:
            params, first = sgd_step(params, grads, first, lr, momentum, nesterov)
        coefs, intercepts = params[:n_layers], params[n_layers:]
    return coefs, intercepts, (first, second), t, total
