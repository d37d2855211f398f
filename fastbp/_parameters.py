"""Which parameters only some settings use, and the warning when one is set where it
has no effect (scikit-learn's rule for inapplicable parameters)."""

import functools
import inspect
import warnings

from . import _caller
from ._training import STOCHASTIC_SOLVERS

ADAPTIVE_SOLVERS = {"adam", "adamw", "rmsprop", "adagrad"}
# Parameters that only some settings use: (the setting, the values it applies with). A
# value other than the default anywhere else has no effect, and fit says so.
APPLIES_WITH = {
    "momentum": ("solver", {"sgd"}),
    "nesterovs_momentum": ("solver", {"sgd"}),
    "beta_1": ("solver", {"adam", "adamw"}),
    "beta_2": ("solver", {"adam", "adamw"}),
    "epsilon": ("solver", ADAPTIVE_SOLVERS),
    "weight_decay": ("solver", {"adamw"}),
    "rho": ("solver", {"rmsprop"}),
    "learning_rate": ("solver", set(STOCHASTIC_SOLVERS)),
    "learning_rate_init": ("solver", set(STOCHASTIC_SOLVERS)),
    "batch_size": ("solver", set(STOCHASTIC_SOLVERS)),
    "shuffle": ("solver", set(STOCHASTIC_SOLVERS)),
    "early_stopping": ("solver", set(STOCHASTIC_SOLVERS)),
    "n_iter_no_change": ("solver", set(STOCHASTIC_SOLVERS)),
    "max_grad_norm": ("solver", set(STOCHASTIC_SOLVERS)),
    "max_fun": ("solver", {"lbfgs"}),
    "validation_fraction": ("early_stopping", {True}),
    "power_t": ("learning_rate", {"invscaling"}),
    "lr_decay": ("learning_rate", {"step", "exponential"}),
    "lr_period": ("learning_rate", {"step", "exponential", "cosine"}),
    "huber_delta": ("loss", {"huber"}),
}


def warn_inapplicable(est):
    """Warn about each parameter set away from its default where it has no effect
    (``weight_decay`` with adam, a schedule with lbfgs, ...), naming the setting that
    makes it so: scikit-learn's rule for inapplicable parameters."""
    default = defaults(type(est))  # (get_params costs 60 us; these few getattr less)
    for name, (setting, where) in APPLIES_WITH.items():
        if name not in default or getattr(est, setting) in where:
            continue
        value = getattr(est, name)
        if same(value, default[name]):
            continue
        warnings.warn(
            f"{name}={value!r} has no effect with {setting}={getattr(est, setting)!r}: "
            f"it applies only with {setting} in {sorted(where, key=str)}.",
            UserWarning,
            stacklevel=_caller.stacklevel(),
        )


@functools.cache
def defaults(cls):
    """The defaults of ``cls.__init__``'s parameters."""
    return {
        name: p.default for name, p in inspect.signature(cls.__init__).parameters.items()
        if p.default is not inspect.Parameter.empty
    }


def same(value, default):
    """Whether a parameter's ``value`` equals ``default`` (False where they cannot be
    compared)."""
    try:
        return bool(value == default)
    except (TypeError, ValueError):  # arrays and other unhashables compare oddly
        return False
