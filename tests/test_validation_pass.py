"""Early stopping's validation set, as the epoch loop reads it: one forward pass gives
the validation loss and the default score (they must equal the loss pass and ``score``
run apart, serial or parallel), and training reads its rows of X in place (the same
fit as on a copy of them, without the copy)."""

import tracemalloc

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.datasets import make_classification, make_regression

from fastbp import MLPClassifier, MLPRegressor, _stopping, _threads, _training
from fastbp._stopping import holdout

ESTIMATORS = [MLPClassifier, MLPRegressor]
IDS = ["clf", "reg"]
# 0.25 of 2,000 rows: a 500-row validation set, two 256-row chunks; with hidden
# (512, 128) its pass is 500 rows x 77,000 parameters, enough to run parallel on two
# threads (``_threads.whole_data``)
ROWS, HIDDEN, FRACTION = 2000, (512, 128), 0.25


def _data(Est, n, dtype, sparse):
    if Est is MLPClassifier:
        X, y = make_classification(n, 20, n_informative=8, n_classes=4, random_state=0)
    else:
        X, y = make_regression(n, 20, n_informative=8, n_targets=2, noise=5.0,
                               random_state=0)
        y = y / y.std(axis=0)
    if sparse:
        X = np.where(np.abs(X) > 0.8, X, 0.0)
    X = X.astype(dtype)
    return (sp.csr_matrix(X) if sparse else X), y


def _separate_passes(monkeypatch, est):
    """Record, at every epoch, the validation loss and score as two separate passes
    compute them (``Validation.loss``; ``est.score`` on the validation set, which
    predicts it)."""
    seen = []
    one_pass = _training.Validation.loss_and_outputs

    def recording(val, network, hyper, threads=1):
        loss, out = one_pass(val, network, hyper, threads)
        seen.append((val.loss(network, hyper, threads),
                     est.score(val.X, val.y, sample_weight=val.sample_weight), threads))
        return loss, out

    monkeypatch.setattr(_training.Validation, "loss_and_outputs", recording)
    return seen


@pytest.mark.parametrize("Est", ESTIMATORS, ids=IDS)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("sparse", [False, True], ids=["dense", "csr"])
@pytest.mark.parametrize("n_threads", [1, 2])
def test_one_pass_gives_the_loss_and_score_of_separate_passes(monkeypatch, Est, dtype,
                                                              sparse, n_threads):
    X, y = _data(Est, ROWS, dtype, sparse)
    sw = np.linspace(0.5, 2.0, ROWS)
    est = Est(hidden_layer_sizes=HIDDEN, early_stopping=True, validation_fraction=FRACTION,
              max_iter=4, n_iter_no_change=10, tol=0.0, random_state=0, n_threads=n_threads,
              learning_rate_init=0.01)
    seen = _separate_passes(monkeypatch, est)
    with pytest.warns(Warning, match="Maximum iterations"):
        est.fit(X, y, sample_weight=sw)
    assert [s[0] for s in seen] == est.validation_loss_curve_
    assert [s[1] for s in seen] == est.validation_scores_
    assert len(set(est.validation_scores_)) > 1  # the epochs score differently
    # the parallel pass where it runs parallel (its serial twin: test_parallel.py)
    n_params = est._network.params.shape[0]
    n_val = int(ROWS * FRACTION)
    parallel = _threads.whole_data(n_val, min(n_val, 256), n_params, seen[0][2])
    assert parallel == (n_threads == 2 and _threads.budget(2) == 2)


@pytest.mark.parametrize("Est", ESTIMATORS, ids=IDS)
def test_one_pass_outputs_are_predicts(Est):
    """The outputs of the one pass, row for row, are what predict's forward pass gives
    (the score derives the labels from them)."""
    X, y = _data(Est, 600, np.float64, False)
    est = Est(hidden_layer_sizes=(7,), max_iter=2, random_state=0)
    with pytest.warns(Warning, match="Maximum iterations"):
        est.fit(X[:400], y[:400])
    val = est._given_validation_set(X[400:], y[400:], None)
    loss, out = val.loss_and_outputs(est._network, est._hyperparameters(), 1)
    np.testing.assert_array_equal(out, est._forward_pass_fast(X[400:]))
    assert loss == val.loss(est._network, est._hyperparameters(), 1)


@pytest.mark.parametrize("Est", ESTIMATORS, ids=IDS)
@pytest.mark.parametrize("sparse", [False, True], ids=["dense", "csr"])
def test_training_on_the_split_rows_in_place_is_training_on_their_copy(monkeypatch, Est,
                                                                       sparse):
    """The hold-out trains on its rows of X read in place: the same fit as one on
    scikit-learn's copy of them in their order (here given as such, with the held-out
    rows as the validation set; no shuffling, which would draw differently)."""
    X, y = _data(Est, 500, np.float64, sparse)
    sw = np.linspace(0.5, 2.0, 500)
    params = dict(hidden_layer_sizes=(9,), max_iter=5, random_state=3, shuffle=False,
                  batch_size=64, early_stopping=True, n_iter_no_change=10, tol=0.0)
    splits = []

    def recording(*args, **kwargs):
        splits.append(holdout(*args, **kwargs))
        return splits[-1]

    monkeypatch.setattr(_stopping, "holdout", recording)
    split = Est(**params)
    with pytest.warns(Warning, match="Maximum iterations"):
        split.fit(X, y, sample_weight=sw)
    (train, held), = splits
    assert not np.array_equal(np.sort(train), train)  # an order of its own to keep
    copy = Est(**params)
    with pytest.warns(Warning, match="Maximum iterations"):
        copy.fit(X[train], y[train], sample_weight=sw[train], X_val=X[held], y_val=y[held],
                 sample_weight_val=sw[held])
    assert split.loss_curve_ == copy.loss_curve_
    assert split.validation_scores_ == copy.validation_scores_
    for a, b in zip(split.coefs_, copy.coefs_, strict=True):
        np.testing.assert_array_equal(a, b)


def test_the_hold_out_does_not_copy_the_training_rows():
    """Traced memory of an early-stopping fit stays well below X's size: the training
    rows are read in place (the validation rows, a tenth, are copied)."""
    X, y = _data(MLPClassifier, 20_000, np.float64, False)
    X = np.hstack([X] * 4)  # 80 columns: 12.8 MB
    est = MLPClassifier(hidden_layer_sizes=(4,), max_iter=1, early_stopping=True,
                        random_state=0)
    with pytest.warns(Warning, match="Maximum iterations"):
        est.fit(X[:200], y[:200])  # compiled, and sklearn's modules imported
    tracemalloc.start()
    try:
        with pytest.warns(Warning, match="Maximum iterations"):
            est.fit(X, y)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 0.4 * X.nbytes
