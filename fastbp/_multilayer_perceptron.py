"""The estimators: scikit-learn's MLP interface in front of the compiled core.

The estimators validate parameters and data, run the epoch loop and keep scikit-learn's
fitted attributes; a :class:`~fastbp._network.Network` holds the weights and predicts, a
:class:`~fastbp._training.Trainer` trains it, a :class:`~fastbp._stopping.Monitor` keeps
the stopping rules. Nothing here calls a kernel.
"""

import copy
import warnings
from contextlib import contextmanager
from numbers import Integral, Real

import numpy as np
from sklearn.base import (
    BaseEstimator,
    ClassifierMixin,
    RegressorMixin,
    _fit_context,
    clone,
    is_classifier,
)
from sklearn.exceptions import ConvergenceWarning
from sklearn.preprocessing import LabelBinarizer
from sklearn.utils import check_array, check_random_state, column_or_1d
from sklearn.utils._available_if import _AvailableIfDescriptor
from sklearn.utils._param_validation import Interval, Options, StrOptions
from sklearn.utils.class_weight import compute_class_weight
from sklearn.utils.multiclass import type_of_target, unique_labels
from sklearn.utils.validation import _check_sample_weight, check_is_fitted, validate_data

from . import (
    _callbacks,
    _caller,
    _config,
    _docstrings,
    _interop,
    _parameters,
    _stopping,
)
from ._network import (
    HIDDEN_ACTIVATIONS,
    INITS,
    Network,
    hidden_activations,
    loss_code,
    output_activation,
    per_hidden_layer,
)
from ._training import (
    LEARNING_RATES,
    STOCHASTIC_SOLVERS,
    Hyperparameters,
    KernelData,
    Optimizer,
    Trainer,
    Validation,
    batch_rows,
)
from ._workspace import native

# The pickle format of the estimators' private state: 1 until fastbp 0.2.0.dev0 (loose
# arrays: _params, _layout, _opt_state, ...), 2 since (Network, Trainer, Monitor).
_STATE_FORMAT = 2

_NON_FINITE_MSG = (
    "Solver produced non-finite parameter weights. The input data may contain large "
    "values and need to be preprocessed."
)


def _in_dtype(values, dtype, name):
    """``values`` in the network's ``dtype`` (C-contiguous), or a ValueError naming
    ``name`` if they do not fit in it (float64 values beyond float32's range)."""
    cast = native(values, dtype)
    if not np.isfinite(cast).all():
        raise ValueError(
            f"{name} has values beyond the range of {np.dtype(dtype)} (the network's "
            "dtype, set by X's on the first fit); scale them or train in float64."
        )
    return cast


def _check_scoring(est, scoring):
    """sklearn's ``check_scoring``, with sklearn.metrics imported on first use: only
    a ``scoring`` setting needs it (fastbp/__init__.py on import time)."""
    from sklearn.metrics import check_scoring

    return check_scoring(est, scoring=scoring)


def _check_fitted(est):
    """``check_is_fitted`` at the cost of a dict lookup when the model is fitted (it is
    a tenth of a one-row predict otherwise)."""
    if not est.__sklearn_is_fitted__():
        check_is_fitted(est)


class _AvailableIf(_AvailableIfDescriptor):
    """scikit-learn's ``available_if``, with the reason in the error's own message:
    scikit-learn's says only "has no attribute", the reason hidden in its cause."""

    def _check(self, obj, owner):
        try:
            super()._check(obj, owner)
        except AttributeError as e:
            if e.__cause__ is None:
                raise
            raise AttributeError(f"{e}: {e.__cause__}") from e.__cause__


def available_if(check):
    """``check(est)`` returns True or raises AttributeError saying why not."""
    return lambda fn: _AvailableIf(fn, check=check, attribute_name=fn.__name__)


def _probabilistic(est):
    """``available_if`` condition of ``predict_proba``: not with the hinge loss, whose
    outputs are scores, not probabilities (as scikit-learn's SGDClassifier)."""
    if est.loss == "hinge":
        raise AttributeError(
            "predict_proba is not available with loss='hinge': its outputs are margins, "
            "not probabilities. Use loss='log_loss' for probabilities."
        )
    return True


def _stochastic_solver(est):
    """``available_if`` condition for ``partial_fit``: a bool, never a bound method
    (scikit-learn's regressor passes the method itself, which is always truthy)."""
    if est.solver not in STOCHASTIC_SOLVERS:
        raise AttributeError(
            f"partial_fit is only available for stochastic optimizers "
            f"{STOCHASTIC_SOLVERS}; solver={est.solver!r} is not stochastic."
        )
    return True


def _migrate_format_1(state):
    """The state of a pickle of fastbp <= 0.2.0.dev0 in today's form (in place)."""
    layout = state.pop("_layout")
    loss = state.pop("_loss_code")
    params = np.array(state.pop("_params"))
    network = Network(np.array(layout.units), loss, params)
    trainer = Trainer()
    trainer.dropout_seed = state.pop("_dropout_seed", None)
    if "_opt_state" in state:
        opt = Optimizer(state.pop("_opt_solver"), params.shape[0], params.dtype,
                        state.pop("_learning_rate"))
        opt.state[...] = state.pop("_opt_state")
        opt.t, opt.epoch = int(state.pop("_opt_t")), int(state.pop("_opt_epoch"))
        trainer.optimizer = opt
    best = state.pop("_best_params", params)
    monitor = _stopping.Monitor(np.array(best), state.pop("_no_improvement_count", 0))
    state.pop("_outputs_finite", None)
    state.update(_network=network, _trainer=trainer, _monitor=monitor)


def training_objective(estimator, X, y, sample_weight=None):
    """The full training objective of ``estimator`` on ``(X, y, sample_weight)`` in
    float64, for the gradient check: ``(f, x0)``, ``f(x) -> (loss, gradient)`` and the
    parameters it is evaluated at (the estimator's, or, if it is not fitted, those a fit
    would start from, computed on a clone: an unfitted estimator is never modified)."""
    fitted = hasattr(estimator, "coefs_")
    est = estimator if fitted else clone(estimator)
    if not fitted:
        est._validate_params()
    X, Y, sample_weight = est._prepare(
        X, y, sample_weight, incremental=fitted, first_pass=not fitted, partial_fit=False
    )
    network = est._network
    network = network.with_params(network.params.astype(np.float64))
    data = KernelData(X, est._kernel_targets(Y), sample_weight, np.float64)
    hyper = est._hyperparameters(np.float64)
    f = Trainer().objective(network, data, hyper, est._act_codes())
    return f, network.params.copy()


