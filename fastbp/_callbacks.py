"""scikit-learn's callback API (``sklearn.callback``) around fastbp's training loops.

A fit is a root task with one subtask per epoch (stochastic solvers) or per iteration
(lbfgs), as scikit-learn's LogisticRegression reports its L-BFGS iterations. At the end
of each subtask the callbacks may see a fitted copy of the estimator as it stands (its
weights copied, so that scoring it does not race with training) and may ask to stop.
"""

try:
    from sklearn.callback import CallbackSupportMixin
except ImportError:  # scikit-learn < 1.9: no callback API, the hooks do nothing

    class _NoContext:
        def subcontext(self, **kwargs):
            return self

        def call_on_fit_task_begin(self, **kwargs):
            return False

        def call_on_fit_task_end(self, **kwargs):
            return False

    class CallbackSupportMixin:
        def _init_callback_context(self, **kwargs):
            return _NoContext()


# Attributes the callback machinery keeps on the estimator: they are never copied,
# snapshotted or restored with the model's state.
CALLBACK_ATTRIBUTES = (
    "_skl_callbacks",
    "_skl_callbacks_to_teardown",
    "_callback_fit_ctx",
    "_parent_callback_ctx",
)


class FitTasks:
    """The callback context of one ``fit`` or ``partial_fit`` call.

    Parameters
    ----------
    estimator : the fastbp estimator being fitted.
    X, y : the training data as the caller gave them (what scorers need).
    sample_weight : array or None, reported as metadata.
    root : the estimator's callback context of this fit (``_init_callback_context``).
    snapshot : callable, ``snapshot(params=None) -> dict``
        The attributes of a fitted copy of the estimator at ``params`` (a flat vector;
        default: the estimator's own weights now).
    listening : bool
        Whether any callback listens (fitted copies cost a copy of the weights).
    """

    def __init__(self, estimator, X, y, sample_weight, root, snapshot, listening):
        self.estimator = estimator
        self.snapshot = snapshot
        self.kwargs = dict(
            X=X,
            y=y,
            metadata=None if sample_weight is None else {"sample_weight": sample_weight},
        )
        self.listening = listening
        self.root = root
        self.root.call_on_fit_task_begin(estimator=estimator, **self.kwargs)
        self.task = None

    def begin(self, name):
        """Start the next subtask (an epoch, an iteration)."""
        self.task = self.root.subcontext(task_name=name)
        self.task.call_on_fit_task_begin(estimator=self.estimator, **self.kwargs)

    def end(self, params=None):
        """End the current subtask, the model standing at ``params`` (default: the
        estimator's own). Returns True if a callback asks to stop training."""
        attributes = self.snapshot(params) if self.listening else {}
        task, self.task = self.task, None
        return bool(
            task.call_on_fit_task_end(
                estimator=self.estimator, reconstruction_attributes=attributes, **self.kwargs
            )
        )

    def abandon(self):
        """End a subtask that never ran (L-BFGS opens one more than it runs)."""
        if self.task is not None:
            self.task.call_on_fit_task_end(estimator=self.estimator)
            self.task = None

    def close(self):
        """End the root task: the estimator itself is the fitted model."""
        self.abandon()
        self.root.call_on_fit_task_end(
            estimator=self.estimator, reconstruction_attributes={}, **self.kwargs
        )
