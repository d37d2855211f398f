"""scikit-learn's callback API (sklearn.callback), Ctrl-C during fit, and verbose output."""


import numpy as np
import pytest
from sklearn.datasets import load_iris, make_regression
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from fastbp import MLPClassifier, MLPRegressor
from fastbp._kernels import train as T
from fastbp._training import Trainer

callback = pytest.importorskip("sklearn.callback")
BOTH = pytest.mark.parametrize("Est", [MLPClassifier, MLPRegressor], ids=["clf", "reg"])
SOLVERS = pytest.mark.parametrize("solver", ["adam", "lbfgs"])


pytestmark = pytest.mark.usefixtures("quiet_convergence")


def _data(Est):
    if Est is MLPClassifier:
        X, y = load_iris(return_X_y=True)
        return StandardScaler().fit_transform(X), y
    X, y = make_regression(120, 5, noise=1.0, random_state=0)
    return X, y / y.std()


class Recorder:
    """A FitCallback that records its hooks and can ask to stop after some subtasks."""

    def __init__(self, stop_after=None):
        self.stop_after = stop_after
        self.events = []
        self.fitted = []

    def setup(self, estimator, context):
        self.events.append("setup")

    def teardown(self, estimator, context):
        self.events.append("teardown")

    def on_fit_task_begin(self, estimator, context, **kwargs):
        self.events.append(("begin", context.task_name))

    def on_fit_task_end(self, estimator, context, *, fitted_estimator=None, **kwargs):
        self.events.append(("end", context.task_name))
        if context.task_name in ("epoch", "iteration") and fitted_estimator is not None:
            self.fitted.append(fitted_estimator)
        done = sum(1 for e in self.events if e in (("end", "epoch"), ("end", "iteration")))
        return self.stop_after is not None and done >= self.stop_after


@BOTH
@SOLVERS
def test_hooks_per_epoch_or_iteration_with_fitted_copies(Est, solver):
    X, y = _data(Est)
    rec = Recorder()
    est = Est(hidden_layer_sizes=(6,), solver=solver, max_iter=6, random_state=0)
    est.set_callbacks(rec).fit(X, y)
    name = "iteration" if solver == "lbfgs" else "epoch"
    assert rec.events[0] == "setup" and rec.events[1] == ("begin", "fit")
    assert rec.events[-2:] == [("end", "fit"), "teardown"]
    assert rec.events.count(("end", name)) >= est.n_iter_
    assert len(rec.fitted) == est.n_iter_
    # each fitted copy is the model after that subtask: a snapshot, not a live view
    last = rec.fitted[-1]
    assert last._network.params is not est._network.params
    np.testing.assert_array_equal(last.predict(X), est.predict(X))
    if solver == "adam" and Est is MLPRegressor:  # the model moved between epochs
        assert not np.array_equal(rec.fitted[0].predict(X), rec.fitted[-1].predict(X))


@BOTH
@SOLVERS
def test_a_callback_can_stop_training(Est, solver):
    X, y = _data(Est)
    est = Est(hidden_layer_sizes=(6,), solver=solver, max_iter=50, random_state=0, tol=0.0)
    est.set_callbacks(Recorder(stop_after=3)).fit(X, y)
    assert est.n_iter_ == 3
    assert np.isfinite(est.predict(X)).all() if Est is MLPRegressor else True


@BOTH
def test_scoring_monitor_logs_every_epoch(Est):
    X, y = _data(Est)
    scoring = "accuracy" if Est is MLPClassifier else "r2"
    monitor = callback.ScoringMonitor(scoring=scoring)
    est = Est(hidden_layer_sizes=(8,), max_iter=5, random_state=0).set_callbacks(monitor)
    est.fit(X, y)
    rows = [r for r in monitor.get_logs().data if r["task_name"] == "epoch"]
    assert len(rows) == 5
    # the last epoch's model is the fitted estimator
    assert rows[-1][scoring] == pytest.approx(est.score(X, y), rel=1e-12)