class BaseMultilayerPerceptron(_callbacks.CallbackSupportMixin, BaseEstimator):
    """Shared fitting machinery of :class:`MLPClassifier` and :class:`MLPRegressor`.

    Do not use directly. The network (``_network``) keeps the weights and biases in one
    flat vector; ``coefs_`` and ``intercepts_`` are views into it. ``_trainer`` holds the
    optimizer's state between calls and ``_monitor`` the stopping rules'.
    """

    _parameter_constraints: dict = {
        "hidden_layer_sizes": ["array-like", Interval(Integral, 1, None, closed="left")],
        "activation": [StrOptions(set(HIDDEN_ACTIVATIONS)), list, tuple],
        "solver": [StrOptions({"lbfgs", *STOCHASTIC_SOLVERS})],
        "alpha": [Interval(Real, 0, None, closed="left")],
        "batch_size": [StrOptions({"auto"}), Interval(Integral, 1, None, closed="left")],
        "learning_rate": [StrOptions(set(LEARNING_RATES))],
        "learning_rate_init": [Interval(Real, 0, None, closed="neither")],
        "power_t": [Interval(Real, 0, None, closed="left")],
        "max_iter": [Interval(Integral, 1, None, closed="left")],
        "shuffle": ["boolean"],
        "random_state": ["random_state"],
        "tol": [Interval(Real, 0, None, closed="left")],
        "verbose": ["verbose"],
        "warm_start": ["boolean"],
        "momentum": [Interval(Real, 0, 1, closed="both")],
        "nesterovs_momentum": ["boolean"],
        "early_stopping": ["boolean"],
        "validation_fraction": [Interval(Real, 0, 1, closed="left")],
        "beta_1": [Interval(Real, 0, 1, closed="left")],
        "beta_2": [Interval(Real, 0, 1, closed="left")],
        "epsilon": [Interval(Real, 0, None, closed="neither")],
        "n_iter_no_change": [
            Interval(Integral, 1, None, closed="left"),
            Options(Real, {np.inf}),
        ],
        "max_fun": [Interval(Integral, 1, None, closed="left")],
        "dropout": [Interval(Real, 0, 1, closed="left"), list, tuple],
        "l1": [Interval(Real, 0, None, closed="left")],
        "max_grad_norm": [None, Interval(Real, 0, None, closed="neither")],
        "weight_decay": [Interval(Real, 0, None, closed="left")],
        "rho": [Interval(Real, 0, 1, closed="left")],
        "lr_decay": [Interval(Real, 0, 1, closed="right")],
        "lr_period": [None, Interval(Integral, 1, None, closed="left")],
        "init": [StrOptions(set(INITS))],
        "n_threads": [None, Interval(Integral, 1, None, closed="left"), Options(Integral, {-1})],
        "scoring": [None, StrOptions({"loss"}), str, callable],
    }

    def __init__(
        self,
        hidden_layer_sizes,
        activation,
        solver,
        alpha,
        batch_size,
        learning_rate,
        learning_rate_init,
        power_t,
        max_iter,
        loss,
        shuffle,
        random_state,
        tol,
        verbose,
        warm_start,
        momentum,
        nesterovs_momentum,
        early_stopping,
        validation_fraction,
        beta_1,
        beta_2,
        epsilon,
        n_iter_no_change,
        max_fun,
        dropout,
        l1,
        max_grad_norm,
        weight_decay,
        rho,
        lr_decay,
        lr_period,
        init,
        n_threads,
        scoring,
    ):
        self.activation = activation
        self.solver = solver
        self.alpha = alpha
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.learning_rate_init = learning_rate_init
        self.power_t = power_t
        self.max_iter = max_iter
        self.loss = loss
        self.hidden_layer_sizes = hidden_layer_sizes
        self.shuffle = shuffle
        self.random_state = random_state
        self.tol = tol
        self.verbose = verbose
        self.warm_start = warm_start
        self.momentum = momentum
        self.nesterovs_momentum = nesterovs_momentum
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.epsilon = epsilon
        self.n_iter_no_change = n_iter_no_change
        self.max_fun = max_fun
        self.dropout = dropout
        self.l1 = l1
        self.max_grad_norm = max_grad_norm
        self.weight_decay = weight_decay
        self.rho = rho
        self.lr_decay = lr_decay
        self.lr_period = lr_period
        self.init = init
        self.n_threads = n_threads
        self.scoring = scoring

    # ------------------------------------------------------------------ network state
    def _hidden_sizes(self):
        sizes = self.hidden_layer_sizes
        if not hasattr(sizes, "__iter__"):
            sizes = [sizes]
        sizes = list(sizes)
        if any(not isinstance(s, Integral | np.integer) or s <= 0 for s in sizes):
            raise ValueError(
                f"hidden_layer_sizes must be positive integers (each > 0), got {sizes}."
            )
        return [int(s) for s in sizes]

    def _hidden_activations(self, n_hidden):
        return hidden_activations(self.activation, n_hidden, self.hidden_layer_sizes)

    def _act_codes(self):
        """Activation code of each layer of the fitted network, for the kernels."""
        return self._network.act_codes(self._hidden_activations(self.n_layers_ - 2))

    def _dropout_rates(self, n_layers):
        """Dropout rate of each layer (0 for the input and the output)."""
        rates = per_hidden_layer("dropout", self.dropout, n_layers - 2, self.hidden_layer_sizes)
        for rate in rates:
            if isinstance(rate, bool) or not isinstance(rate, Real) or not 0.0 <= rate < 1.0:
                raise ValueError(
                    f"dropout rates must be floats in [0, 1), got {rate!r} in "
                    f"dropout={self.dropout!r}."
                )
        rates = np.array([0.0, *rates, 0.0], dtype=np.float64)
        rates.flags.writeable = False
        return rates

    def _binary_outputs(self):
        """Whether the outputs are independent labels (two classes, multilabel)."""
        return False

    def _set_network(self, network):
        """Install ``network``; coefs_/intercepts_ become views into its parameters."""
        self._network = network
        self.coefs_, self.intercepts_ = network.coefs, network.intercepts

    def _sync_params(self):
        """Rebuild the network if ``coefs_``/``intercepts_`` were reassigned by the user
        (e.g. ``est.coefs_ = [...]``) so that the kernels see what the user sees."""
        network = self.__dict__.get("_network")
        if network is not None and network.owns(self.coefs_, self.intercepts_):
            return
        depth = self.n_layers_ - 1  # the activations of the model are per layer
        if len(self.coefs_) != depth or len(self.intercepts_) != depth:
            raise ValueError(
                f"coefs_ and intercepts_ were reassigned with {len(self.coefs_)} and "
                f"{len(self.intercepts_)} array(s), but the model has {depth} weight "
                f"layer(s) (n_layers_={self.n_layers_}); fit a model of that depth instead."
            )
        loss = network.loss if network is not None else self._loss_code_for()
        network = Network.from_arrays(self.coefs_, self.intercepts_, loss)
        units = network.units.tolist()
        if units[0] != self.n_features_in_ or units[-1] != self.n_outputs_:
            raise ValueError(
                f"coefs_ were reassigned with layer sizes {units}, but the model has "
                f"{self.n_features_in_} input feature(s) and {self.n_outputs_} output(s)."
            )
        self._set_network(network)

    def _loss_code_for(self):
        return loss_code(self.loss, self._binary_outputs())

    def _hyperparameters(self, dtype=None):
        network = self._network
        params = {name: getattr(self, name) for name in Hyperparameters.PARAMETERS
                  if hasattr(self, name)}  # get_params' signature inspection costs more
        return Hyperparameters(params, network.loss, dtype or network.dtype)

    def __sklearn_is_fitted__(self):
        # check_is_fitted's hook: a dict lookup instead of scanning every attribute
        # (a fifth of a one-row predict's time)
        return "coefs_" in self.__dict__

    def __getstate__(self):
        state = dict(super().__getstate__())  # object.__getstate__ returns __dict__ itself
        state.pop("coefs_", None)  # views, rebuilt on load
        state.pop("intercepts_", None)
        if "_network" in state:
            state["_fastbp_state_format"] = _STATE_FORMAT
        return state

    def __setstate__(self, state):
        state = dict(state)
        version = state.pop("_fastbp_state_format", 1)
        if version > _STATE_FORMAT:
            from . import __version__

            raise ValueError(
                f"This {type(self).__name__} was pickled by a newer fastbp (state format "
                f"{version}; fastbp {__version__} reads up to {_STATE_FORMAT}). Load it "
                "with the fastbp version that saved it, or upgrade fastbp."
            )
        if "_params" in state:  # fastbp <= 0.2.0.dev0
            _migrate_format_1(state)
        for name, value in _parameters.defaults(type(self)).items():
            state.setdefault(name, value)  # parameters added since it was pickled
        super().__setstate__(state)
        if "_network" in state:
            self._set_network(self._network)

    def _initialize(self, layer_units, dtype):
        """Set the fitted attributes of a fresh network and draw its initial weights."""
        self.n_iter_ = 0
        self.t_ = 0
        self.n_outputs_ = layer_units[-1]
        self.n_layers_ = len(layer_units)
        code = self._loss_code_for()
        self.out_activation_ = output_activation(code)
        self.__dict__.pop("validation_loss_curve_", None)
        network = Network.initialized(
            layer_units, code, self._hidden_activations(self.n_layers_ - 2), self.init,
            self._random_state, dtype, self.activation,
        )
        self._set_network(network)
        self._trainer = Trainer()
        self._monitor = _stopping.Monitor(network.params)
        if self.solver in STOCHASTIC_SOLVERS:
            self.loss_curve_ = []
            self.validation_scores_ = None
            self.best_validation_score_ = None
            self.best_loss_ = None

    def _stopping_bookkeeping(self, early_stopping, has_validation):
        """The attributes of the stopping rules as scikit-learn has them, for the
        current ``early_stopping`` (warm start may switch it) and validation set."""
        if not isinstance(getattr(self, "loss_curve_", None), list):  # was lbfgs
            self.loss_curve_ = []
            self._monitor.restart()
        if early_stopping or has_validation:
            if self.__dict__.get("validation_scores_") is None:
                self.validation_scores_ = []
                self.best_validation_score_ = -np.inf
            if not isinstance(getattr(self, "validation_loss_curve_", None), list):
                self.validation_loss_curve_ = []
        else:
            self.validation_scores_ = None
            self.best_validation_score_ = None
        if early_stopping:
            self.best_loss_ = None
        elif self.__dict__.get("best_loss_") is None:
            self.best_loss_ = np.inf

    # ------------------------------------------------------------------------- fitting
    @contextmanager
    def _restored_on_failure(self):
        """Leave the estimator exactly as it was if the block raises: a failed
        ``fit``/``partial_fit`` (bad input, divergence) never loses a trained model."""
        state = self.__getstate__()
        for name in _callbacks.CALLBACK_ATTRIBUTES:  # live objects: kept, not copied
            state.pop(name, None)
        # A fit draws from a new RandomState made from an int or None random_state,
        # never from the previous fit's, which needs no copy (a quarter of a small fit's
        # fixed cost); a user's RandomState instance is copied.
        rng = None
        if not isinstance(self.random_state, np.random.RandomState):
            rng = state.pop("_random_state", None)
        saved = copy.deepcopy(state)
        if rng is not None:
            saved["_random_state"] = rng
        try:
            yield
        except Exception:
            live = {k: v for k, v in self.__dict__.items() if k in _callbacks.CALLBACK_ATTRIBUTES}
            self.__dict__.clear()
            self.__setstate__(saved)
            self.__dict__.update(live)
            raise

    def _fit(self, X, y, sample_weight=None, incremental=False, X_val=None, y_val=None,
             sample_weight_val=None):
        if (X_val is None) != (y_val is None):
            raise ValueError(
                "X_val and y_val must be given together (got only "
                f"{'X_val' if y_val is None else 'y_val'})."
            )
        if sample_weight_val is not None and X_val is None:
            raise ValueError("sample_weight_val was given without X_val and y_val.")
        with self._restored_on_failure():
            first_pass = not hasattr(self, "coefs_") or (not self.warm_start and not incremental)
            given = (X, y, sample_weight)
            X, Y, sample_weight = self._prepare(
                X, y, sample_weight, incremental, first_pass, partial_fit=incremental
            )
            val = None
            if X_val is not None:
                val = self._given_validation_set(X_val, y_val, sample_weight_val)
            stochastic = self.solver in STOCHASTIC_SOLVERS
            max_tasks = 1 if incremental else self.max_iter + (0 if stochastic else 1)
            tasks = _callbacks.FitTasks(
                self, *given, root=self._init_callback_context(max_subtasks=max_tasks),
                snapshot=self._snapshot,
                # fitted copies cost a copy of the weights: only when someone listens
                listening=bool(getattr(self, "_skl_callbacks", None))
                or hasattr(self, "_parent_callback_ctx"),
            )
            if stochastic:
                self._fit_stochastic(X, Y, sample_weight, incremental, val, tasks)
            else:
                self._fit_lbfgs(X, Y, sample_weight, val, tasks)
            self._check_converged_to_finite(stochastic)
            tasks.close()
        return self

    def _check_converged_to_finite(self, stochastic):
        """Raise if training diverged: non-finite weights, a non-finite final loss
        (unless early stopping went back to the best weights; lbfgs' final loss is that
        of its final weights), or weights so large that the outputs overflow (the epoch
        checks the last minibatch). The failed call then leaves the estimator as it was."""
        overflow = stochastic and not self._trainer.outputs_finite
        restored = self.early_stopping and stochastic  # the best epoch's weights
        if not self._network.all_finite() or (
            not restored and (overflow or not np.isfinite(self.loss_))
        ):
            raise ValueError(_NON_FINITE_MSG)

    def _snapshot(self, params=None):
        """The attributes of a fitted copy of this model at ``params`` (default: now)
        for the callbacks: the weights copied, so that scoring it does not race with
        training."""
        network = self._network
        flat = (network.params if params is None else params).astype(network.dtype)
        copy_ = network.with_params(flat)
        return {"_network": copy_, "coefs_": copy_.coefs, "intercepts_": copy_.intercepts}

    def _check_network_parameters(self):
        """Validate the network's parameters before any work, and warn about those that
        have no effect with these settings; returns the hidden sizes."""
        _parameters.warn_inapplicable(self)
        if self.scoring is not None and not (
            isinstance(self.scoring, str) and self.scoring == "loss"
        ):
            _check_scoring(self, self.scoring)  # an unknown name raises now
        hidden_layer_sizes = self._hidden_sizes()
        rates = self._dropout_rates(len(hidden_layer_sizes) + 2)
        self._hidden_activations(len(hidden_layer_sizes))
        if self.solver == "lbfgs" and np.any(rates):
            raise ValueError(
                "dropout needs a stochastic solver (one of "
                f"{STOCHASTIC_SOLVERS}); solver='lbfgs' minimises a deterministic "
                "objective. Use dropout=0.0 with lbfgs."
            )
        return hidden_layer_sizes

    def _prepare(self, X, y, sample_weight, incremental, first_pass, partial_fit):
        """Validate the training data and set up the network: a fresh one on the first
        pass, else check the existing one fits the data.

        Returns ``(X, Y, sample_weight)``: Y 2-D in the network's dtype, the sample
        weights combined with the class weights (None for unit weights).
        """
        hidden_layer_sizes = self._check_network_parameters()
        X, y = self._validate_input(X, y, incremental, reset=first_pass)
        if sample_weight is not None:
            sample_weight = _check_sample_weight(sample_weight, X)
        if y.ndim == 1:
            y = y.reshape((-1, 1))
        layer_units = [X.shape[1]] + hidden_layer_sizes + [y.shape[1]]
        sample_weight = self._with_class_weight(sample_weight, y, partial_fit)

        self._random_state = check_random_state(self.random_state)
        if first_pass:
            self._initialize(layer_units, X.dtype)
        else:
            self._sync_params()
            if list(self._network.units) != layer_units:
                raise ValueError(
                    f"The network has layer sizes {list(map(int, self._network.units))} "
                    f"but hidden_layer_sizes={self.hidden_layer_sizes!r} and this data "
                    f"need {layer_units}; fit with warm_start=False to start afresh."
                )
        # A network keeps the dtype it was created with (warm start, partial_fit).
        dtype = self._network.dtype
        Y = _in_dtype(y, dtype, "y")
        if sample_weight is not None:
            total = float(np.sum(sample_weight, dtype=np.float64))
            if not total > 0:
                raise ValueError(
                    f"sample_weight sums to {total}: the weights must have a positive sum."
                )
            _in_dtype(sample_weight, dtype, "sample_weight")
        self._fit_target_transform(Y, sample_weight, first_pass)
        return X, Y, sample_weight

    def _with_class_weight(self, sample_weight, Y, partial_fit):
        """Sample weights times class weights (classifier; the regressor has none)."""
        return sample_weight

    # ---------------------------------------- target hooks (MLPRegressor overrides them)
    def _fit_target_transform(self, Y, sample_weight, first_pass):
        """Learn from the training targets what training and prediction map them by
        (the regressor's target scaling and prediction bounds); nothing here."""

    def _kernel_targets(self, Y):
        """The targets as the loss kernels see them (the regressor's scaled ones)."""
        return Y

    # ------------------------------------------------------------------ validation set
    def _given_validation_set(self, X_val, y_val, sample_weight_val):
        """Validate a user-given validation set like the training data."""
        X_val = validate_data(
            self, X_val, accept_sparse=["csr", "csc"], dtype=_config.FLOAT_DTYPES, reset=False
        )
        Y_val = self._encode_validation_targets(y_val, X_val.shape[0])
        if sample_weight_val is not None:
            sample_weight_val = _check_sample_weight(sample_weight_val, X_val)
        sample_weight_val = self._with_class_weight(sample_weight_val, Y_val, False)
        dtype = self._network.dtype
        Y_val = _in_dtype(Y_val, dtype, "y_val")
        if sample_weight_val is not None:
            _in_dtype(sample_weight_val, dtype, "sample_weight_val")
        return self._validation_set(X_val, Y_val, sample_weight_val)

    def _validation_set(self, X_val, Y_val, sw_val):
        return Validation(
            self._network, X_val, self._kernel_targets(Y_val), sw_val,
            self._validation_targets(Y_val),
            self._act_codes(),
        )

    # --------------------------------------------------------------- stochastic solvers
    def _fit_stochastic(self, X, Y, sample_weight, incremental, val, tasks):
        if self.early_stopping and incremental:
            raise ValueError("partial_fit does not support early_stopping=True")
        hyper = self._hyperparameters()
        self._trainer.start(self._network, hyper, keep_optimizer=incremental)
        train = None  # all rows
        if self.early_stopping and val is None:
            train, val = self._hold_out(X, Y, sample_weight)
        self._stopping_bookkeeping(self.early_stopping, val is not None)
        data = KernelData(X, self._kernel_targets(Y), sample_weight, self._network.dtype,
                          rows=train)
        if self.batch_size != "auto" and self.batch_size > data.n:
            warnings.warn(
                "Got `batch_size` less than 1 or larger than sample size. It is going to "
                "be clipped",
                stacklevel=_caller.stacklevel(),
            )
        batch_size = batch_rows(self.batch_size, data.n)
        drop = self._dropout_rates(self.n_layers_)
        if drop.any():
            self._trainer.draw_dropout_seed(self._random_state)
        with self._trainer.running(self.n_threads):
            try:
                self._run_epochs(data, batch_size, hyper, drop, incremental, val, tasks)
            except KeyboardInterrupt:
                # Ctrl-C reaches Python between two compiled epochs: the weights are
                # those of a whole epoch (or, with early stopping, the best ones below).
                tasks.abandon()
                warnings.warn("Training interrupted by user.", stacklevel=_caller.stacklevel())
        if self.early_stopping:
            self._monitor.restore_best(self._network.params)

    def _hold_out(self, X, Y, sample_weight):
        """Split off scikit-learn's early-stopping validation set: ``(train,
        validation set)``, ``train`` the indices of the rows left for training, in the
        order of scikit-learn's copy of them (training reads them in place)."""
        stratify = Y.astype(bool) if (is_classifier(self) and self.n_outputs_ == 1) else None
        train, held = _stopping.holdout(
            X.shape[0], self.validation_fraction, self._random_state, stratify
        )
        sw_val = None if sample_weight is None else sample_weight[held]
        return train, self._validation_set(X[held], Y[held], sw_val)

    def _run_epochs(self, data, batch_size, hyper, drop, incremental, val, tasks):
        """scikit-learn's epoch loop, each epoch one compiled call."""
        trainer, network = self._trainer, self._network
        act_codes = self._act_codes()
        # the rows of X in the order of scikit-learn's training copy, whose row i is
        # X's row data.rows[i]: its shuffles permute data.rows alike
        sample_idx = data.rows
        ahead = self._calls_after_epoch(val, hyper)
        self.n_iter_ = 0
        for _ in range(self.max_iter):
            if self.shuffle:
                # scikit-learn's `utils.shuffle(sample_idx)`: same draw, same order
                perm = np.arange(data.n)
                self._random_state.shuffle(perm)
                sample_idx = sample_idx[perm]
            tasks.begin("epoch")
            self.loss_ = trainer.epoch(network, data, sample_idx, batch_size, hyper,
                                       act_codes, drop, ahead)
            self.n_iter_ += 1
            self.t_ += data.n
            self.loss_curve_.append(self.loss_)
            if self.verbose:
                print(f"Iteration {self.n_iter_}, loss = {self.loss_:.8f}")
            if val is not None:
                self._update_validation(val, hyper)
            if not self.early_stopping:
                self.best_loss_ = self._monitor.after_training_loss(
                    self.loss_curve_[-1], self.best_loss_, self.tol
                )
            trainer.optimizer.after_epoch(hyper, self.t_)
            if tasks.end():
                break  # a callback asked to stop
            if not np.isfinite(self.loss_):
                break  # diverged: nothing more to learn; checked after the loop
            if self._monitor.exhausted(self.n_iter_no_change):
                if self._trigger_stopping(trainer.optimizer):
                    break
                self._monitor.restart()
            if incremental:
                break
            if self.n_iter_ == self.max_iter:
                warnings.warn(
                    f"Stochastic Optimizer: Maximum iterations ({self.max_iter}) reached "
                    "and the optimization hasn't converged yet.",
                    ConvergenceWarning,
                    stacklevel=_caller.stacklevel(),
                )

    def _trigger_stopping(self, optimizer):
        """Stop, or (adaptive rate) divide the learning rate by 5.

        scikit-learn adapts only 'sgd'; here every stochastic solver does.
        """
        what = "Validation score" if self.early_stopping else "Training loss"
        msg = (
            f"{what} did not improve more than tol={self.tol:f} for "
            f"{self.n_iter_no_change} consecutive epochs."
        )
        if self.learning_rate == "adaptive":
            if not optimizer.reduce_rate():
                if self.verbose:
                    print(msg + " Learning rate too small. Stopping.")
                return True
            if self.verbose:
                print(f"{msg} Setting learning rate to {optimizer.learning_rate:f}")
            return False
        if self.verbose:
            print(msg + " Stopping.")
        return True

    def _calls_after_epoch(self, val, hyper):
        """The kernel calls that follow an epoch, as ``_compile_ahead.prepare`` takes
        them: the validation pass, if there is a validation set."""
        if val is None:
            return ()
        network, trainer = self._network, self._trainer
        return (lambda: val.call(network, hyper, trainer.threads),)

    def _update_validation(self, val, hyper):
        """Score and loss on the validation set; with early stopping, keep the best."""
        network, threads = self._network, self._trainer.threads
        if self.scoring is None:
            # the default score reads the outputs of the loss's own forward pass
            loss, out = val.loss_and_outputs(network, hyper, threads)
            score = self._score_outputs(out, val.y, val.sample_weight)
        else:
            loss = val.loss(network, hyper, threads)
            score = self._validation_score(val, loss)
        self.validation_scores_.append(score)
        self.validation_loss_curve_.append(loss)
        if self.verbose:
            print(f"Validation score: {score:f}, loss: {self.validation_loss_curve_[-1]:f}")
        self.best_validation_score_ = self._monitor.after_validation(
            score, self.best_validation_score_, self._network.params, self.tol,
            self.early_stopping,
        )

    def _validation_score(self, val, loss):
        """The score early stopping follows (higher is better) for a ``scoring``
        setting: the negative validation loss for 'loss', else the scorer's (the
        default, ``score``, comes from the outputs: ``_update_validation``)."""
        if isinstance(self.scoring, str) and self.scoring == "loss":
            return -loss
        scorer = _check_scoring(self, self.scoring)
        weights = {} if val.sample_weight is None else {"sample_weight": val.sample_weight}
        return float(scorer(self, val.X, val.y, **weights))

    # ------------------------------------------------------------------------- L-BFGS
    def _fit_lbfgs(self, X, Y, sample_weight, val, tasks):
        network, hyper = self._network, self._hyperparameters()
        data = KernelData(X, self._kernel_targets(Y), sample_weight, network.dtype)
        loss_grad = self._trainer.objective(network, data, hyper, self._act_codes())
        params = network.params
        if val is not None:
            self.validation_loss_curve_ = []
        accepted = {"x": params.astype(np.float64), "nit": 0}

        def callback(intermediate_result):
            """After each L-BFGS iteration: validation loss, callbacks, bookkeeping."""
            x = intermediate_result.x
            accepted["x"], accepted["nit"] = x.copy(), accepted["nit"] + 1
            if val is not None:
                saved = params.copy()
                params[...] = x
                self.validation_loss_curve_.append(
                    val.loss(network, hyper, self._trainer.threads))
                params[...] = saved
            stop = tasks.end(x)
            tasks.begin("iteration")
            if stop:
                raise StopIteration  # scipy ends the run (status 99)

        import scipy.optimize  # here: only L-BFGS needs it (fastbp/__init__.py, import time)

        tasks.begin("iteration")
        with self._trainer.running(self.n_threads):
            try:
                result = scipy.optimize.minimize(
                    loss_grad,
                    params.astype(np.float64),
                    method="L-BFGS-B",
                    jac=True,
                    callback=callback,
                    options={"maxfun": self.max_fun, "maxiter": self.max_iter,
                             "gtol": self.tol},
                )
            except KeyboardInterrupt:
                # keep the last accepted iterate (not a line-search trial point)
                warnings.warn("Training interrupted by user.", stacklevel=_caller.stacklevel())
                self.n_iter_ = accepted["nit"]
                self.loss_ = float(loss_grad(accepted["x"])[0])
                params[...] = accepted["x"]
                return
        if result.status not in (0, 99):  # 99: a callback asked to stop
            warnings.warn(
                f"lbfgs failed to converge after {result.nit} iteration(s) "
                f"(status={result.status}): {result.message}\n"
                "Increase the number of iterations (max_iter) or scale the data.",
                ConvergenceWarning,
                stacklevel=_caller.stacklevel(),
            )
        self.n_iter_ = min(int(result.nit), self.max_iter)
        self.loss_ = float(result.fun)
        params[...] = result.x

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y, sample_weight=None, *, X_val=None, y_val=None, sample_weight_val=None):
        """Fit the model to data matrix X and target(s) y.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            The input data. float32 input trains in float32.
        y : array-like of shape (n_samples,) or (n_samples, n_outputs)
            The targets (class labels in classification, real numbers in regression).
        sample_weight : array-like of shape (n_samples,), default=None
            Sample weights.
        X_val : {array-like, sparse matrix} of shape (n_val, n_features), default=None
            A validation set given by the user (the convention of scikit-learn's
            HistGradientBoosting estimators). Early stopping, when on, uses it instead of
            holding out ``validation_fraction`` of X. With it, every epoch records the
            validation score in ``validation_scores_`` and the validation loss in
            ``validation_loss_curve_`` (lbfgs: the loss at every iteration).
        y_val : array-like of shape (n_val,) or (n_val, n_outputs), default=None
            Targets of ``X_val``; required with it.
        sample_weight_val : array-like of shape (n_val,), default=None
            Sample weights of the validation set.

        Returns
        -------
        self : object
            The fitted estimator.
        """
        return self._fit(
            X, y, sample_weight=sample_weight, incremental=False,
            X_val=X_val, y_val=y_val, sample_weight_val=sample_weight_val,
        )

    # ---------------------------------------------------------------------- prediction
    def _forward_pass_fast(self, X, check_input=True, raw=False):
        """Output-layer activations for X, shape (n_samples, n_outputs) (``raw``: the
        output layer's values before its activation)."""
        if check_input:
            X = self._validate_predict_input(X)
        self._sync_params()
        out, finite = self._network.predict(
            X, self.activation, self.__dict__.get("n_threads"), raw
        )
        if not finite:  # only the fast path of _validate_predict_input lets it by
            validate_data(self, X, dtype=_config.FLOAT_DTYPES, reset=False)  # raises
            raise ValueError("Input X contains NaN or infinity.")
        return out

    def _validate_predict_input(self, X):
        """``validate_data`` for predict, with a fast path for the common case (a
        finite float ndarray of the right width, model fitted without feature names)
        that skips its per-call overhead, about 100 us of a one-row predict. Its values
        are checked finite by the forward pass (``predict_rows``), which then falls back
        on ``validate_data`` for its error."""
        if (
            type(X) is np.ndarray
            and X.ndim == 2
            and X.shape[0] > 0
            and X.shape[1] == self.n_features_in_
            and X.dtype in (np.float64, np.float32)
            and X.dtype.isnative
            and "feature_names_in_" not in self.__dict__
        ):
            return X
        return validate_data(
            self, X, accept_sparse=["csr", "csc"], dtype=_config.FLOAT_DTYPES, reset=False
        )

    # --------------------------------------------------------------------- interop
    def to_sklearn(self):
        """The same fitted network as a scikit-learn estimator.

        Returns a fitted :class:`sklearn.neural_network.MLPClassifier` or
        :class:`~sklearn.neural_network.MLPRegressor` with the same weights (as float64),
        fitted attributes and, for 'sgd' and 'adam', optimizer state: it predicts the
        same, and its ``partial_fit`` continues this training. Useful to export with
        tools that know scikit-learn's MLP (skl2onnx).

        Training settings scikit-learn lacks that change no prediction (another solver,
        dropout, l1, max_grad_norm, a schedule, init, class_weight, or the absolute_error
        and huber losses, whose output is linear like squared_error's) are replaced by
        scikit-learn's defaults, with a UserWarning listing them. The regressor's
        ``normalize_y`` is folded into the output layer (same predictions);
        ``clip_predictions`` cannot be expressed and is dropped with a UserWarning.

        Raises
        ------
        ValueError
            If the network cannot be expressed: per-layer or other activations than
            identity/logistic/tanh/relu, or the hinge loss (linear classifier outputs).
        """
        _check_fitted(self)
        self._sync_params()
        attributes = {
            name: self.__dict__[name]
            for name in _interop.FITTED_ATTRIBUTES
            if name in self.__dict__
        }
        if isinstance(getattr(self, "loss_curve_", None), list):  # stochastic solvers
            attributes["_no_improvement_count"] = self._monitor.no_improvement_count
        hidden = self._hidden_activations(self.n_layers_ - 2)
        return _interop.to_sklearn(
            self, self._network, hidden, self._trainer.optimizer, attributes
        )

    @classmethod
    def from_sklearn(cls, estimator):
        """A fastbp estimator from a fitted scikit-learn MLP of the same kind.

        The parameters, weights (their dtype kept), fitted attributes and the 'sgd' or
        'adam' optimizer state are taken over: the result predicts the same and is ready
        for ``predict``, ``partial_fit`` or ``fit`` with ``warm_start=True``.

        Parameters
        ----------
        estimator : sklearn.neural_network.MLPClassifier or MLPRegressor, fitted

        Returns
        -------
        est : MLPClassifier or MLPRegressor (this class)
        """
        imported = _interop.from_sklearn(cls, estimator)
        est = cls(**estimator.get_params())
        est.__dict__.update(imported.attributes)
        est._set_network(imported.network)
        est._trainer = Trainer()
        est._trainer.optimizer = imported.optimizer
        est._monitor = _stopping.Monitor(imported.network.params, imported.no_improvement_count)
        return est

    def _score_outputs(self, out, y, sample_weight):
        """``score``'s value (accuracy, R^2) of the network's outputs ``out`` (which
        ``_predictions`` may overwrite) against ``y``, without scikit-learn's per-call
        checks."""
        # NaN, not a score, for a network whose outputs overflow: labels derived from
        # NaN probabilities would still score (and early stopping would keep them).
        if not np.isfinite(out).all():
            return np.nan
        return self._score_function(y, self._predictions(out), sample_weight=sample_weight)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True
        return tags



