"""Behaviour of both estimators: the flat parameter vector, the ecosystem, bad input."""

import io
import pickle
import warnings

import joblib
import numpy as np
import pytest
from sklearn.base import clone
from sklearn.datasets import load_iris, make_regression
from sklearn.exceptions import ConvergenceWarning, NotFittedError
from sklearn.model_selection import GridSearchCV, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from fastbp import MLPClassifier, MLPRegressor

pytestmark = pytest.mark.usefixtures("quiet_convergence")


def _data(Est):
    if Est is MLPClassifier:
        X, y = load_iris(return_X_y=True)
        return X, y
    X, y = make_regression(n_samples=150, n_features=4, noise=0.1, random_state=0)
    return X, y / y.std()


BOTH = pytest.mark.parametrize("Est", [MLPClassifier, MLPRegressor])


def _fitted(Est, **params):
    X, y = _data(Est)
    params = {"hidden_layer_sizes": (8, 4), "max_iter": 20, "random_state": 0, **params}
    return Est(**params).fit(X, y), X, y


def _predictions(est, X):
    return est.predict_proba(X) if hasattr(est, "predict_proba") else est.predict(X)


# ------------------------------------------------------------------ the flat vector
@BOTH
def test_coefs_and_intercepts_are_views_of_one_flat_vector(Est):
    est, X, _ = _fitted(Est)
    flat = est._network.params
    assert flat.ndim == 1
    for a in est.coefs_ + est.intercepts_:
        assert a.base is flat
    assert sum(a.size for a in est.coefs_ + est.intercepts_) == flat.size
    # writing through a view changes the model
    before = _predictions(est, X)
    est.coefs_[0][...] = 0.0
    assert not np.allclose(_predictions(est, X), before)


@BOTH
def test_reassigned_coefs_are_used(Est):
    est, X, _ = _fitted(Est)
    ref = clone(est).set_params(random_state=1).fit(*_data(Est))
    est.coefs_ = [c.copy() for c in ref.coefs_]
    est.intercepts_ = [b.copy() for b in ref.intercepts_]
    np.testing.assert_allclose(_predictions(est, X), _predictions(ref, X))
    assert est.coefs_[0].base is est._network.params  # re-packed on use


# ------------------------------------------------------------------ persistence, API
@BOTH
def test_pickle_and_joblib_round_trip(Est):
    est, X, y = _fitted(Est)
    for loaded in (pickle.loads(pickle.dumps(est)), _joblib_round_trip(est)):
        np.testing.assert_array_equal(_predictions(loaded, X), _predictions(est, X))
        assert loaded.coefs_[0].base is loaded._network.params
        loaded.partial_fit(X, y)  # trainable after loading


def _joblib_round_trip(est):
    buf = io.BytesIO()
    joblib.dump(est, buf)
    buf.seek(0)
    return joblib.load(buf)


@BOTH
def test_pipeline_grid_search_and_cross_val_score(Est):
    X, y = _data(Est)
    pipe = make_pipeline(StandardScaler(), Est(max_iter=100, learning_rate_init=0.01,
                                               random_state=0))
    grid = GridSearchCV(pipe, {f"{Est.__name__.lower()}__hidden_layer_sizes": [(4,), (8,)]},
                        cv=3)
    grid.fit(X, y)
    assert grid.best_score_ > (0.6 if Est is MLPClassifier else 0.5)
    scores = cross_val_score(Est(hidden_layer_sizes=(8,), max_iter=50, random_state=0,
                                 learning_rate_init=0.01), X, y, cv=3)
    assert np.all(np.isfinite(scores))


@BOTH
def test_partial_fit_only_for_stochastic_solvers(Est):
    # scikit-learn's regressor wrongly exposes partial_fit with lbfgs.
    assert not hasattr(Est(solver="lbfgs"), "partial_fit")
    assert hasattr(Est(solver="sgd"), "partial_fit")
    assert hasattr(Est(solver="adam"), "partial_fit")


