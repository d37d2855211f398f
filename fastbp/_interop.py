"""Conversion between fastbp's estimators and scikit-learn's ``sklearn.neural_network``.

The network (weights, activations, output) converts exactly, so predictions are the same.
Training state converts too where scikit-learn has it (Adam's moments and step count,
SGD's velocities and learning rate), so ``partial_fit`` and ``warm_start`` continue where
the other left off. Settings that only scikit-learn lacks and that change no prediction
(another solver, dropout, L1, clipping, a schedule, ...) are replaced by scikit-learn's
defaults in ``to_sklearn``, with a warning that lists them. The regressor's target
scaling folds into the output layer; its clipping cannot be expressed and is dropped,
with a warning.
"""

import warnings
from dataclasses import dataclass

import numpy as np
from sklearn.base import is_classifier

from ._network import Network, loss_code
from ._training import Optimizer

SKLEARN_ACTIVATIONS = ("identity", "logistic", "tanh", "relu")
# fitted attributes both libraries keep alike, copied as they are when present
FITTED_ATTRIBUTES = (
    "n_features_in_", "feature_names_in_", "n_layers_", "n_outputs_", "out_activation_",
    "n_iter_", "t_", "loss_", "best_loss_", "validation_scores_", "best_validation_score_",
    "classes_", "_label_binarizer",
)
# fastbp parameters handled by the export itself, not merely replaced by a default
_EXPORTED_OTHERWISE = {"huber_delta", "normalize_y", "clip_predictions"}


def _sklearn_network():
    """``sklearn.neural_network``, imported on first use: a fit never needs it (see
    fastbp/__init__.py on import time)."""
    from sklearn import neural_network

    return neural_network


def _sklearn_class(est):
    sknn = _sklearn_network()
    return sknn.MLPClassifier if is_classifier(est) else sknn.MLPRegressor


def _differs(a, b):
    try:
        return bool(a != b)
    except ValueError:  # arrays
        return True


def _copy(value):
    if isinstance(value, list):
        return list(value)
    if isinstance(value, np.ndarray):
        return value.copy()
    return value


def to_sklearn(est, network, hidden, optimizer, attributes):
    """A fitted scikit-learn estimator with the same network as the fitted ``est``.

    ``network`` is its network, ``hidden`` the names of its hidden activations,
    ``optimizer`` its optimizer state (or None), ``attributes`` its fitted attributes
    (``FITTED_ATTRIBUTES``, and ``_no_improvement_count`` of the stochastic solvers).
    """
    if len(set(hidden)) > 1 or any(a not in SKLEARN_ACTIVATIONS for a in hidden):
        raise ValueError(
            f"scikit-learn's MLP has one hidden activation among {SKLEARN_ACTIVATIONS}; "
            f"this network has {hidden}, which it cannot express."
        )
    if is_classifier(est) and est.loss != "log_loss":
        raise ValueError(
            f"scikit-learn's MLPClassifier has only loss='log_loss' (softmax/logistic "
            f"outputs); loss={est.loss!r} has linear outputs, which it cannot express."
        )
    cls = _sklearn_class(est)
    sk_params = cls().get_params()
    params = {k: v for k, v in est.get_params().items() if k in sk_params}
    params["activation"] = hidden[0] if hidden else "relu"
    replaced = {}
    if not is_classifier(est) and params["loss"] not in ("squared_error", "poisson"):
        # an identity output like squared_error's: the same predictions
        replaced["loss"] = params["loss"]
        params["loss"] = "squared_error"
    if params["solver"] not in ("lbfgs", "sgd", "adam"):
        replaced["solver"] = params["solver"]
        params["solver"] = "adam"
    if params["learning_rate"] not in ("constant", "invscaling", "adaptive"):
        replaced["learning_rate"] = params["learning_rate"]
        params["learning_rate"] = "constant"
    defaults = type(est)().get_params()
    for name, value in est.get_params().items():
        if (name not in sk_params and name not in _EXPORTED_OTHERWISE
                and _differs(value, defaults[name])):
            replaced[name] = value
    if replaced:
        warnings.warn(
            "scikit-learn has no equivalent of these training settings, which do not change "
            f"the predictions; the exported estimator uses its defaults instead: {replaced}",
            UserWarning,
            stacklevel=3,
        )
    if "prediction_bounds_" in est.__dict__:
        warnings.warn(
            f"scikit-learn's MLPRegressor cannot clip its predictions: the exported "
            f"estimator's will not be clipped (clip_predictions={est.clip_predictions!r}, "
            f"bounds {est.prediction_bounds_.tolist()}); clip them yourself, e.g. "
            "np.clip(pred, *bounds).",
            UserWarning,
            stacklevel=3,
        )
    sk = cls(**params)
    sk.coefs_ = [np.array(c, dtype=np.float64) for c in network.coefs]
    sk.intercepts_ = [np.array(b, dtype=np.float64) for b in network.intercepts]
    scaled = "target_scale_" in est.__dict__
    if scaled:
        _fold_target_scaling(sk, est.target_mean_, est.target_scale_)
    for name, value in attributes.items():
        setattr(sk, name, _copy(value))
    if isinstance(getattr(est, "loss_curve_", None), list):
        sk.loss_curve_ = list(est.loss_curve_)
    # a scaled network's optimizer state belongs to the scaled problem, not sk's
    same_solver = optimizer is not None and optimizer.solver == params["solver"] == est.solver
    if same_solver and not scaled:
        _export_optimizer(network, optimizer, sk)
    return sk


