"""The stopping rules of the stochastic solvers: the held-out validation set, the default
validation scores, the count of epochs without improvement, and the best weights
(scikit-learn's rules)."""

import numpy as np


def holdout(n_samples, validation_fraction, random_state, stratify=None):
    """scikit-learn's early-stopping split of ``n_samples`` rows, on row indices (the
    same draws give the same rows). Returns ``(train_rows, validation_rows)``."""
    # imported here: sklearn.model_selection is a large import that only early stopping
    # needs (see fastbp/__init__.py on import time)
    from sklearn.model_selection import train_test_split

    try:
        train_rows, val_rows = train_test_split(
            np.arange(n_samples),
            random_state=random_state,
            test_size=validation_fraction,
            stratify=stratify,
        )
    except ValueError as e:
        raise ValueError(
            f"validation_fraction={validation_fraction} cannot split {n_samples} samples "
            f"into a training and a validation set for early stopping ({e}). Change "
            "validation_fraction, or pass X_val and y_val."
        ) from e
    if val_rows.shape[0] < 2:
        raise ValueError(
            "The validation set is too small. Increase 'validation_fraction' or the size "
            "of your dataset."
        )
    return train_rows, val_rows


def accuracy(y_true, y_pred, sample_weight=None):
    """scikit-learn's ``accuracy_score`` without its input checks (about a millisecond a
    call, a sixth of a small fit scoring its validation set every epoch): the same
    operations on the same arrays, so the same value. Multilabel: subset accuracy."""
    if y_true.ndim == 2:
        score = ~(np.asarray(y_true) != y_pred).any(axis=1)
    else:
        score = y_true == y_pred
    return float(np.average(score, weights=sample_weight))


def r2(y_true, y_pred, sample_weight=None):
    """scikit-learn's ``r2_score`` (uniform average over the outputs) without its input
    checks: the same operations in the same order and dtype, so the same value."""
    extra = () if sample_weight is None else (sample_weight,)
    dtype = np.result_type(y_true, y_pred, *extra)
    dtype = dtype if np.issubdtype(dtype, np.floating) else np.float64
    y_true = np.asarray(y_true, dtype=dtype).reshape(y_true.shape[0], -1)
    y_pred = np.asarray(y_pred, dtype=dtype).reshape(y_pred.shape[0], -1)
    if y_true.shape[0] < 2:
        return float("nan")  # undefined; a validation set has two rows at least
    weight = 1.0
    if sample_weight is not None:
        sample_weight = np.asarray(sample_weight, dtype=dtype)
        weight = sample_weight[:, None]
    numerator = np.sum(weight * (y_true - y_pred) ** 2, axis=0)
    centred = y_true - np.average(y_true, axis=0, weights=sample_weight)
    denominator = np.sum(weight * centred**2, axis=0)
    scores = np.ones(y_true.shape[1], dtype=numerator.dtype)
    nonzero = numerator != 0
    valid = nonzero & (denominator != 0)
    scores[valid] = 1 - numerator[valid] / denominator[valid]
    scores[nonzero & (denominator == 0)] = 0.0  # scikit-learn's force_finite
    return float(np.average(scores))


class Monitor:
    """Counts the epochs without improvement (of the validation score with early
    stopping, else of the training loss) and keeps the best weights seen.

    Parameters
    ----------
    params : ndarray
        The network's parameters now: the best weights until a better epoch.
    no_improvement_count : int, default=0
    """

    def __init__(self, params, no_improvement_count=0):
        self.best_params = params.copy()
        self.no_improvement_count = int(no_improvement_count)

    def after_validation(self, score, best_score, params, tol, early_stopping):
        """Account for an epoch's validation ``score``; returns the new best score.

        With ``early_stopping`` the epoch counts as no improvement unless it beats the
        best by ``tol``, and the weights of a new best are kept."""
        if early_stopping:
            if score < best_score + tol:
                self.no_improvement_count += 1
            else:
                self.no_improvement_count = 0
        if score > best_score and np.isfinite(params).all():
            if early_stopping:
                self.best_params[...] = params
            return score
        return best_score

    def after_training_loss(self, loss, best_loss, tol):
        """Account for an epoch's training ``loss``; returns the new best loss."""
        if loss > best_loss - tol:
            self.no_improvement_count += 1
        else:
            self.no_improvement_count = 0
        return loss if loss < best_loss else best_loss

    def exhausted(self, n_iter_no_change):
        """Whether the rule says stop (more than ``n_iter_no_change`` epochs)."""
        return self.no_improvement_count > n_iter_no_change

    def restart(self):
        self.no_improvement_count = 0

    def restore_best(self, params):
        """Write the best weights into ``params``."""
        params[...] = self.best_params

    def __setstate__(self, state):
        self.__dict__.update(state)
        best = self.best_params
        if not (best.flags.writeable and best.flags.c_contiguous):
            self.best_params = np.array(best)  # memmapped by joblib.load(mmap_mode="r")