@BOTH
def test_reproducible_with_random_state(Est):
    a, X, _ = _fitted(Est)
    b, _, _ = _fitted(Est)
    np.testing.assert_array_equal(a._network.params, b._network.params)
    c, _, _ = _fitted(Est, random_state=1)
    assert not np.array_equal(a._network.params, c._network.params)


@BOTH
def test_zero_weight_minibatch_is_skipped_not_nan(Est):
    X, y = _data(Est)
    sw = np.ones(len(y))
    sw[:10] = 0.0  # with shuffle=False and batch_size=10 the first batch weighs nothing
    est = Est(hidden_layer_sizes=(5,), batch_size=10, shuffle=False, max_iter=3,
              random_state=0).fit(X, y, sample_weight=sw)
    assert np.isfinite(est._network.params).all() and np.isfinite(est.loss_)


@BOTH
def test_sample_weight_zero_equals_dropping_rows_lbfgs(Est):
    X, y = _data(Est)
    sw = np.ones(len(y))
    sw[::3] = 0
    keep = sw > 0
    a = Est(solver="lbfgs", hidden_layer_sizes=(5,), max_iter=30, random_state=0)
    b = clone(a)
    a.fit(X, y, sample_weight=sw)
    b.fit(X[keep], y[keep])
    np.testing.assert_allclose(a._network.params, b._network.params, rtol=1e-6, atol=1e-8)


def test_lbfgs_multioutput_regression_converges():
    # scikit-learn's loss/gradient mismatch (issue 8349) makes its line search fail here.
    X, Y = make_regression(n_samples=200, n_features=5, n_targets=4, random_state=0)
    Y = Y / Y.std(0)
    est = MLPRegressor(solver="lbfgs", hidden_layer_sizes=(10,), max_iter=2000,
                       random_state=0, tol=1e-8, alpha=1e-3)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        est.fit(X, Y)
    P = est.predict(X)
    expected = 0.5 * np.mean(np.sum((Y - P) ** 2, axis=1)) + 0.5 * 1e-3 * sum(
        np.sum(c**2) for c in est.coefs_
    ) / len(Y)
    assert est.loss_ == pytest.approx(expected, rel=1e-7)


def test_string_labels_and_predict_log_proba():
    X, y = load_iris(return_X_y=True)
    names = np.array(["setosa", "versicolor", "virginica"])[y]
    est = MLPClassifier(hidden_layer_sizes=(10,), max_iter=200, random_state=0,
                        learning_rate_init=0.01).fit(X, names)
    assert set(est.predict(X)) <= set(names)
    assert est.score(X, names) > 0.9
    np.testing.assert_allclose(np.exp(est.predict_log_proba(X)), est.predict_proba(X))
    np.testing.assert_allclose(est.predict_proba(X).sum(1), 1.0)


def test_pandas_keeps_feature_names():
    pd = pytest.importorskip("pandas")
    X, y = load_iris(return_X_y=True)
    df = pd.DataFrame(X, columns=["a", "b", "c", "d"])
    est = MLPClassifier(max_iter=5, random_state=0).fit(df, y)
    np.testing.assert_array_equal(est.feature_names_in_, ["a", "b", "c", "d"])


# ------------------------------------------------------------------------- bad input
@BOTH
def test_predict_before_fit_raises_not_fitted(Est):
    with pytest.raises(NotFittedError):
        Est().predict(np.ones((2, 3)))


@BOTH
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_input_is_rejected(Est, bad):
    X, y = _data(Est)
    X = X.copy()
    X[3, 1] = bad
    with pytest.raises(ValueError, match="NaN|infinity"):
        Est(max_iter=2).fit(X, y)


@BOTH
def test_shape_errors(Est):
    X, y = _data(Est)
    with pytest.raises(ValueError, match="2D array"):
        Est(max_iter=2).fit(X[:, 0], y)
    with pytest.raises(ValueError, match="inconsistent numbers of samples"):
        Est(max_iter=2).fit(X, y[:-1])
    with pytest.raises(ValueError, match="0 feature"):
        Est(max_iter=2).fit(X[:, :0], y)
    est = Est(max_iter=2).fit(X, y)
    with pytest.raises(ValueError, match="features"):
        est.predict(X[:, :2])
    with pytest.raises(ValueError, match="sample_weight"):
        Est(max_iter=2).fit(X, y, sample_weight=np.ones(3))