@_docstrings.render
class MLPClassifier(ClassifierMixin, BaseMultilayerPerceptron):
    """Multi-layer perceptron classifier, trained by compiled backpropagation.

    A drop-in replacement for :class:`sklearn.neural_network.MLPClassifier`: the same
    parameters, defaults, fitted attributes and methods. For the same ``random_state``
    the initial weights, the minibatch order and the early-stopping split are the same
    as scikit-learn's, so float64 training follows scikit-learn's to rounding error.

    Beyond scikit-learn: per-layer and more activations, dropout, L1, gradient clipping,
    more solvers and schedules, initialisation schemes, the hinge loss, class weights and
    a user-given validation set (``fit(..., X_val=, y_val=)``). Each gradient is checked
    against finite differences (:func:`fastbp.check_gradients`).

    Parameters
    ----------
    loss : {'log_loss', 'hinge'}, default='log_loss'
        'log_loss': softmax (multiclass) or logistic (binary, multilabel) outputs and
        the cross-entropy. 'hinge': linear outputs, Crammer and Singer's multiclass
        hinge ``max(0, 1 + max_{j != y} z_j - z_y)`` (the binary and multilabel hinge
        per output for two classes or multilabel y); ``predict_proba`` is then not
        available, as with scikit-learn's SGDClassifier.
    class_weight : dict, 'balanced' or None, default=None
        Weights of the classes, multiplied into ``sample_weight`` (also the validation
        set's). 'balanced' is ``n_samples / (n_classes * np.bincount(y))``; a dict maps
        class labels to weights (missing classes weigh 1). Not for multilabel y, and
        'balanced' not in ``partial_fit``.
$shared_parameters

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
        The class labels (for multilabel y, the column indices).
$shared_attributes

    See Also
    --------
    MLPRegressor : the same network for regression.
    sklearn.neural_network.MLPClassifier : the scikit-learn estimator this replaces.

    Examples
    --------
    >>> from sklearn.datasets import load_iris
    >>> from sklearn.model_selection import train_test_split
    >>> from fastbp import MLPClassifier
    >>> X, y = load_iris(return_X_y=True)
    >>> X_train, X_test, y_train, y_test = train_test_split(X, y, random_state=0)
    >>> clf = MLPClassifier(hidden_layer_sizes=(16,), solver="lbfgs", max_iter=500,
    ...                     random_state=0).fit(X_train, y_train)
    >>> clf.predict(X_test[:5])
    array([2, 1, 0, 2, 0])
    >>> clf.predict_proba(X_test[:1]).shape
    (1, 3)
    >>> round(clf.score(X_test, y_test), 2)
    0.97
    """

    def __init__(
        self,
        hidden_layer_sizes=(100,),
        activation="relu",
        *,
        solver="adam",
        alpha=0.0001,
        batch_size="auto",
        learning_rate="constant",
        learning_rate_init=0.001,
        power_t=0.5,
        max_iter=200,
        shuffle=True,
        random_state=None,
        tol=1e-4,
        verbose=False,
        warm_start=False,
        momentum=0.9,
        nesterovs_momentum=True,
        early_stopping=False,
        validation_fraction=0.1,
        beta_1=0.9,
        beta_2=0.999,
        epsilon=1e-8,
        n_iter_no_change=10,
        max_fun=15000,
        dropout=0.0,
        l1=0.0,
        max_grad_norm=None,
        weight_decay=0.01,
        rho=0.9,
        lr_decay=0.5,
        lr_period=None,
        init="sklearn",
        n_threads=None,
        scoring=None,
        loss="log_loss",
        class_weight=None,
    ):
        super().__init__(
            hidden_layer_sizes=hidden_layer_sizes,
            activation=activation,
            solver=solver,
            alpha=alpha,
            batch_size=batch_size,
            learning_rate=learning_rate,
            learning_rate_init=learning_rate_init,
            power_t=power_t,
            max_iter=max_iter,
            loss=loss,
            shuffle=shuffle,
            random_state=random_state,
            tol=tol,
            verbose=verbose,
            warm_start=warm_start,
            momentum=momentum,
            nesterovs_momentum=nesterovs_momentum,
            early_stopping=early_stopping,
            validation_fraction=validation_fraction,
            beta_1=beta_1,
            beta_2=beta_2,
            epsilon=epsilon,
            n_iter_no_change=n_iter_no_change,
            max_fun=max_fun,
            dropout=dropout,
            l1=l1,
            max_grad_norm=max_grad_norm,
            weight_decay=weight_decay,
            rho=rho,
            lr_decay=lr_decay,
            lr_period=lr_period,
            init=init,
            n_threads=n_threads,
            scoring=scoring,
        )
        self.class_weight = class_weight

    _parameter_constraints: dict = {
        **BaseMultilayerPerceptron._parameter_constraints,
        "loss": [StrOptions({"log_loss", "hinge"})],
        "class_weight": [None, StrOptions({"balanced"}), dict],
    }

    def _binary_outputs(self):
        return self._label_binarizer.y_type_ != "multiclass"

    def _with_class_weight(self, sample_weight, Y, partial_fit):
        if self.class_weight is None:
            return sample_weight
        if self._label_binarizer.y_type_.startswith("multilabel"):
            raise ValueError(
                "class_weight is not supported for multilabel y; weight the samples "
                "with sample_weight instead."
            )
        if partial_fit and self.class_weight == "balanced":
            raise ValueError(
                "class_weight='balanced' is not supported for partial_fit: the class "
                "frequencies of one batch are not those of the data. Pass a dict of "
                "class weights instead."
            )
        idx = Y[:, 0].astype(np.intp) if Y.shape[1] == 1 else np.argmax(Y, axis=1)
        labels = self.classes_[idx]
        if isinstance(self.class_weight, dict):
            unknown = [c for c in self.class_weight if c not in set(self.classes_)]
            if unknown:
                raise ValueError(
                    f"class_weight has keys {unknown} that are not classes; the classes "
                    f"are {self.classes_.tolist()}."
                )
            per_class = np.array([float(self.class_weight.get(c, 1.0)) for c in self.classes_])
        else:
            per_class = compute_class_weight("balanced", classes=self.classes_, y=labels)
        weights = per_class[idx]
        return weights if sample_weight is None else sample_weight * weights

    def _encode_validation_targets(self, y_val, n_val):
        y_val = check_array(y_val, ensure_2d=False, dtype=None, ensure_all_finite=False)
        if y_val.shape[0] != n_val:
            raise ValueError(
                f"y_val has {y_val.shape[0]} rows but X_val has {n_val}."
            )
        if y_val.ndim == 2 and y_val.shape[1] == 1:
            y_val = column_or_1d(y_val, warn=True)
        if self._label_binarizer.y_type_.startswith("multilabel"):
            if y_val.ndim != 2 or y_val.shape[1] != len(self.classes_):
                raise ValueError(
                    f"y_val must be a multilabel indicator matrix with "
                    f"{len(self.classes_)} columns, like y."
                )
        else:
            unknown = np.setdiff1d(unique_labels(y_val), self.classes_)
            if len(unknown):
                raise ValueError(
                    f"y_val has labels {unknown.tolist()} that are not in the training "
                    f"classes {self.classes_.tolist()}."
                )
        Y = self._label_binarizer.transform(y_val).astype(bool)
        return Y.reshape((-1, 1)) if Y.ndim == 1 else Y

    def _validate_input(self, X, y, incremental, reset):
        X, y = validate_data(
            self,
            X,
            y,
            accept_sparse=["csr", "csc"],
            multi_output=True,
            dtype=_config.FLOAT_DTYPES,
            reset=reset,
        )
        if y.ndim == 2 and y.shape[1] == 1:
            y = column_or_1d(y, warn=True)
        # New classes on a fresh fit; on warm start the same set; on partial_fit a
        # subset of the declared classes.
        if not hasattr(self, "classes_") or (not self.warm_start and not incremental):
            self._label_binarizer = LabelBinarizer()
            self._label_binarizer.fit(y)
            self.classes_ = self._label_binarizer.classes_
        else:
            classes = unique_labels(y)
            if self.warm_start:
                if set(classes) != set(self.classes_):
                    raise ValueError(
                        "warm_start can only be used where `y` has the same classes as "
                        f"in the previous call to fit. Previously got {self.classes_}, "
                        f"`y` has {classes}"
                    )
            elif len(np.setdiff1d(classes, self.classes_, assume_unique=True)):
                raise ValueError(
                    f"`y` has classes not in `self.classes_`. `self.classes_` has "
                    f"{self.classes_}. 'y' has {classes}."
                )
        return X, self._binarize(y)

    def _binarize(self, y):
        """``self._label_binarizer.transform(y)`` as bool. Labels of one column (binary
        and multiclass, every label one of ``classes_``, which the callers ensure) are
        compared with ``classes_`` directly: the binarizer re-derives the type of y
        twice, a millisecond, a third of the fixed cost of a small fit."""
        classes = self.classes_
        if y.ndim == 1 and self._label_binarizer.y_type_ in ("binary", "multiclass"):
            if len(classes) == 2:
                return (y == classes[1])[:, None]
            if len(classes) > 2:
                return y[:, None] == classes[None, :]
        return self._label_binarizer.transform(y).astype(bool)

    def _validation_targets(self, Y_val):
        return self._label_binarizer.inverse_transform(Y_val.astype(bool))

    def predict(self, X):
        """Predict class labels for X.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)

        Returns
        -------
        y : ndarray of shape (n_samples,) or (n_samples, n_classes)
        """
        _check_fitted(self)
        return self._predict(X)

    def _predict(self, X, check_input=True):
        return self._predictions(self._forward_pass_fast(X, check_input=check_input))

    def _predictions(self, y_pred):
        """Labels from the network's outputs."""
        if self.n_outputs_ == 1:
            y_pred = y_pred.ravel()
        # hinge outputs are margins: the decision threshold is 0, not a probability of 0.5
        threshold = 0.0 if self.loss == "hinge" else 0.5
        kind = self._label_binarizer.y_type_
        # LabelBinarizer.inverse_transform's rules, without its per-call overhead
        if kind == "multiclass":
            return self.classes_.take(y_pred.argmax(axis=1), mode="clip")
        if kind == "binary" and len(self.classes_) == 2:
            return self.classes_[(y_pred > threshold).astype(np.intp)]
        return self._label_binarizer.inverse_transform(y_pred, threshold=threshold)

    _score_function = staticmethod(_stopping.accuracy)

    @available_if(_stochastic_solver)
    @_fit_context(prefer_skip_nested_validation=True)
    def partial_fit(self, X, y, sample_weight=None, classes=None):
        """Update the model with one epoch over the given data.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
        y : array-like of shape (n_samples,) or (n_samples, n_classes)
        sample_weight : array-like of shape (n_samples,), default=None
        classes : array of shape (n_classes,), default=None
            All the classes; required on the first call, ignored afterwards.

        Returns
        -------
        self : object
        """
        self._validate_params()  # _fit_context skips it once fitted; set_params may lie
        if not hasattr(self, "classes_"):
            if classes is None:
                raise ValueError("classes must be passed on the first call to partial_fit.")
            self._label_binarizer = LabelBinarizer()
            if type_of_target(y).startswith("multilabel"):
                self._label_binarizer.fit(y)
            else:
                self._label_binarizer.fit(classes)
            self.classes_ = self._label_binarizer.classes_
        elif classes is not None and not np.array_equal(
            self.classes_, unique_labels(classes)
        ):
            raise ValueError(
                f"`classes={classes!r}` is not the same as on the previous call to "
                f"partial_fit, which was: {self.classes_!r}"
            )
        return self._fit(X, y, sample_weight=sample_weight, incremental=True)

    def decision_function(self, X):
        """The network's raw output scores: the output layer's values before the
        softmax or logistic function (log_loss), its margins (hinge).

        ``predict`` takes the arg max of each row (multiclass) or the sign (two classes,
        and each label of multilabel y). With log_loss, ``predict_proba`` is the softmax
        (multiclass) or logistic function of these scores.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)

        Returns
        -------
        scores : ndarray of shape (n_samples,) for two classes, else (n_samples,
            n_classes)
            For two classes, the score of ``classes_[1]`` (positive: predicted).
        """
        _check_fitted(self)
        scores = self._forward_pass_fast(X, raw=True)
        return scores.ravel() if self.n_outputs_ == 1 else scores

    @available_if(_probabilistic)
    def predict_log_proba(self, X):
        """Log of :meth:`predict_proba`.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)

        Returns
        -------
        log_y_prob : ndarray of shape (n_samples, n_classes)
        """
        y_prob = self.predict_proba(X)
        return np.log(y_prob, out=y_prob)

    @available_if(_probabilistic)
    def predict_proba(self, X):
        """Class probabilities, columns in the order of ``classes_``.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)

        Returns
        -------
        y_prob : ndarray of shape (n_samples, n_classes)
        """
        _check_fitted(self)
        y_pred = self._forward_pass_fast(X)
        if self.n_outputs_ == 1:
            p = y_pred.ravel()
            return np.vstack([1 - p, p]).T
        return y_pred

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_label = True
        return tags


