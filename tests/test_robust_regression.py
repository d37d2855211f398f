"""MLPRegressor's opt-in options for real tables: target standardisation
(``normalize_y``) and prediction clipping (``clip_predictions``)."""

import pickle

import numpy as np
import pytest
from sklearn.datasets import load_diabetes, make_regression
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler
from sklearn.utils._param_validation import InvalidParameterError

from fastbp import MLPRegressor

pytestmark = pytest.mark.usefixtures("quiet_convergence")

SMALL = dict(hidden_layer_sizes=(8,), max_iter=20, random_state=0)


def _data(n_outputs=1, n=120):
    X, y = make_regression(n, 5, n_targets=n_outputs, noise=1.0, random_state=0)
    return X, 40 * y + 300  # far from the unit scale a network starts at


def _standardised(y, sample_weight=None):
    mean = np.average(y, axis=0, weights=sample_weight)
    scale = np.sqrt(np.average((y - mean) ** 2, axis=0, weights=sample_weight))
    return mean, scale


# ---------------------------------------------------------------- normalize_y
def test_normalize_y_trains_on_the_standardised_target_and_maps_back():
    """The same training, bit for bit, as a default model fitted on the standardised y
    by hand: losses (also the validation loss) on that scale, predictions mapped back."""
    X, y = _data()
    X_val, y_val = X[:30], y[:30] + 5.0
    mean, scale = _standardised(y)
    est = MLPRegressor(normalize_y=True, **SMALL).fit(X, y, X_val=X_val, y_val=y_val)
    by_hand = MLPRegressor(**SMALL).fit(X, (y - mean) / scale, X_val=X_val,
                                        y_val=(y_val - mean) / scale)
    np.testing.assert_array_equal(est.target_mean_, [mean])
    np.testing.assert_array_equal(est.target_scale_, [scale])
    assert est.loss_curve_ == by_hand.loss_curve_
    assert est.validation_loss_curve_ == by_hand.validation_loss_curve_
    np.testing.assert_array_equal(est.predict(X), by_hand.predict(X) * scale + mean)
    # R^2 is scale-free, but only on y's own scale is it computed with these targets
    assert est.validation_scores_[-1] == est.score(X_val, y_val)


def test_normalize_y_is_invariant_to_an_affine_map_of_y():
    X, y = _data()
    est = MLPRegressor(normalize_y=True, **SMALL).fit(X, y)
    mapped = MLPRegressor(normalize_y=True, **SMALL).fit(X, 1000 * y + 5)
    np.testing.assert_allclose(mapped.predict(X), 1000 * est.predict(X) + 5,
                               rtol=1e-12, atol=1e-12 * np.ptp(1000 * y))
    np.testing.assert_allclose(mapped.target_scale_, 1000 * est.target_scale_, rtol=1e-14)


def test_default_regressor_is_not_invariant():
    """The counterpart of the test above: without the option the fit depends on y's
    units (else the option would be pointless)."""
    X, y = _data()
    est = MLPRegressor(**SMALL).fit(X, y)
    mapped = MLPRegressor(**SMALL).fit(X, 1000 * y + 5)
    assert not np.allclose(mapped.predict(X), 1000 * est.predict(X) + 5, rtol=1e-3)
    assert "target_mean_" not in vars(est) and "prediction_bounds_" not in vars(est)


def test_partial_fit_and_warm_start_keep_the_first_scaling():
    X, y = _data()
    est = MLPRegressor(normalize_y=True, **SMALL)
    est.partial_fit(X[:40], y[:40])
    first = _standardised(y[:40])
    est.partial_fit(X[40:], y[40:] + 100)
    np.testing.assert_array_equal(est.target_mean_, [first[0]])
    np.testing.assert_array_equal(est.target_scale_, [first[1]])
    warm = MLPRegressor(normalize_y=True, warm_start=True, **SMALL).fit(X[:40], y[:40])
    warm.fit(X, y)
    np.testing.assert_array_equal(warm.target_mean_, [first[0]])
    cold = MLPRegressor(normalize_y=True, **SMALL).fit(X[:40], y[:40]).fit(X, y)
    np.testing.assert_array_equal(cold.target_mean_, [np.mean(y)])


