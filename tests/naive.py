"""A slow, obvious NumPy reference for the compiled kernels of fastbp (a "naive" oracle).

Everything here is written from the mathematical definitions with whole-array NumPy
operations and lists of matrices: no numba, no flat parameter vector, no fastbp import.
All arithmetic is done in float64 whatever dtype comes in, so that the result is the
best available answer to compare a float32 or float64 kernel against.

Names rather than integer codes select activations, losses and solvers:

- activations: "identity", "logistic", "tanh", "relu", "leaky_relu", "elu", "softplus",
  "gelu", and for outputs "softmax", "exp"
- losses: "squared_error", "poisson", "log_loss", "binary_log_loss", "absolute_error",
  "huber", "hinge", "binary_hinge"
- solvers: "sgd", "adam", "adamw", "rmsprop", "adagrad"

Derivatives are written from the pre-activation z (the kernels keep f'(z) from the
forward pass); dropout masks come from an independent NumPy transcription of the
SplitMix64 counter hash that ``fastbp._kernels.dropout`` documents.
"""

import numpy as np
from scipy.special import erf

# Every loss is paired with its canonical output activation (inverse link).
OUTPUT_ACTIVATION = {
    "squared_error": "identity",
    "poisson": "exp",
    "log_loss": "softmax",
    "binary_log_loss": "logistic",
    "absolute_error": "identity",
    "huber": "identity",
    "hinge": "identity",
    "binary_hinge": "identity",
}
LEAKY_RELU_SLOPE = 0.01
ELU_ALPHA = 1.0


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
    if name == "leaky_relu":
        return np.where(z < 0, LEAKY_RELU_SLOPE * z, z)
    if name == "elu":
        return np.where(z < 0, ELU_ALPHA * np.expm1(np.minimum(z, 0.0)), z)
    if name == "softplus":
        return np.logaddexp(0.0, z)
    if name == "gelu":
        return 0.5 * z * (1.0 + erf(z / np.sqrt(2.0)))
    if name == "softmax":
        e = np.exp(z - z.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)
    if name == "exp":
        return np.exp(z)
    raise ValueError(name)


def derivative(name, z):
    """f'(z) of a hidden activation, from its definition (relu'(0) = 0)."""
    z = _f64(z)
    if name == "identity":
        return np.ones_like(z)
    if name == "logistic":
        s = activation("logistic", z)
        return s * (1.0 - s)
    if name == "tanh":
        return 1.0 - np.tanh(z) ** 2
    if name == "relu":
        return (z > 0).astype(np.float64)
    if name == "leaky_relu":
        return np.where(z < 0, LEAKY_RELU_SLOPE, 1.0)
    if name == "elu":
        return np.where(z < 0, ELU_ALPHA * np.exp(np.minimum(z, 0.0)), 1.0)
    if name == "softplus":
        return activation("logistic", z)
    if name == "gelu":
        return 0.5 * (1.0 + erf(z / np.sqrt(2.0))) + z * np.exp(-0.5 * z**2) / np.sqrt(
            2.0 * np.pi
        )
    raise ValueError(name)


# ---------------------------------------------------------------------------------- losses
def per_sample_loss(name, P, Y, clip_eps, huber_delta=1.0):
    """Loss of each row, summed over the outputs (scikit-learn's definitions where it
    has them)."""
    P, Y = _f64(P), _f64(Y)
    R = P - Y
    if name == "absolute_error":
        return np.abs(R).sum(axis=1)
    if name == "huber":
        a = np.abs(R)
        quad = 0.5 * R**2
        lin = huber_delta * (a - 0.5 * huber_delta)
        return np.where(a <= huber_delta, quad, lin).sum(axis=1)
    if name == "hinge":  # Crammer and Singer
        c = Y.argmax(axis=1)
        true = P[np.arange(len(P)), c]
        others = P.copy()
        others[np.arange(len(P)), c] = -np.inf
        return np.maximum(0.0, 1.0 + others.max(axis=1) - true)
    if name == "binary_hinge":
        S = 2.0 * Y - 1.0
        return np.maximum(0.0, 1.0 - S * P).sum(axis=1)
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


def output_delta(name, P, Y, huber_delta=1.0):
    """d loss_i / d z_out of each row (unweighted): P - Y for the canonical links, the
    derivative of the loss in P for the identity-output losses (a subgradient at kinks:
    sign(0) = 0, the first maximiser of the hinge's other classes)."""
    P, Y = _f64(P), _f64(Y)
    R = P - Y
    if name == "absolute_error":
        return np.sign(R)
    if name == "huber":
        return np.clip(R, -huber_delta, huber_delta)
    if name == "hinge":
        rows = np.arange(len(P))
        c = Y.argmax(axis=1)
        others = P.copy()
        others[rows, c] = -np.inf
        j = others.argmax(axis=1)
        active = (1.0 + others[rows, j] - P[rows, c]) > 0
        D = np.zeros_like(P)
        D[rows[active], j[active]] = 1.0
        D[rows[active], c[active]] = -1.0
        return D
    if name == "binary_hinge":
        S = 2.0 * Y - 1.0
        return np.where(1.0 - S * P > 0, -S, 0.0)
    return R