def test_progress_bar_and_propagation_through_pipeline_and_grid_search():
    pytest.importorskip("rich")
    X, y = _data(MLPClassifier)
    est = MLPClassifier(hidden_layer_sizes=(5,), max_iter=3, random_state=0)
    est.set_callbacks(callback.ProgressBar()).fit(X, y)
    pipe = make_pipeline(StandardScaler(), MLPClassifier((5,), max_iter=3, random_state=0))
    pipe.set_callbacks(callback.ProgressBar()).fit(X, y)
    assert pipe.score(X, y) > 0.3
    monitor = callback.ScoringMonitor(scoring="accuracy")
    search = GridSearchCV(
        MLPClassifier((5,), max_iter=3, random_state=0).set_callbacks(monitor),
        {"alpha": [1e-4, 1e-2]},
        cv=2,
    ).fit(X, y)
    assert search.best_estimator_.n_iter_ == 3
    (run,) = monitor.get_logs(select="all")  # one run: the search's
    assert run.estimator_name == "GridSearchCV"
    epochs = [r for r in run.data if r["task_name"] == "epoch"]
    assert len(epochs) == (2 * 2 + 1) * 3  # 2 candidates x 2 folds + the refit, 3 epochs


def test_failed_fit_tears_callbacks_down_and_keeps_them():
    X, y = _data(MLPRegressor)
    rec = Recorder()
    est = MLPRegressor(hidden_layer_sizes=(4,), max_iter=2).set_callbacks(rec).fit(X, y)
    rec.events.clear()
    with pytest.raises(ValueError):
        est.fit(X[:, :2], y, sample_weight=np.ones(3))
    assert est._skl_callbacks == [rec]
    assert est.n_features_in_ == X.shape[1]
    est.fit(X, y)
    assert "setup" in rec.events


# ------------------------------------------------------------------------------ Ctrl-C
@BOTH
@pytest.mark.parametrize("early_stopping", [False, True])
def test_keyboard_interrupt_keeps_a_usable_model(monkeypatch, Est, early_stopping):
    X, y = _data(Est)
    real = T.train_epoch
    calls = []

    def interrupted(*args):
        calls.append(1)
        if len(calls) == 4:
            raise KeyboardInterrupt
        return real(*args)

    monkeypatch.setattr(T, "train_epoch", interrupted)
    est = Est(hidden_layer_sizes=(6,), max_iter=50, random_state=0, tol=0.0,
              early_stopping=early_stopping)
    with pytest.warns(UserWarning, match="interrupted"):
        est.fit(X, y)
    assert est.n_iter_ == 3
    assert np.isfinite(est._network.params).all()
    if early_stopping:  # the best epoch's weights are kept
        assert len(est.validation_scores_) == 3
        assert est.best_validation_score_ == max(est.validation_scores_)
        np.testing.assert_array_equal(est._network.params, est._monitor.best_params)
    monkeypatch.setattr(T, "train_epoch", real)
    assert est.predict(X).shape == y.shape  # usable
    if not early_stopping:
        est.partial_fit(X, y)


@BOTH
def test_keyboard_interrupt_during_lbfgs_keeps_the_last_iterate(monkeypatch, Est):
    X, y = _data(Est)
    evaluations = []
    objective = Trainer.objective

    def counting(self, *args):
        f = objective(self, *args)

        def g(x):
            evaluations.append(1)
            if len(evaluations) == 8:
                raise KeyboardInterrupt
            return f(x)

        return g

    monkeypatch.setattr(Trainer, "objective", counting)
    rec = Recorder()
    est = Est(hidden_layer_sizes=(6,), solver="lbfgs", max_iter=100, random_state=0)
    with pytest.warns(UserWarning, match="interrupted"):
        est.set_callbacks(rec).fit(X, y)
    assert 1 <= est.n_iter_ < 8
    # the weights are those of the last completed iteration
    np.testing.assert_array_equal(rec.fitted[-1]._network.params, est._network.params)
    assert np.isfinite(est.loss_)


# ----------------------------------------------------------------------------- verbose
@BOTH
def test_verbose_prints_loss_and_validation(Est, capsys):
    X, y = _data(Est)
    Est(hidden_layer_sizes=(4,), max_iter=3, verbose=True, random_state=0).fit(
        X, y, X_val=X[:20], y_val=y[:20]
    )
    out = capsys.readouterr().out.splitlines()
    assert [line.split(",")[0] for line in out if line.startswith("Iteration")] == [
        "Iteration 1", "Iteration 2", "Iteration 3"
    ]
    assert sum(line.startswith("Validation score:") and "loss:" in line for line in out) == 3
