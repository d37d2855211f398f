"""Pickles of earlier fastbp versions load (their state migrated) and keep training;
pickles of a newer state format fail with a message naming it."""

import pickle
from pathlib import Path

import numpy as np
import pytest
from sklearn.datasets import load_iris

import fastbp
from fastbp import MLPClassifier, MLPRegressor

# Made by tests/data/make_pickles_0.2.0.dev0.py at the last commit of that format.
OLD = Path(__file__).parent / "data" / "pickles_0.2.0.dev0.pkl"


def _old_models():
    with open(OLD, "rb") as f:
        return pickle.load(f)["models"]


@pytest.mark.parametrize("name", sorted(_old_models()))
def test_a_pickle_of_0_2_0_dev0_predicts_as_it_did(name):
    saved = _old_models()[name]
    est = pickle.loads(saved["pickle"])
    # to the last bits: exp, tanh and logistic are fastbp's own vectorised functions
    # since (at most 3 ulp from the exact value, like libm's 1), not libm's
    now = est.predict(saved["X"])
    np.testing.assert_allclose(now, saved["predict"], rtol=1e-13, atol=0)
    for attr in ("_params", "_layout", "_opt_state", "_best_params", "_loss_code"):
        assert attr not in vars(est)  # migrated, not carried along
    assert est.coefs_[0].base is est._network.params
    # and pickles again in today's format, bit for bit
    again = pickle.loads(pickle.dumps(est))
    np.testing.assert_array_equal(again.predict(saved["X"]), now)


@pytest.mark.parametrize(
    "name", sorted(k for k, v in _old_models().items() if "continued" in v)
)
def test_a_pickle_of_0_2_0_dev0_continues_its_optimizer(name):
    """One more partial_fit after loading gives what the old version gave: the
    optimizer's moments, step count and dropout seed were carried over. (To rounding:
    the update's arithmetic has been reordered since, e.g. AdamW's decay fused into the
    Adam pass; a fresh optimizer lands far away, which the second check shows.)"""
    saved = _old_models()[name]
    iris = load_iris()
    # the classifiers learnt iris' classes, the regressors its column 3
    est = pickle.loads(saved["pickle"])
    y = iris.target if isinstance(est, MLPClassifier) else iris.data[:, 3]
    fresh = pickle.loads(saved["pickle"])
    fresh._trainer.optimizer = None  # what a migration that lost the state would give
    for model in (est, fresh):
        model.partial_fit(saved["X"], y)
    rtol = 1e-12 if est.coefs_[0].dtype == np.float64 else 1e-5
    for got, want in zip(est.coefs_, saved["continued"], strict=True):
        np.testing.assert_allclose(got, want, rtol=rtol, atol=rtol * np.abs(want).max())
    scale = max(np.abs(w).max() for w in saved["continued"])
    lost = max(np.abs(a - b).max() for a, b in zip(fresh.coefs_, saved["continued"],
                                                     strict=True))
    assert lost > 100 * rtol * scale


@pytest.mark.parametrize("Est", [MLPClassifier, MLPRegressor])
def test_a_pickle_of_a_newer_state_format_names_the_versions(Est):
    X = np.random.default_rng(0).normal(size=(20, 3))
    y = np.arange(20) % 2
    est = Est(hidden_layer_sizes=(3,), max_iter=2).fit(X, y)
    state = est.__getstate__()
    state["_fastbp_state_format"] = 99
    blank = Est.__new__(Est)
    with pytest.raises(ValueError, match=rf"newer fastbp.*format 99.*{fastbp.__version__}"):
        blank.__setstate__(state)
