"""The toolbox beyond scikit-learn, through the public estimators: every activation x loss
x penalty gradient via ``fastbp.check_gradients``, and a behaviour test per feature
(dropout, l1, clipping, solvers, schedules, init, losses, class_weight, X_val/y_val).

Kernel-level references (each optimizer step, the dropout masks, clipping) are in
tests/test_kernels.py; here the estimators are checked to use them as documented.
"""

import pickle

import numpy as np
import pytest
from sklearn.datasets import load_digits, load_iris, make_classification, make_regression
from sklearn.metrics import log_loss, recall_score
from sklearn.model_selection import GridSearchCV

import fastbp
from fastbp import MLPClassifier, MLPRegressor, check_gradients
from fastbp._kernels import activations as A
from fastbp._kernels import train as T
from fastbp._training import Trainer

ESTIMATORS = [MLPClassifier, MLPRegressor]
IDS = ["clf", "reg"]
ACTIVATIONS = sorted(A.HIDDEN_CODES)
PENALTIES = {"none": {}, "l2": dict(alpha=0.05), "l1": dict(l1=0.05),
             "l2+l1": dict(alpha=0.05, l1=0.05)}


pytestmark = pytest.mark.usefixtures("quiet_convergence")


def _data(Est, n=40, seed=0):
    if Est is MLPClassifier:
        X, y = make_classification(n, 6, n_informative=4, n_classes=3, random_state=seed)
        return X, y
    X, y = make_regression(n, 6, n_informative=4, noise=1.0, random_state=seed)
    return X, y / np.std(y)


# --------------------------------------------------------------------------- gradients
# (estimator, params, target maker): every loss, binary and multiclass for the classifier
def _labels(k):
    return lambda rng, n: rng.integers(0, k, n)


LOSS_CASES = {
    "log_loss-binary": (MLPClassifier, dict(loss="log_loss"), _labels(2)),
    "log_loss-multiclass": (MLPClassifier, dict(loss="log_loss"), _labels(3)),
    "hinge-binary": (MLPClassifier, dict(loss="hinge"), _labels(2)),
    "hinge-multiclass": (MLPClassifier, dict(loss="hinge"), _labels(3)),
    "squared_error": (MLPRegressor, dict(loss="squared_error"),
                      lambda rng, n: rng.normal(size=(n, 2))),
    "poisson": (MLPRegressor, dict(loss="poisson"),
                lambda rng, n: rng.poisson(1.0, size=n).astype(float)),
    "absolute_error": (MLPRegressor, dict(loss="absolute_error"),
                       lambda rng, n: rng.normal(size=n)),
    "huber": (MLPRegressor, dict(loss="huber", huber_delta=0.3),
              lambda rng, n: rng.normal(size=(n, 2))),
}


@pytest.mark.parametrize("penalty", list(PENALTIES))
@pytest.mark.parametrize("loss_case", list(LOSS_CASES))
@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_check_gradients_every_activation_loss_penalty(activation, loss_case, penalty):
    Est, params, make_y = LOSS_CASES[loss_case]
    rng = np.random.default_rng(0)
    X = rng.normal(size=(15, 4))
    y = make_y(rng, 15)
    sw = rng.uniform(0.5, 2.0, 15)
    est = Est(hidden_layer_sizes=(5, 4), activation=activation, random_state=1,
              **params, **PENALTIES[penalty])
    assert check_gradients(est, X, y, sample_weight=sw) < 1e-6
    assert not hasattr(est, "coefs_")  # an unfitted estimator stays unfitted


def test_check_gradients_covers_class_weight_and_fitted_float32_models():
    X, y = load_iris(return_X_y=True)
    est = MLPClassifier((6, 5), activation=["gelu", "softplus"], class_weight="balanced",
                        max_iter=30, random_state=0).fit(X.astype(np.float32), y)
    coefs = [c.copy() for c in est.coefs_]
    assert est.coefs_[0].dtype == np.float32
    assert check_gradients(est, X[::3], y[::3]) < 1e-6
    for before, after in zip(coefs, est.coefs_, strict=True):  # the model is untouched
        assert np.array_equal(before, after)
    assert check_gradients(est, X[::3], y[::3], max_entries=5) < 1e-6