def _fold_target_scaling(sk, mean, scale):
    """Fold ``y = output * scale + mean`` into the (identity) output layer of ``sk``:
    its weights and bias times the scale, plus the mean; the same function, affine."""
    scale = np.asarray(scale, dtype=np.float64)
    sk.coefs_[-1] *= scale
    sk.intercepts_[-1] *= scale
    sk.intercepts_[-1] += np.asarray(mean, dtype=np.float64)


def _export_optimizer(network, optimizer, sk):
    from sklearn.neural_network._stochastic_optimizers import AdamOptimizer, SGDOptimizer

    params = sk.coefs_ + sk.intercepts_
    layout = network.layout

    def arrays(flat):
        coefs, intercepts = layout.views(np.asarray(flat, dtype=np.float64))
        return [a.copy() for a in coefs + intercepts]

    if sk.solver == "adam":
        opt = AdamOptimizer(params, sk.learning_rate_init, sk.beta_1, sk.beta_2, sk.epsilon)
        opt.ms, opt.vs = arrays(optimizer.state[0]), arrays(optimizer.state[1])
        opt.t = int(optimizer.t)
    else:
        opt = SGDOptimizer(params, sk.learning_rate_init, sk.learning_rate, sk.momentum,
                           sk.nesterovs_momentum, sk.power_t)
        opt.velocities = arrays(optimizer.state[0])
        opt.learning_rate = float(optimizer.learning_rate)
    sk._optimizer = opt


@dataclass
class Imported:
    """What a fastbp estimator takes over from a fitted scikit-learn MLP."""

    network: Network
    optimizer: Optimizer | None
    attributes: dict
    no_improvement_count: int


def from_sklearn(cls, sk):
    """The network, optimizer state and fitted attributes of ``sk`` for a ``cls``
    (fastbp) estimator."""
    sknn = _sklearn_network()
    if not isinstance(sk, sknn.MLPClassifier | sknn.MLPRegressor):
        raise TypeError(
            f"from_sklearn takes a fitted sklearn.neural_network estimator, got {type(sk)!r}."
        )
    if is_classifier(sk) != (cls.__name__ == "MLPClassifier"):
        raise TypeError(f"{cls.__name__}.from_sklearn cannot take a {type(sk).__name__}.")
    if not hasattr(sk, "coefs_"):
        raise ValueError(f"{type(sk).__name__} is not fitted: fit it first.")
    attributes = {name: _copy(sk.__dict__[name]) for name in FITTED_ATTRIBUTES
                  if name in sk.__dict__}
    if isinstance(getattr(sk, "loss_curve_", None), list):
        attributes["loss_curve_"] = list(sk.loss_curve_)
    binary = is_classifier(sk) and sk._label_binarizer.y_type_ != "multiclass"
    network = Network.from_arrays(sk.coefs_, sk.intercepts_, loss_code(sk.loss, binary))
    return Imported(
        network=network,
        optimizer=_import_optimizer(sk, network),
        attributes=attributes,
        no_improvement_count=int(sk.__dict__.get("_no_improvement_count", 0)),
    )


def _import_optimizer(sk, network):
    """scikit-learn's 'adam' or 'sgd' state in fastbp's layout (None for others)."""
    opt = getattr(sk, "_optimizer", None)
    if opt is None or sk.solver not in ("sgd", "adam"):
        return None
    layout, dtype = network.layout, network.dtype
    depth = network.n_layers - 1

    def flat(arrays):
        return layout.pack(arrays[:depth], arrays[depth:], dtype)

    rate = opt.learning_rate if sk.solver == "sgd" else sk.learning_rate_init
    optimizer = Optimizer(sk.solver, layout.n_params, dtype, rate)
    if sk.solver == "adam":
        optimizer.state[0], optimizer.state[1] = flat(opt.ms), flat(opt.vs)
        optimizer.t = int(opt.t)
    else:
        optimizer.state[0] = flat(opt.velocities)
    return optimizer