@pytest.mark.parametrize("name, value", [("normalize_y", False), ("clip_predictions", 0.2)])
def test_changing_a_target_setting_on_a_fitted_network_is_refused(name, value):
    X, y = _data()
    est = MLPRegressor(normalize_y=True, clip_predictions=0.1, warm_start=True, **SMALL)
    est.fit(X, y)
    before = est.predict(X)
    est.set_params(**{name: value})
    with pytest.raises(ValueError, match=rf"{name}={value!r}, but this network was first"):
        est.fit(X, y)
    with pytest.raises(ValueError, match=name):
        est.partial_fit(X, y)
    np.testing.assert_array_equal(est.predict(X), before)  # the failed calls left it as is


def test_multi_output_scaling_is_per_output_and_a_constant_output_gets_scale_one():
    X, y = _data(n_outputs=3)
    y[:, 1] = 7.3  # its computed mean is not exactly 7.3: a rounding-error std, not 0
    est = MLPRegressor(normalize_y=True, clip_predictions=0.0, **SMALL).fit(X, y)
    mean, scale = _standardised(y)
    np.testing.assert_allclose(est.target_mean_, mean, rtol=1e-15)
    assert est.target_scale_[1] == 1.0
    np.testing.assert_allclose(est.target_scale_[[0, 2]], scale[[0, 2]], rtol=1e-15)
    pred = est.predict(X)
    assert pred.shape == (120, 3) and np.all(pred[:, 1] == 7.3)  # clipped to its range
    assert np.isfinite(est.loss_curve_).all()


def test_sample_weights_weigh_the_mean_and_the_scale():
    X, y = _data()
    weights = np.arange(120) % 3  # 0, 1, 2: zero-weight rows do not count
    est = MLPRegressor(normalize_y=True, **SMALL).fit(X, y, sample_weight=weights)
    mean, scale = _standardised(y, weights)
    np.testing.assert_allclose(est.target_mean_, [mean], rtol=1e-14)
    np.testing.assert_allclose(est.target_scale_, [scale], rtol=1e-14)
    repeated = np.repeat(y, weights)
    np.testing.assert_allclose(est.target_mean_, [repeated.mean()], rtol=1e-13)
    np.testing.assert_allclose(est.target_scale_, [repeated.std()], rtol=1e-13)


def test_float32_stays_float32():
    X, y = _data()
    est = MLPRegressor(normalize_y=True, clip_predictions=0.1, **SMALL)
    est.fit(X.astype(np.float32), y.astype(np.float32))
    for a in (est.target_mean_, est.target_scale_, est.prediction_bounds_,
              est.predict(X.astype(np.float32))):
        assert a.dtype == np.float32


def test_poisson_with_normalize_y_is_refused_naming_both():
    X, y = _data()
    with pytest.raises(ValueError, match=r"normalize_y=True .*loss='poisson'"):
        MLPRegressor(loss="poisson", normalize_y=True, **SMALL).fit(X, np.abs(y))


@pytest.mark.parametrize("params, match", [
    ({"normalize_y": "yes"}, r"'normalize_y' parameter .* must be an instance of 'bool'"),
    ({"clip_predictions": -0.1}, r"'clip_predictions' parameter .* range \[0\.0, inf\)"),
    ({"clip_predictions": "auto"}, r"'clip_predictions' parameter .* None"),
])
def test_bad_values_are_rejected_naming_the_parameter(params, match):
    X, y = _data()
    with pytest.raises(InvalidParameterError, match=match):
        MLPRegressor(**params, **SMALL).fit(X, y)