def test_check_gradients_detects_a_wrong_gradient(monkeypatch):
    X, y = _data(MLPRegressor)
    est = MLPRegressor(hidden_layer_sizes=(5,), l1=0.1, random_state=0)
    assert check_gradients(est, X, y) < 1e-6
    objective = Trainer.objective

    def without_l1_gradient(self, network, *args):
        f = objective(self, network, *args)

        def wrong(x):
            value, grad = f(x)
            n_coefs = network.layout.n_coefs
            grad[:n_coefs] -= 0.1 * np.sign(x[:n_coefs]) / X.shape[0]
            return value, grad

        return wrong

    monkeypatch.setattr(Trainer, "objective", without_l1_gradient)
    assert check_gradients(est, X, y) > 1e-4


def test_check_gradients_rejects_bad_arguments():
    X, y = _data(MLPRegressor)
    with pytest.raises(ValueError, match="step"):
        check_gradients(MLPRegressor(), X, y, step=0.0)
    with pytest.raises(ValueError, match="max_entries"):
        check_gradients(MLPRegressor(), X, y, max_entries=0)
    with pytest.raises(ValueError, match="activation"):
        check_gradients(MLPRegressor(activation="swish"), X, y)


# ------------------------------------------------------------------------- activations
@pytest.mark.parametrize("Est", ESTIMATORS, ids=IDS)
def test_per_layer_activations_are_used(Est):
    X, y = _data(Est)
    est = Est(hidden_layer_sizes=(7, 5), activation=["gelu", "leaky_relu"], max_iter=5,
              random_state=0).fit(X, y)
    # a plain NumPy forward pass with the documented definitions
    from scipy.special import erf

    h = X @ est.coefs_[0] + est.intercepts_[0]
    h = 0.5 * h * (1 + erf(h / np.sqrt(2)))
    h = h @ est.coefs_[1] + est.intercepts_[1]
    h = np.where(h < 0, 0.01 * h, h)
    out = h @ est.coefs_[2] + est.intercepts_[2]
    if Est is MLPClassifier:
        e = np.exp(out - out.max(axis=1, keepdims=True))
        np.testing.assert_allclose(est.predict_proba(X), e / e.sum(1, keepdims=True),
                                   rtol=1e-10, atol=1e-12)
    else:
        np.testing.assert_allclose(est.predict(X), out.ravel(), rtol=1e-10, atol=1e-12)


# ----------------------------------------------------------------------------- dropout
@pytest.mark.parametrize("Est", ESTIMATORS, ids=IDS)
def test_dropout_lowers_train_fit_and_is_off_at_predict(Est):
    X, y = _data(Est, n=120)
    params = dict(hidden_layer_sizes=(64,), solver="adam", learning_rate_init=0.01,
                  batch_size=30, max_iter=60, tol=0.0, n_iter_no_change=100,
                  random_state=0, alpha=0.0)
    plain = Est(**params).fit(X, y)
    dropped = Est(dropout=0.5, **params).fit(X, y)
    # the training objective, measured with the masks on, stays well above
    assert dropped.loss_ > 1.5 * plain.loss_
    # and the fit to the training data is worse
    assert dropped.score(X, y) < plain.score(X, y)
    # prediction is deterministic and uses the full network, unscaled
    np.testing.assert_array_equal(dropped.predict(X), dropped.predict(X))
    h = np.maximum(X @ dropped.coefs_[0] + dropped.intercepts_[0], 0)
    out = h @ dropped.coefs_[1] + dropped.intercepts_[1]
    if Est is MLPRegressor:
        np.testing.assert_allclose(dropped.predict(X), out.ravel(), rtol=1e-10, atol=1e-12)
    else:
        np.testing.assert_array_equal(dropped.predict(X), dropped.classes_[out.argmax(1)])