@BOTH
@pytest.mark.parametrize(
    "params, match",
    [
        ({"solver": "newton"}, "solver"),
        ({"activation": "swish"}, "activation"),
        ({"alpha": -1.0}, "alpha"),
        ({"hidden_layer_sizes": (3, 0)}, "hidden_layer_sizes"),
        ({"hidden_layer_sizes": (3, -2)}, "hidden_layer_sizes"),
        ({"learning_rate_init": 0.0}, "learning_rate_init"),
        ({"momentum": 1.5}, "momentum"),
        ({"beta_1": 1.0}, "beta_1"),
        ({"batch_size": 0}, "batch_size"),
        ({"validation_fraction": 1.0}, "validation_fraction"),
        ({"max_iter": 0}, "max_iter"),
    ],
)
def test_invalid_parameters_named_in_error(Est, params, match):
    X, y = _data(Est)
    with pytest.raises(ValueError, match=match):
        Est(**params).fit(X, y)


def test_poisson_rejects_negative_targets():
    X, y = make_regression(n_samples=30, n_features=3, random_state=0)
    with pytest.raises(ValueError, match="negative"):
        MLPRegressor(loss="poisson", max_iter=2).fit(X, y)


@BOTH
def test_warm_start_with_new_architecture_is_a_clear_error(Est):
    est, X, y = _fitted(Est, warm_start=True)
    est.set_params(hidden_layer_sizes=(3,))
    with pytest.raises(ValueError, match="layer sizes"):
        est.fit(X, y)


def test_partial_fit_classes_errors():
    X, y = load_iris(return_X_y=True)
    with pytest.raises(ValueError, match="classes must be passed"):
        MLPClassifier().partial_fit(X, y)
    est = MLPClassifier().partial_fit(X[y < 2], y[y < 2], classes=[0, 1])
    with pytest.raises(ValueError, match="classes not in"):
        est.partial_fit(X, y)


@BOTH
def test_early_stopping_with_partial_fit_is_rejected(Est):
    X, y = _data(Est)
    extra = {"classes": np.unique(y)} if Est is MLPClassifier else {}
    with pytest.raises(ValueError, match="early_stopping"):
        Est(early_stopping=True).partial_fit(X, y, **extra)


@BOTH
def test_divergence_raises_non_finite_error(Est):
    X, y = _data(Est)
    # Inputs near the float64 limit overflow the first products: scikit-learn raises
    # the same error on the same data.
    est = Est(solver="sgd", learning_rate_init=1.0, max_iter=5, random_state=0)
    with pytest.raises(ValueError, match="non-finite parameter weights"):
        est.fit(X * 1e200, y)


@BOTH
def test_dtypes(Est):
    X, y = _data(Est)
    for dtype in (np.float32, np.float64):
        est = Est(max_iter=3, random_state=0).fit(X.astype(dtype), y)
        assert est.coefs_[0].dtype == dtype
        assert _predictions(est, X.astype(dtype)).dtype == dtype
    est = Est(max_iter=3, random_state=0).fit(X.astype(np.int64).astype(object), y)
    assert est.coefs_[0].dtype == np.float64


@BOTH
def test_no_hidden_layer_is_a_linear_model(Est):
    X, y = _data(Est)
    est = Est(hidden_layer_sizes=(), max_iter=5, random_state=0).fit(X, y)
    assert est.n_layers_ == 2 and len(est.coefs_) == 1


@BOTH
def test_refit_on_data_of_another_shape(Est):
    """A fresh fit after a fit on other data (other n_features, other outputs) builds new
    buffers rather than reusing the cached ones of the old network."""
    X, y = _data(Est)
    est = Est(hidden_layer_sizes=(6,), max_iter=3, random_state=0).fit(X, y)
    for solver in ("adam", "lbfgs"):
        est.set_params(solver=solver).fit(X[:, :2], y)
        assert est.coefs_[0].shape == (2, 6)
        assert est.predict(X[:, :2]).shape == y.shape
    est.set_params(solver="adam").fit(X, y)
    assert est.coefs_[0].shape == (X.shape[1], 6)


