"""Conversion between fastbp's estimators and scikit-learn's ``sklearn.neural_network``.

The network (weights, activations, output) converts exactly, so predictions are the same.
Training state converts too where scikit-learn has it (Adam's moments and step count,
SGD's velocities and learning rate), so ``partial_fit`` and ``warm_start`` continue where
the other left off. Settings that only scikit-learn lacks and that change no prediction
(another solver, dropout, L1, clipping, a schedule, ...) are replaced by scikit-learn's
defaults in ``to_sklearn``, with a warning that lists them.
"""

import warnings

import numpy as np
from sklearn import neural_network as sknn
from sklearn.base import is_classifier

from ._kernels import losses as _loss
from ._layout import Layout

SKLEARN_ACTIVATIONS = ("identity", "logistic", "tanh", "relu")
# fitted attributes copied as they are, when present
_PLAIN_ATTRIBUTES = (
    "n_features_in_", "feature_names_in_", "n_layers_", "n_outputs_", "out_activation_",
    "n_iter_", "t_", "loss_", "best_loss_", "validation_scores_", "best_validation_score_",
    "classes_", "_label_binarizer", "_no_improvement_count",
)


def _sklearn_class(est):
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


def to_sklearn(est):
    """A fitted scikit-learn estimator with the same network as the fitted ``est``."""
    est._sync_params()
    hidden = est._hidden_activations(est.n_layers_ - 2)
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
        if name not in sk_params and name != "huber_delta" and _differs(value, defaults[name]):
            replaced[name] = value
    if replaced:
        warnings.warn(
            "scikit-learn has no equivalent of these training settings, which do not change "
            f"the predictions; the exported estimator uses its defaults instead: {replaced}",
            UserWarning,
            stacklevel=3,
        )
    sk = cls(**params)
    sk.coefs_ = [np.array(c, dtype=np.float64) for c in est.coefs_]
    sk.intercepts_ = [np.array(b, dtype=np.float64) for b in est.intercepts_]
    for name in _PLAIN_ATTRIBUTES:
        if name in est.__dict__:
            setattr(sk, name, _copy(est.__dict__[name]))
    if isinstance(getattr(est, "loss_curve_", None), list):
        sk.loss_curve_ = list(est.loss_curve_)
    if est.__dict__.get("_opt_solver") == params["solver"] == est.solver:
        _export_optimizer(est, sk)
    return sk


def _export_optimizer(est, sk):
    from sklearn.neural_network._stochastic_optimizers import AdamOptimizer, SGDOptimizer

    params = sk.coefs_ + sk.intercepts_
    layout = est._layout

    def arrays(flat):
        coefs, intercepts = layout.views(np.asarray(flat, dtype=np.float64))
        return [a.copy() for a in coefs + intercepts]

    if sk.solver == "adam":
        opt = AdamOptimizer(params, sk.learning_rate_init, sk.beta_1, sk.beta_2, sk.epsilon)
        opt.ms, opt.vs = arrays(est._opt_state[0]), arrays(est._opt_state[1])
        opt.t = int(est._opt_t)
    else:
        opt = SGDOptimizer(params, sk.learning_rate_init, sk.learning_rate, sk.momentum,
                           sk.nesterovs_momentum, sk.power_t)
        opt.velocities = arrays(est._opt_state[0])
        opt.learning_rate = float(est._learning_rate)
    sk._optimizer = opt


def from_sklearn(cls, sk):
    """A fitted ``cls`` (fastbp) with the network and training state of ``sk``."""
    if not isinstance(sk, sknn.MLPClassifier | sknn.MLPRegressor):
        raise TypeError(
            f"from_sklearn takes a fitted sklearn.neural_network estimator, got {type(sk)!r}."
        )
    if is_classifier(sk) != (cls.__name__ == "MLPClassifier"):
        raise TypeError(f"{cls.__name__}.from_sklearn cannot take a {type(sk).__name__}.")
    if not hasattr(sk, "coefs_"):
        raise ValueError(f"{type(sk).__name__} is not fitted: fit it first.")
    est = cls(**sk.get_params())
    for name in _PLAIN_ATTRIBUTES:
        if name in sk.__dict__:
            est.__dict__[name] = _copy(sk.__dict__[name])
    if isinstance(getattr(sk, "loss_curve_", None), list):
        est.loss_curve_ = list(sk.loss_curve_)
    dtype = np.asarray(sk.coefs_[0]).dtype
    dtype = dtype if dtype in (np.float32, np.float64) else np.float64
    units = [sk.coefs_[0].shape[0]] + [c.shape[1] for c in sk.coefs_]
    layout = Layout(units)
    est._set_params_vector(layout, layout.pack(sk.coefs_, sk.intercepts_, dtype))
    est._best_params = est._params.copy()
    if is_classifier(sk):
        multiclass = sk._label_binarizer.y_type_ == "multiclass"
        est._loss_code = _loss.LOG_LOSS if multiclass else _loss.BINARY_LOG_LOSS
    else:
        est._loss_code = {"squared_error": _loss.SQUARED_ERROR, "poisson": _loss.POISSON}[
            sk.loss
        ]
    est._dropout_seed = None
    opt = getattr(sk, "_optimizer", None)
    if opt is not None and sk.solver in ("sgd", "adam"):
        est._new_optimizer_state()
        if sk.solver == "adam":
            est._opt_state[0] = layout.pack(opt.ms[: len(units) - 1], opt.ms[len(units) - 1 :],
                                            dtype)
            est._opt_state[1] = layout.pack(opt.vs[: len(units) - 1], opt.vs[len(units) - 1 :],
                                            dtype)
            est._opt_t = int(opt.t)
        else:
            v = opt.velocities
            est._opt_state[0] = layout.pack(v[: len(units) - 1], v[len(units) - 1 :], dtype)
            est._learning_rate = float(opt.learning_rate)
    return est