@pytest.mark.parametrize("Est", ESTIMATORS, ids=IDS)
def test_dropout_is_reproducible_from_random_state(Est):
    X, y = _data(Est)
    params = dict(hidden_layer_sizes=(8, 6), dropout=[0.3, 0.1], max_iter=4)
    a = Est(random_state=3, **params).fit(X, y)
    b = Est(random_state=3, **params).fit(X, y)
    c = Est(random_state=4, **params).fit(X, y)
    for wa, wb in zip(a.coefs_, b.coefs_, strict=True):
        np.testing.assert_array_equal(wa, wb)
    assert not np.array_equal(a.coefs_[0], c.coefs_[0])
    # a pickled model continues with the same masks as the original
    d = pickle.loads(pickle.dumps(a))
    a.partial_fit(X, y)
    d.partial_fit(X, y)
    np.testing.assert_array_equal(a.coefs_[0], d.coefs_[0])


# ---------------------------------------------------------------------------------- l1
@pytest.mark.parametrize("Est", ESTIMATORS, ids=IDS)
def test_l1_drives_weights_to_zero(Est):
    X, y = _data(Est, n=200)
    params = dict(hidden_layer_sizes=(16,), learning_rate_init=0.01, max_iter=150,
                  tol=0.0, n_iter_no_change=200, random_state=0, alpha=0.0)
    plain = Est(**params).fit(X, y)
    sparse = Est(l1=2.0, **params).fit(X, y)
    small = lambda est: np.mean(np.abs(est.coefs_[0]) < 0.02)  # noqa: E731
    assert small(sparse) > 0.6
    assert small(plain) < 0.2
    # the biases carry no penalty
    assert np.mean(np.abs(sparse.intercepts_[0]) < 0.02) < 0.6


# ------------------------------------------------------------------------ max_grad_norm
@pytest.mark.parametrize("Est", ESTIMATORS, ids=IDS)
def test_max_grad_norm_bounds_every_step(Est):
    X, y = _data(Est)
    y = y * 100.0 if Est is MLPRegressor else y  # large gradients
    lr, max_norm = 0.1, 0.05
    est = Est(hidden_layer_sizes=(5,), solver="sgd", momentum=0.0, learning_rate_init=lr,
              batch_size=X.shape[0], max_grad_norm=max_norm, random_state=0, max_iter=1)
    est.partial_fit(X, y, **({"classes": np.unique(y)} if Est is MLPClassifier else {}))
    for _ in range(3):  # one full-batch step per call: the move is lr * clipped gradient
        before = est._network.params.copy()
        est.partial_fit(X, y)
        moved = np.linalg.norm(est._network.params - before)
        assert moved <= lr * max_norm * (1 + 1e-9)
    assert moved == pytest.approx(lr * max_norm, rel=1e-9)  # it did clip


# ----------------------------------------------------------------------------- solvers
@pytest.mark.parametrize("solver", ["sgd", "adam", "adamw", "rmsprop", "adagrad"])
@pytest.mark.parametrize("Est", ESTIMATORS, ids=IDS)
def test_every_solver_reaches_a_low_loss(Est, solver):
    X, y = _data(Est, n=200)
    lr = {"sgd": 0.05, "adagrad": 0.1}.get(solver, 0.01)
    est = Est(hidden_layer_sizes=(32,), solver=solver, learning_rate_init=lr, max_iter=200,
              random_state=0, batch_size=50, weight_decay=0.0).fit(X, y)
    start = est.loss_curve_[0]
    assert est.loss_ < 0.2 * start, (start, est.loss_)
    assert est.score(X, y) > 0.9


def test_adamw_decays_weights_but_not_biases():
    """One full-batch step from the same start w0: the gradient and the Adam update are
    the same with or without decay, so the difference is exactly -lr * wd * w0 on the
    weights and nothing on the biases."""
    X, y = _data(MLPRegressor)
    lr, wd = 0.01, 3.0
    params = dict(hidden_layer_sizes=(8,), max_iter=1, random_state=0, batch_size=X.shape[0],
                  learning_rate_init=lr)
    a = MLPRegressor(solver="adamw", weight_decay=0.0, **params).fit(X, y)
    b = MLPRegressor(solver="adamw", weight_decay=wd, **params).fit(X, y)
    # the start: the same seed, a step too small to move anything
    w0 = MLPRegressor(solver="sgd", **{**params, "learning_rate_init": 1e-300}).fit(X, y)
    for i in range(2):
        np.testing.assert_allclose(b.coefs_[i] - a.coefs_[i], -lr * wd * w0.coefs_[i],
                                   rtol=1e-9, atol=1e-15)
        np.testing.assert_array_equal(b.intercepts_[i], a.intercepts_[i])
    # and plain adam is adamw without decay
    c = MLPRegressor(solver="adam", **params).fit(X, y)
    np.testing.assert_array_equal(c.coefs_[0], a.coefs_[0])