@pytest.mark.parametrize(
    "labels",
    [
        np.array([3, 1, 2, 1, 3, 2, 2]),
        np.array([0, 1, 1, 0, 1, 0, 0]),
        np.array(["b", "a", "c", "a", "b", "c", "c"]),
        np.array(["no", "yes", "yes", "no", "no", "yes", "no"], dtype=object),
        np.array([True, False, True, True, False, False, True]),
        np.array([1.0, -1.0, 2.0, 1.0, -1.0, 2.0, 2.0]),
    ],
    ids=["int", "binary-int", "str", "binary-object", "bool", "float"],
)
def test_label_encoding_is_the_binarizers(labels):
    """fit's one-hot targets, built without the binarizer's transform for one column of
    labels, are exactly what it would give: on fit, and on partial_fit where the data
    shows only some of the declared classes."""
    X = np.arange(len(labels) * 2, dtype=float).reshape(-1, 2)
    est = MLPClassifier(hidden_layer_sizes=(3,), max_iter=1).fit(X, labels)
    want = est._label_binarizer.transform(labels).astype(bool)
    got = est._binarize(labels)
    assert got.dtype == bool and got.shape == want.shape
    np.testing.assert_array_equal(got, want)
    part = MLPClassifier(hidden_layer_sizes=(3,)).partial_fit(
        X[:3], labels[:3], classes=np.unique(labels)
    )
    for y in (labels[:3], labels[:1]):
        np.testing.assert_array_equal(
            part._binarize(y), part._label_binarizer.transform(y).astype(bool)
        )


@BOTH
def test_predict_plan_follows_parameters_changed_after_fit(Est):
    """predict caches its plan (offsets, activation codes, threads) per model; like
    scikit-learn's, the predictions follow an activation set after fit, and a
    reassigned network of other sizes, never a stale plan."""
    est, X, y = _fitted(Est, activation="relu")
    x = X[:1]
    relu = _predictions(est, x)
    est.set_params(activation="tanh")
    tanh = _predictions(est, x)
    assert not np.allclose(tanh, relu)
    same = Est(hidden_layer_sizes=(8, 4), activation="tanh", max_iter=1).fit(X, y)
    same.coefs_, same.intercepts_ = est.coefs_, est.intercepts_
    np.testing.assert_allclose(tanh, _predictions(same, x), rtol=1e-12)
    est.set_params(activation=["relu", "relu"], n_threads=1)  # a list: a key too
    np.testing.assert_array_equal(_predictions(est, x), relu)
    est.set_params(activation="relu")
    wide = Est(hidden_layer_sizes=(6, 5), max_iter=3, random_state=1).fit(X, y)
    est.coefs_, est.intercepts_ = wide.coefs_, wide.intercepts_
    np.testing.assert_array_equal(_predictions(est, x), _predictions(wide, x))
    # another depth would need other activations: named, not silently mis-activated
    shallow = Est(hidden_layer_sizes=(5,), max_iter=3, random_state=1).fit(X, y)
    est.coefs_, est.intercepts_ = shallow.coefs_, shallow.intercepts_
    with pytest.raises(ValueError, match=r"coefs_ .*2 and 2 array\(s\).* has 3 weight"):
        _predictions(est, x)