def loss_and_delta(name, P, Y, sw=None, clip_eps=0.0, huber_delta=1.0):
    """Weighted loss sum, weight sum and output delta of one batch.

    ``P`` are the output activations, ``Y`` the targets of the same rows, ``sw`` their
    sample weights (None: unit weights). Returns ``(loss_sum, sw_sum, D)`` with ``D``
    the gradient of the weighted loss sum with respect to the output pre-activation.
    """
    P, Y = _f64(P), _f64(Y)
    w = np.ones(P.shape[0]) if sw is None else _f64(sw)
    loss = per_sample_loss(name, P, Y, clip_eps, huber_delta)
    D = output_delta(name, P, Y, huber_delta) * w[:, None]
    return float((w * loss).sum()), float(w.sum()), D


# --------------------------------------------------------------------------------- network
def hidden_names(hidden, n_hidden):
    """One activation name per hidden layer from a name or a list of names."""
    return [hidden] * n_hidden if isinstance(hidden, str) else list(hidden)


def forward(X, coefs, intercepts, hidden, output, return_preactivations=False, masks=None):
    """Activations ``[X, A_1, ..., A_L]`` of the network (``A_L`` the output).

    ``hidden`` is a name or one name per hidden layer; ``masks[l]`` (if given and not
    None) multiplies hidden layer l's activation (dropout). With
    ``return_preactivations`` also returns ``[Z_1, ..., Z_L]``.
    """
    if hasattr(X, "toarray"):
        X = X.toarray()
    acts = [_f64(X)]
    zs = []
    n_layers = len(coefs)
    names = hidden_names(hidden, n_layers - 1) + [output]
    for i, (W, b) in enumerate(zip(coefs, intercepts, strict=True)):
        z = acts[-1] @ _f64(W) + _f64(b)
        zs.append(z)
        a = activation(names[i], z)
        if masks is not None and i < n_layers - 1 and masks[i + 1] is not None:
            a = a * masks[i + 1]
        acts.append(a)
    if return_preactivations:
        return acts, zs
    return acts


def backprop(coefs, acts, zs, D_out, hidden, masks=None):
    """Raw gradient sums of one batch: ``A_l^T D_{l+1}`` and ``sum_rows D_{l+1}``.

    ``acts``, ``zs`` from ``forward``; ``D_out`` the output delta. Returns ``(gW, gb)``.
    """
    n_layers = len(coefs)
    names = hidden_names(hidden, n_layers - 1)
    gW = [None] * n_layers
    gb = [None] * n_layers
    D = _f64(D_out)
    for i in range(n_layers - 1, -1, -1):
        gW[i] = acts[i].T @ D
        gb[i] = D.sum(axis=0)
        if i > 0:
            D = (D @ _f64(coefs[i]).T) * derivative(names[i - 1], zs[i - 1])
            if masks is not None and masks[i] is not None:
                D = D * masks[i]
    return gW, gb


def squared_norm(coefs):
    """Sum of the squared weights (biases excluded)."""
    return float(sum((_f64(W) ** 2).sum() for W in coefs))


def l1_norm(coefs):
    """Sum of the absolute weights (biases excluded)."""
    return float(sum(np.abs(_f64(W)).sum() for W in coefs))


def finalize(coefs, gW, gb, alpha, sw_sum, l1=0.0):
    """Add the penalty gradients to the raw weight gradients, divide all by sw_sum."""
    gW = [
        (g + alpha * _f64(W) + l1 * np.sign(_f64(W))) / sw_sum
        for g, W in zip(gW, coefs, strict=True)
    ]
    gb = [g / sw_sum for g in gb]
    return gW, gb


def objective(coefs, intercepts, X, Y, hidden, loss, alpha, sw=None, clip_eps=0.0,
              l1=0.0, huber_delta=1.0, masks=None):
    """Full-batch objective and its gradient by back-propagation.

    value = sum_i sw_i loss_i / sum(sw) + (0.5 alpha ||W||^2 + l1 |W|_1) / sum(sw).
    Returns ``(value, gW, gb)``.
    """
    acts, zs = forward(X, coefs, intercepts, hidden, OUTPUT_ACTIVATION[loss],
                       return_preactivations=True, masks=masks)
    loss_sum, sw_sum, D = loss_and_delta(loss, acts[-1], Y, sw, clip_eps, huber_delta)
    gW, gb = backprop(coefs, acts, zs, D, hidden, masks)
    gW, gb = finalize(coefs, gW, gb, alpha, sw_sum, l1)
    value = (loss_sum / sw_sum + 0.5 * alpha * squared_norm(coefs) / sw_sum
             + l1 * l1_norm(coefs) / sw_sum)
    return value, gW, gb


# --------------------------------------------------------------------------------- dropout
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)


