"""Learning-rate schedules of the stochastic solvers that depend on the epoch alone.

'constant', 'invscaling' and 'adaptive' are scikit-learn's and keep their state in the
estimator (samples seen, epochs without improvement); the three here are functions of the
number of completed epochs ``epoch`` (0 for the first epoch):

- 'step':        lr_init * decay ** floor(epoch / period)
- 'exponential': lr_init * decay ** (epoch / period)   (the smooth form of 'step')
- 'cosine':      lr_init * (1 + cos(pi * (epoch mod period) / period)) / 2, cosine
                 annealing with warm restarts every ``period`` epochs (Loshchilov and
                 Hutter's SGDR); it never reaches 0 within a period.
"""

import math

EPOCH_SCHEDULES = ("step", "exponential", "cosine")
DEFAULT_PERIOD = 10  # epochs, for 'step' and 'exponential'


def period(schedule, lr_period, max_iter):
    """The period in epochs: ``lr_period``, or its default (10, or max_iter for cosine)."""
    if lr_period is not None:
        return int(lr_period)
    return int(max_iter) if schedule == "cosine" else DEFAULT_PERIOD


def epoch_rate(schedule, lr_init, epoch, decay, period):
    """Learning rate of epoch number ``epoch`` (0-based) under ``schedule``."""
    if schedule == "step":
        return lr_init * decay ** (epoch // period)
    if schedule == "exponential":
        return lr_init * decay ** (epoch / period)
    if schedule == "cosine":
        return 0.5 * lr_init * (1.0 + math.cos(math.pi * (epoch % period) / period))
    raise ValueError(f"unknown epoch schedule {schedule!r}; expected one of {EPOCH_SCHEDULES}")
