"""The stopping rules of the stochastic solvers: the held-out validation set, the count
of epochs without improvement, and the best weights (scikit-learn's rules)."""

import numpy as np
from sklearn.model_selection import train_test_split


def holdout(n_samples, validation_fraction, random_state, stratify=None):
    """scikit-learn's early-stopping split of ``n_samples`` rows, on row indices (the
    same draws give the same rows). Returns ``(train_rows, validation_rows)``."""
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