# --------------------------------------------------------------------------- schedules
def _recorded_rates(monkeypatch, est, X, y):
    rates = []
    real = T.train_epoch

    def spy(params, grads, state, hp, *args):
        rates.append(float(hp[T.HP_LR]))
        return real(params, grads, state, hp, *args)

    monkeypatch.setattr(T, "train_epoch", spy)
    est.fit(X, y)
    return np.array(rates)


SCHEDULES = {
    # name: (extra params, expected rates of epochs 0..5 for learning_rate_init=0.1)
    "constant": ({}, [0.1] * 6),
    "step": (dict(lr_decay=0.5, lr_period=2), [0.1, 0.1, 0.05, 0.05, 0.025, 0.025]),
    "exponential": (dict(lr_decay=0.25, lr_period=2),
                    [0.1, 0.05, 0.025, 0.0125, 0.00625, 0.003125]),
    "cosine": (dict(lr_period=4), [0.1, 0.1 * (1 + np.cos(np.pi / 4)) / 2, 0.05,
                                   0.1 * (1 + np.cos(3 * np.pi / 4)) / 2, 0.1,
                                   0.1 * (1 + np.cos(np.pi / 4)) / 2]),
}


@pytest.mark.parametrize("solver", ["sgd", "adam", "rmsprop"])
@pytest.mark.parametrize("schedule", list(SCHEDULES))
@pytest.mark.parametrize("Est", ESTIMATORS, ids=IDS)
def test_schedules_give_the_documented_rates(monkeypatch, Est, schedule, solver):
    X, y = _data(Est)
    extra, want = SCHEDULES[schedule]
    est = Est(hidden_layer_sizes=(4,), solver=solver, learning_rate=schedule,
              learning_rate_init=0.1, max_iter=6, tol=0.0, n_iter_no_change=10,
              random_state=0, **extra)
    np.testing.assert_allclose(_recorded_rates(monkeypatch, est, X, y), want, rtol=1e-12)


@pytest.mark.parametrize("Est", ESTIMATORS, ids=IDS)
def test_invscaling_and_adaptive_apply_to_every_solver(monkeypatch, Est):
    X, y = _data(Est)
    n = X.shape[0]
    est = Est(hidden_layer_sizes=(4,), solver="adam", learning_rate="invscaling",
              power_t=0.5, learning_rate_init=0.1, max_iter=4, random_state=0)
    want = [0.1] + [0.1 / (n * k + 1) ** 0.5 for k in (1, 2, 3)]
    np.testing.assert_allclose(_recorded_rates(monkeypatch, est, X, y), want, rtol=1e-12)
    # adaptive: divided by 5 whenever n_iter_no_change epochs bring no improvement
    est = Est(hidden_layer_sizes=(4,), solver="rmsprop", learning_rate="adaptive",
              learning_rate_init=0.1, max_iter=12, tol=1e9, n_iter_no_change=2,
              random_state=0)
    rates = _recorded_rates(monkeypatch, est, X, y)
    np.testing.assert_allclose(rates[:4], [0.1] * 4)
    np.testing.assert_allclose(rates[4:7], [0.02] * 3)
    np.testing.assert_allclose(rates[7:10], [0.004] * 3)


def test_lr_period_defaults():
    from fastbp import _schedules as S

    assert S.period("step", None, 200) == 10
    assert S.period("exponential", None, 200) == 10
    assert S.period("cosine", None, 200) == 200
    assert S.period("cosine", 7, 200) == 7


