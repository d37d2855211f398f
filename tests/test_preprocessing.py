"""SoftClipScaler: scikit-learn's checks, the maths against a NumPy reference, and its use
in front of fastbp's regressor."""

import doctest
import warnings

import numpy as np
import pytest
import scipy.sparse as sp
from numpy.testing import assert_allclose, assert_array_equal
from sklearn.base import clone
from sklearn.datasets import load_diabetes
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline
from sklearn.utils._param_validation import InvalidParameterError
from sklearn.utils.estimator_checks import parametrize_with_checks

import fastbp
from fastbp import MLPRegressor, SoftClipScaler
from fastbp import preprocessing as pre

DTYPES = [np.float64, np.float32]


def reference(X_fit, X, clip):
    """The definition, column by column: median and IQR of the non-NaN training values,
    then z / sqrt(1 + z**2 / clip**2), in float64."""
    X_fit, X = np.asarray(X_fit, np.float64), np.asarray(X, np.float64)
    out = np.empty_like(X)
    for j in range(X.shape[1]):
        col = X_fit[:, j][~np.isnan(X_fit[:, j])]
        q1, median, q3 = np.percentile(col, [25, 50, 75])
        iqr = q3 - q1 if q3 - q1 >= 10 * np.finfo(np.float64).eps else 1.0
        z = (X[:, j] - median) / iqr
        out[:, j] = z / np.sqrt(1 + z**2 / clip**2)
    return out


def skewed(n=200, p=4, seed=0):
    rng = np.random.default_rng(seed)
    return rng.lognormal(size=(n, p)) * [1.0, 10.0, 1e3, 0.01][:p]


@parametrize_with_checks([SoftClipScaler(), SoftClipScaler(clip=0.5)])
def test_sklearn_estimator_checks(estimator, check):
    check(estimator)


def test_exported_from_package():
    assert "SoftClipScaler" in fastbp.__all__ and fastbp.SoftClipScaler is SoftClipScaler


def test_docstring_example():
    assert doctest.testmod(pre, raise_on_error=False).failed == 0