def _target_scaling(Y, sample_weight):
    """``(mean, scale)`` of each column of ``Y``, weighted like ``np.average``, in Y's
    dtype (the sums in float64). A column whose values of positive weight are all equal
    gets scale 1: dividing by a rounding-error standard deviation would blow noise up."""
    Y64 = Y.astype(np.float64)
    mean = np.average(Y64, axis=0, weights=sample_weight)
    scale = np.sqrt(np.average((Y64 - mean) ** 2, axis=0, weights=sample_weight))
    kept = Y64 if sample_weight is None else Y64[np.asarray(sample_weight) > 0]
    scale[(np.ptp(kept, axis=0) == 0) | (scale == 0)] = 1.0
    return mean.astype(Y.dtype), scale.astype(Y.dtype)


def _prediction_bounds(Y, margin):
    """``[[low], [high]]`` per column of ``Y``: its range widened by ``margin`` times
    the range on both sides."""
    low, high = Y.min(axis=0), Y.max(axis=0)
    spread = margin * (high - low)
    return np.stack([low - spread, high + spread]).astype(Y.dtype)


@_docstrings.render
class MLPRegressor(RegressorMixin, BaseMultilayerPerceptron):
    """Multi-layer perceptron regressor, trained by compiled backpropagation.

    A drop-in replacement for :class:`sklearn.neural_network.MLPRegressor`: the same
    parameters, defaults, fitted attributes and methods, and for the same
    ``random_state`` the same float64 training to rounding error. Differences, both
    fixes:

    - for several outputs, 'squared_error' reports half the squared error *summed* over
      the outputs, the function whose gradient is trained on (scikit-learn reports the
      mean over outputs while training on the sum: its issue 8349);
    - ``partial_fit`` exists only for the stochastic solvers, as documented.

    Parameters
    ----------
    loss : str, default='squared_error'
        'squared_error', 'poisson', 'absolute_error' or 'huber'. Per output, with
        r = prediction - y: 'squared_error' ``r^2 / 2``; 'poisson' the half Poisson
        deviance with a log link (exp output; needs ``y >= 0``); 'absolute_error'
        ``|r|``; 'huber' ``r^2 / 2`` for ``|r| <= huber_delta``, else
        ``huber_delta * (|r| - huber_delta / 2)``.
    huber_delta : float, default=1.0
        Threshold of the 'huber' loss between its quadratic and linear parts, in the
        units of y (with ``normalize_y=True``, of the standardised y: standard
        deviations).
    normalize_y : bool, default=False
        Standardise each output of y before training (as scikit-learn's
        GaussianProcessRegressor does): the network learns ``(y - target_mean_) /
        target_scale_``, mean and standard deviation weighted by ``sample_weight`` like
        ``np.average``, and ``predict`` maps its outputs back. Targets in the hundreds,
        or a few extreme ones, then no longer dominate the first steps. The scaling is
        fitted once per network, by the first ``fit`` (on all its rows, before the
        early-stopping hold-out) or the first ``partial_fit`` batch, and kept by
        ``warm_start`` and later ``partial_fit`` calls: a batch's own mean is not the
        data's. ``loss_``, ``loss_curve_``, ``best_loss_`` and
        ``validation_loss_curve_`` are then on the standardised target;
        ``validation_scores_`` (R^2, scorers) on y's own scale. Not with
        ``loss='poisson'`` (a ValueError): its log link already models y's scale.
        :meth:`to_sklearn` folds the scaling into the output layer exactly (its copies
        of the losses stay standardised; no optimizer state is exported, being that of
        the standardised problem: scikit-learn's ``partial_fit`` starts a fresh one).
    clip_predictions : float or None, default=None
        Clip predictions to the range of the training targets widened by this margin
        on both sides: ``[min(y) - m * range, max(y) + m * range]`` per output, with
        ``m = clip_predictions`` and ``range = max(y) - min(y)`` (0 clips to the range
        itself); None does not clip. The bounds (``prediction_bounds_``) are fitted
        with the scaling, once per network; they apply in ``predict``, ``score`` and
        the validation scores (not the losses). scikit-learn's MLP cannot clip:
        :meth:`to_sklearn` exports the network with a UserWarning that its predictions
        will not be clipped.
$shared_parameters

    Attributes
    ----------
    target_mean_ : ndarray of shape (n_outputs_,)
        The (weighted) mean of each output of the training y; only with
        ``normalize_y=True``.
    target_scale_ : ndarray of shape (n_outputs_,)
        The (weighted) standard deviation of each output of the training y, 1 for an
        output whose values are all equal; only with ``normalize_y=True``.
    prediction_bounds_ : ndarray of shape (2, n_outputs_)
        The lowest (row 0) and highest (row 1) prediction of each output; only when
        ``clip_predictions`` is not None.
$shared_attributes

    See Also
    --------
    MLPClassifier : the same network for classification.
    sklearn.neural_network.MLPRegressor : the scikit-learn estimator this replaces.

    Examples
    --------
    >>> from sklearn.compose import TransformedTargetRegressor
    >>> from sklearn.datasets import load_diabetes
    >>> from sklearn.model_selection import train_test_split
    >>> from sklearn.pipeline import make_pipeline
    >>> from sklearn.preprocessing import StandardScaler
    >>> from fastbp import MLPRegressor
    >>> X, y = load_diabetes(return_X_y=True)
    >>> X_train, X_test, y_train, y_test = train_test_split(X, y, random_state=0)
    >>> net = MLPRegressor(hidden_layer_sizes=(16,), solver="lbfgs", alpha=10.0,
    ...                    max_iter=2000, random_state=0)
    >>> # standardise X and y: a network trains badly on targets in the hundreds
    >>> reg = TransformedTargetRegressor(make_pipeline(StandardScaler(), net),
    ...                                  transformer=StandardScaler())
    >>> reg.fit(X_train, y_train).predict(X_test[:3]).shape
    (3,)
    >>> round(reg.score(X_test, y_test), 2)
    0.35
    """

    _parameter_constraints: dict = {
        **BaseMultilayerPerceptron._parameter_constraints,
        "loss": [StrOptions({"squared_error", "poisson", "absolute_error", "huber"})],
        "huber_delta": [Interval(Real, 0, None, closed="neither")],
        "normalize_y": ["boolean"],
        "clip_predictions": [None, Interval(Real, 0, None, closed="left")],
    }

    def __init__(
        self,
        loss="squared_error",
        hidden_layer_sizes=(100,),
        activation="relu",
        *,
        solver="adam",
        alpha=0.0001,
        batch_size="auto",
        learning_rate="constant",
        learning_rate_init=0.001,
        power_t=0.5,
        max_iter=200,
        shuffle=True,
        random_state=None,
        tol=1e-4,
        verbose=False,
        warm_start=False,
        momentum=0.9,
        nesterovs_momentum=True,
        early_stopping=False,
        validation_fraction=0.1,
        beta_1=0.9,
        beta_2=0.999,
        epsilon=1e-8,
        n_iter_no_change=10,
        max_fun=15000,
        dropout=0.0,
        l1=0.0,
        max_grad_norm=None,
        weight_decay=0.01,
        rho=0.9,
        lr_decay=0.5,
        lr_period=None,
        init="sklearn",
        n_threads=None,
        scoring=None,
        huber_delta=1.0,
        normalize_y=False,
        clip_predictions=None,
    ):
        super().__init__(
            hidden_layer_sizes=hidden_layer_sizes,
            activation=activation,
            solver=solver,
            alpha=alpha,
            batch_size=batch_size,
            learning_rate=learning_rate,
            learning_rate_init=learning_rate_init,
            power_t=power_t,
            max_iter=max_iter,
            loss=loss,
            shuffle=shuffle,
            random_state=random_state,
            tol=tol,
            verbose=verbose,
            warm_start=warm_start,
            momentum=momentum,
            nesterovs_momentum=nesterovs_momentum,
            early_stopping=early_stopping,
            validation_fraction=validation_fraction,
            beta_1=beta_1,
            beta_2=beta_2,
            epsilon=epsilon,
            n_iter_no_change=n_iter_no_change,
            max_fun=max_fun,
            dropout=dropout,
            l1=l1,
            max_grad_norm=max_grad_norm,
            weight_decay=weight_decay,
            rho=rho,
            lr_decay=lr_decay,
            lr_period=lr_period,
            init=init,
            n_threads=n_threads,
            scoring=scoring,
        )
        self.huber_delta = huber_delta
        self.normalize_y = normalize_y
        self.clip_predictions = clip_predictions

    # ------------------------------------------------ target scaling and clipping
    def _check_network_parameters(self):
        if self.normalize_y and self.loss == "poisson":
            raise ValueError(
                "normalize_y=True cannot be used with loss='poisson': its log link "
                "predicts exp(output) > 0 on y's own scale, which centring y would "
                "break. Use normalize_y=False with loss='poisson'."
            )
        return super()._check_network_parameters()

    def _fit_target_transform(self, Y, sample_weight, first_pass):
        """The target scaling and prediction bounds: fitted on the first pass of a
        network, kept (and checked unchanged) by warm start and partial_fit."""
        if not first_pass:
            self._check_target_settings_unchanged()
            return
        for name in ("target_mean_", "target_scale_", "prediction_bounds_"):
            self.__dict__.pop(name, None)
        if self.normalize_y:
            self.target_mean_, self.target_scale_ = _target_scaling(Y, sample_weight)
        if self.clip_predictions is not None:
            self.prediction_bounds_ = _prediction_bounds(Y, self.clip_predictions)
        self._clip_margin = self.clip_predictions

    def _check_target_settings_unchanged(self):
        fitted = {
            "normalize_y": "target_scale_" in self.__dict__,
            "clip_predictions": self.__dict__.get("_clip_margin"),
        }
        for name, value in fitted.items():
            if not _parameters.same(getattr(self, name), value):
                raise ValueError(
                    f"{name}={getattr(self, name)!r}, but this network was first fitted "
                    f"with {name}={value!r}: what it learns from y is fitted once per "
                    "network and kept by warm_start and partial_fit. Set it back, or "
                    "fit with warm_start=False to start afresh."
                )

    def _kernel_targets(self, Y):
        if "target_scale_" not in self.__dict__:
            return Y
        return (Y - self.target_mean_) / self.target_scale_

    def _encode_validation_targets(self, y_val, n_val):
        y_val = check_array(y_val, ensure_2d=False, dtype=_config.FLOAT_DTYPES,
                            input_name="y_val")
        if y_val.shape[0] != n_val:
            raise ValueError(f"y_val has {y_val.shape[0]} rows but X_val has {n_val}.")
        Y = y_val.reshape((-1, 1)) if y_val.ndim == 1 else y_val
        if Y.shape[1] != self.n_outputs_:
            raise ValueError(
                f"y_val has {Y.shape[1]} output(s) but the model has {self.n_outputs_}."
            )
        if self.loss == "poisson" and np.any(Y < 0):
            raise ValueError("Some value(s) of y_val are negative, which is not allowed "
                             "for loss='poisson'.")
        return Y

    def _validate_input(self, X, y, incremental, reset):
        X, y = validate_data(
            self,
            X,
            y,
            accept_sparse=["csr", "csc"],
            multi_output=True,
            y_numeric=True,
            dtype=_config.FLOAT_DTYPES,
            reset=reset,
        )
        if y.ndim == 2 and y.shape[1] == 1:
            y = column_or_1d(y, warn=True)
        if self.loss == "poisson" and np.any(y < 0):
            raise ValueError(
                "Some value(s) of y are negative, which is not allowed for "
                "loss='poisson' (it models counts or rates, y >= 0)."
            )
        return X, y

    def _validation_targets(self, Y_val):
        return Y_val.ravel() if Y_val.shape[1] == 1 else Y_val

    def predict(self, X):
        """Predict using the multi-layer perceptron model.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)

        Returns
        -------
        y : ndarray of shape (n_samples,) or (n_samples, n_outputs)
        """
        _check_fitted(self)
        return self._predict(X)

    def _predict(self, X, check_input=True):
        return self._predictions(self._forward_pass_fast(X, check_input=check_input))

    def _predictions(self, y_pred):
        """Predictions from the network's outputs (a fresh array, mapped in place):
        back from the scaled target, then clipped, as fitted."""
        scale = self.__dict__.get("target_scale_")
        if scale is not None:
            y_pred *= scale
            y_pred += self.target_mean_
        bounds = self.__dict__.get("prediction_bounds_")
        if bounds is not None:
            np.clip(y_pred, bounds[0], bounds[1], out=y_pred)
        return y_pred.ravel() if y_pred.shape[1] == 1 else y_pred

    _score_function = staticmethod(_stopping.r2)

    @available_if(_stochastic_solver)
    @_fit_context(prefer_skip_nested_validation=True)
    def partial_fit(self, X, y, sample_weight=None):
        """Update the model with one epoch over the given data.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
        y : array-like of shape (n_samples,) or (n_samples, n_outputs)
        sample_weight : array-like of shape (n_samples,), default=None

        Returns
        -------
        self : object
        """
        self._validate_params()  # _fit_context skips it once fitted; set_params may lie
        return self._fit(X, y, sample_weight=sample_weight, incremental=True)