@BOTH
def test_predict_fast_path_agrees_with_the_validated_path(Est):
    """predict skips validate_data for a finite float ndarray of the right width: the
    result is the same as for every other input form, and bad input still errors."""
    X, y = _data(Est)
    est = Est(hidden_layer_sizes=(8,), max_iter=5, random_state=0).fit(X, y)
    fast = est.predict(X)
    for other in (X.tolist(), np.asfortranarray(X), X.astype(">f8"), X[:, :, None][:, :, 0]):
        np.testing.assert_array_equal(est.predict(other), fast)
    if Est is MLPClassifier:
        for labels in (y, y == 1):  # multiclass, then binary: the binarizer's own rules
            est.fit(X, labels)
            out = est._forward_pass_fast(X)
            want = est._label_binarizer.inverse_transform(
                out.ravel() if out.shape[1] == 1 else out
            )
            np.testing.assert_array_equal(est.predict(X), want)
    bad = X.copy()
    bad[0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        est.predict(bad)
    with pytest.raises(ValueError, match="features"):
        est.predict(X[:, :2])
    with pytest.raises(ValueError, match="0 sample"):
        est.predict(X[:0])


# ------------------------------------------------------------ decision_function
@pytest.mark.parametrize("loss", ["log_loss", "hinge"])
@pytest.mark.parametrize("kind", ["binary", "multiclass", "multilabel"])
def test_decision_function_scores_agree_with_predict(loss, kind):
    """scikit-learn's shapes (1-d for two classes); predict is the arg max or the sign
    of the scores; with log_loss predict_proba is their softmax / logistic function."""
    X, y = load_iris(return_X_y=True)
    y = {"binary": y == 1, "multiclass": y,
         "multilabel": np.column_stack([y == 1, y == 2, X[:, 0] > 5.8])}[kind]
    est = MLPClassifier((6,), loss=loss, max_iter=100, random_state=0).fit(X, y)
    scores = est.decision_function(X)
    pred = est.predict(X)
    if kind == "binary":
        assert scores.shape == (X.shape[0],)
        np.testing.assert_array_equal(pred, est.classes_[(scores > 0).astype(int)])
    elif kind == "multiclass":
        assert scores.shape == (X.shape[0], 3)
        np.testing.assert_array_equal(pred, est.classes_[scores.argmax(axis=1)])
    else:
        assert scores.shape == y.shape
        np.testing.assert_array_equal(pred, (scores > 0).astype(pred.dtype))
    if loss == "log_loss":
        from scipy.special import expit, softmax

        proba = est.predict_proba(X)
        want = softmax(scores, axis=1) if kind == "multiclass" else expit(scores)
        got = proba[:, 1] if kind == "binary" else proba
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-15)


def test_hinge_classifier_scores_with_roc_auc_and_calibrates():
    """Without predict_proba, scikit-learn's tools fall back on decision_function."""
    from sklearn.calibration import CalibratedClassifierCV

    X, y = load_iris(return_X_y=True)
    y = y == 2
    est = MLPClassifier((6,), loss="hinge", max_iter=100, random_state=0)
    auc = cross_val_score(est, X, y, cv=3, scoring="roc_auc")
    assert np.all(auc > 0.8)
    calibrated = CalibratedClassifierCV(est, cv=3).fit(X, y)
    proba = calibrated.predict_proba(X)
    assert proba.shape == (X.shape[0], 2) and np.allclose(proba.sum(axis=1), 1.0)


def test_regressor_has_no_decision_function():
    assert not hasattr(MLPRegressor(), "decision_function")


@BOTH
def test_partial_fit_with_lbfgs_says_why_it_is_missing(Est):
    est = Est(solver="lbfgs")
    assert not hasattr(est, "partial_fit")
    with pytest.raises(AttributeError, match="partial_fit.*stochastic.*solver='lbfgs'"):
        est.partial_fit  # noqa: B018


# ------------------------------------------------------ parameters without effect
_NON_DEFAULT = {
    "momentum": 0.5, "nesterovs_momentum": False, "beta_1": 0.8, "beta_2": 0.99,
    "epsilon": 1e-6, "weight_decay": 0.1, "rho": 0.5, "learning_rate": "invscaling",
    "learning_rate_init": 0.01, "batch_size": 16, "shuffle": False, "early_stopping": True,
    "n_iter_no_change": 5, "max_grad_norm": 1.0, "max_fun": 100,
    "validation_fraction": 0.2, "power_t": 0.25, "lr_decay": 0.9, "lr_period": 3,
    "huber_delta": 2.0,
}
_SETTINGS = {
    "solver": ["lbfgs", "sgd", "adam", "adamw", "rmsprop", "adagrad"],
    "learning_rate": ["constant", "invscaling", "adaptive", "step", "exponential", "cosine"],
    "early_stopping": [False, True],
    "loss": ["squared_error", "poisson", "absolute_error", "huber"],
}