@pytest.mark.parametrize("clip", [0.5, 3.0, 10.0])
def test_matches_numpy_reference(clip):
    X_fit, X = skewed(seed=0), skewed(n=50, seed=1)
    scaler = SoftClipScaler(clip=clip).fit(X_fit)
    assert_allclose(scaler.transform(X), reference(X_fit, X, clip), rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("dtype", DTYPES)
def test_float_dtype_is_kept(dtype):
    X = skewed().astype(dtype)
    scaler = SoftClipScaler().fit(X)
    assert scaler.center_.dtype == dtype and scaler.scale_.dtype == dtype
    Xt = scaler.transform(X)
    assert Xt.dtype == dtype
    assert scaler.inverse_transform(Xt).dtype == dtype
    # a float64 fit applied to X computes in X's dtype, as a fit in that dtype would
    fit64 = SoftClipScaler().fit(X.astype(np.float64))
    same = clone(fit64)
    same.n_features_in_ = fit64.n_features_in_
    same.center_, same.scale_ = fit64.center_.astype(dtype), fit64.scale_.astype(dtype)
    assert_array_equal(fit64.transform(X), same.transform(X))
    assert fit64.transform(X).dtype == dtype
    tol = 1e-5 if dtype == np.float32 else 1e-12
    assert_allclose(Xt, reference(X, X, 3.0), rtol=tol, atol=tol)


@pytest.mark.parametrize("dtype", DTYPES)
def test_inverse_round_trip(dtype):
    X = skewed().astype(dtype)
    scaler = SoftClipScaler().fit(X)
    rtol = 1e-4 if dtype == np.float32 else 1e-10
    assert_allclose(scaler.inverse_transform(scaler.transform(X)), X, rtol=rtol)


def test_inverse_of_the_bound_is_infinite_and_beyond_it_an_error():
    scaler = SoftClipScaler(clip=2.0).fit(skewed(p=1))
    assert_array_equal(scaler.inverse_transform([[2.0], [-2.0]]).ravel(), [np.inf, -np.inf])
    with pytest.raises(ValueError, match=r"\[-2.0, 2.0\].*got 2.5.*RobustScaler"):
        scaler.inverse_transform([[0.0], [2.5]])



def test_inverse_transform_checks_the_number_of_features():
    scaler = SoftClipScaler().fit(skewed(p=3))
    with pytest.raises(ValueError, match=r"2 features.*expecting 3"):
        scaler.inverse_transform(np.zeros((4, 2)))

@pytest.mark.parametrize("dtype", DTYPES)
def test_outliers_land_just_inside_the_bound(dtype):
    X = skewed().astype(dtype)  # the last column's IQR is about 0.01
    big = np.array([[1e6], [1e30], [np.finfo(dtype).max]], dtype=dtype)
    X[:3] = big * np.array([1, -1, 1, -1], dtype=dtype)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # max / IQR overflows: no warning, and +-clip
        Xt = SoftClipScaler(clip=3.0).fit(X).transform(X)
    assert np.all(np.abs(Xt) <= 3.0)
    assert_allclose(Xt[:3], [[3.0, -3.0, 3.0, -3.0]] * 3, rtol=1e-4)
    assert np.all(np.abs(Xt[3:]) < 3.0)


def test_outlier_rows_do_not_move_the_typical_rows():
    X = skewed(p=2)
    X_out = X.copy()
    X_out[:5] *= 1e4  # a handful of data-entry errors
    clean, dirty = SoftClipScaler().fit(X), SoftClipScaler().fit(X_out)
    typical = skewed(n=50, p=2, seed=3)
    assert_allclose(clean.transform(typical), dirty.transform(typical), atol=0.1)


def test_constant_feature_is_centred_not_scaled():
    X = np.column_stack([np.full(20, 7.0), np.arange(20.0)])
    scaler = SoftClipScaler().fit(X)
    assert_array_equal(scaler.scale_[0], 1.0)
    Xt = scaler.transform([[7.0, 0.0], [8.0, 0.0]])
    assert_allclose(Xt[:, 0], [0.0, 1 / np.sqrt(1 + 1 / 9)], rtol=1e-15)


def test_nan_is_ignored_in_fit_and_kept_in_transform():
    X = skewed(p=3)
    X_nan = X.copy()
    X_nan[::7, 0] = np.nan
    X_nan[::5, 2] = np.nan
    scaler = SoftClipScaler().fit(X_nan)
    assert_allclose(scaler.transform(X), reference(X_nan, X, 3.0), rtol=1e-12)
    Xt = scaler.transform(X_nan)
    assert_array_equal(np.isnan(Xt), np.isnan(X_nan))
    assert_array_equal(np.isnan(scaler.inverse_transform(Xt)), np.isnan(X_nan))


@pytest.mark.parametrize("container", [sp.csr_matrix, sp.csc_array])
def test_sparse_input_is_rejected_naming_the_alternatives(container):
    X = container(skewed())
    with pytest.raises(TypeError, match=r"sparse.*toarray\(\).*MaxAbsScaler"):
        SoftClipScaler().fit(X)
    scaler = SoftClipScaler().fit(skewed())
    for method in (scaler.transform, scaler.inverse_transform):
        with pytest.raises(TypeError, match="with_centering=False"):
            method(X)


@pytest.mark.parametrize("clip", [0, -1.0, "3"])
def test_bad_clip_names_the_parameter(clip):
    with pytest.raises(InvalidParameterError, match=r"'clip' parameter .* must be"):
        SoftClipScaler(clip=clip).fit(skewed())


def test_copy_false_scales_in_place():
    X = skewed()
    scaler = SoftClipScaler(copy=False).fit(X)
    expected = reference(X, X, 3.0)
    assert scaler.transform(X) is X
    assert_allclose(X, expected, rtol=1e-12)


def test_pandas_output_and_feature_names():
    pd = pytest.importorskip("pandas")
    df = pd.DataFrame(skewed(p=3), columns=["rooms", "area", "price"])
    scaler = SoftClipScaler().set_output(transform="pandas").fit(df)
    out = scaler.transform(df)
    assert isinstance(out, pd.DataFrame)
    assert list(out.columns) == ["rooms", "area", "price"]
    assert_array_equal(scaler.feature_names_in_, ["rooms", "area", "price"])
    assert_array_equal(scaler.get_feature_names_out(), ["rooms", "area", "price"])
    assert_allclose(out.to_numpy(), reference(df, df, 3.0), rtol=1e-12)


def test_pipeline_and_grid_search_with_fastbp_regressor(quiet_convergence):
    X, y = load_diabetes(return_X_y=True)
    X, y = X[:200] * 100, (y[:200] - y.mean()) / y.std()
    pipe = make_pipeline(SoftClipScaler(), MLPRegressor(max_iter=5, random_state=0))
    grid = {"softclipscaler__clip": [1.0, 3.0], "mlpregressor__alpha": [1e-4, 1e-1]}
    search = GridSearchCV(pipe, grid, cv=2).fit(X, y)
    assert len(search.cv_results_["params"]) == 4
    assert np.isfinite(search.cv_results_["mean_test_score"]).all()
    # the refitted pipeline is exactly the scaler's output fed to the regressor
    best = search.best_params_
    Xt = SoftClipScaler(clip=best["softclipscaler__clip"]).fit_transform(X)
    mlp = clone(pipe[-1]).set_params(alpha=best["mlpregressor__alpha"]).fit(Xt, y)
    assert_array_equal(search.predict(X), mlp.predict(Xt))