def _mix(x):
    """SplitMix64's output function, elementwise on uint64 arrays (wrapping)."""
    with np.errstate(over="ignore"):  # wrapping modulo 2**64 is the definition
        z = np.asarray(x, dtype=np.uint64) + _GOLDEN
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


def dropout_mask(seed, step, layer, n, m, p):
    """The (n, m) inverted-dropout mask (0 or 1 / (1 - p)) of one layer and step."""
    key = _mix(_mix(np.uint64(seed)) ^ np.uint64(step))
    base = _mix(key ^ _mix(np.uint64(layer)))
    idx = np.arange(n * m, dtype=np.uint64).reshape(n, m)
    u = (_mix(base + idx * _GOLDEN) >> np.uint64(11)).astype(np.float64) * 2.0**-53
    return np.where(u < p, 0.0, 1.0 / (1.0 - p))


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


def adamw_step(params, grads, ms, vs, t, lr, beta_1, beta_2, epsilon, weight_decay,
               n_weight_arrays):
    """AdamW: the weights (the first ``n_weight_arrays`` arrays) are first shrunk by
    ``1 - lr * weight_decay``, then the Adam step is taken."""
    decayed = [
        _f64(w) * (1.0 - lr * weight_decay) if i < n_weight_arrays else _f64(w)
        for i, w in enumerate(params)
    ]
    return adam_step(decayed, grads, ms, vs, t, lr, beta_1, beta_2, epsilon)


def rmsprop_step(params, grads, vs, lr, rho, epsilon):
    """v <- rho v + (1 - rho) g^2; w <- w - lr g / (sqrt(v) + eps)."""
    new_params, new_vs = [], []
    for w, g, v in zip(params, grads, vs, strict=True):
        w, g, v = _f64(w), _f64(g), _f64(v)
        v = rho * v + (1.0 - rho) * g**2
        new_params.append(w - lr * g / (np.sqrt(v) + epsilon))
        new_vs.append(v)
    return new_params, new_vs


def adagrad_step(params, grads, accs, lr, epsilon):
    """G <- G + g^2; w <- w - lr g / (sqrt(G) + eps)."""
    new_params, new_accs = [], []
    for w, g, a in zip(params, grads, accs, strict=True):
        w, g, a = _f64(w), _f64(g), _f64(a)
        a = a + g**2
        new_params.append(w - lr * g / (np.sqrt(a) + epsilon))
        new_accs.append(a)
    return new_params, new_accs


def train_epoch(coefs, intercepts, state, X, Y, sw, order, batch_size, hidden, loss,
                alpha, solver, lr, momentum=0.9, nesterov=True, beta_1=0.9, beta_2=0.999,
                epsilon=1e-8, t=0, clip_eps=0.0, l1=0.0, max_grad_norm=None,
                weight_decay=0.0, rho=0.9, huber_delta=1.0, dropout=None, seed=0):
    """One pass of minibatch steps over the rows ``order``.

    ``state`` is ``(first, second)``, two lists of arrays shaped like
    ``coefs + intercepts``: the velocities (sgd), Adam's moments, RMSprop's mean square
    or Adagrad's sum of squares. A minibatch whose weights sum to zero is skipped.
    ``dropout[l]`` is hidden layer l's rate (index 0 and the output unused); the masks of
    step t + 1 come from ``dropout_mask(seed, t + 1, ...)``. The gradient is scaled down
    to norm ``max_grad_norm`` when it is longer.

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
        masks = None
        if dropout is not None:
            masks = [None] * (n_layers + 1)
            for layer in range(1, n_layers):
                if dropout[layer] > 0:
                    masks[layer] = dropout_mask(seed, t + 1, layer, len(rows),
                                                coefs[layer - 1].shape[1], dropout[layer])
        if w is not None and w.sum() == 0:
            continue
        value, gW, gb = objective(coefs, intercepts, X[rows], Y[rows], hidden, loss,
                                  alpha, w, clip_eps, l1, huber_delta, masks)
        total += value * len(rows)
        params, grads = coefs + intercepts, gW + gb
        if max_grad_norm is not None:
            norm = np.sqrt(sum((g**2).sum() for g in grads))
            if norm > max_grad_norm:
                grads = [g * (max_grad_norm / norm) for g in grads]
        t += 1
        if solver == "adam":
            params, first, second = adam_step(params, grads, first, second, t, lr,
                                              beta_1, beta_2, epsilon)
        elif solver == "adamw":
            params, first, second = adamw_step(params, grads, first, second, t, lr,
                                               beta_1, beta_2, epsilon, weight_decay,
                                               n_layers)
        elif solver == "rmsprop":
            params, first = rmsprop_step(params, grads, first, lr, rho, epsilon)
        elif solver == "adagrad":
            params, first = adagrad_step(params, grads, first, lr, epsilon)
        else:
            params, first = sgd_step(params, grads, first, lr, momentum, nesterov)
        coefs, intercepts = params[:n_layers], params[n_layers:]
    return coefs, intercepts, (first, second), t, total
