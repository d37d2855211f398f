"""Loss values and the output-layer delta, selected by integer code.

Every loss here is paired with its canonical output activation (its inverse link), so
the derivative of the loss with respect to the output pre-activation is ``P - Y`` for
all of them; the pairing is the table ``OUTPUT_ACTIVATION``.

Per-sample losses, summed over the outputs (scikit-learn's definitions):

- squared_error:   0.5 * sum_k (y_k - p_k)^2            (identity output)
- poisson:         sum_k y_k log(y_k / p_k) - y_k + p_k (exp output, half deviance)
- log_loss:        -sum_k y_k log p_k                    (softmax output)
- binary_log_loss: -sum_k y_k log p_k + (1-y_k) log(1-p_k)  (logistic output)

scikit-learn averages squared_error over the outputs while its gradient is that of the
sum (its issue 8349); here the reported value is the sum, the function the gradient
belongs to, so L-BFGS line searches see a consistent pair. For one output nothing changes.
"""

import math

from numba import njit

from .._config import JIT_OPTIONS
from . import activations as A

SQUARED_ERROR = 0
POISSON = 1
LOG_LOSS = 2
BINARY_LOG_LOSS = 3

OUTPUT_ACTIVATION = {
    SQUARED_ERROR: A.IDENTITY,
    POISSON: A.EXP,
    LOG_LOSS: A.SOFTMAX,
    BINARY_LOG_LOSS: A.LOGISTIC,
}


@njit(**JIT_OPTIONS)
def loss_and_delta(P, Y, rows, sw, code, clip_eps, D):
    """Loss of the batch and the output delta.

    Parameters
    ----------
    P : (n, k) output activations of the batch.
    Y : (n_samples, k) targets of the whole data set; row ``rows[i]`` is batch row i.
    rows : (n,) int64 indices of the batch rows.
    sw : (n_samples,) sample weights, or an empty array for unit weights.
    code : loss code.
    clip_eps : probabilities are clipped to [clip_eps, 1 - clip_eps] in the log losses.
    D : (n, k) written: ``(P - Y) * sw`` (the gradient of the weighted loss sum with
        respect to the output pre-activation).

    Returns
    -------
    (loss_sum, sw_sum) : the weighted sum of per-sample losses and the sum of weights,
        both accumulated in float64.
    """
    n, k = P.shape
    weighted = sw.shape[0] > 0
    loss_sum = 0.0
    sw_sum = 0.0
    for i in range(n):
        r = rows[i]
        w = sw[r] if weighted else 1.0
        li = 0.0
        for j in range(k):
            p = P[i, j]
            y = Y[r, j]
            D[i, j] = (p - y) * w
            if code == SQUARED_ERROR:
                li += 0.5 * (y - p) * (y - p)
            elif code == POISSON:
                li += p - y
                if y != 0:
                    li += y * math.log(y / p)
            elif code == LOG_LOSS:
                if y != 0:
                    li -= y * math.log(min(max(p, clip_eps), 1.0 - clip_eps))
            else:  # BINARY_LOG_LOSS
                pc = min(max(p, clip_eps), 1.0 - clip_eps)
                if y != 0:
                    li -= y * math.log(pc)
                if y != 1:
                    li -= (1.0 - y) * math.log(1.0 - pc)
        loss_sum += w * li
        sw_sum += w
    return loss_sum, sw_sum