# ------------------------------------------------------------ clip_predictions
def test_clip_bounds_are_the_widened_range_and_clip_the_unclipped_predictions():
    X, y = _data(n_outputs=2)
    X_far = 5 * X  # beyond the training inputs: a network extrapolates linearly
    plain = MLPRegressor(normalize_y=True, **SMALL).fit(X, y)  # fits y: extrapolates
    est = MLPRegressor(normalize_y=True, clip_predictions=0.1, **SMALL).fit(X, y)
    low, high = y.min(axis=0), y.max(axis=0)
    np.testing.assert_allclose(est.prediction_bounds_,
                               [low - 0.1 * (high - low), high + 0.1 * (high - low)])
    unclipped = plain.predict(X_far)
    assert (unclipped < est.prediction_bounds_[0]).any()  # the test clips something
    np.testing.assert_array_equal(
        est.predict(X_far), np.clip(unclipped, *est.prediction_bounds_)
    )
    assert est.loss_curve_ == plain.loss_curve_  # clipping never touches training


def test_validation_scores_are_of_the_clipped_predictions():
    X, y = _data()
    X_val, y_val = 3 * X[:40], y[:40]
    est = MLPRegressor(normalize_y=True, clip_predictions=0.0, **SMALL)
    est.fit(X, y, X_val=X_val, y_val=y_val)
    plain = MLPRegressor(normalize_y=True, **SMALL).fit(X, y, X_val=X_val, y_val=y_val)
    assert est.validation_scores_[-1] == est.score(X_val, y_val)
    assert est.validation_scores_[-1] != plain.validation_scores_[-1]
    assert est.validation_loss_curve_ == plain.validation_loss_curve_  # losses unclipped


def test_the_fitted_options_survive_pickling():
    X, y = _data(n_outputs=2)
    est = MLPRegressor(normalize_y=True, clip_predictions=0.05, **SMALL).fit(X, y)
    loaded = pickle.loads(pickle.dumps(est))
    for name in ("target_mean_", "target_scale_", "prediction_bounds_"):
        np.testing.assert_array_equal(getattr(loaded, name), getattr(est, name))
    np.testing.assert_array_equal(loaded.predict(5 * X), est.predict(5 * X))
    loaded.partial_fit(X, y)  # still the first network's settings
    np.testing.assert_array_equal(loaded.target_mean_, est.target_mean_)


# ------------------------------------------------- extreme targets in a real table
def _diabetes_with_extreme_targets(factor):
    """load_diabetes, X standardised, four training targets set to ``factor`` times
    the largest (data-entry errors); the test targets are clean."""
    X, y = load_diabetes(return_X_y=True)
    X = StandardScaler().fit_transform(X)
    X_train, X_test, y_train, y_test = train_test_split(X, y, random_state=0)
    rows = np.random.default_rng(0).choice(len(y_train), 4, replace=False)
    y_train = y_train.copy()
    y_train[rows] = factor * y_train.max()
    return X_train, X_test, y_train, y_test


def _test_rmse(data, seeds, **params):
    X_train, X_test, y_train, y_test = data
    rmse = []
    for seed in seeds:
        est = MLPRegressor(hidden_layer_sizes=(32,), alpha=1.0, max_iter=300,
                           random_state=seed, **params).fit(X_train, y_train)
        rmse.append(np.sqrt(np.mean((est.predict(X_test) - y_test) ** 2)))
    return np.array(rmse)


def test_normalize_y_lowers_the_test_error_with_extreme_targets():
    """Adam from the unit scale does not reach targets in the hundreds in 300 epochs
    (test RMSE ~120, about the targets' spread); standardised, it does (~64)."""
    data = _diabetes_with_extreme_targets(3)
    plain = _test_rmse(data, range(3))
    scaled = _test_rmse(data, range(3), normalize_y=True)
    assert np.all(scaled < 0.75 * plain), (scaled, plain)


def test_clipping_lowers_the_test_error_with_extreme_targets():
    """lbfgs fits the extreme targets and swings far below the data on clean rows;
    clipping to the training range never moves a prediction away from a target inside
    it, and here removes over a sixth of the error on average."""
    data = _diabetes_with_extreme_targets(10)
    y_train, y_test = data[2], data[3]
    assert y_train.min() <= y_test.min() and y_test.max() <= y_train.max()
    plain = _test_rmse(data, range(3), solver="lbfgs")
    clipped = _test_rmse(data, range(3), solver="lbfgs", clip_predictions=0.1)
    assert np.all(clipped <= plain)
    assert clipped.mean() < 0.85 * plain.mean(), (clipped, plain)