# -------------------------------------------------------------------------------- init
@pytest.mark.parametrize("init", ["glorot_uniform", "glorot_normal", "he_uniform",
                                  "he_normal"])
@pytest.mark.parametrize("Est", ESTIMATORS, ids=IDS)
def test_init_schemes_have_the_documented_spread(Est, init):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(50, 300))
    y = rng.integers(0, 2, 50) if Est is MLPClassifier else rng.normal(size=50)
    est = Est(hidden_layer_sizes=(200,), init=init, max_iter=1, learning_rate_init=1e-12,
              random_state=0).fit(X, y)
    W = est.coefs_[0]
    fan_in, fan_out = W.shape
    fan = fan_in + fan_out if init.startswith("glorot") else fan_in
    bound = np.sqrt(6.0 / fan)  # uniform schemes: U(-bound, bound)
    std = bound / np.sqrt(3.0)  # its std, which the normal schemes have: sqrt(2 / fan)
    assert np.std(W) == pytest.approx(std, rel=0.03)
    if init.endswith("uniform"):
        assert np.abs(W).max() <= bound and np.abs(W).max() > 0.98 * bound
    else:
        assert np.abs(W).max() > bound  # normal tails go beyond the uniform bound
    assert np.all(np.abs(est.intercepts_[0]) < 1e-9)


def test_sklearn_init_is_the_default_and_differs_from_glorot_biases():
    X, y = _data(MLPClassifier)
    a = MLPClassifier((5,), max_iter=1, learning_rate_init=1e-12, random_state=0).fit(X, y)
    assert np.abs(a.intercepts_[0]).min() > 0  # scikit-learn draws biases too


# ------------------------------------------------------------------------------ losses
def test_regression_losses_estimate_mean_median_and_in_between():
    """With no hidden layer and a constant input the model is one number: squared error
    finds the mean, absolute error the median, huber lies in between."""
    y = np.array([0.0, 0.0, 1.0, 1.0, 1.0, 2.0, 2.0, 40.0])
    X = np.zeros((len(y), 1))
    fits = {}
    for loss in ("squared_error", "absolute_error", "huber"):
        est = MLPRegressor(loss=loss, hidden_layer_sizes=(), solver="adam",
                           learning_rate_init=0.05, learning_rate="cosine",
                           batch_size=len(y), max_iter=2000, tol=0.0,
                           n_iter_no_change=3000, random_state=0, alpha=0.0)
        fits[loss] = float(est.fit(X, y).predict(X[:1])[0])
    assert fits["squared_error"] == pytest.approx(y.mean(), abs=0.05)
    assert fits["absolute_error"] == pytest.approx(np.median(y), abs=0.05)
    assert np.median(y) + 0.1 < fits["huber"] < y.mean() - 1.0


@pytest.mark.parametrize("n_classes", [2, 3])
def test_hinge_classifier(n_classes):
    X, y = make_classification(300, 8, n_informative=5, n_classes=n_classes,
                               random_state=0)
    est = MLPClassifier((16,), loss="hinge", max_iter=200, learning_rate_init=0.01,
                        random_state=0).fit(X, y)
    assert est.out_activation_ == "identity"
    assert est.score(X, y) > 0.9
    assert not hasattr(est, "predict_proba")
    assert not hasattr(est, "predict_log_proba")
    with pytest.raises(AttributeError, match="predict_proba") as err:
        est.predict_proba(X)
    assert "loss='hinge'" in str(err.value.__cause__)  # why, for the user reading on
    # the decision threshold of margins is 0 (binary) / the arg max (multiclass)
    out = est._forward_pass_fast(X)
    want = (out[:, 0] > 0).astype(int) if n_classes == 2 else out.argmax(axis=1)
    np.testing.assert_array_equal(est.predict(X), est.classes_[want])


