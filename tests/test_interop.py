"""Conversion to and from scikit-learn's MLP, and export to ONNX through it."""

import warnings

import numpy as np
import pytest
from sklearn import neural_network as sknn
from sklearn.datasets import load_iris, make_regression

from fastbp import MLPClassifier, MLPRegressor

SKLEARN = {MLPClassifier: sknn.MLPClassifier, MLPRegressor: sknn.MLPRegressor}
BOTH = pytest.mark.parametrize("Est", [MLPClassifier, MLPRegressor], ids=["clf", "reg"])


pytestmark = pytest.mark.usefixtures("quiet_convergence")


def _data(Est):
    if Est is MLPClassifier:
        return load_iris(return_X_y=True)
    X, y = make_regression(120, 5, noise=1.0, random_state=0)
    return X, y / y.std()


def _outputs(est, X):
    return est.predict_proba(X) if hasattr(est, "predict_proba") else est.predict(X)


@BOTH
@pytest.mark.parametrize("solver", ["adam", "sgd", "lbfgs"])
def test_from_sklearn_predicts_the_same_and_continues_its_training(Est, solver):
    X, y = _data(Est)
    sk = SKLEARN[Est](hidden_layer_sizes=(7, 4), solver=solver, max_iter=15,
                      random_state=0).fit(X, y)
    est = Est.from_sklearn(sk)
    assert type(est) is Est and est.get_params() == {**Est().get_params(), **sk.get_params()}
    np.testing.assert_allclose(_outputs(est, X), _outputs(sk, X), rtol=1e-13, atol=1e-15)
    np.testing.assert_array_equal(est.predict(X), sk.predict(X))
    assert est.n_iter_ == sk.n_iter_ and est.loss_ == sk.loss_
    if solver == "lbfgs":
        return
    for _ in range(3):  # the optimizer state came along: the same steps
        sk.partial_fit(X, y)
        est.partial_fit(X, y)
    for a, b in zip(est.coefs_ + est.intercepts_, sk.coefs_ + sk.intercepts_, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)


@BOTH
@pytest.mark.parametrize("solver", ["adam", "sgd"])
def test_to_sklearn_predicts_the_same_and_continues_this_training(Est, solver):
    X, y = _data(Est)
    est = Est(hidden_layer_sizes=(6,), activation="tanh", solver=solver, max_iter=10,
              random_state=0).fit(X, y)
    sk = est.to_sklearn()
    assert type(sk) is SKLEARN[Est]
    np.testing.assert_allclose(_outputs(sk, X), _outputs(est, X), rtol=1e-13, atol=1e-15)
    for _ in range(3):
        sk.partial_fit(X, y)
        est.partial_fit(X, y)
    for a, b in zip(est.coefs_ + est.intercepts_, sk.coefs_ + sk.intercepts_, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)
    # and back: a round trip changes nothing
    again = Est.from_sklearn(sk)
    np.testing.assert_array_equal(again._network.params, np.concatenate(
        [c.ravel() for c in sk.coefs_] + list(sk.intercepts_)))


def test_from_sklearn_keeps_float32_weights_and_feature_names():
    pd = pytest.importorskip("pandas")
    X, y = load_iris(return_X_y=True)
    Xf = pd.DataFrame(X.astype(np.float32), columns=list("abcd"))
    sk = sknn.MLPClassifier((5,), max_iter=5, random_state=0).fit(Xf, y)
    est = MLPClassifier.from_sklearn(sk)
    assert est.coefs_[0].dtype == np.float32
    assert list(est.feature_names_in_) == list("abcd")
    np.testing.assert_array_equal(est.predict(Xf), sk.predict(Xf))


def test_to_sklearn_lists_the_training_settings_it_replaces():
    X, y = _data(MLPRegressor)
    est = MLPRegressor(hidden_layer_sizes=(5,), loss="huber", solver="rmsprop", dropout=0.2,
                       learning_rate="cosine", max_iter=5, random_state=0).fit(X, y)
    with pytest.warns(UserWarning, match="no equivalent") as record:
        sk = est.to_sklearn()
    message = str(record[0].message)
    for name in ("'loss': 'huber'", "'solver': 'rmsprop'", "'dropout': 0.2",
                 "'learning_rate': 'cosine'"):
        assert name in message
    assert (sk.loss, sk.solver, sk.learning_rate) == ("squared_error", "adam", "constant")
    np.testing.assert_allclose(sk.predict(X), est.predict(X), rtol=1e-13, atol=1e-15)