def _inapplicable_cases():
    from fastbp._parameters import APPLIES_WITH

    assert set(APPLIES_WITH) == set(_NON_DEFAULT)
    for name, (setting, where) in sorted(APPLIES_WITH.items()):
        for value in _SETTINGS[setting]:
            yield pytest.param(name, setting, value, value in where,
                               id=f"{name}-{setting}={value}")


@pytest.mark.parametrize("name, setting, value, applies", list(_inapplicable_cases()))
def test_a_parameter_without_effect_is_named_in_a_warning(name, setting, value, applies):
    """Every (parameter, setting) pair of the table: a non-default value warns, naming
    both, exactly where the setting makes it ineffective; nowhere else."""
    Est = MLPRegressor if setting == "loss" or name == "huber_delta" else MLPClassifier
    X, y = _data(Est)
    y = np.abs(y) if Est is MLPRegressor else y  # poisson needs y >= 0
    params = {name: _NON_DEFAULT[name], setting: value, "hidden_layer_sizes": (3,),
              "max_iter": 2, "random_state": 0}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        Est(**params).fit(X, y)
    said = [w for w in caught if str(w.message).startswith(f"{name}=")
            and "no effect" in str(w.message)]
    if applies:
        assert said == []
    else:
        assert len(said) == 1 and f"{setting}={value!r}" in str(said[0].message)
        assert said[0].filename == __file__  # points at the caller's line


@pytest.mark.parametrize("params", [
    {"weight_decay": 0.05, "solver": "adam"},
    {"learning_rate": "cosine", "solver": "lbfgs"},
    {"momentum": 0.5, "solver": "adam"},
])
def test_the_reported_silent_settings_now_warn(params):
    X, y = _data(MLPClassifier)
    with pytest.warns(UserWarning, match="no effect"):
        MLPClassifier((3,), max_iter=2, **params).fit(X, y)


# ---------------------------------------------------------- validation scores
def _score_cases():
    rng = np.random.default_rng(0)
    for dtype in (np.float64, np.float32):
        for outputs in (1, 3):
            for weighted in (False, True):
                y = rng.normal(size=(50, outputs)).astype(dtype)
                pred = (y + rng.normal(scale=0.5, size=y.shape)).astype(dtype)
                sw = rng.uniform(0.1, 2.0, 50).astype(dtype) if weighted else None
                if outputs == 1:
                    y, pred = y.ravel(), pred.ravel()
                yield y, pred, sw
    const = np.ones((20, 2))
    yield const, const + np.r_[0.0, 1.0], None  # a constant column: force_finite


def test_validation_r2_and_accuracy_are_scikit_learns_to_the_bit():
    from sklearn.metrics import accuracy_score, r2_score

    from fastbp._stopping import accuracy as _accuracy
    from fastbp._stopping import r2 as _r2

    for y, pred, sw in _score_cases():
        assert _r2(y, pred, sw) == r2_score(y, pred, sample_weight=sw)
    rng = np.random.default_rng(1)
    labels = np.array(["a", "b", "c"], dtype=object)
    for y, pred, sw in [
        (rng.integers(0, 3, 40), rng.integers(0, 3, 40), None),
        (labels[rng.integers(0, 3, 40)], labels[rng.integers(0, 3, 40)], rng.uniform(size=40)),
        (rng.integers(0, 2, (40, 3)), rng.integers(0, 2, (40, 3)), None),
    ]:
        assert _accuracy(y, pred, sw) == accuracy_score(y, pred, sample_weight=sw)


@BOTH
def test_validation_scores_are_the_score_of_the_validation_set(Est):
    X, y = _data(Est)
    sw = np.linspace(0.5, 1.5, X.shape[0])
    est = Est(hidden_layer_sizes=(5,), max_iter=10, random_state=0)
    est.fit(X[::2], y[::2], X_val=X[1::2], y_val=y[1::2], sample_weight_val=sw[1::2])
    assert est.validation_scores_[-1] == est.score(X[1::2], y[1::2], sample_weight=sw[1::2])