# ------------------------------------------------------------------------ class_weight
def test_balanced_class_weight_improves_minority_recall():
    X, y = make_classification(2000, 10, n_informative=4, weights=[0.93, 0.07],
                               flip_y=0.02, class_sep=0.6, random_state=2)
    Xtr, ytr, Xte, yte = X[:1500], y[:1500], X[1500:], y[1500:]
    params = dict(hidden_layer_sizes=(16,), max_iter=100, random_state=0)
    plain = MLPClassifier(**params).fit(Xtr, ytr)
    balanced = MLPClassifier(class_weight="balanced", **params).fit(Xtr, ytr)
    r_plain = recall_score(yte, plain.predict(Xte))
    r_bal = recall_score(yte, balanced.predict(Xte))
    assert r_bal > r_plain + 0.15, (r_plain, r_bal)


def test_class_weight_dict_equals_sample_weight():
    X, y = load_iris(return_X_y=True)
    params = dict(hidden_layer_sizes=(5,), solver="lbfgs", max_iter=20, random_state=0)
    a = MLPClassifier(class_weight={0: 3.0, 2: 0.5}, **params).fit(X, y)
    sw = np.select([y == 0, y == 2], [3.0, 0.5], 1.0)
    b = MLPClassifier(**params).fit(X, y, sample_weight=sw)
    np.testing.assert_allclose(a.coefs_[0], b.coefs_[0], rtol=1e-12, atol=1e-14)
    # combined multiplicatively with sample_weight
    c = MLPClassifier(class_weight={0: 3.0, 2: 0.5}, **params).fit(X, y, sample_weight=sw)
    d = MLPClassifier(**params).fit(X, y, sample_weight=sw * sw)
    np.testing.assert_allclose(c.coefs_[0], d.coefs_[0], rtol=1e-12, atol=1e-14)


def test_class_weight_errors():
    X, y = load_iris(return_X_y=True)
    with pytest.raises(ValueError, match="not classes"):
        MLPClassifier(class_weight={7: 2.0}, max_iter=2).fit(X, y)
    with pytest.raises(ValueError, match="partial_fit"):
        MLPClassifier(class_weight="balanced").partial_fit(X, y, classes=[0, 1, 2])
    Y = np.stack([y == 0, y == 1], axis=1).astype(int)
    with pytest.raises(ValueError, match="multilabel"):
        MLPClassifier(class_weight="balanced", max_iter=2).fit(X, Y)


# ---------------------------------------------------------------------- validation set
@pytest.mark.parametrize("Est", ESTIMATORS, ids=IDS)
def test_user_validation_set_drives_early_stopping(Est):
    X, y = _data(Est, n=300)
    Xtr, ytr, Xv, yv = X[:200], y[:200], X[200:], y[200:]
    est = Est(hidden_layer_sizes=(16,), early_stopping=True, validation_fraction=0.5,
              max_iter=300, n_iter_no_change=5, tol=1e-2, random_state=0)
    est.fit(Xtr, ytr, X_val=Xv, y_val=yv)
    assert est.t_ == est.n_iter_ * 200  # every training row used: no split
    assert len(est.validation_scores_) == len(est.validation_loss_curve_) == est.n_iter_
    assert est.best_validation_score_ == max(est.validation_scores_)
    # the best weights are restored: the model scores the best score on X_val
    assert est.score(Xv, yv) == pytest.approx(est.best_validation_score_, rel=1e-12)
    assert est.n_iter_ < 300


@pytest.mark.parametrize("Est", ESTIMATORS, ids=IDS)
def test_validation_loss_curve_is_the_validation_loss(Est):
    X, y = _data(Est, n=200)
    Xv, yv = X[150:], y[150:]
    sw = np.linspace(0.5, 2.0, 50)
    est = Est(hidden_layer_sizes=(8,), max_iter=7, random_state=0, alpha=1.0)
    est.fit(X[:150], y[:150], X_val=Xv, y_val=yv, sample_weight_val=sw)
    assert len(est.validation_loss_curve_) == 7 == len(est.validation_scores_)
    if Est is MLPClassifier:
        want = log_loss(yv, est.predict_proba(Xv), sample_weight=sw)
    else:  # half squared error; no penalty in it
        want = np.average(0.5 * (yv - est.predict(Xv)) ** 2, weights=sw)
    assert est.validation_loss_curve_[-1] == pytest.approx(want, rel=1e-10)
    assert est.validation_scores_[-1] == pytest.approx(est.score(Xv, yv, sw), rel=1e-12)
    # without a validation set there is no such attribute
    est.fit(X, y)
    assert not hasattr(est, "validation_loss_curve_")
    # lbfgs records the validation loss at every iteration
    lb = Est(hidden_layer_sizes=(8,), solver="lbfgs", max_iter=15, random_state=0)
    lb.fit(X[:150], y[:150], X_val=Xv, y_val=yv)
    assert len(lb.validation_loss_curve_) == lb.n_iter_


