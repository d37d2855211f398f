"""Finite-difference check of the compiled gradient, for users and for the tests."""

import numpy as np
from sklearn.utils import check_random_state

from ._multilayer_perceptron import training_objective

__all__ = ["check_gradients"]


def check_gradients(
    estimator, X, y, sample_weight=None, *, step=1e-6, max_entries=None, random_state=0
):
    """Compare the compiled analytic gradient with central finite differences.

    The function differentiated is the full training objective of ``estimator`` on
    ``(X, y, sample_weight)``: the weighted mean loss plus the L2 (``alpha``) and L1
    (``l1``) penalties, with ``class_weight`` applied and dropout off (dropout makes the
    objective random; its masks multiply the same derivatives). It is evaluated at the
    estimator's current parameters, or, if the estimator is not fitted, at the initial
    parameters a fit would start from (computed on a clone: ``estimator`` is never
    modified). Everything runs in float64, whatever the estimator's dtype.

    Parameters
    ----------
    estimator : MLPClassifier or MLPRegressor
        A fastbp estimator, fitted or not.
    X : {array-like, sparse matrix} of shape (n_samples, n_features)
    y : array-like of shape (n_samples,) or (n_samples, n_outputs)
    sample_weight : array-like of shape (n_samples,), default=None
    step : float, default=1e-6
        Step h of the central differences ``(f(w + h e_j) - f(w - h e_j)) / 2h``.
    max_entries : int, default=None
        Check only this many parameters, drawn at random (each costs two evaluations of
        the objective over all of X); None checks them all.
    random_state : int, RandomState instance or None, default=0
        Draws the parameters checked when ``max_entries`` is set.

    Returns
    -------
    max_rel_diff : float
        ``max_j |g_j - n_j| / max(1, |g_j| + |n_j|)`` over the checked parameters, g the
        analytic and n the numerical gradient: a relative difference for large entries,
        an absolute one for entries below 1. About 1e-9 or less for a correct gradient
        in float64; it is large only where the objective has a kink within ``step`` of
        the point (relu at 0, absolute error at 0, a hinge margin of exactly 1, an L1
        weight at exactly 0).

    Examples
    --------
    >>> from sklearn.datasets import load_iris
    >>> from fastbp import MLPClassifier, check_gradients
    >>> X, y = load_iris(return_X_y=True)
    >>> est = MLPClassifier(hidden_layer_sizes=(5,), activation="tanh", random_state=0)
    >>> check_gradients(est, X[::10], y[::10]) < 1e-6
    True
    """
    if not (isinstance(step, float | int) and step > 0):
        raise ValueError(f"step must be a positive float, got {step!r}.")
    objective, params = training_objective(estimator, X, y, sample_weight)

    x0 = params.copy()
    _, analytic = objective(x0)
    entries = np.arange(x0.shape[0])
    if max_entries is not None:
        if int(max_entries) < 1:
            raise ValueError(f"max_entries must be a positive integer, got {max_entries!r}.")
        rs = check_random_state(random_state)
        entries = np.sort(rs.choice(entries, min(int(max_entries), entries.size), False))
    numeric = np.empty(entries.shape[0])
    x = x0.copy()
    for k, j in enumerate(entries):
        x[j] = x0[j] + step
        f_plus, _ = objective(x)
        x[j] = x0[j] - step
        f_minus, _ = objective(x)
        x[j] = x0[j]
        numeric[k] = (f_plus - f_minus) / (2.0 * step)
    g = analytic[entries]
    diff = np.abs(g - numeric) / np.maximum(1.0, np.abs(g) + np.abs(numeric))
    return float(diff.max()) if diff.size else 0.0