@pytest.mark.parametrize("n_outputs", [1, 3])
def test_to_sklearn_folds_the_target_scaling_into_the_output_layer(n_outputs):
    X, y = make_regression(120, 5, n_targets=n_outputs, noise=1.0, random_state=0)
    y = 300 * y + 1e4  # far from the unit scale: the folding is visible
    est = MLPRegressor(hidden_layer_sizes=(6,), activation="tanh", normalize_y=True,
                       max_iter=10, random_state=0).fit(X, y)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nothing replaced, nothing dropped
        sk = est.to_sklearn()
    np.testing.assert_allclose(sk.predict(X), est.predict(X), rtol=1e-12, atol=0)
    assert not hasattr(sk, "_optimizer")  # its state was of the scaled problem
    sk.partial_fit(X, y)  # a fresh optimizer: sk trains on, on y's own scale
    assert np.isfinite(sk.loss_)


def test_to_sklearn_warns_that_clipping_is_dropped():
    X, y = _data(MLPRegressor)
    params = dict(hidden_layer_sizes=(6,), normalize_y=True, max_iter=20, random_state=0)
    est = MLPRegressor(clip_predictions=0.0, **params).fit(X, y)
    with pytest.warns(UserWarning, match="will not be clipped") as record:
        sk = est.to_sklearn()
    assert len(record) == 1 and "clip_predictions=0.0" in str(record[0].message)
    X_far = 4 * X
    unclipped = MLPRegressor(**params).fit(X, y).predict(X_far)
    assert (unclipped > est.prediction_bounds_[1]).any()
    np.testing.assert_allclose(sk.predict(X_far), unclipped, rtol=1e-12)
    np.testing.assert_array_equal(
        est.predict(X_far), np.clip(unclipped, *est.prediction_bounds_.ravel())
    )


@pytest.mark.parametrize("params, match", [
    (dict(activation="gelu"), "cannot express"),
    (dict(activation=["relu", "tanh"], hidden_layer_sizes=(4, 3)), "cannot express"),
    (dict(loss="hinge"), "loss='hinge'"),
])
def test_to_sklearn_refuses_networks_sklearn_cannot_express(params, match):
    X, y = load_iris(return_X_y=True)
    est = MLPClassifier(**{"hidden_layer_sizes": (4,), "max_iter": 3, **params}).fit(X, y)
    with pytest.raises(ValueError, match=match):
        est.to_sklearn()


def test_conversion_errors():
    X, y = load_iris(return_X_y=True)
    with pytest.raises(ValueError, match="not fitted"):
        MLPClassifier.from_sklearn(sknn.MLPClassifier())
    with pytest.raises(TypeError, match="cannot take"):
        MLPRegressor.from_sklearn(sknn.MLPClassifier(max_iter=2).fit(X, y))
    with pytest.raises(TypeError, match="sklearn.neural_network"):
        MLPClassifier.from_sklearn(MLPClassifier(max_iter=2).fit(X, y))
    from sklearn.exceptions import NotFittedError

    with pytest.raises(NotFittedError):
        MLPClassifier().to_sklearn()


@BOTH
def test_onnx_export_through_to_sklearn_matches(Est):
    skl2onnx = pytest.importorskip("skl2onnx")
    ort = pytest.importorskip("onnxruntime")
    from skl2onnx.common.data_types import FloatTensorType

    X, y = _data(Est)
    X = X.astype(np.float32)
    est = Est(hidden_layer_sizes=(8,), max_iter=30, random_state=0).fit(X, y)
    options = {"zipmap": False} if Est is MLPClassifier else None
    input_type = [("X", FloatTensorType([None, X.shape[1]]))]
    onx = skl2onnx.to_onnx(est.to_sklearn(), initial_types=input_type, options=options)
    session = ort.InferenceSession(onx.SerializeToString(), providers=["CPUExecutionProvider"])
    outputs = session.run(None, {"X": X})
    if Est is MLPClassifier:
        labels, proba = outputs
        np.testing.assert_array_equal(labels, est.predict(X))
        np.testing.assert_allclose(proba, est.predict_proba(X), rtol=1e-4, atol=1e-5)
    else:
        np.testing.assert_allclose(outputs[0].ravel(), est.predict(X), rtol=1e-4, atol=1e-4)