@pytest.mark.parametrize("Est", ESTIMATORS, ids=IDS)
def test_validation_set_errors(Est):
    X, y = _data(Est)
    est = Est(hidden_layer_sizes=(4,), max_iter=2)
    with pytest.raises(ValueError, match="X_val and y_val must be given together"):
        est.fit(X, y, X_val=X)
    with pytest.raises(ValueError, match="sample_weight_val"):
        est.fit(X, y, sample_weight_val=np.ones(3))
    with pytest.raises(ValueError, match="features"):
        est.fit(X, y, X_val=X[:, :3], y_val=y)
    with pytest.raises(ValueError, match="rows"):
        est.fit(X, y, X_val=X, y_val=y[:5])
    if Est is MLPClassifier:
        with pytest.raises(ValueError, match="not in the training classes"):
            est.fit(X, y, X_val=X[:3], y_val=[0, 1, 9])


# -------------------------------------------------------------------- parameter errors
BAD_PARAMS = [
    (dict(activation="swish"), "activation"),
    (dict(activation=["relu", "swish"]), "swish"),
    (dict(activation=["relu"]), "activation has 1 entries"),
    (dict(dropout=1.0), "dropout"),
    (dict(dropout=[0.1]), "dropout has 1 entries"),
    (dict(dropout=[0.1, 1.5]), "dropout"),
    (dict(solver="lamb"), "solver"),
    (dict(learning_rate="linear"), "learning_rate"),
    (dict(init="orthogonal"), "init"),
    (dict(l1=-1.0), "l1"),
    (dict(max_grad_norm=0.0), "max_grad_norm"),
    (dict(weight_decay=-0.1), "weight_decay"),
    (dict(rho=1.0), "rho"),
    (dict(lr_decay=0.0), "lr_decay"),
    (dict(lr_period=0), "lr_period"),
    (dict(solver="lbfgs", dropout=0.2), "dropout needs a stochastic solver"),
]


@pytest.mark.parametrize("Est", ESTIMATORS, ids=IDS)
@pytest.mark.parametrize("params, match", BAD_PARAMS)
def test_invalid_toolbox_parameters_are_named(Est, params, match):
    X, y = _data(Est)
    with pytest.raises(ValueError, match=match):
        Est(hidden_layer_sizes=(4, 3), max_iter=2, **params).fit(X, y)


def test_invalid_loss_and_class_weight_values_are_named():
    X, y = _data(MLPClassifier)
    with pytest.raises(ValueError, match="loss"):
        MLPClassifier(loss="squared_hinge").fit(X, y)
    with pytest.raises(ValueError, match="class_weight"):
        MLPClassifier(class_weight="equal").fit(X, y)
    X, y = _data(MLPRegressor)
    with pytest.raises(ValueError, match="loss"):
        MLPRegressor(loss="quantile").fit(X, y)
    with pytest.raises(ValueError, match="huber_delta"):
        MLPRegressor(loss="huber", huber_delta=0.0).fit(X, y)


# -------------------------------------------------------------------------- ecosystem
def test_toolbox_parameters_in_grid_search_and_pickle():
    X, y = load_digits(return_X_y=True)
    X = X[:300] / 16.0
    y = y[:300]
    grid = GridSearchCV(
        MLPClassifier((16,), max_iter=5, random_state=0),
        {"activation": ["gelu", ["elu"]], "dropout": [0.0, 0.2], "solver": ["adamw"]},
        cv=2,
    ).fit(X, y)
    assert len(grid.cv_results_["params"]) == 4
    est = pickle.loads(pickle.dumps(grid.best_estimator_))
    np.testing.assert_array_equal(est.predict(X), grid.best_estimator_.predict(X))
    assert fastbp.check_gradients(est, X[:20], y[:20], max_entries=20) < 1e-6


def test_toolbox_choices_share_one_compiled_epoch_per_dtype(monkeypatch):
    """Activations, losses, optimizers, dropout rates and penalties are runtime codes,
    addresses and values: whatever is chosen, the epoch kernel takes one signature per
    dtype, and one more per dtype for fits with dropout."""
    from numba import typeof

    from fastbp._kernels import optimizers as O

    seen, solvers = set(), set()
    epoch = T.train_epoch

    def recording(*args):
        seen.add(tuple(typeof(a) for a in args))  # the types numba dispatches on
        solvers.add(int(args[4][T.IHP_SOLVER]))
        return epoch(*args)

    monkeypatch.setattr(T, "train_epoch", recording)
    X, y = _data(MLPRegressor)
    configs = [
        dict(activation="gelu", solver="adamw", dropout=0.2, l1=0.1, max_grad_norm=1.0),
        dict(activation=["elu", "softplus"], solver="rmsprop", loss="huber"),
        dict(activation="leaky_relu", solver="adagrad", loss="absolute_error"),
        dict(activation="tanh", solver="sgd", loss="poisson"),
    ]
    for dtype in (np.float64, np.float32):
        for cfg in configs:
            yy = np.abs(y) if cfg.get("loss") == "poisson" else y
            hidden = (5, 4) if isinstance(cfg["activation"], list) else (5,)
            MLPRegressor(hidden_layer_sizes=hidden, max_iter=2, random_state=0, **cfg).fit(
                X.astype(dtype), yy
            )
        Xc, yc = _data(MLPClassifier)
        MLPClassifier((5,), loss="hinge", max_iter=2).fit(Xc.astype(dtype), yc)
        MLPClassifier((5,), max_iter=2, class_weight="balanced").fit(Xc.astype(dtype), yc)
    assert solvers == set(O.CODES.values())  # the premise: every optimizer ran
    assert len(seen) == 4, seen


# ------------------------------------------------------------- early-stopping scoring
@pytest.mark.parametrize(
    "Est, scoring",
    [(MLPClassifier, "neg_log_loss"), (MLPClassifier, "roc_auc_ovr"),
     (MLPRegressor, "neg_mean_absolute_error")],
)
def test_validation_scores_follow_a_scorer(Est, scoring):
    from sklearn.metrics import get_scorer

    X, y = _data(Est)
    est = Est(hidden_layer_sizes=(5,), max_iter=15, random_state=0, scoring=scoring)
    est.fit(X[::2], y[::2], X_val=X[1::2], y_val=y[1::2])
    assert est.validation_scores_[-1] == get_scorer(scoring)(est, X[1::2], y[1::2])
    assert est.best_validation_score_ == max(est.validation_scores_)


@pytest.mark.parametrize("Est", [MLPClassifier, MLPRegressor])
def test_scoring_loss_stops_on_the_validation_loss(Est):
    X, y = _data(Est)
    est = Est(hidden_layer_sizes=(5,), max_iter=300, random_state=0, scoring="loss",
              early_stopping=True, n_iter_no_change=3, learning_rate_init=0.05)
    est.fit(X, y)
    np.testing.assert_array_equal(est.validation_scores_, -np.array(est.validation_loss_curve_))
    assert est.n_iter_ < 300  # stopped by the rule
    best = int(np.argmax(est.validation_scores_))
    assert est.n_iter_ - 1 - best > 3  # no improvement over the last n_iter_no_change epochs
    default = Est(hidden_layer_sizes=(5,), max_iter=5, random_state=0, early_stopping=True)
    default.fit(X, y)
    assert not np.allclose(default.validation_scores_, -np.array(default.validation_loss_curve_))


@pytest.mark.parametrize("Est", [MLPClassifier, MLPRegressor])
def test_an_unknown_scoring_name_is_an_error_before_training(Est):
    X, y = _data(Est)
    with pytest.raises(ValueError, match="'nonsense' is not a valid scoring value"):
        Est(scoring="nonsense", early_stopping=True).fit(X, y)
